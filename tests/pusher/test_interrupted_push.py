"""Interrupted pushes: a killed push's temp dir is removed by the next push; a run that
fails after the final rename does not make the next run push a duplicate version; a
push killed by SIGKILL at random points is followed by a normal rerun that succeeds and
loses nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from keyclass.components.pusher import executor
from keyclass.components.pusher.publish import publish
from keyclass.serving import model_layout
from tests.pusher.helpers import make_model, tree, without_record

REPO = Path(__file__).resolve().parents[2]


def run_do(tmp_path: Path, model_dir: Path, base: Path, name: str = "pushed") -> standard_artifacts.PushedModel:
    """The Pusher executor's Do() for a blessed model whose serving dir is ``model_dir``."""
    model = standard_artifacts.Model()
    model.uri = str(model_dir.parent)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(base)))
    executor.Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination)},
    )
    return pushed


@pytest.fixture
def model(tmp_path):
    return make_model(tmp_path / "trainer" / "Format-Serving")


def test_the_next_push_removes_a_killed_push_s_temp_dir(tmp_path, model):
    base = tmp_path / "models" / "a-b"
    leftover = base / f"{model_layout.TMP_PREFIX}1700000000-dead"
    (leftover / "variables").mkdir(parents=True)
    (leftover / "variables" / "variables.index").write_bytes(b"half")
    run_do(tmp_path, model, base)
    assert not leftover.exists()
    assert model_layout.temp_dirs(str(base)) == []
    assert len(model_layout.version_dirs(str(base))) == 1


def test_a_failure_after_the_rename_does_not_push_a_duplicate(tmp_path, model):
    base = tmp_path / "models" / "a-b"
    real_copy = executor.io_utils.copy_dir

    def copy_then_fail(src, dst, *a, **kw):
        if str(dst).startswith(str(tmp_path / "pushed")):  # the pushed_model artifact: after the rename
            raise OSError("disk full")
        return real_copy(src, dst, *a, **kw)

    with mock.patch.object(executor.io_utils, "copy_dir", side_effect=copy_then_fail), pytest.raises(OSError):
        run_do(tmp_path, model, base)
    assert len(model_layout.version_dirs(str(base))) == 1  # the version went out before the failure
    pushed = run_do(tmp_path, model, base, name="pushed-retry")  # the next run retries the Pusher
    versions = model_layout.version_dirs(str(base))
    assert len(versions) == 1, f"duplicate push: {sorted(versions)}"
    (version,) = versions
    assert pushed.get_string_custom_property("pushed_version") == str(version)
    assert pushed.get_int_custom_property("pushed") == 1
    # A different model still gets its own, newer version.
    other = make_model(tmp_path / "trainer2" / "Format-Serving", seed=1)
    run_do(tmp_path, other, base, name="pushed-other")
    assert len(model_layout.version_dirs(str(base))) == 2


_PUSH_SCRIPT = """
import sys
from keyclass.components.pusher.publish import publish
print("READY", flush=True)
sys.stdin.readline()
version, path, reused = publish(sys.argv[1], sys.argv[2])
print("DONE", version, reused, flush=True)
"""


def _start_push(model: Path, base: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PUSH_SCRIPT, str(model), str(base)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout.readline().strip() == "READY"  # imports done
    return proc


def test_a_push_killed_at_random_points_then_rerun_loses_nothing(tmp_path):
    """SIGKILL during the push (copy, record, rename, after) at random points; each time a
    normal rerun must leave exactly one whole version of the model, no temp dir, and the
    versions pushed before untouched."""
    model = make_model(tmp_path / "model", files=24, size=400_000)  # ~10 MB: the copy takes a while
    want = tree(model)
    earlier = make_model(tmp_path / "earlier", seed=5)

    # How long a whole push takes here (the random kill points fall within it).
    probe_base = tmp_path / "probe"
    proc = _start_push(model, probe_base)
    t0 = time.monotonic()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("DONE")
    duration = time.monotonic() - t0
    proc.wait(timeout=60)

    rng = random.Random(7)
    interrupted = 0
    for trial in range(8):
        base = tmp_path / f"models-{trial}"
        first_version, _, _ = publish(str(earlier), str(base))
        before = tree(base / str(first_version))
        proc = _start_push(model, base)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0, duration * 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        interrupted += bool(model_layout.temp_dirs(str(base)))  # killed mid-copy

        version, path, reused = publish(str(model), str(base))  # the normal rerun
        versions = model_layout.version_dirs(str(base))
        assert sorted(versions) == sorted({first_version, version}), (trial, sorted(versions))
        assert without_record(tree(Path(path))) == want, trial
        assert tree(base / str(first_version)) == before, trial
        assert model_layout.temp_dirs(str(base)) == [], trial
        assert publish(str(model), str(base))[2] is True  # and a third run changes nothing
    assert interrupted, "no kill landed inside a push: the test did not test anything"
