"""Every bad input, served by the loopback Bing-format engine, crawled by the real
crawler executor and cleaned by the real cleaner executor: each URL ends in the ledger
with the outcome the brief asks for, and the funnel adds up."""

import io
import json
from collections import Counter

import pytest
from PIL import Image

from tests.cleaner.helpers import read_examples, run_cleaner
from tests.crawler.conftest import make_cfg, run_do
from tests.fixtures import images
from tests.fixtures.engine import FaultEngine as DemoSearchEngine

SIZE = 64  # min side and model input for this test (the rules are the same at 224)

CASES = {
    # name: (keyword, data or fault, expected outcome, reason substring)
    "too_small": ("circle", images.rgb_jpeg(1, 40, 30), "dropped", "small"),
    "panorama": ("circle", images.rgb_jpeg(2, 1200, 70), "kept", ""),
    "rgba_png": ("circle", images.rgba_png(3), "kept", ""),
    "cmyk_jpeg": ("circle", images.cmyk_jpeg(4), "kept", ""),
    "palette_gif": ("circle", images.palette_gif_transparent(5), "kept", ""),
    "animated_gif": ("circle", images.animated_gif(6), "kept", ""),
    "png_16bit": ("circle", images.png_16bit(), "kept", ""),
    "webp": ("square", images.webp(7), "kept", ""),
    "exif_rotated": ("square", images.exif_rotated_jpeg(8), "kept", ""),
    "truncated": ("square", images.truncated(images.rgb_jpeg(9)), "dropped", ""),
    "html": ("square", images.html_page(), "dropped", ""),
    "empty": ("square", images.empty(), "failed", ""),
    "svg": ("square", images.svg(), "dropped", ""),
    "bomb": ("square", images.decompression_bomb_png(), "dropped", "bomb"),
    "original": ("circle", images.rgb_jpeg(10, 500, 400), "kept", ""),
    "exact_duplicate": (
        "circle",
        images.encode(Image.open(io.BytesIO(images.rgb_jpeg(10, 500, 400))), "PNG"),
        "duplicate",
        "",
    ),
    # Smaller than the original, re-compressed and brightened: the larger original stays.
    "near_duplicate": ("circle", images.near_duplicate(images.rgb_jpeg(10, 400, 320)), "duplicate", ""),
    "cross_class_a": ("circle", images.rgb_jpeg(11), "ambiguous", ""),
    "cross_class_b": ("square", images.rgb_jpeg(11), "ambiguous", ""),
    "not_found": ("square", 404, "failed", "404"),
    "server_error": ("square", 500, "failed", "500"),
    "stalled": ("circle", "stall", "failed", ""),
    "metadata_redirect": ("circle", "redirect", "failed", "169.254.169.254"),
}


@pytest.fixture(scope="module")
def cleaned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest")
    urls = {}
    with DemoSearchEngine(classes=[], images_per_class=0) as e:
        for name, (kw, what, _, _) in CASES.items():
            if what == "stall":
                urls[name] = e.add_stall(kw, seconds=3)
            elif what == "redirect":
                urls[name] = e.add_redirect(kw, "http://169.254.169.254/latest/meta-data/x.jpg")
            elif isinstance(what, int):
                urls[name] = e.add_status(kw, what)
            else:
                urls[name] = e.add_bytes(kw, what)
        cfg = make_cfg(e, max_images_per_class=50, retries=0, max_bytes=5_000_000)
        crawled = run_do(cfg, tmp)
    out = run_cleaner(
        crawled.uri,
        str(tmp / "clean"),
        classes=["circle", "square"],
        image_size=SIZE,
        min_width=SIZE,
        min_height=SIZE,
        balance=False,
    )
    return urls, crawled, out


def test_each_bad_input_ends_with_its_outcome(cleaned):
    urls, _, out = cleaned
    by_url = {r["source_url"]: r for r in out["ledger"]}
    wrong = {}
    for name, (_, _, outcome, reason) in CASES.items():
        rec = by_url[urls[name]]
        if rec["outcome"] != outcome or reason not in (rec["reason"] or ""):
            wrong[name] = (rec["outcome"], rec["reason"])
    assert not wrong, json.dumps(wrong, indent=1)


def test_every_url_is_accounted_for_and_the_funnel_adds_up(cleaned):
    urls, crawled, out = cleaned
    assert len(out["ledger"]) == len(crawled.manifest)
    assert set(urls.values()) <= {r["source_url"] for r in out["ledger"]}
    outcomes = Counter(r["outcome"] for r in out["ledger"])
    for cls, entry in out["report"]["classes"].items():
        assert entry["funnel"]["found"] == sum(entry["outcomes"].values()), cls
    assert sum(outcomes.values()) == len(out["ledger"])
    kept = [r for r in out["ledger"] if r["outcome"] == "kept"]
    rows = [row for split in ("train", "eval", "calibration") for row in read_examples(out["examples"].uri, split)]
    assert len(rows) == len(kept)
    assert all(Image.open(io.BytesIO(r["image/encoded"])).size == (SIZE, SIZE) for r in rows)
