"""The accuracy table (the seed design's Table 1), per-class metrics and the selective
prediction figures (coverage, selective accuracy, certified bound, ECE, AURC), as pure
functions over the prediction records."""

from __future__ import annotations

import numpy as np

from keyclass.components import calibration as cal


def summarize(records: list[dict], classes: list[str], threshold: float, certification: dict | None = None) -> dict:
    """Counts over all files; the accuracy table over the files whose truth is known.

    ``total_accuracy`` counts correct kept predictions over all labelled images (a miss
    of the threshold counts as wrong, as in the seed design); ``threshold_accuracy`` is
    correct over kept. ``coverage`` is kept over predicted; a prediction below the
    threshold is abstained. ``selective_accuracy`` (= ``threshold_accuracy``), ``ece``
    (15 bins, calibrated confidence) and ``aurc`` need the truth and are None without it.
    ``certification`` (:meth:`certify.ThresholdChoice.summary_fields`) adds the
    certified lower bound on precision at the threshold and where it comes from.
    """
    predicted = [r for r in records if r.get("error") is None]
    kept_n = sum(1 for r in predicted if r["kept"])
    summary: dict = {
        "threshold": threshold,
        "files": len(records),
        "unreadable": len(records) - len(predicted),
        "predicted": len(predicted),
        "kept": kept_n,
        "below_threshold": len(predicted) - kept_n,
        "abstained": len(predicted) - kept_n,
        "kept_per_class": {c: sum(1 for r in predicted if r["kept"] and r["class"] == c) for c in classes},
        "coverage": kept_n / len(predicted) if predicted else None,
        "selective_accuracy": None,
        "ece": None,
        "aurc": None,
        "certified_precision_lower_bound": None,
    }
    summary.update(certification or {})
    labelled = [r for r in predicted if r.get("truth") is not None]
    if not labelled:
        summary["truth_known"] = False
        return summary
    conf = np.array([r["confidence"] for r in labelled], dtype=np.float64)
    ok = np.array([r["class"] == r["truth"] for r in labelled], dtype=bool)
    summary["ece"] = cal.ece(conf, ok)
    summary["aurc"] = cal.aurc(conf, ok)
    kept = [r for r in labelled if r["kept"]]
    correct = sum(1 for r in kept if r["class"] == r["truth"])
    total = len(labelled)
    table = {
        "total_images": total,
        "threshold_images": len(kept),
        "threshold_missed": total - len(kept),
        "correctly_classified": correct,
        "misclassified": len(kept) - correct,
        "total_accuracy": correct / total if total else 0.0,
        "threshold_accuracy": correct / len(kept) if kept else 0.0,
    }
    confusion = {t: {p: 0 for p in classes} for t in classes}
    for r in kept:
        confusion[r["truth"]][r["class"]] += 1
    per_class = {}
    for c in classes:
        tp = confusion[c][c]
        predicted_c = sum(confusion[t][c] for t in classes)
        actual_c = sum(1 for r in labelled if r["truth"] == c)
        per_class[c] = {
            "precision": tp / predicted_c if predicted_c else 0.0,
            # Recall over all labelled images of the class: a threshold miss is a miss.
            "recall": tp / actual_c if actual_c else 0.0,
            "images": actual_c,
        }
    summary["selective_accuracy"] = table["threshold_accuracy"] if kept else None
    summary.update(truth_known=True, unlabelled=len(predicted) - total, table=table, per_class=per_class)
    summary["confusion_matrix"] = {"rows_true_cols_predicted": classes, "counts": confusion}
    return summary


def format_table(summary: dict) -> str:
    """The printed report."""
    coverage = summary.get("coverage")
    lines = [
        f"files {summary['files']}  predicted {summary['predicted']}  unreadable {summary['unreadable']}",
        f"kept (confidence >= {summary['threshold']:g}) {summary['kept']}  abstained (below threshold) "
        f"{summary['below_threshold']}" + (f"  coverage {coverage:.1%}" if coverage is not None else ""),
    ]
    lines += _certification_lines(summary)
    if summary.get("truth_known"):
        t = summary["table"]
        lines += [
            "",
            f"{'total images':<28}{t['total_images']:>10}",
            f"{'threshold images':<28}{t['threshold_images']:>10}",
            f"{'threshold missed images':<28}{t['threshold_missed']:>10}",
            f"{'correctly classified images':<28}{t['correctly_classified']:>10}",
            f"{'misclassified images':<28}{t['misclassified']:>10}",
            f"{'total accuracy':<28}{t['total_accuracy']:>10.2%}",
            f"{'threshold accuracy':<28}{t['threshold_accuracy']:>10.2%}",
            f"{'coverage':<28}{coverage:>10.2%}" if coverage is not None else f"{'coverage':<28}{'n/a':>10}",
            f"{'selective accuracy':<28}" + _pct(summary.get("selective_accuracy")),
            f"{'ECE (15 bins)':<28}" + _pct(summary.get("ece")),
            f"{'AURC':<28}" + (f"{summary['aurc']:>10.4f}" if summary.get("aurc") is not None else f"{'n/a':>10}"),
            "",
            f"{'class':<20}{'precision':>10}{'recall':>10}{'images':>8}",
        ]
        for c, m in summary["per_class"].items():
            lines.append(f"{c:<20}{m['precision']:>10.2%}{m['recall']:>10.2%}{m['images']:>8}")
        classes = summary["confusion_matrix"]["rows_true_cols_predicted"]
        counts = summary["confusion_matrix"]["counts"]
        lines += [
            "",
            "confusion (rows true, columns predicted, kept only)",
            " " * 14 + "".join(f"{c[:10]:>11}" for c in classes),
        ]
        for t in classes:
            lines.append(f"{t[:13]:<14}" + "".join(f"{counts[t][p]:>11}" for p in classes))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return f"{value:>10.2%}" if value is not None else f"{'n/a':>10}"


def _certification_lines(summary: dict) -> list[str]:
    """What is certified about the threshold in force (from the model's held-out scores)."""
    c = summary.get("certification")
    if not c:
        return []
    bound = summary.get("certified_precision_lower_bound")
    level = f"{c['confidence']:.0%} confidence"
    held = f"{c['held_out_images']} held-out images" if c.get("held_out_images") else "held-out images"
    cov = c.get("held_out_coverage")
    cov_txt = f", held-out coverage {cov:.1%}" if cov is not None else ""
    if c["source"] == "target_precision":
        return [
            f"threshold {summary['threshold']:g}: the lowest certified for precision >= {c['target_precision']:.2%} "
            f"at {level} ({held}{cov_txt})"
        ]
    if bound is None:
        return [f"certified precision at {summary['threshold']:g}: none ({c.get('note') or 'no held-out scores'})"]
    return [f"certified precision at {summary['threshold']:g}: >= {bound:.2%} at {level} ({held}{cov_txt})"]
