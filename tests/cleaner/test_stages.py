"""The Beam stages alone: file batches, DecodeImages and the decision step with beam.Create + assert_that."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from keyclass.components.cleaner import funnel, stages
from keyclass.components.cleaner.settings import CleanerSettings
from tests.fixtures import images as fx


def test_file_batches_list_each_stored_file_of_a_known_class_once():
    recs = [
        funnel.Record(0, "cat", "u0", "a" * 64, "images/a"),
        funnel.Record(1, "dog", "u1", "a" * 64, "images/a"),  # the same file from a second URL
        funnel.Record(2, "cat", "u2", "", "", error="404"),  # nothing stored
        funnel.Record(3, "bird", "u3", "b" * 64, "images/b"),  # not a class
    ] + [funnel.Record(4 + i, "dog", f"v{i}", f"{i:064x}", f"images/{i}") for i in range(5)]
    batches = stages.file_batches(recs, ["cat", "dog"], size=2)
    assert [len(b) for b in batches] == [2, 2, 2]
    flat = [f for b in batches for f in b]
    assert sorted(flat) == sorted([("a" * 64, "images/a")] + [(f"{i:064x}", f"images/{i}") for i in range(5)])
    assert stages.file_batches([], ["cat", "dog"]) == []


def test_decode_dofn_emits_metadata_and_model_jpegs(tmp_path):
    records = fx.write_raw_images(
        tmp_path,
        [fx.Entry("cat", fx.rgb_jpeg(1)), fx.Entry("cat", fx.html_page()), fx.Entry("dog", fx.rgb_png(2, 300, 250))],
    )
    items = [(r["sha256"], r["path"]) for r in records] + [("0" * 64, "images/missing")]
    with TestPipeline() as p:
        out = (
            p
            | beam.Create([0, 1])
            | beam.ParDo(stages.DecodeImages(str(tmp_path), 32, 90, 1_000_000, [items[:2], items[2:]])).with_outputs(
                stages.ENCODED_TAG, main="meta"
            )
        )
        summary = out.meta | beam.FlatMap(
            lambda batch: [(m.sha256[:4], m.error, m.width, m.height, m.format, len(m.phash)) for m in batch]
        )
        assert_that(
            summary,
            equal_to(
                [
                    (records[0]["sha256"][:4], "", 400, 300, "JPEG", 16),
                    (records[1]["sha256"][:4], "html_not_image", 0, 0, "", 0),
                    (records[2]["sha256"][:4], "", 300, 250, "PNG", 16),
                    ("0000", "missing_file", 0, 0, "", 0),
                ]
            ),
            label="meta",
        )
        sizes = out[stages.ENCODED_TAG] | beam.FlatMap(lambda batch: [(sha[:4], jpeg[:2]) for sha, jpeg in batch])
        assert_that(
            sizes,
            equal_to([(records[0]["sha256"][:4], b"\xff\xd8"), (records[2]["sha256"][:4], b"\xff\xd8")]),
            label="jpegs",
        )


def test_decode_then_write_pipelines_meet_through_the_staging_files(tmp_path):
    """The decode pipeline stages metadata and model JPEGs; the write pipeline joins the
    kept rows to their JPEGs and writes one gzipped TFRecord set per split."""
    raw, staging, examples = tmp_path / "raw", str(tmp_path / "staging"), str(tmp_path / "examples")
    records = [
        funnel.Record.from_manifest(i, r)
        for i, r in enumerate(
            fx.write_raw_images(
                raw, [fx.Entry("cat", fx.rgb_jpeg(1)), fx.Entry("dog", fx.rgb_jpeg(2)), fx.Entry("dog", fx.svg())]
            )
        )
    ]
    settings = CleanerSettings(classes=("cat", "dog"), image_size=32, backbone="tiny", weights="none")
    with TestPipeline() as p:
        stages.decode_to_staging(p, records, str(raw), settings, staging)
    metas = stages.read_metas(staging)
    assert sorted(m.error for m in metas.values()) == ["", "", "svg_not_raster"]
    assert len(stages.staged_jpeg_files(staging)) >= 1

    decisions = funnel.decide(
        records,
        metas,
        classes=settings.classes,
        min_width=1,
        min_height=1,
        near_duplicate_distance=0,
        balance=False,
        eval_fraction=0.4,
        calibration_fraction=0.3,
    )
    rows = stages.kept_rows(records, decisions, metas)
    assert sorted(r.keyword for r in rows) == ["cat", "dog"]
    stages.write_kept(staging, rows)
    with TestPipeline() as p:
        stages.write_examples(p, staging, examples)
    written = {}
    for split in stages.SPLITS:
        for path in (tmp_path / "examples" / f"Split-{split}").glob("*.gz"):
            written.setdefault(split, 0)
            written[split] += sum(1 for _ in _read_tfrecords(path))
    assert written == {"train": 1, "eval": 1, "calibration": 0}  # every split is written, even empty


def _read_tfrecords(path):
    import tensorflow as tf

    return tf.data.TFRecordDataset(str(path), compression_type="GZIP")


def test_staged_records_round_trip():
    sha = "ab" * 32
    assert stages.unstage_jpeg(stages.stage_jpeg(sha, b"\xff\xd8JPEG")) == (sha, b"\xff\xd8JPEG")
    with pytest.raises(ValueError):
        stages.stage_jpeg("short", b"")


_BUILD_WITHOUT_TF = """
import sys
from keyclass.components.cleaner import funnel, stages
rec = funnel.Record(0, "cat", "http://x.test/a.jpg", "ab" * 32, "images/a")
meta = funnel.ImageMeta("ab" * 32, width=400, height=300, format="PNG", pixel_hash="p", phash="0f" * 8)
out = stages.make_examples([(b"JPEG-1", rec, meta, 1), (b"JPEG-2", rec, meta, 0)])
sys.stdout.buffer.write(len(out[0]).to_bytes(4, "big") + out[0] + out[1])
assert "tensorflow" not in sys.modules, "building examples imported TensorFlow"
"""


def test_examples_are_built_without_importing_tensorflow():
    """Beam workers build the tf.Examples; importing TensorFlow there cost ~8 s per worker."""
    import subprocess
    import sys

    import tensorflow as tf

    proc = subprocess.run([sys.executable, "-c", _BUILD_WITHOUT_TF], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    n = int.from_bytes(proc.stdout[:4], "big")
    first, second = (tf.train.Example.FromString(b) for b in (proc.stdout[4 : 4 + n], proc.stdout[4 + n :]))
    f = first.features.feature
    assert f["image/encoded"].bytes_list.value == [b"JPEG-1"]
    assert f["image/format"].bytes_list.value == [b"jpeg"]
    assert f["label"].int64_list.value == [1]
    assert f["label/text"].bytes_list.value == [b"cat"]
    assert f["image/source_url"].bytes_list.value == [b"http://x.test/a.jpg"]
    assert f["image/sha256"].bytes_list.value == [b"ab" * 32]
    assert f["image/phash"].bytes_list.value == [b"0f" * 8]
    assert f["image/original_width"].int64_list.value == [400]
    assert f["image/original_height"].int64_list.value == [300]
    assert f["image/original_format"].bytes_list.value == [b"PNG"]
    assert second.features.feature["label"].int64_list.value == [0]
    assert second.features.feature["image/encoded"].bytes_list.value == [b"JPEG-2"]
    assert stages.make_examples([]) == []
