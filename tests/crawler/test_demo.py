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


def _phash(data: bytes):
    import imagehash

    return imagehash.phash(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_engine_mixes_in_near_copies_and_off_topic_shapes():
    kinds = [demo_images.planted(i) for i in range(120)]
    assert kinds.count(demo_images.NEAR_COPY) == kinds.count(demo_images.OFF_TOPIC) == 10
    for i in range(24):
        data = demo_images.crawled("square", i)
        assert data == demo_images.crawled("square", i)  # deterministic
        if kinds[i] == demo_images.CLEAN:
            assert data == demo_images.render("square", i)
        elif kinds[i] == demo_images.NEAR_COPY:
            original = demo_images.render("square", i - demo_images.COPY_OF)
            assert demo_images.planted(i - demo_images.COPY_OF) == demo_images.CLEAN
            assert data != original and min(Image.open(io.BytesIO(data)).size) >= demo_images.MIN_COPY_SIDE
            assert _phash(data) - _phash(original) <= 20  # a near copy, within curation's candidate distance
            assert _phash(data) - _phash(demo_images.render("square", i - 1)) > 20  # not any picture
        else:
            assert all(data != demo_images.render(c, i) for c in demo_images.DEMO_CLASSES)


def test_every_near_copy_reaches_curation():
    """A copy rescaled below the cleaner's minimum side would be dropped as too small
    before curation could catch it."""
    sizes = [
        Image.open(io.BytesIO(demo_images.crawled(c, i))).size
        for c in demo_images.DEMO_CLASSES
        for i in range(120)
        if demo_images.planted(i) == demo_images.NEAR_COPY
    ]
    assert len(sizes) == 30 and min(min(s) for s in sizes) >= demo_images.MIN_COPY_SIDE


def test_off_topic_shapes_are_none_of_the_classes():
    star, cross = (np.asarray(demo_images.render_image(k, 1)) for k in demo_images.OFF_TOPIC_KINDS)
    assert star.shape == cross.shape == (256, 256, 3) and not np.array_equal(star, cross)
    assert set(demo_images.OFF_TOPIC_KINDS).isdisjoint(demo_images.DEMO_CLASSES)


def _line(kw: str, index: int, reason: str, ext: str = "jpg") -> dict:
    outcome = {"": "kept", "near_duplicate": "duplicate", "label_issue": "dropped", "balance": "dropped"}[reason]
    return {"source_url": f"http://127.0.0.1:1/img/{kw}/{index}.{ext}?size=large", "outcome": outcome, "reason": reason}


def test_planted_outcomes_count_what_the_cleaner_did_with_each_planted_result():
    from keyclass.pipeline.demo import format_planted, planted_outcomes

    ledger = [_line("circle", i, "") for i in range(24)]
    ledger[11] = _line("circle", 11, "near_duplicate", "png")  # copy of 4 caught (the copy goes)
    ledger[16] = _line("circle", 16, "near_duplicate")  # copy 23 of 16 caught (the original goes)
    ledger[6] = _line("circle", 6, "label_issue")  # off-topic pruned; 18 stays: missed
    ledger[2] = _line("circle", 2, "label_issue")  # a clean picture pruned
    ledger[3] = _line("circle", 3, "near_duplicate")  # a clean picture merged
    ledger[5] = _line("circle", 5, "balance")  # not a curation decision
    ledger.append({"source_url": "http://127.0.0.1:1/elsewhere/x.jpg", "outcome": "failed", "reason": "http_404"})
    counts = planted_outcomes(ledger)
    assert counts == {
        "near_copies": 2,
        "near_copies_caught": 2,
        "off_topic": 2,
        "off_topic_pruned": 1,
        "clean": 18,  # 24 - 2 copies - 2 off-topic - 2 originals
        "clean_pruned": 1,
        "clean_merged": 1,
    }
    assert "near copies 2 of 2 caught, off-topic shapes 1 of 2 pruned" in format_planted(counts)
    assert "wrongly removed 2 of 18" in format_planted(counts)
