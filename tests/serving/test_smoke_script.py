"""serving/smoke_test.sh, run for real against the stand-in (curl for REST, the python
client for gRPC)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "serving" / "smoke_test.sh"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="smoke_test.sh needs curl")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, CURL_TIMEOUT="20")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_smoke_test_passes_against_a_serving_model(standin, served_models, images, tmp_path):
    image = tmp_path / "cat.jpg"
    image.write_bytes(images[0])
    r = _run(served_models.model_name, str(image), standin.rest_url, standin.grpc_target)
    assert r.returncode == 0, r.stdout + r.stderr
    for step in ("REST status", "REST metadata", "REST serving_default", "REST grad_cam", "gRPC version"):
        assert f"ok   {step}" in r.stdout, r.stdout
    assert "smoke test passed" in r.stdout


def test_smoke_test_fails_on_a_model_that_is_not_served(standin, images, tmp_path):
    image = tmp_path / "cat.jpg"
    image.write_bytes(images[0])
    r = _run("nope", str(image), standin.rest_url, standin.grpc_target)
    assert r.returncode == 1
    assert "FAIL: status HTTP 404" in r.stderr and "Could not find any versions of model nope" in r.stderr


def test_smoke_test_prints_usage():
    r = _run()
    assert r.returncode == 2 and "smoke_test.sh MODEL_NAME IMAGE" in r.stdout
