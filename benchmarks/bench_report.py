"""The report's size and cost: on the demo run, and on a 4-class, 1,000-per-class run.

1. ``keyclass demo`` end to end in a fresh home (crawl, clean, validate, train
   EfficientNet-Lite0, gate, push, predict 90 test images); the report ``run`` writes
   at the end is timed on its own. Printed: the run's time, the report's time and their
   ratio (target ≤ 10 %), and the report's size (target ≤ 10 MB).
2. A run's outputs at the scale of the issue's target, written in the components'
   shapes (4 classes × 1,000 crawled images with every drop, duplicate and label-issue
   reason, 1,000 predictions with Grad-CAM overlays): the report's size and time.

    python -m benchmarks.bench_report [--work DIR] [--skip-demo]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from keyclass.pipeline import run_report
from keyclass.pipeline.metadata import PipelineRun
from keyclass.pipeline.report.write import write_report
from tests.report import fixtures

REASONS = [  # (outcome, reason, share of each class's crawled images)
    ("dropped", "too_small", 0.05),
    ("dropped", "html_not_image", 0.02),
    ("dropped", "truncated", 0.02),
    ("failed", "HTTP 404", 0.03),
    ("failed", "timeout", 0.02),
    ("duplicate", "exact_duplicate", 0.03),
    ("duplicate", "near_duplicate", 0.05),
    ("ambiguous", "cross_class", 0.01),
    ("dropped", "label_issue", 0.02),
    ("dropped", "balance", 0.05),
]


def photo_like(rng: np.random.Generator, w: int = 640, h: int = 480) -> bytes:
    """A JPEG with photo-like entropy (smooth colour fields plus noise), ~50-90 KB."""
    from PIL import Image

    base = rng.uniform(0, 255, (h // 40 + 1, w // 40 + 1, 3))
    img = np.kron(base, np.ones((40, 40, 1)))[:h, :w] + rng.normal(0, 25, (h, w, 3))
    return fixtures.jpeg(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)), quality=88)


class Photos:
    """Distinct files cheaply: a few real photo-like JPEGs, each copy made unique by a
    trailer after the end-of-image marker (decoders ignore it; the sha256 changes)."""

    def __init__(self, rng: np.random.Generator, n: int = 24):
        self.rng = rng
        self.bases = [photo_like(rng) for _ in range(n)]
        self.count = 0

    def __call__(self) -> bytes:
        self.count += 1
        return self.bases[self.count % len(self.bases)] + self.count.to_bytes(8, "big")


def scaled_run(tmp: Path, classes: list[str], per_class: int) -> dict:
    """A full run's outputs at scale; returns ``write_report`` keyword arguments."""
    small = fixtures.full_run(tmp / "base")  # the per-split statistics, gate, history, model
    rng = np.random.default_rng(0)
    photo = Photos(rng)
    raw, report_dir = tmp / "raw", tmp / "report"
    (raw / "images").mkdir(parents=True)
    report_dir.mkdir()
    ledger, report_classes = [], {}
    for c in classes:
        n_reason = {r: int(per_class * share) for _, r, share in REASONS}
        kept = per_class - sum(n_reason.values())
        rows = [("kept", "")] * kept + [(o, r) for o, r, _ in REASONS for _ in range(n_reason[r])]
        reasons: dict = {}
        for o, r in rows:
            data = b"" if o == "failed" else photo()
            sha = hashlib.sha256(data).hexdigest() if data else ""
            if data:
                (raw / "images" / sha).write_bytes(data)
            line = {"line": len(ledger), "source_url": f"http://img.example/{c}/{len(ledger)}.jpg", "keyword": c}
            line.update(sha256=sha, outcome=o, reason=r, split="train" if o == "kept" else "", detail="")
            if r == "label_issue":
                line.update(label_quality=float(rng.uniform(0, 0.2)), suggested_class=classes[0])
            if r == "near_duplicate":
                line.update(
                    kept_sha256=ledger[-1]["sha256"] if ledger else "",
                    phash_distance=int(rng.integers(1, 10)),
                    cosine=0.97,
                )
            ledger.append(line)
            if o != "kept":
                reasons.setdefault(o, {}).setdefault(r, 0)
                reasons[o][r] += 1
        outcomes = {
            o: sum(1 for x, _ in rows if x == o) for o in ("kept", "dropped", "duplicate", "ambiguous", "failed")
        }
        funnel = {"found": per_class, "downloaded": per_class - outcomes["failed"], "balanced": kept, "train": kept}
        report_classes[c] = {"label": classes.index(c), "funnel": funnel, "outcomes": outcomes, "reasons": reasons}
    (report_dir / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ledger))
    (report_dir / "report.json").write_text(json.dumps({"classes": report_classes, "totals": {}}))

    results, photos = tmp / "results", tmp / "photos"
    rows = []
    for c in classes:
        (photos / c).mkdir(parents=True)
        (results / c).mkdir(parents=True)
        for i in range(per_class // 4):
            data = photo()
            (photos / c / f"{i}.jpg").write_bytes(data)
            conf = float(rng.uniform(0.5, 1.0))
            rec = {"file": f"{c}/{i}.jpg", "truth": c, "class": c if i % 10 else classes[0], "confidence": conf}
            rec.update(probabilities={}, kept=conf >= 0.9, error=None)
            if rec["kept"]:
                over = results / rec["class"] / f"{c}__{i}_gradcam.jpg"
                over.write_bytes(data)  # an overlay is a JPEG of the same size
                rec["images"] = [str(over)]
                rec["faithfulness"] = {
                    k: float(rng.uniform(0.2, 0.8))
                    for k in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc")
                }
            rows.append(rec)
    (results / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from keyclass.pipeline.predict import faithfulness as fa
    from keyclass.pipeline.predict import summary as summary_lib

    summary = summary_lib.summarize(rows, classes, 0.9)
    summary["faithfulness"] = fa.summarize(rows, 16)
    (results / "summary.json").write_text(json.dumps(summary))
    run = small["run"]
    run.nodes["ImageCrawler"].outputs["raw_images"][0].uri = str(raw)
    run.nodes["ImageCleaner"].outputs["report"][0].uri = str(report_dir)
    inv = {**small["invocation"], "prediction_path": str(photos)}
    return {**small, "classes": classes, "run": run, "results_dir": str(results), "invocation": inv}


def bench_demo(work: Path) -> None:
    from keyclass.pipeline.config import load_config
    from keyclass.pipeline.demo import run_demo

    timings: list = []
    real = run_report.write

    def timed(*args, **kwargs):
        result = real(*args, **kwargs)
        timings.append(result)
        return result

    cfg = load_config(overrides={"runner.home": str(work / "home")})
    t0 = time.perf_counter()
    with mock.patch.object(run_report, "write", side_effect=timed):
        run_demo(cfg, results=str(work / "results"))
    total = time.perf_counter() - t0
    (report,) = timings
    run_s = total - report.seconds
    print(
        f"\ndemo run: {run_s:.1f} s without the report; report {report.seconds:.2f} s = {report.seconds / run_s:.1%} of the run (target <= 10%)"
    )
    print(f"demo report: {report.path}  {report.bytes / 1e6:.2f} MB (target <= 10 MB)")


def bench_scale(work: Path, classes: int, per_class: int) -> None:
    names = [f"class{i}" for i in range(classes)]
    t = time.perf_counter()
    kwargs = scaled_run(work / "scale", names, per_class)
    print(
        f"\n{classes} classes x {per_class} crawled images, {classes * per_class // 4} predictions: outputs written in {time.perf_counter() - t:.0f} s"
    )
    result = write_report(work / "scale" / "report.html", **kwargs)
    print(f"scale report: {result.bytes / 1e6:.2f} MB (target <= 10 MB), written in {result.seconds:.2f} s")
    assert isinstance(kwargs["run"], PipelineRun)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", help="working folder (default: a temporary one)")
    p.add_argument("--skip-demo", action="store_true", help="only the 4 x 1,000 outputs")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-class", type=int, default=1000)
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        bench_scale(work, args.classes, args.per_class)
        if not args.skip_demo:
            bench_demo(work / "demo")


if __name__ == "__main__":
    main()
