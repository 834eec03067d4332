"""One cleaning run, start to finish, as a plain function the executor calls.

1. decode (Beam, :func:`stages.decode_to_staging`): every file decoded once; metadata
   and model-size JPEGs staged;
2. decide (this process, :func:`curation.curate_records`): failures, small images,
   exact groups, then the curation step (one embedding pass; confirmed near duplicates,
   label issues; or the pHash fallback), balance and split;
3. write the ledger, the report and, after curation, the kept pictures' embeddings
   (inside the Examples artifact, for the Trainer);
4. write (Beam, :func:`stages.write_examples`): the kept pictures' tf.Examples per split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import apache_beam as beam

from keyclass.components import embeddings
from keyclass.components.cleaner import curation, funnel, stages
from keyclass.components.cleaner.settings import CleanerSettings

PipelineFactory = Callable[[], contextlib.AbstractContextManager[beam.Pipeline]]


def load_staged_jpegs(staging_uri: str, wanted: Collection[str]) -> dict[str, bytes]:
    """The staged model JPEGs of the ``wanted`` file hashes (TensorFlow's TFRecord reader:
    called only when curation runs the backbone in this process anyway)."""
    import tensorflow as tf

    wanted = set(wanted)
    out: dict[str, bytes] = {}
    files = stages.staged_jpeg_files(staging_uri)
    if not files:
        return out
    for record in tf.data.TFRecordDataset(files).as_numpy_iterator():
        sha, jpeg = stages.unstage_jpeg(record)
        if sha in wanted:
            out[sha] = jpeg
    return out


def clean(
    records: Sequence[funnel.Record],
    raw_uri: str,
    settings: CleanerSettings,
    examples_uri: str,
    report_uri: str,
    staging_uri: str,
    make_pipeline: PipelineFactory,
    progress_dir: str | None = None,
) -> dict[str, Any]:
    """Clean ``records`` (from the RawImages at ``raw_uri``) into Examples and a report;
    returns the report."""
    with make_pipeline() as p:
        stages.decode_to_staging(p, records, raw_uri, settings, staging_uri, progress_dir)
    metas = stages.read_metas(staging_uri)
    result = curation.curate_records(records, metas, settings, lambda wanted: load_staged_jpegs(staging_uri, wanted))
    report = funnel.build_report(records, result.decisions, settings.classes, settings.to_dict(), result.report)
    stages.write_ledger_and_report(funnel.ledger_lines(records, result.decisions), report, report_uri)
    if result.embeddings is not None:
        e = result.embeddings
        embeddings.write(examples_uri, e.meta, e.sha256, e.image_sha256, e.pooled)
    stages.write_kept(staging_uri, stages.kept_rows(records, result.decisions, metas))
    with make_pipeline() as p:
        stages.write_examples(p, staging_uri, examples_uri)
    return report
