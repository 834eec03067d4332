"""The demo images and the loopback engine's own behaviour."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keyclass.pipeline import demo_images
from keyclass.pipeline.demo_engine import DemoSearchEngine


def test_demo_images_are_deterministic_jpegs_that_differ():
    a = demo_images.render("circle", 3)
    assert a == demo_images.render("circle", 3)
    assert a != demo_images.render("circle", 4) and a != demo_images.render("square", 3)
    img = Image.open(io.BytesIO(a))
    assert img.format == "JPEG" and img.size == (256, 256) and img.mode == "RGB"


def test_demo_images_have_textured_backgrounds():
    pixels = np.asarray(demo_images.render_image("triangle", 0)).astype(float)
    assert pixels.std() > 10


def test_unknown_demo_class_is_refused():
    with pytest.raises(KeyError, match="demo classes"):
        demo_images.render("hexagon", 0)


def test_engine_requires_start_and_stops_cleanly():
    engine = DemoSearchEngine()
    with pytest.raises(RuntimeError, match="not running"):
        _ = engine.search_url
    with engine as e:
        assert e.search_url.startswith("http://127.0.0.1:") and e.search_url.endswith("/images/async")
    assert engine._server is None


def test_results_are_extras_then_generated(engine):
    extra = engine.add_status("circle", 404)
    assert engine.results("Circle ")[:2] == [extra, engine.image_url("circle", 0)]
    assert engine.results("hexagon") == []


def test_cli_refuses_unknown_classes():
    r = subprocess.run(
        [sys.executable, "-m", "keyclass.pipeline.demo_engine", "--port", "0", "--classes", "circle,hexagon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "no demo images for hexagon" in r.stderr
