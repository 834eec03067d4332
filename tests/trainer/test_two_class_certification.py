"""Two classes: every temperature orders the images alike, so certification runs on the
raw confidence over every calibration image and its thresholds are served as
sigmoid(logit(λ) / T); T too is fitted on every image, and ECE after scaling is measured
out of fold. A third more certifying images is what lets a small two-class crawl
certify 0.99 at all (230 error-free kept images at 90 %)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from keyclass.components import calibration as cal
from keyclass.components.trainer import calibrate
from keyclass.pipeline.predict.certify import choose_threshold


def _logits(n: int, classes: int, seed: int, wrong: int = 0, margin: float = 9.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += margin
    if wrong:  # the least confident few are wrong
        logits[:wrong, labels[:wrong]] -= 2 * margin
    keys = np.array([hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(n)])
    return logits, labels, keys


@pytest.mark.parametrize("temperature", [0.4, 0.87, 1.0, 2.5])
def test_served_thresholds_keep_exactly_the_images_the_raw_ones_keep(temperature):
    logits, _, _ = _logits(2000, 2, 1, margin=2.0)
    raw = cal.softmax(logits).max(1)
    served = cal.softmax(logits, temperature).max(1)
    for lam in (0.0, 0.3, 0.5, 0.6, 0.9, 0.97, 0.99, 0.995, 0.9999, 1.0):
        at = cal.served_threshold(lam, temperature)
        assert cal.raw_threshold(at, temperature) == pytest.approx(lam, abs=1e-9)
        inside = np.abs(served - at) > 1e-9  # away from float ties at the boundary itself
        np.testing.assert_array_equal((served >= at)[inside], (raw >= lam)[inside])


def test_two_classes_certify_on_every_calibration_image_and_three_on_the_rest():
    ev2, ev2_y, _ = _logits(200, 2, 2)
    c2, c2_y, k2 = _logits(300, 2, 3)
    r2 = calibrate.calibrate(ev2, ev2_y, c2, c2_y, k2)
    block = r2["block"]
    assert block["certified_on"] == cal.RAW and block["certificate_images"] == 300
    # T on every calibration image; ECE after scaling out of fold (T of the other folds).
    assert block["images"] == block["temperature_images"] == 300
    t = r2["temperature"]
    assert t == pytest.approx(cal.fit_temperature(c2, c2_y))
    folds = cal.hash_folds(list(k2), calibrate.TWO_CLASS_FOLDS)
    oof = np.zeros(300)
    for f in range(calibrate.TWO_CLASS_FOLDS):
        m = folds == f
        oof[m] = cal.softmax(c2[m], cal.fit_temperature(c2[~m], c2_y[~m])).astype(np.float32).max(1)
    correct = cal.softmax(c2).argmax(1) == c2_y
    assert block["ece_after"] == pytest.approx(cal.ece(oof, correct))
    assert sorted(np.bincount(folds).tolist()) == [60] * 5
    # The certificate is Learn-then-Test on the raw confidence of all 300, eval the pilot.
    raw, ok = cal.softmax(c2).max(1), cal.softmax(c2).argmax(1) == c2_y
    pilot = cal.softmax(ev2).max(1), cal.softmax(ev2).argmax(1) == ev2_y
    for c in r2["certificates"]:
        direct = cal.certify(raw, ok, c.target, pilot_confidence=pilot[0], pilot_correct=pilot[1])
        assert c.images == 300 and c.kept == direct.kept and c.errors == direct.errors
        if direct.certified:
            assert c.threshold == pytest.approx(cal.served_threshold(direct.threshold, t))
        else:
            assert c.threshold is None
    # 300 error-free images certify 0.99; the 225 of the rest alone could not (230 needed).
    assert block["certified_thresholds"]["0.99"] is not None
    rest = ~cal.temperature_part(list(k2))
    assert not cal.certify(raw[rest], ok[rest], 0.99).certified
    stored = block["scores"]["calibration"]
    assert len(stored["raw_confidence"]) == len(stored["confidence"]) == 300

    ev3, ev3_y, _ = _logits(200, 3, 4)
    c3, c3_y, k3 = _logits(300, 3, 5)
    block3 = calibrate.calibrate(ev3, ev3_y, c3, c3_y, k3)["block"]
    assert block3["certified_on"] == "calibrated"
    assert block3["certificate_images"] == block3["images"] == 300 - cal.temperature_part(list(k3)).sum()
    assert "raw_confidence" not in block3["scores"]["calibration"]


def test_predict_recertifies_a_two_class_model_as_the_trainer_did():
    ev, ev_y, _ = _logits(200, 2, 6)
    c, c_y, k = _logits(600, 2, 7, wrong=4, margin=5.0)
    block = calibrate.calibrate(ev, ev_y, c, c_y, k)["block"]
    assert block["certified_on"] == cal.RAW
    for key, recorded in block["certified_thresholds"].items():
        if recorded is None:
            continue
        choice = choose_threshold(block, 2, threshold=0.0, target_precision=float(key))
        assert choice.threshold == pytest.approx(recorded, rel=1e-9)
        assert choice.held_out_images == 600
    # -t in served units: the bound and coverage are those of the raw threshold it equals.
    t = block["temperature"]
    raw, ok = cal.softmax(c).max(1), cal.softmax(c).argmax(1) == c_y
    choice = choose_threshold(block, 2, threshold=0.99, target_precision=None)
    lam = cal.raw_threshold(0.99, t)
    assert choice.held_out_coverage == pytest.approx(float((raw.astype(np.float32) >= lam).mean()))
    assert choice.certified_lower_bound == pytest.approx(
        cal.precision_lower_bound(raw.astype(np.float32).astype(np.float64), ok, lam)
    )


def test_a_failed_two_class_calibration_serves_no_threshold():
    ev, ev_y, _ = _logits(50, 2, 8)
    c, c_y, k = _logits(100, 2, 9)
    c[0, 0] = np.nan  # the temperature cannot be fitted: the Pusher refuses the model
    result = calibrate.calibrate(ev, ev_y, c, c_y, k)
    block = result["block"]
    assert block["temperature"] is None and block["certified_on"] == "calibrated"
    assert set(block["certified_thresholds"].values()) == {None} == set(block["certified_coverage"].values())
    assert result["report"]["problem"]
