"""A default ``keyclass run`` prints its stages and their results on stderr and nothing
else: no TF C++ log, no absl line, no Python warning, from the CLI process or from the
Beam workers it starts. The run is a real one (a new process, LocalDagRunner, Beam's
DirectRunner in multi-processing mode for the stock components, the loopback engine,
the tiny backbone, 64 px images), so what it prints is what a user sees.
"""

import re
import subprocess
import sys

import pytest

from keyclass.pipeline import demo_images
from tests.fixtures.engine import FaultEngine

pytestmark = pytest.mark.e2e

CLASSES = ["circle", "square"]
SERVED = 30  # per class; the run asks for more, so the engine runs out
STAGES = ("crawl", "clean", "validate", "train", "evaluate", "push", "predict", "report")

# What library noise looks like (any of these on a line fails the test).
NOISE = [
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ",  # TF's C++ logs (cuDNN/cuFFT/cuBLAS, oneDNN)
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d",  # absl's C++ logs (TFDV, XLA)
    r"absl::InitializeLog",  # absl's pre-init warning
    r"^(INFO|WARNING|ERROR):absl:",  # absl through Python logging
    r"Warning:",  # any Python warning (FutureWarning, UserWarning, ...)
    r"warnings\.warn",
    r"ran out of data",
    r"cuDNN|cuFFT|cuBLAS|oneDNN|TF_ENABLE_ONEDNN_OPTS",
]
# Everything a default run may print on stderr.
ALLOWED = [
    r"^(" + "|".join(STAGES) + r") {2,}\d+(\.\d)? (s|min)( \d\d s)?$",  # a stage line
    r"^(circle|square): \d+ found(, engine exhausted)?$",  # a keyword's crawl
    r"^clean: \d+ found \(\d+ files\): \d+ kept( \(.*\))?; NO CURATION: backbone tiny has random weights .*$",
    r"^train: \d+ epochs .*: val_loss \d\.\d{4}, val_accuracy \d+\.\d%$",
    r"^predict: \d+ files, \d+ at or above 0\.5$",
]


@pytest.fixture(scope="module")
def engine():
    with FaultEngine(classes=CLASSES, images_per_class=SERVED) as e:
        yield e


def test_a_default_run_prints_one_line_per_stage_and_no_library_noise(engine, tmp_path):
    photos = tmp_path / "photos"
    demo_images.write_folder(photos, CLASSES, 3, start=100_000)
    cmd = [
        sys.executable, "-m", "keyclass.pipeline.cli", "run", "-c", ",".join(CLASSES), "-p", str(photos),
        "-t", "0.5", "--results", str(tmp_path / "results"), "--home", str(tmp_path / "home"),
        "--source", "bing", "--search-url", engine.search_url, "--allow-loopback",
        "--max-images", str(SERVED + 10), "--min-images", "10", "--image-size", "64",
        "--backbone", "tiny", "--weights", "none", "--max-epochs", "2", "--fine-tune-epochs", "1",
        "--set", "clean.min_width=64", "--set", "clean.min_height=64",
        "--set", "runner.direct_num_workers=2", "--set", "runner.direct_running_mode=multi_processing",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    noisy = [line for line in lines if any(re.search(p, line) for p in NOISE)]
    assert not noisy, "\n".join(noisy[:20])
    unexpected = [line for line in lines if not any(re.match(p, line) for p in ALLOWED)]
    assert not unexpected, "\n".join(unexpected[:20])
    for stage in STAGES:
        assert sum(1 for line in lines if re.match(rf"^{stage} {{2,}}\d", line)) == 1, (stage, lines)
    starts = [next(i for i, line in enumerate(lines) if re.match(rf"^{s} {{2,}}\d", line)) for s in STAGES]
    assert starts == sorted(starts), lines  # in pipeline order
    for c in CLASSES:
        assert f"{c}: {SERVED} found, engine exhausted" in lines
    assert "trained a new model" in proc.stdout and "total accuracy" in proc.stdout
