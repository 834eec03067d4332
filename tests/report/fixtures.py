"""A whole run's outputs written by hand, in the shapes the components write them (and
the shared data contracts of COMMON.md: curation's ledger keys and ``curation`` block,
calibration's ``keyclass.json`` block, trainer files and prediction keys), for fast
report tests. The e2e tests check the same report against real pipeline outputs."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from keyclass.pipeline.metadata import ArtifactInfo, NodeRun, PipelineRun

CLASSES = ["circle", "square"]
PIPELINE = "keyclass-circle-square-0000"
RUN_ID = "2026-01-01T00:00:00.000001"


def picture(kind: str, seed: int, size: int = 300) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(80, 160, (size, size, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    s = size // 3
    x, y = (int(v) for v in rng.integers(0, size - s, 2))
    if kind == "circle":
        d.ellipse([x, y, x + s, y + s], fill=(220, 40, 40))
    else:
        d.rectangle([x, y, x + s, y + s], fill=(40, 40, 220))
    return img


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _store(raw: Path, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    (raw / "images").mkdir(parents=True, exist_ok=True)
    (raw / "images" / sha).write_bytes(data)
    return sha


def _art(node: str, key: str, uri: Path, type_: str, **props) -> ArtifactInfo:
    return ArtifactInfo(abs(hash((node, key))) % 1000, type_, str(uri), props)


def _node(node_id: str, i: int, outputs: dict, inputs: dict | None = None, params: dict | None = None) -> NodeRun:
    return NodeRun(
        node_id,
        100 + i,
        "COMPLETE",
        1_000_000 + 1000 * i,
        1_000_000 + 1000 * i + 900,
        params or {},
        inputs or {},
        outputs,
    )


def write_ledger_and_report(report_dir: Path, raw: Path, curation: bool = True) -> None:
    """ledger.jsonl + report.json: kept images, a too-small one, an HTML page, a failed
    download, a near duplicate pair and (with ``curation``) a label issue."""
    ledger = []
    line = 0

    def add(keyword, outcome, reason="", split="", detail="", sha="", url="", **extra):
        nonlocal line
        ledger.append(
            {
                "line": line,
                "source_url": url or f"http://images.example/{keyword}/{line}.jpg",
                "keyword": keyword,
                "sha256": sha,
                "outcome": outcome,
                "reason": reason,
                "split": split,
                "detail": detail,
                **extra,
            }
        )
        line += 1

    kept = {}
    for c in CLASSES:
        for i in range(8):
            sha = _store(raw, jpeg(picture(c, i)))
            kept.setdefault(c, []).append(sha)
            add(c, "kept", split="eval" if i % 4 == 0 else ("calibration" if i == 3 else "train"), sha=sha)
    small = _store(raw, jpeg(picture("circle", 99, 60)))
    add("circle", "dropped", "too_small", detail="60x60", sha=small)
    html = _store(raw, b"<!doctype html><html><body>not an image</body></html>")
    add("circle", "dropped", "html_not_image", sha=html)
    add("square", "failed", "HTTP 404")
    near = _store(raw, jpeg(picture("square", 0), quality=40))
    extra = {"kept_sha256": kept["square"][0], "phash_distance": 3, "cosine": 0.981} if curation else {}
    add("square", "duplicate", "near_duplicate", detail=ledger[8]["source_url"], sha=near, **extra)
    if curation:
        wrong = _store(raw, jpeg(picture("square", 50)))
        detail = "mislabelled: label quality 0.040, looks like square"
        add("circle", "dropped", "label_issue", detail=detail, sha=wrong, label_quality=0.04, suggested_class="square")
        odd = _store(raw, jpeg(picture("square", 51)))
        detail = "off_topic: label quality 0.962, looks like square; class distance 41.8 (off-topic beyond 39.3)"
        add("square", "dropped", "label_issue", detail=detail, sha=odd, label_quality=0.962, suggested_class="square")
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ledger))

    def summary(c):
        mine = [r for r in ledger if r["keyword"] == c]
        outcomes = {
            o: sum(r["outcome"] == o for r in mine) for o in ("kept", "dropped", "duplicate", "ambiguous", "failed")
        }
        reasons: dict = {}
        for r in mine:
            if r["outcome"] != "kept":
                reasons.setdefault(r["outcome"], {}).setdefault(r["reason"], 0)
                reasons[r["outcome"]][r["reason"]] += 1
        splits = {s: sum(r["split"] == s for r in mine) for s in ("train", "eval", "calibration")}
        found = len(mine)
        funnel = {"found": found, "downloaded": found - outcomes["failed"]}
        funnel["decoded"] = funnel["downloaded"] - reasons.get("dropped", {}).get("html_not_image", 0)
        funnel["large_enough"] = funnel["decoded"] - reasons.get("dropped", {}).get("too_small", 0)
        funnel["unique"] = funnel["large_enough"] - outcomes["duplicate"]
        if curation:
            funnel["label_ok"] = funnel["unique"] - reasons.get("dropped", {}).get("label_issue", 0)
        funnel["balanced"] = outcomes["kept"]
        funnel.update(splits)
        return {"label": CLASSES.index(c), "funnel": funnel, "outcomes": outcomes, "reasons": reasons}

    report = {"classes": {c: summary(c) for c in CLASSES}, "unknown_keywords": {}, "other_records": 0}
    report["totals"] = {"found": len(ledger), "outcomes": {"kept": 16}, "reasons": {}, "funnel": {}}
    if curation:
        report["curation"] = {
            "mode": "embedding",
            "reason": "",
            "backbone": "efficientnet_lite0",
            "weights": "imagenet",
            "images_embedded": 19,
            "near_duplicate": {
                "rule": "phash_candidates_confirmed_by_embeddings",
                "phash_bits": 64,
                "candidate_distance": 20,
                "min_cosine": 0.88,
                "candidate_pairs": 4,
                "confirmed_pairs": 1,
            },
            "label_issues": {
                "per_class": {"circle": 1, "square": 1},
                "cap": 0.3,
                "cap_hit": [],
                "by_rule": {"mislabelled": 1, "off_topic": 1},
            },
        }
    (report_dir / "report.json").write_text(json.dumps(report, indent=2))


def write_statistics(stats_dir: Path, anomalies_dir: Path, anomaly: bool = False) -> None:
    from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

    for split, counts in (("train", {"circle": 5, "square": 5}), ("eval", {"circle": 2, "square": 2})):
        lst = statistics_pb2.DatasetFeatureStatisticsList()
        ds = lst.datasets.add(num_examples=sum(counts.values()))
        f = ds.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
        f.path.step.append("label/text")
        f.string_stats.unique = len(counts)
        for name, n in counts.items():
            f.string_stats.top_values.add(value=name, frequency=n)
        f = ds.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
        f.path.step.append("image/original_width")
        f.num_stats.mean, f.num_stats.min, f.num_stats.max = 300, 300, 300
        (stats_dir / f"Split-{split}").mkdir(parents=True, exist_ok=True)
        (stats_dir / f"Split-{split}" / "FeatureStats.pb").write_bytes(lst.SerializeToString())
        an = anomalies_pb2.Anomalies()
        if anomaly and split == "eval":
            info = an.anomaly_info["image/format"]
            info.severity = anomalies_pb2.AnomalyInfo.ERROR
            info.short_description = "Unexpected string values"
            info.description = "Examples contain values missing from the schema: png (~50%)."
        (anomalies_dir / f"Split-{split}").mkdir(parents=True, exist_ok=True)
        (anomalies_dir / f"Split-{split}" / "SchemaDiff.pb").write_bytes(an.SerializeToString())


def write_history(model_run: Path, calibration: bool = True) -> None:
    model_run.mkdir(parents=True, exist_ok=True)
    p1 = {
        "loss": [0.7, 0.5, 0.4],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [0.6, 0.45, 0.41],
        "val_accuracy": [0.6, 0.8, 0.8],
    }
    p2 = {"loss": [0.35, 0.3], "accuracy": [0.85, 0.9], "val_loss": [0.38, 0.36], "val_accuracy": [0.85, 0.9]}
    history = {
        "phase1": {
            "name": "phase1",
            "history": p1,
            "best_val_loss": 0.41,
            "best_val_accuracy": 0.8,
            "best_epoch": 3,
            "seconds": 12.0,
        },
        "phase2": {
            "name": "phase2",
            "history": p2,
            "best_val_loss": 0.36,
            "best_val_accuracy": 0.9,
            "best_epoch": 2,
            "seconds": 30.0,
        },
        "kept": "phase2",
        "val_loss": 0.36,
        "val_accuracy": 0.9,
    }
    (model_run / "history.json").write_text(json.dumps(history))
    if calibration:
        for name in ("reliability.png", "risk_coverage.png"):
            buf = io.BytesIO()
            Image.new("RGB", (2000, 1000), (250, 250, 250)).save(buf, "PNG")  # wider than the figure bound
            (model_run / name).write_bytes(buf.getvalue())
        (model_run / "calibration.json").write_text(json.dumps({"temperature": 1.7}))


CALIBRATION_BLOCK = {
    "temperature": 1.7,
    "ece_before": 0.081,
    "ece_after": 0.012,
    "bins": 15,
    "images": 40,
    "temperature_images": 40,
    "certified_on": "raw",  # two classes (components/calibration/)
    "certificate_images": 40,
    "confidence": 0.9,
    "certified_thresholds": {"0.95": 0.91, "0.99": 0.985, "0.995": None},
    "certified_coverage": {"0.95": 0.83, "0.99": 0.61, "0.995": None},
}


def write_model(model_dir: Path, calibration: bool = True) -> None:
    meta = {
        "classes": CLASSES,
        "image_size": 224,
        "backbone": "efficientnet_lite0",
        "feature_layer": "top_activation",
        "weights": "imagenet",
        "trained_at": "2026-01-01T00:00:00Z",
        "val_loss": 0.36,
        "val_accuracy": 0.9,
        "kept_phase": "phase2",
    }
    if calibration:
        meta["calibration"] = CALIBRATION_BLOCK
    (model_dir / "assets.extra").mkdir(parents=True, exist_ok=True)
    (model_dir / "assets.extra" / "keyclass.json").write_text(json.dumps(meta))


def write_results(results: Path, root: Path, calibration: bool = True, faithfulness: bool = True) -> None:
    """A predict results folder: kept predictions with overlays, abstained ones whose
    originals sit in ``root``, one confident mistake, one unreadable file."""
    rows = []
    rng = np.random.default_rng(0)
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            img = picture(c, 1000 + i, 320)
            (root / c / f"{i}.jpg").write_bytes(jpeg(img))
            conf = [0.999, 0.995, 0.97, 0.6, 0.55, 0.991][i]
            predicted = c if i != 5 else [o for o in CLASSES if o != c][0]
            kept = conf >= 0.9
            rec = {
                "file": f"{c}/{i}.jpg",
                "truth": c,
                "class": predicted,
                "confidence": conf,
                "probabilities": {predicted: conf, [o for o in CLASSES if o != predicted][0]: 1 - conf},
                "kept": kept,
                "error": None,
            }
            if calibration:
                rec.update(raw_confidence=min(0.9999, conf + 0.004), abstained=not kept)
            if kept:
                out = results / predicted
                out.mkdir(parents=True, exist_ok=True)
                stem = f"{c}__{i}"
                paths = [out / f"{stem}_original.jpg", out / f"{stem}_gradcam.jpg", out / f"{stem}_segmentation.jpg"]
                for p in paths:
                    img.save(p, "JPEG", quality=85)
                rec.update(images=[str(p) for p in paths], bbox=[0, 0, 10, 10])
                if faithfulness:
                    d, rd = float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.3, 0.6))
                    rec["faithfulness"] = {
                        "deletion_auc": d,
                        "random_deletion_auc": rd,
                        "insertion_auc": 1 - d,
                        "random_insertion_auc": 1 - rd,
                    }
            rows.append(rec)
    rows.append(
        {"file": "notes.txt", "truth": None, "class": None, "confidence": None, "kept": False, "error": "not_an_image"}
    )
    (results / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from keyclass.pipeline.predict import faithfulness as fa
    from keyclass.pipeline.predict import summary as summary_lib

    summary = summary_lib.summarize(rows, CLASSES, 0.9)
    summary["unreadable_files"] = [{"file": "notes.txt", "error": "not_an_image"}]
    if faithfulness:
        summary["faithfulness"] = fa.summarize(rows, 16)
    if calibration:
        summary.update(coverage=0.5, selective_accuracy=0.9, certified_precision_lower_bound=0.71, ece=0.03, aurc=0.05)
        summary["certification"] = {
            "confidence": 0.9,
            "held_out_coverage": 0.8,
            "held_out_images": 63,
            "note": "",
            "source": "threshold",
            "target_precision": None,
        }
    (results / "summary.json").write_text(json.dumps(summary, indent=2))


def full_run(
    tmp: Path, *, curation: bool = True, calibration: bool = True, faithfulness: bool = True, anomaly: bool = False
) -> dict:
    """Everything a full run leaves; returns keyword arguments for ``write_report``."""
    root = tmp / "pipeline-root"
    raw, report_dir = root / "ImageCrawler/raw_images/1", root / "ImageCleaner/report/3"
    write_ledger_and_report(report_dir, raw, curation)
    (raw / "crawl_report.json").write_text(json.dumps({"engine_errors": ["bing: page format changed for 'square'"]}))
    stats, anomalies = root / "StatisticsGen/statistics/4", root / "ExampleValidator/anomalies/7"
    write_statistics(stats, anomalies, anomaly)
    verdict = root / "ValidationGate/verdict/8"
    verdict.mkdir(parents=True)
    problems = ["anomalies in eval: image/format: Unexpected string values"] if anomaly else []
    counts = {"train": {"circle": 5, "square": 5}, "eval": {"circle": 2, "square": 2}}
    (verdict / "verdict.json").write_text(json.dumps({"ok": not anomaly, "problems": problems, "class_counts": counts}))
    model_run = root / "Trainer/model_run/9"
    write_history(model_run, calibration)
    pushed_dir = tmp / "home/models/circle-square-0000/1767225600"
    write_model(pushed_dir, calibration)
    results, photos = tmp / "results", tmp / "photos"
    results.mkdir(parents=True)
    write_results(results, photos, calibration, faithfulness)
    eval_config = json.dumps(
        {
            "metrics_specs": [
                {
                    "metrics": [
                        {"class_name": "ExampleCount"},
                        {"class_name": "SparseCategoricalAccuracy"},
                        {
                            "class_name": "SparseCategoricalCrossentropy",
                            "threshold": {
                                "change_threshold": {"absolute": 0.0, "direction": "LOWER_IS_BETTER"},
                                "value_threshold": {"upper_bound": 0.5},
                            },
                        },
                    ]
                }
            ]
        }
    )
    nodes = [
        _node("ImageCrawler", 0, {"raw_images": [_art("c", "r", raw, "keyclass.RawImages")]}),
        _node("ImageCleaner", 1, {"report": [_art("cl", "r", report_dir, "keyclass.CleaningReport")]}),
        _node("StatisticsGen", 2, {"statistics": [_art("s", "s", stats, "ExampleStatistics")]}),
        _node("ExampleValidator", 3, {"anomalies": [_art("e", "a", anomalies, "ExampleAnomalies")]}),
        _node("ValidationGate", 4, {"verdict": [_art("g", "v", verdict, "InfraBlessing", blessed=1)]}),
        _node(
            "Trainer",
            5,
            {"model_run": [_art("t", "r", model_run, "ModelRun")]},
            params={"run_fn": "keyclass.components.trainer.module.run_fn"},
        ),
        _node(
            "Evaluator",
            6,
            {"blessing": [_art("ev", "b", root / "Evaluator/blessing/10", "ModelBlessing", blessed=1)]},
            inputs={"baseline_model": [_art("t0", "m", root / "Trainer/model/2", "Model")]},
            params={"eval_config": eval_config},
        ),
        _node(
            "Pusher",
            7,
            {
                "pushed_model": [
                    _art(
                        "p",
                        "p",
                        root / "Pusher/pushed_model/11",
                        "PushedModel",
                        pushed=1,
                        pushed_destination=str(pushed_dir),
                        pushed_version="1767225600",
                    )
                ]
            },
        ),
    ]
    run = PipelineRun(PIPELINE, RUN_ID, 1_000_000, {n.node_id: n for n in nodes})
    from keyclass.pipeline.report.gather import model_info

    invocation = {
        "command": "run",
        "config": {
            "crawl": {"classes": CLASSES, "max_images_per_class": 8},
            "train": {"backbone": "efficientnet_lite0"},
        },
        "overrides": {"crawl.max_images_per_class": 8},
        "prediction_path": str(photos),
    }
    return {
        "classes": CLASSES,
        "command": "run",
        "run": run,
        "model": model_info(str(pushed_dir), "pushed model"),
        "results_dir": str(results),
        "invocation": invocation,
        "eval_metrics": {
            "sparse_categorical_crossentropy": 0.36,
            "sparse_categorical_crossentropy_diff": -0.04,
            "sparse_categorical_accuracy": 0.9,
            "sparse_categorical_accuracy_diff": 0.05,
            "example_count": 4.0,
            "example_count_diff": 0.0,
        },
    }
