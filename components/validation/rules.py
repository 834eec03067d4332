"""Pure functions: curate an inferred schema with keyclass's rules, and judge a dataset.

Rules added to the schema (ExampleValidator then reports violations as anomalies):
- every feature the trainer and lineage need is present in every example;
- ``label`` is an int in 0..K-1 and ``label/text`` one of the class names;
- ``image/format`` is ``jpeg`` and ``image/encoded`` holds TensorFlow-decodable images
  in every example (TFDV's image domain with a minimum supported fraction; it needs
  semantic-domain statistics, which TFDV computes only for 100 images or more. When a
  split has fewer, the domain has no fraction, since TFDV would skip it with a warning on
  stderr, and the gate decodes every split itself).
The gate adds what a schema cannot say: every class present in every split, the whole
dataset balanced within a tolerance, and at least a minimum number of images per class.
"""

from __future__ import annotations

import dataclasses

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from keyclass.components import layout

REQUIRED_FEATURES = (
    layout.F_IMAGE,
    layout.F_FORMAT,
    layout.F_LABEL,
    layout.F_LABEL_TEXT,
    layout.F_SHA256,
    layout.F_SOURCE_URL,
    layout.F_PHASH,
    layout.F_ORIG_WIDTH,
    layout.F_ORIG_HEIGHT,
    layout.F_ORIG_FORMAT,
)


def _feature(schema: schema_pb2.Schema, name: str) -> schema_pb2.Feature:
    for f in schema.feature:
        if f.name == name:
            return f
    f = schema.feature.add(name=name)
    return f


def curate_schema(inferred: schema_pb2.Schema, classes: list[str], image_stats: bool = True) -> schema_pb2.Schema:
    """A copy of ``inferred`` with keyclass's rules applied; TFDV checks the images only
    with ``image_stats`` (every split's statistics have TFDV's image-format histogram)."""
    schema = schema_pb2.Schema()
    schema.CopyFrom(inferred)
    for name in REQUIRED_FEATURES:
        f = _feature(schema, name)
        f.presence.min_fraction = 1.0
        f.presence.min_count = 1
        f.value_count.min = 1
        f.value_count.max = 1
    label = _feature(schema, layout.F_LABEL)
    label.type = schema_pb2.INT
    label.int_domain.CopyFrom(schema_pb2.IntDomain(min=0, max=len(classes) - 1, is_categorical=True))

    text = _feature(schema, layout.F_LABEL_TEXT)
    text.type = schema_pb2.BYTES
    text.string_domain.CopyFrom(schema_pb2.StringDomain(name="classes", value=list(classes)))

    fmt = _feature(schema, layout.F_FORMAT)
    fmt.type = schema_pb2.BYTES
    fmt.string_domain.CopyFrom(schema_pb2.StringDomain(name="image_format", value=["jpeg"]))

    img = _feature(schema, layout.F_IMAGE)
    img.type = schema_pb2.BYTES
    # Without the fraction the domain only says "images" (a split with image statistics
    # would otherwise be an anomaly, "updated semantic domain"), and TFDV checks nothing.
    fraction = {"minimum_supported_image_fraction": 1.0} if image_stats else {}
    img.image_domain.CopyFrom(schema_pb2.ImageDomain(**fraction))
    # Free-text string features: no value domain (every URL/hash is new).
    for name in (layout.F_SOURCE_URL, layout.F_SHA256, layout.F_PHASH, layout.F_ORIG_FORMAT):
        f = _feature(schema, name)
        f.type = schema_pb2.BYTES
        f.ClearField("domain_info")
    drop = [s for s in schema.string_domain if s.name not in ("classes", "image_format")]
    for s in drop:
        schema.string_domain.remove(s)
    return schema


@dataclasses.dataclass
class GateVerdict:
    ok: bool
    problems: list[str]
    class_counts: dict[str, dict[str, int]]  # split -> class -> count


