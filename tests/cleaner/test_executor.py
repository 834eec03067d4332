"""ImageCleaner ``Executor.Do`` on a hand-built RawImages dir: every case and its outcome."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from PIL import Image

from keyclass.components import layout
from keyclass.components.cleaner import executor as cleaner_executor
from tests.cleaner.helpers import read_examples, run_cleaner
from tests.fixtures import images as fx

SIZE = 64  # model image size in these tests (small keeps them fast)
CLASSES = ["cat", "dog"]


def _bigger(data: bytes, factor: float = 1.5) -> bytes:
    """The same picture upscaled: a larger original of the same content."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return fx.encode(
        img.resize((int(img.width * factor), int(img.height * factor)), Image.BILINEAR), "JPEG", quality=92
    )


def _entries() -> tuple[list[fx.Entry], dict[str, tuple[str, str]]]:
    """Fixture entries (url = case name) and each case's expected (outcome, reason)."""
    shared = fx.rgb_jpeg(1)
    near_base = fx.rgb_jpeg(2)
    cross_near = fx.rgb_jpeg(3)
    cases = [
        # name, keyword, bytes (None = failed download), expected outcome, reason
        ("plain", "cat", shared, "kept", ""),
        ("exact_copy_other_url", "cat", shared, "duplicate", "exact_duplicate"),
        # Same pixels in two encodings: the first listed stays.
        ("exact_copy_as_bmp", "cat", fx.encode(fx.picture(4), "BMP"), "kept", ""),
        ("exact_copy_as_png", "cat", fx.rgb_png(4), "duplicate", "exact_duplicate"),
        ("near_small_original", "cat", near_base, "duplicate", "near_duplicate"),
        ("near_larger_original", "cat", _bigger(near_base), "kept", ""),
        ("near_brighter_recompressed", "cat", fx.near_duplicate(near_base), "duplicate", "near_duplicate"),
        ("too_small", "cat", fx.rgb_jpeg(5, 200, 150), "dropped", "too_small"),
        ("panorama_kept", "cat", fx.rgb_jpeg(6, 1200, 250), "kept", ""),
        ("panorama_too_flat", "cat", fx.rgb_jpeg(7, 1200, 200), "dropped", "too_small"),
        ("rgba_png", "cat", fx.rgba_png(8), "kept", ""),
        ("cmyk_jpeg", "cat", fx.cmyk_jpeg(9), "kept", ""),
        ("palette_gif_transparent", "cat", fx.palette_gif_transparent(10), "kept", ""),
        ("animated_gif", "cat", fx.animated_gif(11), "kept", ""),
        ("exif_rotated", "cat", fx.exif_rotated_jpeg(12), "kept", ""),
        ("png_16bit", "dog", fx.png_16bit(), "kept", ""),
        ("webp", "dog", fx.webp(13), "kept", ""),
        ("la_png", "dog", fx.la_png(14), "kept", ""),
        ("one_bit_png", "dog", fx.one_bit_png(15), "kept", ""),
        ("tiff", "dog", fx.tiff(16), "kept", ""),
        ("truncated", "dog", fx.truncated(fx.rgb_jpeg(17)), "dropped", "truncated"),
        ("html", "dog", fx.html_page(), "dropped", "html_not_image"),
        ("empty", "dog", fx.empty(), "dropped", "empty_file"),
        ("svg", "dog", fx.svg(), "dropped", "svg_not_raster"),
        ("bomb", "dog", fx.decompression_bomb_png(), "dropped", "decompression_bomb"),
        ("cross_exact_cat", "cat", fx.rgb_jpeg(18), "ambiguous", "cross_class"),
        ("cross_exact_dog", "dog", fx.rgb_jpeg(18), "ambiguous", "cross_class"),
        ("cross_near_cat", "cat", cross_near, "ambiguous", "cross_class"),
        ("cross_near_dog", "dog", fx.near_duplicate(cross_near), "ambiguous", "cross_class"),
        ("failed_download", "dog", None, "failed", "HTTP 404"),
        ("unknown_keyword", "bird", fx.rgb_jpeg(19), "dropped", "unknown_class"),
        ("missing_file", "dog", fx.rgb_jpeg(20), "failed", "missing_file"),
        ("dog_plain", "Dog ", fx.rgb_jpeg(21), "kept", ""),
    ]
    entries, expected = [], {}
    for name, keyword, data, outcome, reason in cases:
        url = f"http://images.test/{name}.jpg"
        entries.append(fx.Entry(keyword=keyword, data=data, url=url, error="HTTP 404" if data is None else ""))
        expected[url] = (outcome, reason)
    return entries, expected


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    entries, expected = _entries()
    records = fx.write_raw_images(root, entries)
    missing = next(r for r in records if r[layout.M_URL].endswith("/missing_file.jpg"))
    os.remove(os.path.join(root, missing[layout.M_PATH]))
    return str(root), records, expected


