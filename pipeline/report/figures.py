"""The report's charts: matplotlib figures rendered to inline PNG ``data:`` URIs.

Each function takes plain data (what :mod:`gather` returns) and gives one figure. They
use matplotlib's object API with the Agg canvas, never pyplot, so drawing a report
changes no global matplotlib state. The calibration charts use the arithmetic of
:mod:`keyclass.components.calibration` (the same bins and curve the trainer and
``predict`` compute).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from keyclass.components import calibration as cal
from keyclass.pipeline.report.thumbs import png_uri

# One palette for the whole report (the template's CSS uses the same values).
INK = "#1f2937"
MUTED = "#9ca3af"
BLUE = "#2563eb"
ORANGE = "#ea580c"
GREEN = "#16a34a"
RED = "#dc2626"
GRID = "#e5e7eb"
DPI = 110


def _figure(width_in: float, height_in: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.spines[["left", "bottom"]].set_color(MUTED)
        ax.tick_params(colors=INK, labelsize=8)
        ax.grid(True, color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return png_uri(buf.getvalue())


def training_curves(history: dict) -> str:
    """Loss and accuracy per epoch for both phases; each phase's best epoch marked, the
    kept one with a star; phase 2 shaded."""
    fig, (ax_loss, ax_acc) = _figure(9.0, 2.9, 2)
    offset = 0
    kept = history.get("kept", "phase1")
    for key, colour in (("phase1", BLUE), ("phase2", ORANGE)):
        phase = history.get(key)
        if not phase:
            continue
        h = phase.get("history") or {}
        n = len(h.get("loss", []))
        epochs = np.arange(offset + 1, offset + n + 1)
        if key == "phase2" and n:
            for ax in (ax_loss, ax_acc):
                ax.axvspan(offset + 0.5, offset + n + 0.5, color="#fff7ed", zorder=0)
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            if metric in h:
                ax.plot(epochs, h[metric], "--", color=colour, linewidth=1, alpha=0.7, label=f"{key} train")
            if f"val_{metric}" in h:
                ax.plot(epochs, h[f"val_{metric}"], "-", color=colour, linewidth=1.8, label=f"{key} validation")
        best = int(phase.get("best_epoch", 0))
        if 1 <= best <= n and "val_loss" in h:
            marker, size = ("*", 150) if key == kept else ("o", 30)
            ax_loss.scatter([offset + best], [h["val_loss"][best - 1]], marker=marker, s=size, color=colour, zorder=5)
            if "val_accuracy" in h:
                ax_acc.scatter(
                    [offset + best], [h["val_accuracy"][best - 1]], marker=marker, s=size, color=colour, zorder=5
                )
        offset += n
    ax_loss.set_title("loss (★ = the kept weights)", fontsize=9, color=INK)
    ax_acc.set_title("accuracy", fontsize=9, color=INK)
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch", fontsize=8, color=INK)
    ax_acc.legend(fontsize=7, frameon=False, loc="lower right")
    return _png(fig)


def _arrays(points: Sequence[tuple[float, bool]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p[0] for p in points], dtype=np.float64), np.array([p[1] for p in points], dtype=bool)


def at_threshold(points: Sequence[tuple[float, bool]], threshold: float) -> tuple[float, float | None]:
    """(coverage, risk) of keeping confidence >= ``threshold``; risk None when none is kept."""
    kept = [c for conf, c in points if conf >= threshold]
    if not points:
        return 0.0, None
    return len(kept) / len(points), (1 - sum(kept) / len(kept)) if kept else None


def reliability_diagram(points: Sequence[tuple[float, bool]], bins: int = cal.ECE_BINS) -> str:
    """Accuracy against confidence per bin (bars) beside the diagonal; the gap is the
    miscalibration. Bar width shows each bin's share of the predictions."""
    conf, ok = _arrays(points)
    rows, ece = cal.reliability(conf, ok, bins), cal.ece(conf, ok, bins)
    fig, (ax,) = _figure(3.6, 3.2)
    ax.plot([0, 1], [0, 1], color=MUTED, linewidth=1, linestyle="--")
    total = max(1, sum(r.count for r in rows))
    for r in rows:
        if not r.count:
            continue
        width = (r.high - r.low) * (0.35 + 0.65 * min(1.0, 6 * r.count / total))
        ax.bar((r.low + r.high) / 2, r.accuracy, width=width, color=BLUE, alpha=0.85)
        ax.plot([r.low, r.high], [r.confidence] * 2, color=ORANGE, linewidth=1.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence", fontsize=8, color=INK)
    ax.set_ylabel("accuracy", fontsize=8, color=INK)
    ax.set_title(f"reliability: ECE ({bins} bins) {ece:.2%} over {len(points)} labelled", fontsize=9, color=INK)
    return _png(fig)


def risk_coverage_curve(points: Sequence[tuple[float, bool]], threshold: float | None) -> str:
    """Selective risk against coverage, the chosen threshold's operating point marked."""
    cov, risk = cal.risk_coverage(*_arrays(points))
    fig, (ax,) = _figure(3.6, 3.2)
    ax.plot(cov, risk, color=BLUE, linewidth=1.8)
    title = "risk–coverage"
    if threshold is not None:
        c, r = at_threshold(points, threshold)
        if r is not None:
            ax.scatter([c], [r], color=ORANGE, s=60, zorder=5)
            ax.axvline(c, color=ORANGE, linewidth=0.8, linestyle=":")
            ax.text(
                0.03,
                0.96,
                f"threshold {threshold:g}: coverage {c:.0%}, risk {r:.1%}",
                transform=ax.transAxes,
                va="top",
                fontsize=7.5,
                color=ORANGE,
            )
        else:
            title += f" (nothing reaches {threshold:g})"
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, max(0.05, float(risk.max()) * 1.15 if risk.size else 0.05))
    ax.set_xlabel("coverage (share kept)", fontsize=8, color=INK)
    ax.set_ylabel("risk (error among kept)", fontsize=8, color=INK)
    ax.set_title(title, fontsize=9, color=INK)
    return _png(fig)


def faithfulness_scatter(scores: Sequence[dict]) -> str:
    """Per image: Grad-CAM's AUC against its random map's. Deletion wants points below
    the diagonal, insertion above."""
    fig, axes = _figure(6.4, 3.0, 2)
    for ax, key, want in ((axes[0], "deletion", "below"), (axes[1], "insertion", "above")):
        x = np.array([s[f"random_{key}_auc"] for s in scores])
        y = np.array([s[f"{key}_auc"] for s in scores])
        better = (y < x) if key == "deletion" else (y > x)
        ax.plot([0, 1], [0, 1], color=MUTED, linewidth=1, linestyle="--")
        ax.scatter(x[better], y[better], s=12, color=GREEN, alpha=0.8, label="beats random")
        ax.scatter(x[~better], y[~better], s=12, color=RED, alpha=0.8, label="loses to random")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("random map AUC", fontsize=8, color=INK)
        ax.set_ylabel("Grad-CAM AUC", fontsize=8, color=INK)
        ax.set_title(f"{key} (better: {want} the diagonal)", fontsize=9, color=INK)
    axes[1].legend(fontsize=7, frameon=False, loc="lower right")
    return _png(fig)