def has_image_stats(stats: statistics_pb2.DatasetFeatureStatisticsList) -> bool:
    """Whether TFDV computed ``image/encoded``'s image-format histogram. It only does for
    100 or more values, and the schema's image domain is silently skipped without it."""
    for ds in stats.datasets:
        for feat in ds.features:
            path = "/".join(feat.path.step) if feat.path.step else feat.name
            if path == layout.F_IMAGE and any(c.name == "image_format_histogram" for c in feat.custom_stats):
                return True
    return False


def undecodable_images(files: list[str]) -> list[str]:
    """sha256 (or index) of every example whose ``image/encoded`` TensorFlow cannot decode."""
    import tensorflow as tf

    spec = {
        layout.F_IMAGE: tf.io.FixedLenFeature([], tf.string),
        layout.F_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    bad = []
    for i, rec in enumerate(tf.data.TFRecordDataset(files, compression_type="GZIP")):
        ex = tf.io.parse_single_example(rec, spec)
        try:
            tf.io.decode_image(ex[layout.F_IMAGE], channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            bad.append(ex[layout.F_SHA256].numpy().decode() or f"#{i}")
    return bad


def class_counts(stats: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, dict[str, int]]:
    """Per split, examples per ``label/text`` value, from TFDV's rank histogram."""
    out: dict[str, dict[str, int]] = {}
    for ds in stats.datasets:
        counts: dict[str, int] = {}
        for feat in ds.features:
            path = "/".join(feat.path.step) if feat.path.step else feat.name
            if path != layout.F_LABEL_TEXT:
                continue
            for bucket in feat.string_stats.rank_histogram.buckets:
                counts[bucket.label] = int(bucket.sample_count)
        out[ds.name or "all"] = counts
    return out


def judge(
    anomalies_by_split: dict[str, anomalies_pb2.Anomalies],
    stats_by_split: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
    classes: list[str],
    *,
    balance_tolerance: float,
    min_images_per_class: int,
    undecodable_by_split: dict[str, list[str]] | None = None,
) -> GateVerdict:
    """Everything that must hold before training; each problem named in plain words.
    ``undecodable_by_split`` holds the gate's own decode check for splits too small for
    TFDV's image statistics."""
    problems: list[str] = []
    for split, bad in sorted((undecodable_by_split or {}).items()):
        if bad:
            problems.append(f"{split}: {len(bad)} images TensorFlow cannot decode: {', '.join(bad[:5])}")
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(r.description or r.short_description for r in info.reason) or info.description
            problems.append(f"{split}: feature {feature!r}: {reasons}")
        if anomalies.HasField("dataset_anomaly_info"):
            reasons = "; ".join(r.description for r in anomalies.dataset_anomaly_info.reason)
            problems.append(f"{split}: dataset: {reasons}")
    counts: dict[str, dict[str, int]] = {}
    k = len(classes)
    for split, stats in sorted(stats_by_split.items()):
        per = {}
        for c in class_counts(stats).values():
            per.update(c)
        counts[split] = {name: per.get(name, 0) for name in classes}
        for name, n in counts[split].items():
            if n == 0:
                problems.append(f"{split}: class {name!r} has no images")
    # Balance is judged on the whole dataset: the content-hash split is deterministic,
    # not stratified, so a small eval split can drift by chance.
    totals = {name: sum(counts[s].get(name, 0) for s in counts) for name in classes}
    total = sum(totals.values())
    for name, n in totals.items():
        if total and abs(n / total - 1 / k) > balance_tolerance / k:
            problems.append(
                f"class {name!r} holds {n / total:.1%} of {total} images; "
                f"balanced would be {1 / k:.1%} ± {balance_tolerance / k:.1%}"
            )
    for name, n in totals.items():
        if n < min_images_per_class:
            problems.append(
                f"class {name!r} has {n} clean images, fewer than min_images_per_class={min_images_per_class}"
            )
    return GateVerdict(not problems, problems, counts)
