"""The terminal: bars drawn in place that end as one line, stage lines read from the
runner's announcements, and a process set up quiet by default (see pipeline/terminal.py
and components/progress.py). The whole run is checked in tests/pipeline/test_quiet_run.py."""

import logging
import os
import time
import warnings

import pytest
from absl import logging as absl_logging

from keyclass.components import progress
from keyclass.components.crawler.crawl import keyword_summary
from keyclass.pipeline import terminal


@pytest.fixture(autouse=True)
def restore_settings():
    saved = (progress.bars_setting(), progress.level())
    yield
    progress.configure(bars=saved[0], level=saved[1])


def test_a_bar_redraws_in_place_and_ends_as_one_line(capsys):
    progress.configure(bars=True, level=progress.NORMAL)
    bar = progress.Bar(1000, "golden retriever")
    for _ in range(3):
        bar.update(55)
        time.sleep(0.12)  # past tqdm's redraw interval: each update is drawn
    bar.close("golden retriever: 165 found, engine exhausted")
    err = capsys.readouterr().err
    assert err.count("\r") >= 3  # drawn, redrawn in place
    assert err.count("\n") == 1  # one line in the end: the real total, no "165/1000"
    assert err.rstrip("\n").rsplit("\r", 1)[-1] == "golden retriever: 165 found, engine exhausted"
    assert "110/1000" in err  # a frame drawn before the bar was cleared


@pytest.mark.parametrize("bars", [False, None])  # --no-progress, or stderr not a terminal
def test_without_bars_only_the_closing_line_is_printed(capsys, bars):
    progress.configure(bars=bars, level=progress.NORMAL)
    with progress.Bar(10, "cat") as bar:
        bar.update(4)
        bar.note("bing")
        bar.close("cat: 4 found, engine exhausted")
    assert capsys.readouterr().err == "cat: 4 found, engine exhausted\n"


def test_quiet_prints_no_line_but_errors(capsys):
    progress.configure(bars=True, level=progress.QUIET)
    with progress.Bar(10, "cat") as bar:
        bar.update(4)
        bar.close("cat: 4 found")
    progress.say("crawl 1.0 s")
    progress.write("keyclass: error")
    assert capsys.readouterr().err == "keyclass: error\n"


def _rep(found, **sources):
    return {"downloaded": found, "sources_tried": list(sources), "sources": sources}


def _src(results=0, errors=()):
    return {"results": results, "errors": list(errors)}


@pytest.mark.parametrize(
    "rep, expected",
    [
        (_rep(1000, bing=_src(1200)), "golden retriever: 1000 found"),
        (_rep(165, bing=_src(170)), "golden retriever: 165 found, engine exhausted"),
        (_rep(300, bing=_src(200), google=_src(120)), "golden retriever: 300 found, bing and google exhausted"),
        (
            _rep(40, bing=_src(0, ["HTTP 503"]), **{"folder:/x": _src(40)}),
            "golden retriever: 40 found, folder:/x exhausted, bing failed (HTTP 503)",
        ),
    ],
)
def test_a_keyword_ends_with_its_real_total_and_why(rep, expected):
    assert keyword_summary("golden retriever", rep, 1000) == expected


def _announce(node: str, cached: bool = False) -> None:
    absl_logging.info(terminal.RUNNING, node)
    if cached:
        absl_logging.info(terminal.CACHED, 7)
    absl_logging.info(terminal.FINISHED, node)


def test_stage_lines_follow_the_runners_announcements(capsys):
    progress.configure(bars=False, level=progress.NORMAL)
    stages = [("crawl", ("ImageCrawler",)), ("validate", ("StatisticsGen", "SchemaGen")), ("evaluate", ("r", "E"))]
    with terminal.session(progress.NORMAL), terminal.stage_lines(stages):
        _announce("ImageCrawler", cached=True)
        _announce("r")  # the resolver may run early; its stage ends with its last node
        _announce("StatisticsGen")
        assert "validate" not in capsys.readouterr().err  # not before SchemaGen finished
        _announce("SchemaGen")
        _announce("E")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[0] for line in lines] == ["validate", "evaluate"]
    with terminal.session(progress.NORMAL), terminal.stage_lines(stages):
        _announce("ImageCrawler", cached=True)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("crawl") and line.endswith("cached")


def test_a_failed_stage_says_so_and_only_that_one(capsys):
    progress.configure(bars=False, level=progress.NORMAL)
    stages = [("train", ("Trainer",)), ("evaluate", ("resolver", "Evaluator"))]
    with pytest.raises(RuntimeError), terminal.session(progress.NORMAL):
        with terminal.stage_lines(stages):
            _announce("resolver")  # evaluate is under way, waiting for the Evaluator
            absl_logging.info(terminal.RUNNING, "Trainer")
            absl_logging.error(terminal.EXECUTION_FAILED, 8)  # restated by the CLI's last line
            raise RuntimeError("boom")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("train") and line.endswith("failed")


def test_a_stage_takes_the_time_of_its_own_nodes(capsys, monkeypatch):
    clock = iter([0.0, 0.5, 10.0, 40.0, 100.0, 102.0])  # perf_counter at each announcement
    monkeypatch.setattr(terminal.time, "perf_counter", lambda: next(clock))
    progress.configure(bars=False, level=progress.NORMAL)
    stages = [("train", ("Trainer",)), ("evaluate", ("resolver", "Evaluator"))]
    with terminal.session(progress.NORMAL), terminal.stage_lines(stages):
        _announce("resolver")  # 0.5 s, long before the Evaluator
        _announce("Trainer")  # 30 s
        _announce("Evaluator")  # 2 s
    assert capsys.readouterr().err.splitlines() == ["train           30.0 s", "evaluate         2.5 s"]


def test_by_default_library_noise_is_hidden_for_this_process_and_its_workers(capsys, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    with terminal.session(progress.NORMAL):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"  # read by TF's C++ at load, workers inherit it
        assert all(f in os.environ["PYTHONWARNINGS"] for f in terminal.GOOGLE_CLIENT_WARNINGS)
        warnings.warn(
            "You are using a non-supported Python version (3.10.13). Google will not", FutureWarning, stacklevel=1
        )
        warnings.warn("some library's deprecation", DeprecationWarning, stacklevel=1)
        absl_logging.info("Component %s is running.", "X")
        absl_logging.warning("TFX says something")
        logging.getLogger("apache_beam").warning("Beam says something")
        absl_logging.error("the engine failed")
    assert capsys.readouterr().err == "error: the engine failed\n"
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and "PYTHONWARNINGS" not in os.environ  # restored


def test_verbose_brings_everything_back(capsys, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with terminal.session(progress.VERBOSE):
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        assert progress.level() == progress.VERBOSE
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        absl_logging.info("TFX says something")
    err = capsys.readouterr().err
    assert "a library's warning" in err and "TFX says something" in err


def test_an_explicit_tf_log_level_is_respected(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with terminal.session(progress.NORMAL):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
