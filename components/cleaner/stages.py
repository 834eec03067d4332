"""The cleaner's Beam stages: per-image work in DoFns; the global decisions in between.

Two Beam pipelines, with the curation step between them in the executor process (it runs
the backbone, and Beam workers never import TensorFlow):

    decode:   batch indices (files in the DoFn) ─ Reshuffle ─ DecodeImages ─┬─ metas-*.jsonl (ImageMeta, no pixels)
                                                                        └─ jpegs-*.tfrecord (sha256 + model JPEG)
    (executor: funnel + curation decide every record: ledger.jsonl, report.json, kept.jsonl, embeddings)
    write:    jpegs ─┬─ CoGroupByKey by sha256 ─ tf.Examples (batched) ─ Split-{train,eval,calibration}/
              kept ──┘

Each file is decoded once, whatever number of URLs gave it; files travel in batches of
``FILES_PER_BATCH``, so Beam's per-element cost is paid once per batch. The staging files
live in the executor's temporary directory (local disk, GCS or S3 alike: every file goes
through Beam's FileSystems) and are removed after the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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

# Staging files (in a temporary directory) between the decode and the write pipelines.
STAGED_METAS = "metas"  # metas-*.jsonl: one ImageMeta per decoded or failed file
STAGED_JPEGS = "jpegs"  # jpegs-*.tfrecord: sha256 (64 hex digits) + model JPEG bytes
STAGED_KEPT = "kept.jsonl"  # one KeptRow per kept picture
SHA_LEN = 64


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


def stage_jpeg(sha256: str, jpeg: bytes) -> bytes:
    """One staged record: the file's sha256 then its model JPEG."""
    if len(sha256) != SHA_LEN:
        raise ValueError(f"not a sha256: {sha256!r}")
    return sha256.encode("ascii") + jpeg


def unstage_jpeg(record: bytes) -> tuple[str, bytes]:
    return record[:SHA_LEN].decode("ascii"), record[SHA_LEN:]


def _meta_lines(batch: Sequence[funnel.ImageMeta]) -> list[str]:
    return [json.dumps(dataclasses.asdict(m), sort_keys=True) for m in batch]


def decode_to_staging(
    p: beam.Pipeline,
    records: Sequence[funnel.Record],
    raw_uri: str,
    settings: CleanerSettings,
    staging_uri: str,
    progress_dir: str | None = None,
) -> None:
    """The decode pipeline: every stored file of a known class decoded once; its metadata
    and model JPEG staged under ``staging_uri``."""
    decoded = decode_files(p, file_batches(records, settings.classes), raw_uri, settings, progress_dir)
    _ = (
        decoded.meta
        | "MetaLines" >> beam.FlatMap(_meta_lines)
        | "WriteMetas" >> beam.io.WriteToText(FileSystems.join(staging_uri, STAGED_METAS), file_name_suffix=".jsonl")
    )
    _ = (
        decoded[ENCODED_TAG]
        | "StageJpegs" >> beam.FlatMap(lambda batch: [stage_jpeg(sha, jpeg) for sha, jpeg in batch])
        | "WriteJpegs"
        >> beam.io.WriteToTFRecord(FileSystems.join(staging_uri, STAGED_JPEGS), file_name_suffix=".tfrecord")
    )


def _glob(pattern: str) -> list[str]:
    return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)


def read_metas(staging_uri: str) -> dict[str, funnel.ImageMeta]:
    """Every staged ImageMeta by file sha256."""
    out = {}
    for path in _glob(FileSystems.join(staging_uri, f"{STAGED_METAS}*")):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for line in f.read().decode().splitlines():
                if line.strip():
                    meta = funnel.ImageMeta(**json.loads(line))
                    out[meta.sha256] = meta
    return out


def staged_jpeg_files(staging_uri: str) -> list[str]:
    return _glob(FileSystems.join(staging_uri, f"{STAGED_JPEGS}*"))


