"""The prediction, calibration and gallery sections: a results folder's ``summary.json``
and ``predictions.jsonl``, the model's calibration block, the Trainer's calibration
figures and ``calibration.json``, and the Grad-CAM overlays predict wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from keyclass.components import layout
from keyclass.pipeline.report.gather.model import (
    CALIBRATION_FIGURES,
    GALLERY_PER_CELL,
    Calibration,
    Gallery,
    GalleryClass,
    GalleryItem,
    ModelInfo,
    Prediction,
)
from keyclass.pipeline.report.gather.readers import read_json, read_jsonl


def gather_prediction(results_dir: str, root: str = "") -> Prediction | None:
    """``summary.json`` and ``predictions.jsonl`` of a results folder."""
    if not results_dir:
        return None
    summary = read_json(os.path.join(results_dir, "summary.json"))
    if not isinstance(summary, dict):
        return None
    records = read_jsonl(os.path.join(results_dir, "predictions.jsonl"))
    return Prediction(results_dir, summary, records, root, float(summary.get("threshold", 0.0)))


SELECTIVE_KEYS = ("coverage", "selective_accuracy", "certified_precision_lower_bound", "ece", "aurc")


def abstained(record: dict) -> bool:
    """Below the threshold: the calibration issue's ``abstained``, else not ``kept``."""
    if "abstained" in record:
        return bool(record["abstained"])
    return not record.get("kept", False)


def gather_calibration(
    model: ModelInfo | None, model_run_uri: str, prediction: Prediction | None
) -> Calibration | None:
    """Calibration from the model (keyclass.json), the trainer's figures, and the
    confidences of labelled predictions (for a reliability diagram and risk-coverage)."""
    block = model.calibration if model else None
    figures = {}
    trainer_json = None
    if model_run_uri:
        figures = {
            n: os.path.join(model_run_uri, n)
            for n in CALIBRATION_FIGURES
            if os.path.isfile(os.path.join(model_run_uri, n))
        }
        trainer_json = read_json(os.path.join(model_run_uri, layout.CALIBRATION_JSON))
    selective: dict[str, Any] = {}
    points: list[tuple[float, bool]] = []
    threshold = None
    certification = None
    if prediction is not None:
        selective = {k: prediction.summary[k] for k in SELECTIVE_KEYS if k in prediction.summary}
        cert = prediction.summary.get("certification")
        certification = cert if isinstance(cert, dict) else None
        threshold = prediction.threshold
        for r in prediction.records:
            if r.get("error") is None and r.get("truth") is not None and r.get("confidence") is not None:
                points.append((float(r["confidence"]), r.get("class") == r["truth"]))
    if not block and not figures and not trainer_json and not selective and not points:
        return None
    return Calibration(block, figures, trainer_json, selective, certification, points, threshold)


def _overlay_path(record: dict) -> str | None:
    for p in record.get("images") or []:
        if str(p).endswith("_gradcam.jpg") and os.path.isfile(p):
            return str(p)
    return None


def gather_gallery(
    prediction: Prediction | None, classes: Iterable[str], per_cell: int = GALLERY_PER_CELL
) -> Gallery | None:
    """Per predicted class: the most confident correct and wrong predictions above the
    threshold, and the abstained ones (least confident first), with their faithfulness
    scores. An image appears in one cell only."""
    if prediction is None:
        return None
    rows = [r for r in prediction.records if r.get("error") is None and r.get("class")]
    if not rows:
        return None

    def item(r: dict) -> GalleryItem:
        original = os.path.join(prediction.root, r["file"]) if prediction.root else None
        return GalleryItem(
            file=r["file"],
            predicted=r["class"],
            truth=r.get("truth"),
            confidence=float(r["confidence"]),
            raw_confidence=r.get("raw_confidence"),
            kept=bool(r.get("kept")),
            overlay=_overlay_path(r),
            original=original if original and os.path.isfile(original) else None,
            faithfulness=r.get("faithfulness"),
        )

    out = []
    for c in classes:
        mine = [r for r in rows if r["class"] == c]
        confident = sorted((r for r in mine if not abstained(r)), key=lambda r: -r["confidence"])
        if prediction.truth_known:
            correct = [r for r in confident if r.get("truth") == c]
            wrong = [r for r in confident if r.get("truth") not in (None, c)]
        else:
            correct, wrong = confident, []
        low = sorted((r for r in mine if abstained(r)), key=lambda r: r["confidence"])
        out.append(
            GalleryClass(
                c,
                [item(r) for r in correct[:per_cell]],
                [item(r) for r in wrong[:per_cell]],
                [item(r) for r in low[:per_cell]],
            )
        )
    return Gallery(out, prediction.truth_known, prediction.faithfulness)
