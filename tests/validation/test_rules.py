"""The curated schema and the gate, on real TFDV statistics and anomalies."""

import json
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from keyclass.components import layout
from keyclass.components.validation import rules
from tests.fixtures import scenes

CLASSES = ["circle", "square"]


def _write(path: str, examples: list[bytes]) -> str:
    with tf.io.TFRecordWriter(path) as w:
        for e in examples:
            w.write(e)
    return path


def _examples(n_per_class: dict[int, int], seed: int = 0) -> list[bytes]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for label, n in n_per_class.items():
        for _ in range(n):
            arr, _ = scenes.scene(label % 2, 32, rng)
            out.append(scenes.example(arr, label, CLASSES + ["x"] * 8))
    return out


def _corrupt_image(example: bytes) -> bytes:
    ex = tf.train.Example.FromString(example)
    ex.features.feature[layout.F_IMAGE].bytes_list.value[0] = b"<html>not an image</html>"
    return ex.SerializeToString()


def _stats(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    return tfdv.generate_statistics_from_tfrecord(
        path, stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True)
    )


@pytest.fixture(scope="module")
def good_and_bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfdv")
    # TFDV computes image statistics from 100 values on; below that the gate decodes.
    good = _stats(_write(os.path.join(d, "good.tfrecord"), _examples({0: 60, 1: 60})))
    bad_examples = _examples({0: 60, 1: 60, 5: 1}, seed=1)
    bad_examples[0] = _corrupt_image(bad_examples[0])
    bad = _stats(_write(os.path.join(d, "bad.tfrecord"), bad_examples))
    schema = rules.curate_schema(tfdv.infer_schema(good), CLASSES)
    return good, bad, schema


def test_curated_schema_states_keyclass_rules(good_and_bad):
    _, _, schema = good_and_bad
    feats = {f.name: f for f in schema.feature}
    assert feats[layout.F_LABEL].int_domain.min == 0 and feats[layout.F_LABEL].int_domain.max == 1
    assert list(feats[layout.F_LABEL_TEXT].string_domain.value) == CLASSES
    assert list(feats[layout.F_FORMAT].string_domain.value) == ["jpeg"]
    assert feats[layout.F_IMAGE].image_domain.minimum_supported_image_fraction == 1.0
    for name in rules.REQUIRED_FEATURES:
        assert feats[name].presence.min_fraction == 1.0


def test_good_data_has_no_anomalies(good_and_bad):
    good, _, schema = good_and_bad
    anomalies = tfdv.validate_statistics(good, schema)
    assert dict(anomalies.anomaly_info) == {}


def test_bad_labels_and_undecodable_images_are_anomalies(good_and_bad):
    _, bad, schema = good_and_bad
    anomalies = tfdv.validate_statistics(bad, schema)
    assert layout.F_LABEL in anomalies.anomaly_info  # label 5 is outside 0..1
    assert layout.F_IMAGE in anomalies.anomaly_info  # one image TensorFlow cannot decode
    verdict = rules.judge({"train": anomalies}, {"train": bad}, CLASSES, balance_tolerance=0.2, min_images_per_class=1)
    assert not verdict.ok
    text = "\n".join(verdict.problems)
    assert "label" in text and "image/encoded" in text


def test_gate_judges_balance_missing_classes_and_minimums(good_and_bad):
    good, _, _ = good_and_bad
    ok = rules.judge(
        {"train": anomalies_pb2.Anomalies()}, {"train": good}, CLASSES, balance_tolerance=0.2, min_images_per_class=60
    )
    assert ok.ok and ok.class_counts == {"train": {"circle": 60, "square": 60}}
    assert rules.has_image_stats(good)
    too_few = rules.judge({}, {"train": good}, CLASSES, balance_tolerance=0.2, min_images_per_class=61)
    assert not too_few.ok and "fewer than min_images_per_class=61" in too_few.problems[0]
    missing = rules.judge({}, {"train": good}, [*CLASSES, "triangle"], balance_tolerance=0.2, min_images_per_class=1)
    assert any("'triangle' has no images" in p for p in missing.problems)


def test_small_splits_are_decoded_by_the_gate(tmp_path):
    examples = _examples({0: 3, 1: 3})
    examples[2] = _corrupt_image(examples[2])
    path = str(tmp_path / "small.gz")
    with tf.io.TFRecordWriter(path, "GZIP") as w:
        for e in examples:
            w.write(e)
    small = _stats(_write(str(tmp_path / "small.tfrecord"), examples))
    assert not rules.has_image_stats(small)  # TFDV skips fewer than 100 images
    bad = rules.undecodable_images([path])
    assert len(bad) == 1
    verdict = rules.judge(
        {},
        {"train": small},
        CLASSES,
        balance_tolerance=0.5,
        min_images_per_class=1,
        undecodable_by_split={"train": bad},
    )
    assert not verdict.ok and "1 images TensorFlow cannot decode" in verdict.problems[0]


def test_imbalance_is_refused(tmp_path):
    skewed = _stats(_write(str(tmp_path / "s.tfrecord"), _examples({0: 9, 1: 3})))
    verdict = rules.judge({}, {"train": skewed}, CLASSES, balance_tolerance=0.2, min_images_per_class=1)
    assert not verdict.ok
    assert any("'circle' holds 75.0%" in p for p in verdict.problems), json.dumps(verdict.problems)


def test_small_splits_leave_tfdv_nothing_to_warn_about(tmp_path, capfd):
    small = _stats(_write(str(tmp_path / "small.tfrecord"), _examples({0: 5, 1: 5})))
    big = _stats(_write(str(tmp_path / "big.tfrecord"), _examples({0: 60, 1: 60})))
    assert not rules.has_image_stats(small) and rules.has_image_stats(big)
    checked = rules.curate_schema(tfdv.infer_schema(big), CLASSES)
    unchecked = rules.curate_schema(tfdv.infer_schema(big), CLASSES, image_stats=False)
    image = next(f for f in unchecked.feature if f.name == layout.F_IMAGE)
    assert image.HasField("image_domain") and not image.image_domain.HasField("minimum_supported_image_fraction")
    capfd.readouterr()
    tfdv.validate_statistics(small, checked)
    # TFDV's C++ logs a warning (absl, straight to fd 2) for a fraction it cannot check.
    assert "image_domain" in capfd.readouterr().err
    # Without the fraction: nothing to warn about on a small split, and a split that has
    # image statistics (train beside a small eval) is no anomaly either.
    for stats in (small, big):
        assert dict(tfdv.validate_statistics(stats, unchecked).anomaly_info) == {}
    assert "image_domain" not in capfd.readouterr().err