@dataclasses.dataclass(frozen=True)
class KeptRow:
    """What a kept picture's tf.Example needs besides its JPEG."""

    sha256: str
    url: str
    keyword: str
    label: int
    split: str
    phash: str
    width: int
    height: int
    format: str

    @classmethod
    def of(cls, record: funnel.Record, decision: funnel.Decision, meta: funnel.ImageMeta) -> KeptRow:
        return cls(
            record.sha256,
            record.url,
            record.keyword,
            decision.label,
            decision.split,
            meta.phash,
            meta.width,
            meta.height,
            meta.format,
        )

    def parts(self) -> tuple[funnel.Record, funnel.ImageMeta]:
        record = funnel.Record(0, self.keyword, self.url, self.sha256, "")
        meta = funnel.ImageMeta(self.sha256, width=self.width, height=self.height, format=self.format, phash=self.phash)
        return record, meta


def kept_rows(
    records: Sequence[funnel.Record], decisions: Sequence[funnel.Decision], metas: Mapping[str, funnel.ImageMeta]
) -> list[KeptRow]:
    return [
        KeptRow.of(r, d, metas[r.sha256]) for r, d in zip(records, decisions, strict=True) if d.outcome == funnel.KEPT
    ]


def write_kept(staging_uri: str, rows: Iterable[KeptRow]) -> None:
    _write_text(
        FileSystems.join(staging_uri, STAGED_KEPT),
        "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in rows),
    )


def _kept_entry(line: str) -> tuple[str, KeptRow]:
    row = KeptRow(**json.loads(line))
    return row.sha256, row


def _join(item: tuple[str, dict[str, list]]) -> Iterator[tuple[bytes, KeptRow]]:
    """The kept picture's (JPEG, row), if this file was kept."""
    _, grouped = item
    if grouped["kept"] and grouped["jpeg"]:
        yield grouped["jpeg"][0], grouped["kept"][0]


def _examples_of(batch: Sequence[tuple[bytes, KeptRow]]) -> Iterator[tuple[str, bytes]]:
    """(split, serialized tf.Example) for a batch of kept (JPEG, row)."""
    rows = [(jpeg, *row.parts(), row.label) for jpeg, row in batch]
    yield from zip((row.split for _, row in batch), make_examples(rows), strict=True)


def write_examples(p: beam.Pipeline, staging_uri: str, examples_uri: str) -> None:
    """The write pipeline: the kept pictures' tf.Examples, gzipped, one folder per split."""
    jpegs = (
        p
        | "ReadJpegs" >> beam.io.ReadFromTFRecord(FileSystems.join(staging_uri, f"{STAGED_JPEGS}*"))
        | "Unstage" >> beam.Map(unstage_jpeg)
    )
    kept = (
        p
        | "ReadKept" >> beam.io.ReadFromText(FileSystems.join(staging_uri, STAGED_KEPT))
        | "ParseKept" >> beam.Map(_kept_entry)
    )
    examples = (
        {"jpeg": jpegs, "kept": kept}
        | "JoinBySha" >> beam.CoGroupByKey()
        | "KeptOnly" >> beam.FlatMap(_join)
        | "Batch" >> beam.BatchElements(min_batch_size=FILES_PER_BATCH, max_batch_size=256)
        | "ToExamples" >> beam.FlatMap(_examples_of)
    )
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


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path, mime_type="text/plain", compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(text.encode())


def write_ledger_and_report(ledger: Sequence[Mapping[str, Any]], report: Mapping[str, Any], report_uri: str) -> None:
    _write_text(
        FileSystems.join(report_uri, layout.LEDGER),
        "".join(json.dumps(line, sort_keys=True) + "\n" for line in ledger),
    )
    _write_text(FileSystems.join(report_uri, layout.REPORT), json.dumps(report, indent=2) + "\n")


def split_dir(examples_uri: str, split: str) -> str:
    return os.path.join(examples_uri, f"Split-{split}")
