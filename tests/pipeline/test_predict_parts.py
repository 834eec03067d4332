"""Prediction's pure parts: truth from folders and names, the accuracy table, images."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keyclass.components.errors import ConfigError
from keyclass.pipeline.predict import summary, truth, visualize
from keyclass.pipeline.predict.certify import ThresholdChoice
from keyclass.pipeline.predict.results_dir import MARKER
from keyclass.pipeline.predict.run import PredictError, check_inputs, predict_folder, prepare_results_dir
from tests.fixtures import images as fx
from tests.fixtures.predictor import ScriptedPredictor

CLASSES = ["cat", "dog"]


def test_truth_from_subfolder_or_kaggle_prefix(tmp_path):
    root = tmp_path
    assert truth.true_label(root / "cat" / "x.jpg", root, CLASSES) == "cat"
    assert truth.true_label(root / "DOG" / "sub" / "x.jpg", root, CLASSES) == "dog"
    assert truth.true_label(root / "cat.123.jpg", root, CLASSES) == "cat"
    assert truth.true_label(root / "dog_7.png", root, CLASSES) == "dog"
    assert truth.true_label(root / "catalogue.jpg", root, CLASSES) is None
    assert truth.true_label(root / "mixed" / "123.jpg", root, CLASSES) is None
    assert (
        truth.true_label(root / "golden_retriever" / "1.jpg", root, ["golden retriever", "pug"]) == "golden retriever"
    )


def test_scan_is_recursive_and_skips_results_and_hidden(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "1.jpg").write_bytes(b"x")
    (tmp_path / "2.png").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"x")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "old.jpg").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in truth.scan(tmp_path, exclude=tmp_path / "results")]
    assert found == ["2.png", "a/b/1.jpg"]


def _rec(truth_, cls, conf, threshold=0.9, error=None):
    return {"file": "f", "truth": truth_, "class": cls, "confidence": conf, "kept": conf >= threshold, "error": error}


def test_table_arithmetic_matches_the_seed_definitions():
    recs = [
        _rec("cat", "cat", 0.99),
        _rec("cat", "cat", 0.95),
        _rec("cat", "dog", 0.97),  # kept, wrong
        _rec("dog", "dog", 0.50),  # below threshold
        _rec("dog", "dog", 0.91),
        _rec(None, "dog", 0.99),  # unlabelled
        {"file": "bad", "truth": "cat", "class": None, "confidence": None, "kept": False, "error": "not an image"},
    ]
    s = summary.summarize(recs, CLASSES, 0.9)
    t = s["table"]
    assert s["files"] == 7 and s["unreadable"] == 1 and s["unlabelled"] == 1
    assert t["total_images"] == 5
    assert t["threshold_images"] == 4 and t["threshold_missed"] == 1
    assert t["threshold_images"] + t["threshold_missed"] == t["total_images"]
    assert t["correctly_classified"] == 3 and t["misclassified"] == 1
    assert t["total_accuracy"] == pytest.approx(3 / 5)
    assert t["threshold_accuracy"] == pytest.approx(3 / 4)
    assert s["confusion_matrix"]["counts"] == {"cat": {"cat": 2, "dog": 1}, "dog": {"cat": 0, "dog": 1}}
    assert s["per_class"]["dog"]["precision"] == pytest.approx(1 / 2)
    assert s["per_class"]["cat"]["recall"] == pytest.approx(2 / 3)
    text = summary.format_table(s)
    assert "threshold accuracy" in text and "75.00%" in text


def test_selective_figures_coverage_ece_and_aurc():
    recs = [
        _rec("cat", "cat", 0.95),
        _rec("cat", "dog", 0.95),  # kept, wrong
        _rec("dog", "dog", 0.65),  # abstained
        _rec(None, "dog", 0.97),  # unlabelled, kept
    ]
    choice = ThresholdChoice(0.9, "threshold", 0.9, certified_lower_bound=0.93, held_out_images=400)
    s = summary.summarize(recs, CLASSES, 0.9, choice.summary_fields())
    assert s["kept"] == 3 and s["abstained"] == 1 and s["coverage"] == pytest.approx(3 / 4)
    assert s["selective_accuracy"] == pytest.approx(1 / 2) == s["table"]["threshold_accuracy"]
    # Labelled only: bin of 0.95 has accuracy 1/2 (|0.5 - 0.95|, 2 of 3), bin of 0.65 has 1 (|1 - 0.65|, 1 of 3).
    assert s["ece"] == pytest.approx((2 * 0.45 + 0.35) / 3)
    # Ties at 0.95 go together: risk 1/2 at coverage 2/3 (twice), then 1/3 with all three.
    assert s["aurc"] == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)
    assert s["certified_precision_lower_bound"] == 0.93 and s["certification"]["held_out_images"] == 400
    text = summary.format_table(s)
    assert "abstained (below threshold) 1" in text and "coverage 75.0%" in text and "ECE (15 bins)" in text
    assert "certified precision at 0.9: >= 93.00% at 90% confidence (400 held-out images)" in text


def test_no_table_without_truth():
    s = summary.summarize([_rec(None, "cat", 0.99)], CLASSES, 0.9)
    assert s["truth_known"] is False and "table" not in s
    assert s["ece"] is None and s["aurc"] is None and s["selective_accuracy"] is None and s["coverage"] == 1.0


def test_threshold_is_inclusive(tmp_path):
    """Through predict_folder's own decision: exactly the threshold is kept, the float
    just below it is not (a ``>`` in run.py fails this)."""
    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    for i in range(3):
        (photos / f"{i}.jpg").write_bytes(fx.rgb_jpeg(i, 64, 48))
    threshold = 0.99
    confidences = [threshold, math.nextafter(threshold, 0.0), math.nextafter(threshold, 1.0)]
    s = predict_folder(
        ScriptedPredictor(CLASSES, confidences),
        CLASSES,
        tmp_path / "photos",
        tmp_path / "results",
        threshold=threshold,
        batch_size=2,
        segmentation_fraction=0.5,
        image_size=32,
        progress=False,
    )
    lines = [json.loads(x) for x in (tmp_path / "results" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["file"], r["confidence"], r["kept"]) for r in lines] == [
        ("cat/0.jpg", threshold, True),
        ("cat/1.jpg", confidences[1], False),
        ("cat/2.jpg", confidences[2], True),
    ]
    assert s["table"]["threshold_images"] == 2 and s["table"]["threshold_missed"] == 1
    assert sorted(p.name for p in (tmp_path / "results" / "cat").iterdir()) == sorted(
        f"cat%2F{i}.jpg_{kind}.jpg" for i in (0, 2) for kind in ("original", "gradcam", "segmentation")
    )


def test_overlay_and_segmentation():
    img = Image.new("RGB", (40, 20), (100, 100, 100))
    heat = np.zeros((2, 4), np.float32)
    heat[0, 3] = 1.0
    up = visualize.upsample(heat, img.size)
    assert up.shape == (20, 40)
    assert up[:10, 30:].mean() > up[10:, :10].mean()
    over = visualize.overlay(img, up)
    assert over.size == img.size and np.asarray(over)[2, 38, 0] > np.asarray(over)[18, 2, 0]
    seg, box = visualize.segment(img, up, 0.5)
    x0, y0, x1, y1 = box
    assert x0 >= 20 and y1 <= 12
    arr = np.asarray(seg)
    assert arr[18, 2].sum() == 0 and arr[2, 38].sum() > 0
    _, none_box = visualize.segment(img, np.zeros((20, 40), np.float32), 0.5)
    assert none_box is None


def test_bad_prediction_paths_and_results_refused(tmp_path):
    with pytest.raises(PredictError, match="does not exist"):
        check_inputs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PredictError, match="holds no files"):
        check_inputs(tmp_path / "empty")
    res = tmp_path / "res"
    prepare_results_dir(res, overwrite=False)
    (res / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="--overwrite"):
        prepare_results_dir(res, overwrite=False)
    prepare_results_dir(res, overwrite=True)
    assert [p.name for p in Path(res).iterdir()] == [MARKER]
