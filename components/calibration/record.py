"""The calibration record an exported model carries (``assets.extra/keyclass.json``):
its figures, certified thresholds and held-out scores; reading those scores back in
the units certification ran in; and whether the calibration failed (the Pusher's rule)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keyclass.components.calibration.certify import Certificate, raw_threshold, served_threshold
from keyclass.components.calibration.scaling import DEFAULT_CONFIDENCE, ECE_BINS

PILOT = "pilot"  # scores key of the images that ordered the test (eval + temperature part)
RAW = "raw"  # the block's ``certified_on`` when certification ran on raw confidences


# The exported model's calibration record ------------------------------------------------
def metadata_block(
    *,
    temperature: float,
    ece_before: float,
    ece_after: float,
    images: int,
    certificates: Sequence[Certificate],
    confidence_level: float = DEFAULT_CONFIDENCE,
    scores: Mapping[str, Any] | None = None,
    temperature_images: int | None = None,
    ece_change_bound: float | None = None,
    certified_on: str = "calibrated",
) -> dict[str, Any]:
    """The ``calibration`` block of ``assets.extra/keyclass.json`` (the shared contract),
    plus the coverage of each certified threshold and the held-out scores that let
    ``predict`` certify other targets and bound any ``-t``. ``images`` counts the
    images ECE was measured on (the certificates too, unless certified on raw
    confidences); ``temperature_images`` those T was fitted on. ``certified_on``: :data:`RAW` when the certificates were found on raw
    confidences over every calibration image (two classes), their thresholds converted
    to served ones; each certificate's image count is in ``certificate_images``."""

    def num(x: float) -> float | None:
        return float(x) if x is not None and math.isfinite(x) else None

    return {
        "temperature": num(temperature),
        "ece_before": num(ece_before),
        "ece_after": num(ece_after),
        "ece_change_lower_bound": num(ece_change_bound),
        "bins": ECE_BINS,
        "images": int(images),
        "temperature_images": temperature_images,
        "confidence": float(confidence_level),
        "certified_thresholds": {_key(c.target): c.threshold for c in certificates},
        "certified_coverage": {_key(c.target): c.coverage for c in certificates},
        "certified_on": certified_on,
        "certificate_images": int(certificates[0].images) if certificates else int(images),
        "scores": dict(scores or {}),
    }


def _key(target: float) -> str:
    return f"{target:g}"


def score_record(
    confidence: np.ndarray, correct: np.ndarray, raw_confidence: np.ndarray | None = None
) -> dict[str, list]:
    """Calibrated confidences (float32 values, as the model serves them) and correctness,
    JSON-ready; with two classes also the raw confidences certification runs on."""
    conf = np.asarray(confidence, dtype=np.float32)
    out = {"confidence": [float(c) for c in conf], "correct": [bool(c) for c in np.asarray(correct, dtype=bool)]}
    if raw_confidence is not None:
        out["raw_confidence"] = [float(c) for c in np.asarray(raw_confidence, dtype=np.float32)]
    return out


def calibration_problem(block: Mapping[str, Any] | None) -> str | None:
    """Why a model's calibration failed (the Pusher refuses it), or None when it is sound:
    no record, a non-finite or non-positive temperature, or ECE after scaling worse than
    before. "Worse" beyond sampling noise when the record has the bootstrap bound
    (``ece_change_lower_bound`` > 0); without the bound, any increase."""
    if not block:
        return "the model carries no calibration record (assets.extra/keyclass.json 'calibration')"
    t = block.get("temperature")
    if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        return f"the fitted temperature is not a finite positive number ({t!r})"
    before, after = block.get("ece_before"), block.get("ece_after")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (before, after)):
        return f"ECE before/after scaling is missing or not finite ({before!r}, {after!r})"
    if after > before:
        bound = block.get("ece_change_lower_bound")
        if not isinstance(bound, (int, float)) or not math.isfinite(bound):
            return f"ECE after temperature scaling ({after:.4f}) is worse than before ({before:.4f})"
        if bound > 0:
            return (
                f"ECE after temperature scaling ({after:.4f}) is worse than before ({before:.4f}), by more than "
                f"sampling noise (bootstrap lower bound on the increase {bound:.4f})"
            )
    return None


@dataclasses.dataclass
class HeldOut:
    """The held-out scores a model carries, in the units certification runs on: raw
    confidences for a two-class model certified on them (``temperature`` set: thresholds
    convert with :meth:`served` and :meth:`raw`), else calibrated ones."""

    confidence: np.ndarray
    correct: np.ndarray
    pilot_confidence: np.ndarray | None = None
    pilot_correct: np.ndarray | None = None
    temperature: float | None = None

    def served(self, threshold: float) -> float:
        """A threshold in certification units, as the model serves it."""
        return threshold if self.temperature is None else served_threshold(threshold, self.temperature)

    def raw(self, served: float) -> float:
        """A served threshold in certification units."""
        return served if self.temperature is None else raw_threshold(served, self.temperature)


def held_out(block: Mapping[str, Any] | None, split: str) -> HeldOut | None:
    """The certifying scores of a calibration block (``scores[split]`` and the pilot), in
    the units its certificates were found in; None when it holds none."""
    raw = (block or {}).get("certified_on") == RAW
    key = "raw_confidence" if raw else "confidence"
    scores = (block or {}).get("scores") or {}
    rec, pilot = scores.get(split), scores.get(PILOT)
    if not rec or key not in rec:
        return None
    out = HeldOut(np.asarray(rec[key], dtype=np.float64), np.asarray(rec["correct"], dtype=bool))
    if pilot and key in pilot:
        out.pilot_confidence = np.asarray(pilot[key], dtype=np.float64)
        out.pilot_correct = np.asarray(pilot["correct"], dtype=bool)
    if raw:
        t = block.get("temperature")
        if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            return None
        out.temperature = float(t)
    return out
