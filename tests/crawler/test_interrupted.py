"""A crawl killed by SIGKILL at random points, then run again normally into the same
directory, ends exactly as an uninterrupted crawl: the same manifest, every image whole
and named by its content, no half-written file left."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from keyclass.components import layout
from keyclass.components.crawler import crawl as crawl_lib
from tests.crawler.conftest import make_cfg

REPO = Path(__file__).resolve().parents[2]
TRIALS = 3

_CRAWL_SCRIPT = """
import json, sys
from keyclass.components.crawler import crawl
from keyclass.components.crawler.settings import CrawlConfig
cfg = CrawlConfig(**json.loads(sys.argv[1]))
print("READY", flush=True)
sys.stdin.readline()
crawl.crawl(cfg, sys.argv[2], progress=False)
print("DONE", flush=True)
"""


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / layout.MANIFEST).read_text().splitlines()]


def _images(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out / layout.IMAGES_DIR).iterdir()}


def test_a_crawl_killed_at_random_points_then_rerun_loses_nothing(engine, tmp_path):
    cfg = make_cfg(engine, max_images_per_class=10, per_host_delay_s=0.03, download_threads=2)
    # The uninterrupted crawl, for reference and to time the kill points.
    t0 = time.monotonic()
    crawl_lib.crawl(cfg, str(tmp_path / "reference"), progress=False)
    duration = time.monotonic() - t0
    want_manifest, want_images = _manifest(tmp_path / "reference"), _images(tmp_path / "reference")
    assert len(want_images) == 20

    procs = [  # started together: their imports overlap
        subprocess.Popen(
            [sys.executable, "-c", _CRAWL_SCRIPT, json.dumps(dataclasses.asdict(cfg)), str(tmp_path / f"run-{i}")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        for i in range(TRIALS)
    ]
    rng = random.Random(3)
    interrupted = 0
    for i, proc in enumerate(procs):
        out = tmp_path / f"run-{i}"
        assert proc.stdout.readline().strip() == "READY"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0.1, 0.9) * duration)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        interrupted += not (out / layout.CRAWL_REPORT).exists()

        crawl_lib.crawl(cfg, str(out), progress=False)  # the normal rerun
        assert _manifest(out) == want_manifest, i
        images = _images(out)
        assert images == want_images, i  # nothing missing, nothing half-written or stray
        assert all(hashlib.sha256(data).hexdigest() == name for name, data in images.items())
        assert sorted(os.listdir(out)) == sorted([layout.IMAGES_DIR, layout.MANIFEST, layout.CRAWL_REPORT])
    assert interrupted, "no kill landed inside a crawl: the test did not test anything"
