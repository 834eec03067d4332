"""Prediction benchmark: ``keyclass predict`` end to end (decode, one ``grad_cam`` pass
per batch, result images) against two baselines measured in the same run:

- bare forward inference (``serving_default``) on the same, already prepared images,
  batch 16: target end-to-end >= 0.7x of it, image writing included;
- the naive way: one image at a time, predict, then a separate Grad-CAM model call,
  then write: target end-to-end >= 3x faster.

    python -m benchmarks.bench_predict [--backbone resnet50] [--images 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from keyclass.components.cleaner import decode
from keyclass.components.trainer.export import export_model
from keyclass.components.trainer.gradcam import make_gradcam_heatmap
from keyclass.components.trainer.model import build_classifier
from keyclass.pipeline import demo_images
from keyclass.pipeline.predict.run import default_loader, predict_folder, write_result_images
from keyclass.serving.local import LocalPredictor

CLASSES = ["circle", "square"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--images", type=int, default=64)
    args = p.parse_args(argv)
    print(f"cores: {os.cpu_count()}  backbone: {args.backbone}  images: {args.images}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        demo_images.write_folder(photos, CLASSES, args.images // 2, start=0)
        weights = "none"
        clf = build_classifier(args.backbone, args.size, CLASSES, weights=weights)
        export_model(clf, str(tmp / "model"))
        predictor = LocalPredictor(str(tmp / "model"))
        files = sorted(photos.rglob("*.jpg"))
        load = default_loader(args.size)
        prepared = [load(f).model_input for f in files]
        # Warm both signatures at the batch shapes used below.
        for sig in ("serving_default", "grad_cam"):
            predictor.predict(prepared[:16], signature=sig)
            predictor.predict(prepared[:1], signature=sig)
        predictor.predict(prepared[:1], signature="grad_cam_class", class_index=[0])

        t = time.perf_counter()
        for i in range(0, len(prepared), 16):
            predictor.predict(prepared[i : i + 16], signature="serving_default")
        bare = len(prepared) / (time.perf_counter() - t)

        t = time.perf_counter()
        predict_folder(
            predictor,
            predictor.classes,
            photos,
            tmp / "results",
            threshold=0.0,  # every prediction kept: all result images written
            batch_size=16,
            segmentation_fraction=0.5,
            image_size=args.size,
            progress=False,
        )
        e2e = len(files) / (time.perf_counter() - t)

        def naive_signatures(f: Path) -> None:
            img = decode.decode_to_rgb(f.read_bytes())
            data = decode.encode_jpeg(decode.resize_for_model(img, args.size), 95)
            pred = predictor.predict([data], signature="serving_default")
            cam = predictor.predict([data], signature="grad_cam_class", class_index=[int(pred.class_id[0])])
            write_result_images(tmp / "naive1" / pred.class_name[0], f.relative_to(photos), img, cam.heatmap[0], 0.5)

        def naive_keras(f: Path) -> None:
            # The seed design's way (keras-io's recipe): model.predict on one image, then
            # make_gradcam_heatmap, a second, eager forward and backward pass.
            img = decode.decode_to_rgb(f.read_bytes())
            x = np.asarray(decode.resize_for_model(img, args.size), np.float32)[None]
            probs = clf.model.predict(x, verbose=0)
            idx = int(np.argmax(probs[0]))
            heat = make_gradcam_heatmap(x, clf.base, clf.head, pred_index=idx)[0]
            write_result_images(tmp / "naive2" / CLASSES[idx], f.relative_to(photos), img, heat, 0.5)

        naive = {}
        for name, fn in (("traced signatures", naive_signatures), ("keras-io recipe", naive_keras)):
            fn(files[0])  # warm
            t = time.perf_counter()
            for f in files:
                fn(f)
            naive[name] = len(files) / (time.perf_counter() - t)

    print(f"bare forward (serving_default, batch 16): {bare:.1f} img/s")
    print(
        f"keyclass predict end to end (grad_cam + 3 images each): {e2e:.1f} img/s -> {e2e / bare:.2f}x of bare (target >= 0.7)"
    )
    for name, rate in naive.items():
        print(
            f"naive, {name} (per image: predict, separate Grad-CAM call, write): {rate:.1f} img/s"
            f" -> end to end is {e2e / rate:.1f}x faster (target >= 3)"
        )


if __name__ == "__main__":
    main()
