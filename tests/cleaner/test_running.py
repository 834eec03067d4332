"""The cleaner picks Beam's running mode from the job's size, and ends its stage with one
line saying what the found images became."""

from unittest import mock

import pytest

from keyclass.components import progress
from keyclass.components.cleaner import executor
from keyclass.components.cleaner.running import direct_running_args
from tests.cleaner.helpers import run_cleaner
from tests.fixtures import images as fx

PROCESSES = ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


@pytest.mark.parametrize(
    "args, files, expected_mode",
    [
        (PROCESSES, 4000, "multi_threading"),  # the default job: threads start at once
        (PROCESSES, 20_000, "multi_threading"),
        (PROCESSES, 20_001, "multi_processing"),  # large jobs pay the workers' start back
        (["--direct_running_mode=multi_processing"], 10, "multi_threading"),  # no --runner: Direct
        (["--direct_running_mode=in_memory"], 10, "in_memory"),  # a mode chosen on purpose stays
        (["--runner=DirectRunner", "--direct_running_mode=multi_threading"], 10**6, "multi_threading"),
    ],
)
def test_the_direct_runner_mode_follows_the_job_size(args, files, expected_mode):
    out = direct_running_args(args, files, threads_up_to=20_000)
    modes = [a.split("=", 1)[1] for a in out if a.startswith("--direct_running_mode=")]
    assert modes == [expected_mode]
    assert [a for a in out if not a.startswith("--direct_running_mode=")] == [
        a for a in args if not a.startswith("--direct_running_mode=")
    ]


@pytest.mark.parametrize("threads_up_to", [0, 5])
def test_zero_or_a_small_limit_keeps_processes(threads_up_to):
    assert direct_running_args(PROCESSES, 10, threads_up_to) == PROCESSES


def test_other_runners_are_left_alone():
    dataflow = ["--runner=DataflowRunner", "--project=p", "--direct_running_mode=multi_processing"]
    assert direct_running_args(dataflow, 10, 20_000) == dataflow


def test_a_small_job_runs_in_threads_and_its_stage_ends_as_one_line(tmp_path, capsys):
    entries = [
        fx.Entry(kw, fx.rgb_jpeg(base + i), url=f"http://x/{kw}{i}.jpg")
        for kw, base in (("cat", 10), ("dog", 20))
        for i in range(3)
    ]
    entries.append(fx.Entry("cat", None, url="http://x/gone.jpg", error="HTTP 404"))
    fx.write_raw_images(tmp_path / "raw", entries)
    seen = []
    original = executor.Executor._make_beam_pipeline

    def record(self):
        seen.append(list(self._beam_pipeline_args))
        return original(self)

    saved = (progress.bars_setting(), progress.level())
    progress.configure(bars=False, level=progress.NORMAL)
    try:
        with (
            mock.patch.object(executor.Executor, "__init__", _with_args(PROCESSES)),
            mock.patch.object(executor.Executor, "_make_beam_pipeline", record),
        ):
            run_cleaner(str(tmp_path / "raw"), str(tmp_path / "out"), classes=("cat", "dog"), image_size=64)
    finally:
        progress.configure(bars=saved[0], level=saved[1])
    assert seen and seen[0][-1] == "--direct_running_mode=multi_threading"
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "clean: 7 found (6 files): 6 kept (1 failed); "
        "NO CURATION: backbone tiny has random weights (a test backbone with no pretrained weights)"
    ]


def _with_args(args):
    init = executor.Executor.__init__

    def __init__(self, context=None):
        init(self, context)
        self._beam_pipeline_args = list(args)

    return __init__
