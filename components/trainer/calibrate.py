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
    calibration images' hashes (they choose the temperature part)."""
    fit = cal.temperature_part(list(cal_keys))
    temperature = cal.fit_temperature(cal_logits[fit], cal_labels[fit])
    all_logits, all_labels = cal_logits, cal_labels
    fit_logits, fit_labels = cal_logits[fit], cal_labels[fit]
    cal_logits, cal_labels = cal_logits[~fit], cal_labels[~fit]
    raw_conf, raw_ok = _scores(cal_logits, cal_labels, 1.0)
    conf, ok = _scores(cal_logits, cal_labels, temperature)
    pilot_conf, pilot_ok = (
        np.concatenate(parts)
        for parts in zip(
            _scores(eval_logits, eval_labels, temperature), _scores(fit_logits, fit_labels, temperature), strict=True
        )
    )
    ece_before, ece_after = cal.ece(raw_conf, raw_ok), cal.ece(conf, ok)
    if not np.isfinite(temperature):
        ece_after = float("nan")
    raw = cal.raw_certifies(all_logits.shape[1] if all_logits.ndim == 2 else 0) and np.isfinite(temperature)
    if raw:
        # Two classes: every T orders the images alike; certify on the raw confidence of
        # every calibration image, the eval split the pilot (components/calibration.py).
        cert_conf, cert_ok = _scores(all_logits, all_labels, 1.0)
        cert_pilot = _scores(eval_logits, eval_labels, 1.0)
        served_conf, _ = _scores(all_logits, all_labels, temperature)
        pilot_served, _ = _scores(eval_logits, eval_labels, temperature)
        certificates = [
            cal.in_served_units(
                cal.certify(
                    cert_conf, cert_ok, t, confidence_level, pilot_confidence=cert_pilot[0], pilot_correct=cert_pilot[1]
                ),
                temperature,
            )
            for t in targets
        ]
        scores = {
            layout.CALIBRATION_SPLIT: cal.score_record(served_conf, cert_ok, raw_confidence=cert_conf),
            cal.PILOT: cal.score_record(pilot_served, cert_pilot[1], raw_confidence=cert_pilot[0]),
        }
        certifying = (served_conf, cert_ok)
    else:
        certificates = [
            cal.certify(conf, ok, t, confidence_level, pilot_confidence=pilot_conf, pilot_correct=pilot_ok)
            for t in targets
        ]
        scores = {
            layout.CALIBRATION_SPLIT: cal.score_record(conf, ok),
            cal.PILOT: cal.score_record(pilot_conf, pilot_ok),
        }
        certifying = (conf, ok)
    block = cal.metadata_block(
        temperature=temperature,
        ece_before=ece_before,
        ece_after=ece_after,
        images=len(cal_labels),
        temperature_images=len(fit_labels),
        ece_change_bound=cal.ece_change_lower_bound(raw_conf, conf, ok, confidence_level)
        if np.isfinite(temperature)
        else None,
        certificates=certificates,
        confidence_level=confidence_level,
        scores=scores,
        certified_on=cal.RAW if raw else "calibrated",
    )
    report = {
        "temperature": block["temperature"],
        "fitted_on": {"split": f"{layout.CALIBRATION_SPLIT} (temperature part)", "images": int(len(fit_labels))},
        "measured_on": {"split": f"{layout.CALIBRATION_SPLIT} (the rest)", "images": int(len(cal_labels))},
        "pilot": {
            "splits": [layout.EVAL_SPLIT] + ([] if raw else [f"{layout.CALIBRATION_SPLIT} (temperature part)"]),
            "images": int(len(eval_labels) if raw else len(pilot_ok)),
        },
        "certified_on": {
            "confidence": "raw (two classes: every temperature orders the images alike)" if raw else "calibrated",
            "split": layout.CALIBRATION_SPLIT if raw else f"{layout.CALIBRATION_SPLIT} (the rest)",
            "images": int(len(certifying[1])),
        },
        "ece_bins": cal.ECE_BINS,
        "ece_before": block["ece_before"],
        "ece_after": block["ece_after"],
        "nll_before": _finite(cal.nll(cal_logits, cal_labels, 1.0)) if len(cal_labels) else None,
        "nll_after": _finite(cal.nll(cal_logits, cal_labels, temperature))
        if len(cal_labels) and np.isfinite(temperature)
        else None,
        "accuracy": float(ok.mean()) if len(ok) else None,
        "aurc": _finite(cal.aurc(conf, ok)),
        "reliability_before": _bins(raw_conf, raw_ok),
        "reliability_after": _bins(conf, ok),
        "certificates": [c.to_dict() for c in certificates],
        "problem": cal.calibration_problem(block),
    }
    return {
        "temperature": temperature,
        "block": block,
        "report": report,
        "arrays": {"raw": (raw_conf, raw_ok), "calibrated": (conf, ok), "certifying": certifying},
        "certificates": certificates,
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
