"""The local progress channel of the decode stage."""

import os
import threading

import pytest

from keyclass.components import progress as terminal
from keyclass.components.cleaner import progress


def test_ticks_from_several_threads_are_counted(tmp_path):
    def work():
        for _ in range(50):
            progress.tick(str(tmp_path))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert progress.done(str(tmp_path)) == 200


@pytest.fixture
def terminal_settings():
    """Restore the process's terminal settings after a test changes them."""
    saved = (terminal.bars_setting(), terminal.level())
    yield
    terminal.configure(bars=saved[0], level=saved[1])


def test_bar_follows_then_ends_as_one_line_and_cleans_up(capsys, terminal_settings):
    terminal.configure(bars=True, level=terminal.NORMAL)
    with progress.ProgressBar(3, interval_s=0.01) as bar:
        for _ in range(3):
            progress.tick(bar.dir)
        d = bar.dir
        bar.finish("clean: 3 found (3 files): 3 kept")
        assert bar.n == 3
    assert not os.path.exists(d)
    err = capsys.readouterr().err
    assert err.endswith("clean: 3 found (3 files): 3 kept\n")
    assert err.count("clean: 3 found") == 1


def test_without_bars_the_workers_write_nothing_and_the_line_still_comes(capsys, terminal_settings):
    terminal.configure(bars=False, level=terminal.NORMAL)
    with progress.ProgressBar(3) as bar:
        assert bar.dir is None
        progress.tick(bar.dir)  # a no-op
        bar.finish("clean: 3 found")
    assert capsys.readouterr().err == "clean: 3 found\n"


def test_disabled_bar_gives_workers_nothing_to_write(terminal_settings):
    terminal.configure(bars=True, level=terminal.NORMAL)
    with progress.ProgressBar(3, enabled=False) as bar:
        assert bar.dir is None
        progress.tick(bar.dir)  # a no-op


def test_quiet_prints_nothing(capsys, terminal_settings):
    terminal.configure(bars=True, level=terminal.QUIET)
    with progress.ProgressBar(3) as bar:
        assert bar.dir is None
        bar.finish("clean: 3 found")
    assert capsys.readouterr().err == ""
