"""The cleaner's Beam stages: per-image work in a DoFn, global decisions as one pure step.

    manifest records ─┬─ batch indices (files in the DoFn) ─ Reshuffle ─ DecodeImages ─┬─ [ImageMeta] ─ ToList ─┐
                      │                                                                 └─ [(sha256, JPEG)] ──┐  │
                      └────────────────────────── AsList ──────────────────── Decide (funnel.decide) ◄────┘──┘
                                                                               ├─ ledger.jsonl, report.json
                                                          kept (side input) ───┴─ tf.Examples ─ Split-{train,eval,calibration}/

Each file is decoded once, whatever number of URLs gave it; files travel in batches of
``FILES_PER_BATCH``, so Beam's per-element cost is paid once per batch. Only the small
``ImageMeta`` records (no pixels) meet in one place; the encoded model-size JPEGs flow
straight from the decode step to the TFRecord writers.
Files are read through Beam's FileSystems, so the same code reads local disk, GCS or S3.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import imagehash
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from tfx_bsl.coders import example_coder

from keyclass.components import layout
from keyclass.components.cleaner import decode, funnel, progress
from keyclass.components.cleaner.settings import CleanerSettings

ENCODED_TAG = "encoded"
TFRECORD_PREFIX = "data_tfrecord"  # as TFX's ExampleGen names its files
TFRECORD_SUFFIX = ".gz"
SPLITS = funnel.SPLIT_STAGES  # train, eval, calibration


def process_image(
    sha256: str, data: bytes, *, image_size: int, jpeg_quality: int, max_pixels: int
) -> tuple[funnel.ImageMeta, bytes | None]:
    """Decode, normalise, resize and encode one file: its metadata and the model JPEG
    (None when it does not decode)."""
    try:
        d = decode.decode(data, max_pixels)
    except decode.DecodeError as e:
        return funnel.ImageMeta(sha256, error=e.reason), None
    small = decode.resize_for_model(d.image, image_size)
    meta = funnel.ImageMeta(
        sha256,
        width=d.width,
        height=d.height,
        format=d.format,
        pixel_hash=decode.pixel_hash(d.image),
        phash=str(imagehash.phash(small)),
    )
    return meta, decode.encode_jpeg(small, jpeg_quality)


FILES_PER_BATCH = 16  # files one Beam element carries through the decode step


def file_batches(
    records: Sequence[funnel.Record], classes: Sequence[str], size: int = FILES_PER_BATCH
) -> list[list[tuple[str, str]]]:
    """Every stored file of a known class once, as (sha256, relative path), in batches.

    Beam's per-element cost (about 0.5 ms here, more across processes) matters next to
    a 5 ms image; batches pay it once per ``size`` images."""
    wanted = set(classes)
    files = sorted({(r.sha256, r.path) for r in records if r.has_file and r.keyword in wanted})
    return [files[i : i + size] for i in range(0, len(files), size)]


class DecodeImages(beam.DoFn):
    """The index of a batch of (sha256, relative path) -> the batch's list of ImageMeta,
    plus its list of (sha256, model JPEG) on ``encoded``.

    The batches travel inside the DoFn (pickled once with it) and only their indices
    through Beam: Create and Reshuffle encode each element, and for lists of string
    tuples that cost seconds at 4000 files where small ints cost a fraction of one."""

    def __init__(
        self,
        root: str,
        image_size: int,
        jpeg_quality: int,
        max_pixels: int,
        batches: Sequence[Sequence[tuple[str, str]]],
        progress_dir: str | None = None,
    ):
        self._root = root
        self._batches = [list(b) for b in batches]
        self._progress_dir = progress_dir
        self._kwargs = dict(image_size=image_size, jpeg_quality=jpeg_quality, max_pixels=max_pixels)
        self._decoded = beam.metrics.Metrics.counter("ImageCleaner", "decoded")
        self._failed = beam.metrics.Metrics.counter("ImageCleaner", "decode_failed")

    def _one(self, sha256: str, rel: str) -> tuple[funnel.ImageMeta, bytes | None]:
        try:
            with FileSystems.open(
                FileSystems.join(self._root, rel), compression_type=CompressionTypes.UNCOMPRESSED
            ) as f:
                data = f.read()
        except OSError:
            return funnel.ImageMeta(sha256, error=funnel.MISSING_FILE), None
        return process_image(sha256, data, **self._kwargs)

    def process(self, index: int) -> Iterator[Any]:
        metas, encoded = [], []
        for sha256, rel in self._batches[index]:
            meta, jpeg = self._one(sha256, rel)
            metas.append(meta)
            if jpeg is None:
                self._failed.inc()
            else:
                self._decoded.inc()
                encoded.append((sha256, jpeg))
            progress.tick(self._progress_dir)
        yield metas
        if encoded:
            yield beam.pvalue.TaggedOutput(ENCODED_TAG, encoded)


def decode_files(
    p: beam.Pipeline,
    batches: Sequence[Sequence[tuple[str, str]]],
    raw_uri: str,
    settings: CleanerSettings,
    progress_dir: str | None = None,
    wrap: Callable[[DecodeImages], beam.DoFn] | None = None,
) -> beam.pvalue.DoOutputsTuple:
    """The per-image work, spread over the workers: ``meta`` (lists of ImageMeta) and
    ``encoded`` (lists of (sha256, model JPEG)). ``wrap`` wraps the DoFn (the cleaner's
    benchmark times the batches with it)."""
    dofn: beam.DoFn = DecodeImages(
        raw_uri, settings.image_size, settings.jpeg_quality, settings.max_image_pixels, batches, progress_dir
    )
    if wrap is not None:
        dofn = wrap(dofn)
    return (
        p
        | "BatchIndices" >> beam.Create(list(range(len(batches))))
        | "Spread" >> beam.Reshuffle()
        | "Decode" >> beam.ParDo(dofn).with_outputs(ENCODED_TAG, main="meta")
    )


def decide_all(
    metas: Sequence[funnel.ImageMeta], records: Sequence[funnel.Record], settings: CleanerSettings
) -> dict[str, Any]:
    """The global step: decisions, report, and what each kept file becomes."""
    records = sorted(records, key=lambda r: r.index)
    by_sha = {m.sha256: m for m in metas}
    decisions = funnel.decide(
        records,
        by_sha,
        classes=settings.classes,
        min_width=settings.min_width,
        min_height=settings.min_height,
        near_duplicate_distance=settings.near_duplicate_distance,
        balance=settings.balance,
        eval_fraction=settings.eval_fraction,
        calibration_fraction=settings.calibration_fraction,
    )
    kept = {}
    for r, d in zip(records, decisions, strict=True):
        if d.outcome == funnel.KEPT:
            kept[r.sha256] = {"record": r, "decision": d, "meta": by_sha[r.sha256]}
    return {
        "ledger": funnel.ledger_lines(records, decisions),
        "report": funnel.build_report(records, decisions, settings.classes, settings.to_dict()),
        "kept": kept,
    }


# The tf.Example features of one kept image (keys: components.layout), as Arrow types.
_EXAMPLE_TYPES = {
    layout.F_IMAGE: pa.binary(),
    layout.F_FORMAT: pa.binary(),
    layout.F_LABEL: pa.int64(),
    layout.F_LABEL_TEXT: pa.binary(),
    layout.F_SOURCE_URL: pa.binary(),
    layout.F_SHA256: pa.binary(),
    layout.F_PHASH: pa.binary(),
    layout.F_ORIG_WIDTH: pa.int64(),
    layout.F_ORIG_HEIGHT: pa.int64(),
    layout.F_ORIG_FORMAT: pa.binary(),
}


def make_examples(rows: Sequence[tuple[bytes, funnel.Record, funnel.ImageMeta, int]]) -> list[bytes]:
    """Serialized tf.Examples, one per (model JPEG, record, metadata, label), in order.

    Encoded by tfx_bsl's C++ coder from one Arrow batch: Beam workers never import
    TensorFlow, which costs each worker process several seconds of start-up."""
    if not rows:
        return []
    values: dict[str, list[Any]] = {key: [] for key in _EXAMPLE_TYPES}
    for jpeg, record, meta, label in rows:
        for key, value in (
            (layout.F_IMAGE, jpeg),
            (layout.F_FORMAT, b"jpeg"),
            (layout.F_LABEL, int(label)),
            (layout.F_LABEL_TEXT, record.keyword.encode()),
            (layout.F_SOURCE_URL, record.url.encode()),
            (layout.F_SHA256, record.sha256.encode()),
            (layout.F_PHASH, meta.phash.encode()),
            (layout.F_ORIG_WIDTH, int(meta.width)),
            (layout.F_ORIG_HEIGHT, int(meta.height)),
            (layout.F_ORIG_FORMAT, meta.format.encode()),
        ):
            values[key].append([value])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(values[key], pa.list_(t)) for key, t in _EXAMPLE_TYPES.items()], names=list(_EXAMPLE_TYPES)
    )
    return example_coder.RecordBatchToExamples(batch)


def _decide_batches(
    meta_batches: Sequence[Sequence[funnel.ImageMeta]], records: Sequence[funnel.Record], settings: CleanerSettings
) -> dict[str, Any]:
    return decide_all([m for batch in meta_batches for m in batch], records, settings)


def _to_examples(batch: Sequence[tuple[str, bytes]], result: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """(split, serialized tf.Example) for the kept images of a batch of (sha256, JPEG)."""
    rows, splits = [], []
    for sha256, jpeg in batch:
        kept = result["kept"].get(sha256)
        if kept is not None:
            d = kept["decision"]
            rows.append((jpeg, kept["record"], kept["meta"], d.label))
            splits.append(d.split)
    yield from zip(splits, make_examples(rows), strict=True)


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path, mime_type="text/plain", compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode())


def write_ledger_and_report(result: dict[str, Any], report_uri: str) -> None:
    _write_text(
        FileSystems.join(report_uri, layout.LEDGER),
        "".join(json.dumps(line, sort_keys=True) + "\n" for line in result["ledger"]),
    )
    _write_text(FileSystems.join(report_uri, layout.REPORT), json.dumps(result["report"], indent=2) + "\n")


def split_dir(examples_uri: str, split: str) -> str:
    return os.path.join(examples_uri, f"Split-{split}")


def build_pipeline(
    p: beam.Pipeline,
    records: Sequence[funnel.Record],
    raw_uri: str,
    settings: CleanerSettings,
    examples_uri: str,
    report_uri: str,
    progress_dir: str | None = None,
) -> None:
    """Add the cleaner's stages to ``p``; ``progress_dir`` feeds a local progress bar."""
    decoded = decode_files(p, file_batches(records, settings.classes), raw_uri, settings, progress_dir)
    # The records ride with the step that needs them (pickled once), not through Create.
    result = (
        decoded.meta
        | "AllMeta" >> beam.combiners.ToList()
        | "Decide" >> beam.Map(_decide_batches, records=list(records), settings=settings)
    )
    _ = result | "WriteReport" >> beam.Map(write_ledger_and_report, report_uri=report_uri)
    examples = decoded[ENCODED_TAG] | "ToExamples" >> beam.FlatMap(_to_examples, result=beam.pvalue.AsSingleton(result))
    parts = examples | "BySplit" >> beam.Partition(lambda kv, n: SPLITS.index(kv[0]), len(SPLITS))
    for split, part in zip(SPLITS, parts, strict=True):
        _ = (
            part
            | f"Values[{split}]" >> beam.Values()
            | f"Write[{split}]"
            >> beam.io.WriteToTFRecord(
                os.path.join(split_dir(examples_uri, split), TFRECORD_PREFIX),
                file_name_suffix=TFRECORD_SUFFIX,
                compression_type=CompressionTypes.GZIP,
            )
        )
