"""After training: fit the temperature, measure calibration, certify thresholds, and
write the reports beside the training history.

The calibration split (no training step, early stopping or phase-2 choice saw it) is
cut by image hash (:func:`components.calibration.temperature_part`): a quarter, at most
300 images, fits the temperature T; the rest measures ECE before and after scaling and
the risk-coverage curve and certifies the thresholds, so those are honest
out-of-sample figures and the certificates hold (see :mod:`components.calibration`).
Not the eval split for T: early stopping chose the epoch by its NLL, which pins its
best temperature near 1. The eval split and the temperature part, scored with T, are
the pilot that orders the fixed-sequence test. With two classes the certificates use
every calibration image instead, on the raw confidence, with the eval split as the pilot
(every temperature orders two-class images alike; :mod:`components.calibration`).

Outputs in the Trainer's ``model_run_dir``: ``calibration.json`` (everything below),
``reliability.png`` (before and after scaling) and ``risk_coverage.png`` (the certified
thresholds marked).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
from tfx.dsl.io import fileio

from keyclass.components import calibration as cal
from keyclass.components import layout

CALIBRATION_JSON = layout.CALIBRATION_JSON
RELIABILITY_PNG = layout.RELIABILITY_PNG
RISK_COVERAGE_PNG = layout.RISK_COVERAGE_PNG


def logits_and_labels(model: tf.keras.Model, ds: tf.data.Dataset) -> tuple[np.ndarray, ...]:
    """(N,K) float32 logits and (N,) labels of a dataset of (pixels, labels[, keys])
    batches, plus the (N,) keys as text when the dataset has them."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits, rest = [], []
    for x, *others in ds:
        logits.append(forward(x).numpy())
        rest.append([o.numpy() for o in others])
    if not logits:
        return np.zeros((0, 0), np.float32), *(np.zeros(0, np.int64) for _ in ds.element_spec[1:])
    out = [np.concatenate(logits).astype(np.float32), np.concatenate([r[0] for r in rest]).astype(np.int64)]
    if len(rest[0]) > 1:
        out.append(np.array([k.decode() if isinstance(k, bytes) else str(k) for r in rest for k in r[1]]))
    return tuple(out)