@pytest.fixture(scope="module")
def run(raw_dir, tmp_path_factory):
    uri, _, _ = raw_dir
    return run_cleaner(uri, str(tmp_path_factory.mktemp("out")), classes=CLASSES, image_size=SIZE, balance=False)


def test_every_case_has_its_expected_outcome(run, raw_dir):
    _, records, expected = raw_dir
    ledger = run["ledger"]
    assert len(ledger) == len(records)
    assert [line["source_url"] for line in ledger] == [r[layout.M_URL] for r in records]
    got = {line["source_url"]: (line["outcome"], line["reason"]) for line in ledger}
    mismatches = {url: (got[url], want) for url, want in expected.items() if got[url] != want}
    assert not mismatches


def test_ledger_lines_carry_keyword_sha_and_split(run, raw_dir):
    _, records, _ = raw_dir
    for line, rec in zip(run["ledger"], records, strict=True):
        assert line["sha256"] == rec[layout.M_SHA256]
        assert line["outcome"] in layout.OUTCOMES
        assert (line["split"] in ("train", "eval", "calibration")) == (line["outcome"] == "kept")
    dog = next(line for line in run["ledger"] if line["source_url"].endswith("/dog_plain.jpg"))
    assert dog["keyword"] == "dog"  # canonicalised from "Dog "
    dup = next(line for line in run["ledger"] if line["source_url"].endswith("/near_small_original.jpg"))
    assert dup["detail"] == "http://images.test/near_larger_original.jpg"


def test_funnel_adds_up(run):
    rep = run["report"]
    total = 0
    for cls, entry in rep["classes"].items():
        f, outcomes = entry["funnel"], entry["outcomes"]
        assert f["found"] == sum(outcomes.values()), cls
        assert f["found"] >= f["downloaded"] >= f["decoded"] >= f["large_enough"] >= f["unique"] >= f["balanced"]
        assert f["balanced"] == f["train"] + f["eval"] + f["calibration"] == outcomes["kept"]
        assert min(f["train"], f["eval"], f["calibration"]) >= 1, cls
        assert f["found"] - f["downloaded"] == outcomes["failed"]
        assert f["large_enough"] - f["unique"] == outcomes["duplicate"] + outcomes["ambiguous"]
        for outcome, reasons in entry["reasons"].items():
            assert sum(reasons.values()) == outcomes[outcome]
        total += f["found"]
    assert rep["totals"]["found"] == sum(rep["totals"]["outcomes"].values())
    assert rep["totals"]["found"] == total + rep["other_records"]
    assert rep["unknown_keywords"] == {"bird": 1}
    assert rep["classes"]["cat"]["funnel"] == {
        "found": 17,
        "downloaded": 17,
        "decoded": 17,
        "large_enough": 15,
        "unique": 9,
        "label_ok": 9,
        "balanced": 9,
        "train": rep["classes"]["cat"]["funnel"]["train"],
        "eval": rep["classes"]["cat"]["funnel"]["eval"],
        "calibration": rep["classes"]["cat"]["funnel"]["calibration"],
    }
    assert rep["classes"]["dog"]["reasons"]["dropped"] == {
        "decompression_bomb": 1,
        "empty_file": 1,
        "html_not_image": 1,
        "svg_not_raster": 1,
        "truncated": 1,
    }
    assert run["report_artifact"].get_int_custom_property("num_kept") == rep["totals"]["outcomes"]["kept"]


def test_tfrecords_parse_with_every_feature(run):
    examples = run["examples"]
    assert examples.split_names == '["train", "eval", "calibration"]'
    rows = [row for split in ("train", "eval", "calibration") for row in read_examples(examples.uri, split)]
    kept = [line for line in run["ledger"] if line["outcome"] == "kept"]
    assert len(rows) == len(kept)
    by_sha = {line["sha256"]: line for line in kept}
    for row in rows:
        line = by_sha[row[layout.F_SHA256].decode()]
        assert row[layout.F_SOURCE_URL].decode() == line["source_url"]
        assert row[layout.F_LABEL_TEXT].decode() == line["keyword"]
        assert row[layout.F_LABEL] == CLASSES.index(line["keyword"])
        assert row[layout.F_FORMAT] == b"jpeg"
        assert len(row[layout.F_PHASH]) == 16 and int(row[layout.F_PHASH], 16) >= 0
        assert row[layout.F_ORIG_WIDTH] >= 224 and row[layout.F_ORIG_HEIGHT] >= 224
        assert row[layout.F_ORIG_FORMAT] in (b"JPEG", b"PNG", b"GIF", b"WEBP", b"BMP", b"TIFF")
        img = Image.open(io.BytesIO(row[layout.F_IMAGE]))
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SIZE, SIZE)


