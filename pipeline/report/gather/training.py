"""The training section: the Trainer's ``history.json`` (both phases) and which phase's
weights were kept, and why.
"""

from __future__ import annotations

import os

from keyclass.components import layout
from keyclass.pipeline.report.gather.model import PhaseRow, Training
from keyclass.pipeline.report.gather.readers import read_json


def _why_kept(history: dict) -> tuple[str, str]:
    p1, p2, kept = history.get("phase1") or {}, history.get("phase2"), history.get("kept", "phase1")
    l1 = p1.get("best_val_loss")
    if not p2:
        return kept, "phase 2 (fine-tuning) did not run (fine_tune_epochs 0), so phase 1's weights were kept"
    l2 = p2.get("best_val_loss")
    if kept == "phase2":
        return kept, f"fine-tuning's best validation loss {l2:.4g} beat phase 1's {l1:.4g}"
    return (
        kept,
        f"fine-tuning's best validation loss {l2:.4g} did not beat phase 1's {l1:.4g}, so phase 1's weights were restored",
    )


def gather_training(model_run_uri: str) -> Training | None:
    """Both phases' histories (history.json) and which one was kept, and why."""
    if not model_run_uri:
        return None
    history = read_json(os.path.join(model_run_uri, layout.HISTORY_JSON))
    if not isinstance(history, dict) or "phase1" not in history:
        return None
    phases = []
    for key in ("phase1", "phase2"):
        p = history.get(key)
        if not p:
            continue
        phases.append(
            PhaseRow(
                name=key,
                epochs=len((p.get("history") or {}).get("loss", [])),
                best_epoch=int(p.get("best_epoch", 0)),
                best_val_loss=float(p.get("best_val_loss", float("nan"))),
                best_val_accuracy=float(p.get("best_val_accuracy", float("nan"))),
                seconds=float(p.get("seconds", 0.0)),
            )
        )
    kept, why = _why_kept(history)
    return Training(history, phases, kept, why, model_run_uri)
