"""Shared helpers for the cleaner tests: run the executor on a RawImages dir, read outputs."""

from __future__ import annotations

import glob
import json
import os

from tfx.types import standard_artifacts

from keyclass.components.artifacts import CleaningReport, RawImages
from keyclass.components.cleaner import executor, spec

# The pHash-only rule unless a test names a pretrained backbone (tiny has random weights).
PHASH_ONLY = {"backbone": "tiny", "weights": "none"}


def run_cleaner(raw_uri: str, out_root: str, **settings) -> dict:
    """Run ``Executor.Do`` on ``raw_uri``; returns uris, ledger (by URL) and report.
    Without ``backbone``, curation falls back to pHash only (the ``tiny`` backbone)."""
    if "backbone" not in settings:
        settings = {**PHASH_ONLY, **settings}
    raw = RawImages()
    raw.uri = raw_uri
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(out_root, "examples")
    report = CleaningReport()
    report.uri = os.path.join(out_root, "report")
    props = spec.exec_properties(spec.CleanerSettings(**settings))
    executor.Executor().Do(
        {spec.RAW_IMAGES_KEY: [raw]}, {spec.EXAMPLES_KEY: [examples], spec.REPORT_KEY: [report]}, props
    )
    with open(os.path.join(report.uri, "ledger.jsonl")) as f:
        ledger = [json.loads(line) for line in f]
    with open(os.path.join(report.uri, "report.json")) as f:
        rep = json.load(f)
    return {"examples": examples, "report_artifact": report, "ledger": ledger, "report": rep}


def read_examples(examples_uri: str, split: str) -> list[dict]:
    """Parse every tf.Example in ``Split-<split>/*.gz`` into {key: python value}."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")))
    assert files, f"no TFRecord files in Split-{split}"
    out = []
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        ex = tf.train.Example.FromString(raw.numpy())
        row = {}
        for key, feat in ex.features.feature.items():
            kind = feat.WhichOneof("kind")
            values = list(getattr(feat, kind).value)
            row[key] = values[0] if len(values) == 1 else values
        out.append(row)
    return out