def _decoded_by_url(run, raw_dir, name):
    _, records, _ = raw_dir
    rec = next(r for r in records if r[layout.M_URL].endswith(f"/{name}.jpg"))
    rows = [row for split in ("train", "eval", "calibration") for row in read_examples(run["examples"].uri, split)]
    row = next(r for r in rows if r[layout.F_SHA256].decode() == rec[layout.M_SHA256])
    return row, Image.open(io.BytesIO(row[layout.F_IMAGE])).convert("RGB")


def _near(px, colour, tol: int = 60) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, colour, strict=True))


def _is_red(px) -> bool:
    return _near(px, fx.MARKER)


def test_exif_rotated_image_ends_upright(run, raw_dir):
    row, img = _decoded_by_url(run, raw_dir, "exif_rotated")
    assert (row[layout.F_ORIG_WIDTH], row[layout.F_ORIG_HEIGHT]) == (300, 400)  # portrait once upright
    assert _is_red(img.getpixel((2, 2)))  # red top-left, green top-right, blue bottom-left
    assert _near(img.getpixel((SIZE - 3, 2)), fx.MARKER_TOP_RIGHT)
    assert _near(img.getpixel((2, SIZE - 3)), fx.MARKER_BOTTOM_LEFT)


def test_transparency_becomes_white_and_cmyk_keeps_colour(run, raw_dir):
    for name in ("rgba_png", "palette_gif_transparent"):
        _, img = _decoded_by_url(run, raw_dir, name)
        assert min(img.getpixel((SIZE - 3, SIZE - 3))) > 240, name
    _, cmyk = _decoded_by_url(run, raw_dir, "cmyk_jpeg")
    assert _is_red(cmyk.getpixel((2, 2)))


def test_16bit_png_is_scaled_not_clipped(run, raw_dir):
    _, img = _decoded_by_url(run, raw_dir, "png_16bit")
    middle = img.getpixel((SIZE // 2, SIZE // 2))[0]
    assert 110 < middle < 145  # 32768/65535 of full scale, not 255 (clipped)
    assert img.getpixel((1, SIZE // 2))[0] < 20 and img.getpixel((SIZE - 2, SIZE // 2))[0] > 235


def test_balanced_reruns_give_identical_splits(raw_dir, tmp_path):
    uri, _, _ = raw_dir
    runs = [run_cleaner(uri, str(tmp_path / f"out{i}"), classes=CLASSES, image_size=SIZE) for i in range(2)]
    assert runs[0]["ledger"] == runs[1]["ledger"]
    funnel = runs[0]["report"]["classes"]
    assert (
        funnel["cat"]["funnel"]["balanced"] == funnel["dog"]["funnel"]["balanced"] == funnel["dog"]["funnel"]["unique"]
    )
    assert (
        funnel["cat"]["reasons"]["dropped"]["balance"]
        == funnel["cat"]["funnel"]["unique"] - funnel["dog"]["funnel"]["unique"]
    )
    for split in ("train", "eval", "calibration"):
        shas = [sorted(r[layout.F_SHA256] for r in read_examples(run["examples"].uri, split)) for run in runs]
        assert shas[0] == shas[1] and shas[0], split
        kept = sorted(
            line["sha256"].encode()
            for line in runs[0]["ledger"]
            if line["outcome"] == "kept" and line["split"] == split
        )
        assert shas[0] == kept


def test_a_bad_manifest_line_is_named(tmp_path):
    (tmp_path / layout.MANIFEST).write_text('{"keyword": "cat"}\nnot json\n')
    with pytest.raises(cleaner_executor.ManifestError, match="line 2"):
        cleaner_executor.read_manifest(str(tmp_path))


def test_fixture_hashes_match_the_stored_bytes(raw_dir):
    uri, records, _ = raw_dir
    for rec in records:
        if rec[layout.M_PATH] and os.path.exists(os.path.join(uri, rec[layout.M_PATH])):
            with open(os.path.join(uri, rec[layout.M_PATH]), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == rec[layout.M_SHA256]
