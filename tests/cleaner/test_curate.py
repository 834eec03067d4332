"""The curation decisions alone (no Beam): confirmation of pHash candidates, label issues
and their cap, and the fallback to the pHash rule without a pretrained backbone."""

from __future__ import annotations

import hashlib
from unittest import mock

import numpy as np
import pytest

from keyclass.components.cleaner import curate, curation, dedup, funnel, stages
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.pipeline.commands import format_funnel
from tests.fixtures import images as fx


def test_the_duplicate_embeddings_cosine_is_the_mean_of_pooled_and_layout_cosines():
    rng = np.random.default_rng(0)
    pooled, layout = rng.random((2, 16)), rng.normal(size=(2, 40))
    emb = curate.duplicate_embedding(pooled, layout)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    want = (cos(pooled[0], pooled[1]) + cos(layout[0], layout[1])) / 2
    assert curate.pair_cosines(emb, [(0, 1)])[0] == pytest.approx(want, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)


def test_candidates_need_both_close_hashes_and_close_embeddings():
    # 0-1: 3 bits, cosine 0.995; 0-2: 40 bits, identical; 0-3: 1 bit, orthogonal;
    # 0-4: 10 bits, cosine 0.95; 1-4 and 4-5 also pass; 0-5: 16 bits, cosine 0.92.
    hashes = [0, 0b111, (1 << 40) - 1, 0b1, (1 << 10) - 1, (1 << 16) - 1]
    rows = [[1, 0, 0], [0.99, 0.1, 0], [1, 0, 0], [0, 1, 0], [0.95, 0, 0.312], [0.92, 0, 0.392]]
    emb = curate.unit_rows(np.array(rows, dtype=np.float32))
    links, stats = curate.confirmed_links(
        hashes, emb, candidate_distance=20, close_distance=12, min_cosine=0.9, far_min_cosine=0.95
    )
    # 2 is identical in embedding but 40 bits away: never a candidate. 3 is 1 bit away but
    # looks different: a candidate the embeddings reject. 5 is 16 bits from 0: beyond the
    # close distance its cosine 0.92 is not enough.
    assert (0, 2) not in links and (0, 3) not in links and (0, 5) not in links
    assert (0, 1) in links and (0, 4) in links
    assert links[(0, 1)].distance == 3 and links[(0, 1)].cosine == pytest.approx(0.995, abs=1e-3)
    assert links[(0, 4)].distance == 10 and links[(0, 4)].cosine == pytest.approx(0.95, abs=1e-3)
    assert stats.candidates == len(dedup.near_pairs(hashes, 20)) and stats.confirmed == len(links)
    looser = curate.confirmed_links(
        hashes, emb, candidate_distance=20, close_distance=16, min_cosine=0.9, far_min_cosine=0.95
    )[0]
    assert (0, 5) in looser


