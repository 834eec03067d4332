"""The local progress channel of the decode stage."""

import threading

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


def test_bar_follows_and_cleans_up(capsys):
    with progress.ProgressBar(3, interval_s=0.01) as bar:
        for _ in range(3):
            progress.tick(bar.dir)
        d = bar.dir
    import os

    assert not os.path.exists(d)
    assert "3/3" in capsys.readouterr().err


def test_disabled_bar_gives_workers_nothing_to_write():
    with progress.ProgressBar(3, enabled=False) as bar:
        assert bar.dir is None
        progress.tick(bar.dir)  # a no-op
