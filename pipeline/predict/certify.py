"""Which threshold ``predict`` applies, and what it certifies.

``-t λ`` keeps its seed meaning: keep predictions whose (calibrated) confidence is at
least λ. The summary then also reports the certified lower bound on precision at λ
(one-sided Clopper-Pearson on the model's held-out calibration scores, at
``--confidence``).

``--target-precision P`` asks for the lowest λ whose precision is certified >= P at
``--confidence`` (Learn-then-Test, :func:`components.calibration.certify`) on the same
held-out scores, which the model carries in its metadata, so no held-out data is needed
at prediction time. A target that cannot be certified is refused (exit 2) with the
best it can certify and roughly how many more held-out images per class would do.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from keyclass.components import calibration as cal
from keyclass.components import layout
from keyclass.components.errors import ConfigError


@dataclasses.dataclass
class ThresholdChoice:
    """The threshold in force and what is certified about it."""

    threshold: float
    source: str  # "threshold" (-t) or "target_precision"
    confidence: float  # 1 - δ
    target_precision: float | None = None
    certified_lower_bound: float | None = None  # precision, at `confidence`
    held_out_images: int | None = None
    held_out_coverage: float | None = None  # share of held-out images kept at `threshold`
    note: str = ""

    def summary_fields(self) -> dict[str, Any]:
        """What ``summary.json`` records about the threshold."""
        return {
            "certified_precision_lower_bound": self.certified_lower_bound,
            "certification": {
                "source": self.source,
                "target_precision": self.target_precision,
                "confidence": self.confidence,
                "held_out_images": self.held_out_images,
                "held_out_coverage": self.held_out_coverage,
                "note": self.note,
            },
        }


def model_calibration(predictor: Any) -> dict | None:
    """The ``calibration`` record of the model behind ``predictor`` (its keyclass.json),
    or None when the model has none or it is not reachable (TF Serving does not serve
    assets; give the predictor the pushed model directory)."""
    meta = predictor.metadata().get("keyclass") or {}
    block = meta.get("calibration")
    return block if isinstance(block, dict) else None


def choose_threshold(
    block: dict | None,
    classes: int,
    *,
    threshold: float,
    target_precision: float | None,
    confidence: float = cal.DEFAULT_CONFIDENCE,
) -> ThresholdChoice:
    """The threshold to apply; raises ConfigError when ``target_precision`` cannot be
    certified (or the model carries nothing to certify it with)."""
    held = cal.held_out(block, layout.CALIBRATION_SPLIT)
    if target_precision:
        return _for_target(block, held, classes, target_precision, confidence)
    choice = ThresholdChoice(threshold, "threshold", confidence)
    if held is None:
        choice.note = _no_scores(block)
        return choice
    conf, ok = held.confidence, held.correct
    at = held.raw(threshold)  # the same images, in the units the scores are in
    choice.held_out_images = len(conf)
    choice.certified_lower_bound = cal.precision_lower_bound(conf, ok, at, confidence)
    choice.held_out_coverage = float((conf >= at).mean()) if len(conf) else None
    if choice.certified_lower_bound is None:
        choice.note = f"no held-out image reaches confidence {threshold:g}: nothing is certified at this threshold"
    return choice


def _for_target(block, held: cal.HeldOut | None, classes: int, target: float, confidence: float) -> ThresholdChoice:
    if held is None:
        recorded = (block or {}).get("certified_thresholds") or {}
        key = f"{target:g}"
        if key not in recorded or not math.isclose(float((block or {}).get("confidence", -1)), confidence):
            raise ConfigError(
                f"--target-precision {target:g}: {_no_scores(block)}; "
                + (
                    f"it records certified thresholds only for {', '.join(sorted(recorded))} at "
                    f"{(block or {}).get('confidence')} confidence"
                    if recorded
                    else "retrain it with this keyclass, or use -t"
                )
            )
        if recorded[key] is None:
            raise ConfigError(f"--target-precision {target:g}: the model could not certify it when it was trained")
        coverage = ((block or {}).get("certified_coverage") or {}).get(key)
        return ThresholdChoice(
            float(recorded[key]),
            "target_precision",
            confidence,
            target,
            target,
            block.get("certificate_images", block.get("images")),
            coverage,
        )
    conf, ok = held.confidence, held.correct
    pilot = {"pilot_confidence": held.pilot_confidence, "pilot_correct": held.pilot_correct}
    cert = cal.certify(conf, ok, target, confidence, **pilot)
    if not cert.certified:
        raise ConfigError(
            "--target-precision: "
            + cal.refusal_message(target, confidence, conf, ok, classes, served=held.served, **pilot)
        )
    return ThresholdChoice(
        held.served(cert.threshold),
        "target_precision",
        confidence,
        target,
        target,  # certified by Learn-then-Test; a bound recomputed at the chosen λ would not be
        cert.images,
        cert.coverage,
        f"lowest threshold certified by Learn-then-Test on {cert.images} held-out images "
        f"({cert.kept} kept, {cert.errors} wrong)",
    )


def _no_scores(block: dict | None) -> str:
    if not block:
        return (
            "the model carries no calibration record (trained before calibration, or served by TF Serving, "
            "which does not serve assets.extra/keyclass.json, while this keyclass home holds no pushed copy of "
            "the served version: predict with --home where it was pushed, or without --server)"
        )
    return "the model's calibration record holds no held-out scores"


def format_certificates(block: dict | None, classes: int) -> str:
    """The certified thresholds a model records, one line each (for ``train`` and the demo)."""
    if not block:
        return "certified thresholds: none recorded (model trained before calibration)"
    images, conf = block.get("images"), block.get("confidence")
    t = block.get("temperature")
    lines = [
        f"calibration: temperature {t:.3g}, ECE {block.get('ece_before', float('nan')):.2%} -> "
        f"{block.get('ece_after', float('nan')):.2%} on {images} held-out images"
        if isinstance(t, (int, float))
        else f"calibration: FAILED (temperature {t!r})"
    ]
    coverage = block.get("certified_coverage") or {}
    held = cal.held_out(block, layout.CALIBRATION_SPLIT)
    for key, threshold in (block.get("certified_thresholds") or {}).items():
        if threshold is None:
            more = ""
            needed = cal.images_needed(held.confidence, held.correct, float(key), conf) if held is not None else None
            n = len(held.confidence) if held is not None else images
            if needed is not None:
                more = f" (about {max(1, math.ceil((needed - n) / max(classes, 1)))} more per class would do)"
            lines.append(f"  precision >= {float(key):.1%}: not certifiable on {n} held-out images{more}")
        else:
            cov = coverage.get(key)
            cov_txt = f", coverage {cov:.1%} of held-out images" if isinstance(cov, (int, float)) else ""
            lines.append(
                f"  precision >= {float(key):.1%} certified ({conf:.0%} confidence) from threshold {threshold:g}{cov_txt}"
            )
    return "\n".join(lines)
