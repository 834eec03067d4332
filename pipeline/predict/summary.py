"""The accuracy table (the seed design's Table 1) and per-class metrics, as pure functions
over the prediction records."""

from __future__ import annotations


def summarize(records: list[dict], classes: list[str], threshold: float) -> dict:
    """Counts over all files; the accuracy table over the files whose truth is known.

    ``total_accuracy`` counts correct kept predictions over all labelled images (a miss
    of the threshold counts as wrong, as in the seed design); ``threshold_accuracy`` is
    correct over kept.
    """
    predicted = [r for r in records if r.get("error") is None]
    summary: dict = {
        "threshold": threshold,
        "files": len(records),
        "unreadable": len(records) - len(predicted),
        "predicted": len(predicted),
        "kept": sum(1 for r in predicted if r["kept"]),
        "below_threshold": sum(1 for r in predicted if not r["kept"]),
        "kept_per_class": {c: sum(1 for r in predicted if r["kept"] and r["class"] == c) for c in classes},
    }
    labelled = [r for r in predicted if r.get("truth") is not None]
    if not labelled:
        summary["truth_known"] = False
        return summary
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
    summary.update(truth_known=True, unlabelled=len(predicted) - total, table=table, per_class=per_class)
    summary["confusion_matrix"] = {"rows_true_cols_predicted": classes, "counts": confusion}
    return summary


def format_table(summary: dict) -> str:
    """The printed report."""
    lines = [
        f"files {summary['files']}  predicted {summary['predicted']}  unreadable {summary['unreadable']}",
        f"kept (confidence >= {summary['threshold']}) {summary['kept']}  below threshold {summary['below_threshold']}",
    ]
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