def _clusters(n_per_class: int, n_bad: int, seed: int = 0):
    """Three well separated classes; the last ``n_bad`` of class 0 lie in class 1's cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 32) * 12
    feats, labels = [], []
    for c in range(3):
        for i in range(n_per_class):
            true = 1 if (c == 0 and i >= n_per_class - n_bad) else c
            feats.append(centres[true] + rng.normal(size=32))
            labels.append(c)
    return np.abs(np.array(feats, dtype=np.float32)), np.array(labels)


def test_mislabelled_images_are_found_with_the_class_they_show():
    feats, labels = _clusters(30, 4)
    result = curate.find_label_issues(
        feats, labels, ["a", "b", "c"], folds=5, off_topic_p_value=0.001, max_fraction=0.3
    )
    assert sorted(result.issues) == [26, 27, 28, 29]
    assert {i.suggested_class for i in result.issues.values()} == {"b"}
    assert all(i.quality < 0.5 for i in result.issues.values())
    assert result.per_class == {"a": 4, "b": 0, "c": 0} and result.cap_hit == []
    again = curate.find_label_issues(feats, labels, ["a", "b", "c"], folds=5, off_topic_p_value=0.001, max_fraction=0.3)
    assert again.issues == result.issues  # deterministic


def test_the_cap_keeps_the_worst_and_says_it_bit():
    feats, labels = _clusters(30, 9)  # 30 % of class a looks like b
    names = ["a", "b", "c"]
    uncapped = curate.find_label_issues(feats, labels, names, folds=5, off_topic_p_value=0.001, max_fraction=1.0)
    capped = curate.find_label_issues(feats, labels, names, folds=5, off_topic_p_value=0.001, max_fraction=0.2)
    flagged_a = [p for p in uncapped.issues if labels[p] == 0]
    assert len(flagged_a) > 6 and uncapped.cap_hit == []
    assert capped.per_class["a"] == 6 == int(0.2 * 30)  # at most 20 % of the class
    assert capped.flagged["a"] == len(flagged_a) and "a" in capped.cap_hit
    worst = sorted(flagged_a, key=lambda p: (uncapped.issues[p].quality, p))[:6]
    assert sorted(p for p in capped.issues if labels[p] == 0) == sorted(worst)
    assert all(n <= 6 for n in capped.per_class.values())
    block = curate.label_issue_summary(capped, 0.2, 0.001)
    assert block["cap"] == 0.2 and "a" in block["cap_hit"] and block["flagged_before_cap"]["a"] == len(flagged_a)
    assert block["per_class"]["a"] == 6


def test_with_two_classes_a_picture_far_from_its_class_is_off_topic_whatever_the_classifier_says():
    """Two classes, and in each a few pictures of neither, far off (where such pictures
    lie) but a little nearer their own class than the other: the classifier gives
    them their own label (quality > 0.5), so the "far and doubted" rule keeps them; beyond
    the bound at p 0.001 they are off-topic on distance alone. No clean picture is."""
    rng = np.random.default_rng(0)
    dim, per_class, odd = 32, 100, 6
    centres = np.eye(2, dim) * 6
    feats, labels, planted = [], [], []
    for c in range(2):
        for i in range(per_class):
            x = centres[c] + rng.normal(size=dim)
            if i >= per_class - odd:
                x = 0.6 * centres[c] + 0.4 * centres[1 - c] + rng.normal(size=dim)
                x[2 + (i % 3)] += 15.0  # far off, where pictures of neither class lie
                planted.append(len(feats))
            feats.append(x)
            labels.append(c)
    feats, labels = np.array(feats, dtype=np.float32), np.array(labels)
    result = curate.find_label_issues(feats, labels, ["a", "b"], folds=5, off_topic_p_value=0.03, max_fraction=0.3)
    assert sorted(result.issues) == planted
    assert all(i.rule == curate.OFF_TOPIC for i in result.issues.values())
    assert any(i.quality > 0.5 for i in result.issues.values())  # the classifier would have kept them
    assert result.off_topic_alone_limit > result.off_topic_limit
    block = curate.label_issue_summary(result, 0.3, 0.03)
    assert block["off_topic_alone_p_value"] == curate.OFF_TOPIC_ALONE_P_VALUE
    assert block["off_topic_alone_distance_limit"] == pytest.approx(result.off_topic_alone_limit, abs=1e-3)


def test_label_issues_are_skipped_when_a_class_is_too_small():
    feats, labels = _clusters(30, 0)
    labels[labels == 2] = 0
    labels[0] = 2  # class c has one image
    result = curate.find_label_issues(
        feats, labels, ["a", "b", "c"], folds=5, off_topic_p_value=0.001, max_fraction=0.3
    )
    assert result.issues == {} and "fewer than two" in result.skipped


# ---- fallback ------------------------------------------------------------------------------
def _crawl(n: int = 6):
    """In-memory records and metas as the decode stage makes them: two near copies."""
    records, metas, jpegs = [], {}, {}
    datas = [fx.rgb_jpeg(i) for i in range(n)] + [fx.near_duplicate(fx.rgb_jpeg(0))]
    for i, data in enumerate(datas):
        sha = hashlib.sha256(data).hexdigest()
        records.append(funnel.Record(i, "cat" if i % 2 == 0 else "dog", f"http://x/{i}", sha, f"images/{sha}"))
        meta, jpeg = stages.process_image(sha, data, image_size=64, jpeg_quality=90, max_pixels=10**8)
        metas[sha], jpegs[sha] = meta, jpeg
    return records, metas, jpegs


@pytest.mark.parametrize(
    "backbone, weights, curate_on, reason",
    [
        ("tiny", "none", True, "backbone tiny has random weights"),
        ("tiny", "/models/tiny.weights.h5", True, "backbone tiny has random weights (a test backbone"),
        ("efficientnet_lite0", "none", True, "random weights (weights none)"),
        ("efficientnet_lite0", "imagenet", False, "clean.curate is off"),
    ],
)
def test_without_a_pretrained_backbone_the_phash_rule_decides_and_says_so(backbone, weights, curate_on, reason):
    records, metas, jpegs = _crawl()
    settings = CleanerSettings(
        ("cat", "dog"), image_size=64, backbone=backbone, weights=weights, curate=curate_on, min_width=64, min_height=64
    )
    loads = []
    result = curation.curate_records(records, metas, settings, lambda wanted: loads.append(wanted) or jpegs)
    assert loads == []  # no image was read for embedding
    assert result.embeddings is None
    cur = result.report
    assert cur["mode"] == "phash_only" and reason in cur["reason"]
    assert cur["near_duplicate"] == {"rule": "phash", "phash_bits": 64, "max_distance": 4}
    assert sum(cur["label_issues"]["per_class"].values()) == 0 and reason in cur["label_issues"]["skipped"]
    # Exactly today's decisions.
    today = funnel.decide(
        records,
        metas,
        classes=("cat", "dog"),
        min_width=64,
        min_height=64,
        near_duplicate_distance=4,
        balance=True,
        calibration_fraction=settings.calibration_fraction,
        eval_fraction=0.2,
    )
    assert result.decisions == today
    assert result.decisions[-1].reason == "near_duplicate" and result.decisions[-1].cosine is None
    report = funnel.build_report(records, result.decisions, settings.classes, settings.to_dict(), cur)
    printed = format_funnel(report)
    assert "WARNING: NO CURATION" in printed and reason in printed and "NOT pruned" in printed


def test_weights_that_cannot_be_loaded_fall_back_loudly():
    records, metas, jpegs = _crawl()
    settings = CleanerSettings(
        ("cat", "dog"), image_size=64, backbone="resnet50", weights="imagenet", min_width=64, min_height=64
    )
    with mock.patch(
        "keyclass.components.backbones.embed.Embedder.build",
        side_effect=Exception("URL fetch failure on storage.googleapis.com"),
    ):
        result = curation.curate_records(records, metas, settings, lambda wanted: jpegs)
    assert result.report["mode"] == "phash_only"
    assert "resnet50: weights imagenet not loaded" in result.report["reason"]
    assert "URL fetch failure" in result.report["reason"]