def _scores(logits: np.ndarray, labels: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(max softmax(logits / T) as the served float32 value, correct)."""
    if len(logits) == 0:
        return np.zeros(0), np.zeros(0, bool)
    t = temperature if np.isfinite(temperature) else 1.0
    probs = cal.softmax(logits, t).astype(np.float32)
    return probs.max(axis=1).astype(np.float64), probs.argmax(axis=1) == labels


TWO_CLASS_FOLDS = 5  # two classes: T on every calibration image, ECE out of fold


def calibrate(
    eval_logits: np.ndarray,
    eval_labels: np.ndarray,
    cal_logits: np.ndarray,
    cal_labels: np.ndarray,
    cal_keys: np.ndarray,
    *,
    targets: tuple[float, ...] = cal.STANDARD_TARGETS,
    confidence_level: float = cal.DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    """Everything the calibration step decides, as plain data: ``temperature``,
    ``block`` (the model metadata's ``calibration`` record) and ``report`` (for
    ``calibration.json``), plus the score arrays the plots need. ``cal_keys`` are the
    calibration images' hashes (they choose the temperature part, or the folds)."""
    classes = cal_logits.shape[1] if cal_logits.ndim == 2 else 0
    if cal.raw_certifies(classes) and len(cal_labels) >= TWO_CLASS_FOLDS:
        d = _two_class_design(eval_logits, eval_labels, cal_logits, cal_labels, cal_keys, targets, confidence_level)
    else:
        d = _split_design(eval_logits, eval_labels, cal_logits, cal_labels, cal_keys, targets, confidence_level)
    temperature = d["temperature"]
    (raw_conf, raw_ok), (conf, ok) = d["before"], d["after"]
    ece_before, ece_after = cal.ece(raw_conf, raw_ok), cal.ece(conf, ok)
    if not np.isfinite(temperature):
        ece_after = float("nan")
    block = cal.metadata_block(
        temperature=temperature,
        ece_before=ece_before,
        ece_after=ece_after,
        images=len(ok),
        temperature_images=d["temperature_images"],
        ece_change_bound=cal.ece_change_lower_bound(raw_conf, conf, ok, confidence_level)
        if np.isfinite(temperature)
        else None,
        certificates=d["certificates"],
        confidence_level=confidence_level,
        scores=d["scores"],
        certified_on=d["certified_on"],
    )
    report = {
        "temperature": block["temperature"],
        "fitted_on": d["fitted_on"],
        "measured_on": d["measured_on"],
        "pilot": d["pilot"],
        "certified_on": {
            "confidence": "raw (two classes: every temperature orders the images alike)"
            if d["certified_on"] == cal.RAW
            else "calibrated",
            "split": d["certifying_split"],
            "images": int(len(d["certifying"][1])),
        },
        "ece_bins": cal.ECE_BINS,
        "ece_before": block["ece_before"],
        "ece_after": block["ece_after"],
        "nll_before": _finite(d["nll"][0]),
        "nll_after": _finite(d["nll"][1]) if np.isfinite(temperature) else None,
        "accuracy": float(ok.mean()) if len(ok) else None,
        "aurc": _finite(cal.aurc(conf, ok)),
        "reliability_before": _bins(raw_conf, raw_ok),
        "reliability_after": _bins(conf, ok),
        "certificates": [c.to_dict() for c in d["certificates"]],
        "problem": cal.calibration_problem(block),
    }
    return {
        "temperature": temperature,
        "block": block,
        "report": report,
        "arrays": {"raw": (raw_conf, raw_ok), "calibrated": (conf, ok), "certifying": d["certifying"]},
        "certificates": d["certificates"],
    }


def _split_design(eval_logits, eval_labels, cal_logits, cal_labels, cal_keys, targets, confidence_level) -> dict:
    """Three classes or more: T on the temperature part; ECE and the certificates on the
    rest, ordered by a pilot of eval and the temperature part (all scored with T)."""
    fit = cal.temperature_part(list(cal_keys))
    temperature = cal.fit_temperature(cal_logits[fit], cal_labels[fit])
    fit_logits, fit_labels = cal_logits[fit], cal_labels[fit]
    rest_logits, rest_labels = cal_logits[~fit], cal_labels[~fit]
    raw_conf, raw_ok = _scores(rest_logits, rest_labels, 1.0)
    conf, ok = _scores(rest_logits, rest_labels, temperature)
    pilot_conf, pilot_ok = (
        np.concatenate(parts)
        for parts in zip(
            _scores(eval_logits, eval_labels, temperature), _scores(fit_logits, fit_labels, temperature), strict=True
        )
    )
    certificates = [
        cal.certify(conf, ok, t, confidence_level, pilot_confidence=pilot_conf, pilot_correct=pilot_ok) for t in targets
    ]
    n = len(rest_labels)
    return {
        "temperature": temperature,
        "before": (raw_conf, raw_ok),
        "after": (conf, ok),
        "nll": (
            cal.nll(rest_logits, rest_labels, 1.0) if n else float("nan"),
            cal.nll(rest_logits, rest_labels, temperature) if n and np.isfinite(temperature) else float("nan"),
        ),
        "temperature_images": int(fit.sum()),
        "certificates": certificates,
        "scores": {
            layout.CALIBRATION_SPLIT: cal.score_record(conf, ok),
            cal.PILOT: cal.score_record(pilot_conf, pilot_ok),
        },
        "certified_on": "calibrated",
        "certifying": (conf, ok),
        "certifying_split": f"{layout.CALIBRATION_SPLIT} (the rest)",
        "fitted_on": {"split": f"{layout.CALIBRATION_SPLIT} (temperature part)", "images": int(fit.sum())},
        "measured_on": {"split": f"{layout.CALIBRATION_SPLIT} (the rest)", "images": int(n)},
        "pilot": {
            "splits": [layout.EVAL_SPLIT, f"{layout.CALIBRATION_SPLIT} (temperature part)"],
            "images": int(len(pilot_ok)),
        },
    }


def _two_class_design(eval_logits, eval_labels, cal_logits, cal_labels, cal_keys, targets, confidence_level) -> dict:
    """Two classes: every temperature orders the images alike, so certification needs no
    T (raw confidence, every calibration image, eval the pilot) and T can use every image
    too. ECE after scaling is then measured out of fold: each fold scored with the T
    fitted on the other folds (folds by image hash), so it stays an out-of-sample figure
    for the same fitting rule."""
    temperature = cal.fit_temperature(cal_logits, cal_labels)
    folds = cal.hash_folds(list(cal_keys), TWO_CLASS_FOLDS)
    raw_conf, ok = _scores(cal_logits, cal_labels, 1.0)
    oof = np.zeros(len(cal_labels))
    nll_after = 0.0
    for f in range(TWO_CLASS_FOLDS):
        held = folds == f
        if not held.any():
            continue
        t_f = cal.fit_temperature(cal_logits[~held], cal_labels[~held])
        t_f = t_f if np.isfinite(t_f) else 1.0
        oof[held] = _scores(cal_logits[held], cal_labels[held], t_f)[0]
        nll_after += cal.nll(cal_logits[held], cal_labels[held], t_f) * held.sum() / len(cal_labels)
    pilot = _scores(eval_logits, eval_labels, 1.0)
    finite = np.isfinite(temperature)
    served = _scores(cal_logits, cal_labels, temperature)[0] if finite else raw_conf
    pilot_served = _scores(eval_logits, eval_labels, temperature)[0] if finite else pilot[0]
    certificates = []
    for t in targets:
        c = cal.certify(raw_conf, ok, t, confidence_level, pilot_confidence=pilot[0], pilot_correct=pilot[1])
        # Without a finite T nothing can be served (the Pusher refuses the model): no threshold.
        certificates.append(
            cal.in_served_units(c, temperature)
            if finite
            else dataclasses.replace(c, threshold=None, coverage=None, kept=0, errors=0)
        )
    n = len(cal_labels)
    return {
        "temperature": temperature,
        "before": (raw_conf, ok),
        "after": (oof, ok),
        "nll": (cal.nll(cal_logits, cal_labels, 1.0), nll_after),
        "temperature_images": int(n),
        "certificates": certificates,
        "scores": {
            layout.CALIBRATION_SPLIT: cal.score_record(served, ok, raw_confidence=raw_conf),
            cal.PILOT: cal.score_record(pilot_served, pilot[1], raw_confidence=pilot[0]),
        },
        "certified_on": cal.RAW if finite else "calibrated",
        "certifying": (served, ok),
        "certifying_split": layout.CALIBRATION_SPLIT,
        "fitted_on": {"split": layout.CALIBRATION_SPLIT, "images": int(n)},
        "measured_on": {
            "split": f"{layout.CALIBRATION_SPLIT} (out of fold: {TWO_CLASS_FOLDS} folds by image hash)",
            "images": int(n),
        },
        "pilot": {"splits": [layout.EVAL_SPLIT], "images": int(len(eval_labels))},
    }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _or_nan(x: float | None) -> float:
    """A report value for a figure's label: None (not finite when measured) as NaN; 0 stays 0."""
    return float("nan") if x is None else float(x)


def _bins(conf: np.ndarray, ok: np.ndarray) -> list[dict[str, Any]]:
    """Reliability bins as JSON (an empty bin's mean confidence and accuracy are null)."""
    return [
        {
            "low": b.low,
            "high": b.high,
            "count": b.count,
            "confidence": _finite(b.confidence),
            "accuracy": _finite(b.accuracy),
        }
        for b in cal.reliability(conf, ok)
    ]


def write_reports(result: dict[str, Any], out_dir: str) -> list[str]:
    """``calibration.json``, ``reliability.png`` and ``risk_coverage.png`` in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fileio.makedirs(out_dir)
    paths = [os.path.join(out_dir, n) for n in (CALIBRATION_JSON, RELIABILITY_PNG, RISK_COVERAGE_PNG)]
    with fileio.open(paths[0], "w") as f:
        f.write(json.dumps(result["report"], indent=2, allow_nan=False, default=_json_default))

    report = result["report"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    for ax, key, title, ece in (
        (axes[0], "reliability_before", "before scaling (T = 1)", report["ece_before"]),
        (
            axes[1],
            "reliability_after",
            f"after scaling (T = {_or_nan(report['temperature']):.3g})",
            report["ece_after"],
        ),
    ):
        bins = [b for b in report[key] if b["count"]]
        width = 1.0 / cal.ECE_BINS
        ax.bar(
            [b["low"] for b in bins],
            [b["accuracy"] for b in bins],
            width=width,
            align="edge",
            alpha=0.7,
            edgecolor="black",
            label="accuracy",
        )
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            "o",
            color="tab:red",
            ms=4,
            label="mean confidence",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ece_txt = f"{ece:.2%}" if ece is not None else "n/a"
        ax.set_title(f"{title}\nECE ({cal.ECE_BINS} bins) {ece_txt}, {report['measured_on']['images']} held-out images")
        ax.set_xlabel("confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.tight_layout()
    with fileio.open(paths[1], "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)

    conf, ok = result["arrays"]["certifying"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    coverage, risk = cal.risk_coverage(conf, ok)
    ax.plot(coverage, risk, "-", label=f"selective risk (AURC {cal.aurc(conf, ok):.4f})")
    for c in result["certificates"]:
        ax.axhline(1 - c.target, ls=":", lw=0.8, color="gray")
        if c.certified:
            ax.plot(
                [c.coverage],
                [1 - c.target],
                "v",
                ms=8,
                label=f"P >= {c.target:g} certified: λ = {c.threshold:g}, coverage {c.coverage:.1%}",
            )
        else:
            ax.plot([], [], "x", label=f"P >= {c.target:g}: not certifiable on these images")
    ax.set_xlabel("coverage (share of held-out images kept)")
    ax.set_ylabel("risk (error rate of kept predictions)")
    ax.set_title(
        f"risk-coverage, calibrated confidence, {int(conf.size)} held-out images\n"
        f"certified at {result['block']['confidence']:.0%} confidence (Learn-then-Test)"
    )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, max(0.06, float(risk.max()) * 1.1 if risk.size else 0.06))
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    with fileio.open(paths[2], "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
