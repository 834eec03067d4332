"""The TFX Trainer entry point. ``run_fn`` is an adapter: it reads ``fn_args`` and calls
the plain ``build_classifier``, ``make_dataset``, ``train``, ``calibrate`` and
``export_model``.

Splits: the Trainer's ``train_args``/``eval_args`` name the train and eval splits
(``fn_args.train_files``/``eval_files``); the held-out calibration split, which TFX's
FnArgs has no field for, is the sibling directory ``Split-<name>`` of the eval split in
the same Examples artifact (TFX's ``artifact_utils.get_split_uri`` layout), named in
``custom_config``.
"""

from __future__ import annotations

import collections
import os
import time

import tensorflow as tf
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from keyclass.components import layout, progress
from keyclass.components.classes import ClassList
from keyclass.components.trainer import calibrate, data, export, reuse, train
from keyclass.components.trainer.model import build_classifier
from keyclass.components.trainer.settings import TrainConfig
from keyclass.components.version import VERSION_KEY, keyclass_version

# custom_config keys (the pipeline factory writes them).
CLASSES_KEY = "classes"
IMAGE_SIZE_KEY = "image_size"
TRAIN_KEY = "train"
CALIBRATION_SPLIT_KEY = "calibration_split"


def trainer_custom_config(classes: ClassList, image_size: int, train_cfg: TrainConfig) -> dict:
    """What the Trainer component carries to ``run_fn`` (plain JSON), the installed
    keyclass version among it."""
    import dataclasses

    return {
        CLASSES_KEY: list(classes),
        IMAGE_SIZE_KEY: int(image_size),
        TRAIN_KEY: dataclasses.asdict(train_cfg),
        CALIBRATION_SPLIT_KEY: layout.CALIBRATION_SPLIT,
        # TFX's cache key covers custom_config, not run_fn's code: after an upgrade (which
        # may change training, calibration or export) train again, as the crawler and the
        # cleaner crawl and clean again.
        VERSION_KEY: keyclass_version(),
    }


def sibling_split_files(file_patterns: list[str], split: str) -> list[str]:
    """``<examples>/Split-<other>/*`` patterns -> the same artifacts' ``Split-<split>/*``."""
    out = []
    for pattern in file_patterns:
        split_dir, glob = os.path.split(pattern.rstrip("/"))
        root, name = os.path.split(split_dir)
        if not name.startswith("Split-"):
            raise ValueError(f"{pattern}: expected an Examples split pattern <uri>/Split-<name>/*")
        out.append(os.path.join(root, f"Split-{split}", glob))
    return out


def count_labels(file_patterns: list[str]) -> dict[int, int]:
    """Examples per label id in the given TFRecords."""
    files = data.list_files(file_patterns)
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024)
    spec = {layout.F_LABEL: tf.io.FixedLenFeature([], tf.int64)}
    counts: collections.Counter = collections.Counter()
    for batch in ds:
        counts.update(tf.io.parse_example(batch, spec)[layout.F_LABEL].numpy().tolist())
    return dict(counts)


def sample_images(file_patterns: list[str], n: int) -> list[bytes]:
    """The first ``n`` encoded images, for TF Serving warmup requests."""
    files = data.list_files(file_patterns)
    spec = {layout.F_IMAGE: tf.io.FixedLenFeature([], tf.string)}
    out = []
    for rec in tf.data.TFRecordDataset(files, compression_type="GZIP").take(n):
        out.append(tf.io.parse_single_example(rec, spec)[layout.F_IMAGE].numpy())
    return out


def run_fn(fn_args: FnArgs) -> None:
    """Train both phases and export the serving model (TFX Trainer's generic entry)."""
    cc = fn_args.custom_config or {}
    classes = ClassList(cc[CLASSES_KEY]).names
    image_size = int(cc[IMAGE_SIZE_KEY])
    tc = TrainConfig(**cc.get(TRAIN_KEY, {}))
    train_ds = data.make_dataset(
        fn_args.train_files,
        image_size,
        tc.batch_size,
        training=True,
        augment=tc.augment,
        seed=tc.seed,
        num_classes=len(classes),
        shuffle_labels=tc.shuffle_labels,
    )
    eval_ds = data.make_dataset(fn_args.eval_files, image_size, tc.batch_size, training=False)
    clf = build_classifier(tc.backbone, image_size, classes, weights=tc.weights, seed=tc.seed)
    logging.info("Training %s on %s at %dpx", tc.backbone, classes, image_size)
    pooled = None
    if tc.cache_features and not tc.shuffle_labels:  # validated: augmentation off, phase 1 sees fixed pixels
        pooled = reuse.pooled_datasets(fn_args.train_files, fn_args.eval_files, clf.backbone, image_size, tc.batch_size)
    # Verbose runs keep Keras' own line per epoch; otherwise one bar for both phases.
    verbose = progress.level() >= progress.VERBOSE
    epochs = tc.max_epochs + max(tc.fine_tune_epochs, 0)
    with progress.Bar(epochs, "train", unit="epoch", draw=not verbose) as bar:
        result = train.train(
            clf,
            train_ds,
            eval_ds,
            learning_rate=tc.learning_rate,
            max_epochs=tc.max_epochs,
            patience=tc.early_stopping_patience,
            fine_tune_epochs=tc.fine_tune_epochs,
            fine_tune_learning_rate=tc.fine_tune_learning_rate,
            log_dir=fn_args.model_run_dir,
            cache_features=tc.cache_features,
            pooled=pooled,
            verbose=2 if verbose else 0,
            callbacks=[] if verbose else [train.EpochBar(bar)],
        )
        bar.close(train.closing_line(result))
    train.write_history(result, fn_args.model_run_dir)

    cal_files = sibling_split_files(fn_args.eval_files, cc.get(CALIBRATION_SPLIT_KEY, layout.CALIBRATION_SPLIT))
    cal_ds = data.make_dataset(cal_files, image_size, tc.batch_size, training=False, with_keys=True)
    calibrated = calibrate.calibrate(
        *calibrate.logits_and_labels(clf.model, eval_ds), *calibrate.logits_and_labels(clf.model, cal_ds)
    )
    calibrate.write_reports(calibrated, fn_args.model_run_dir)
    problem = calibrated["report"]["problem"]
    logging.info(
        "Calibration: T=%.4g, ECE %s -> %s on %d held-out images%s",
        calibrated["temperature"],
        calibrated["block"]["ece_before"],
        calibrated["block"]["ece_after"],
        calibrated["block"]["images"],
        f"; FAILED: {problem}" if problem else "",
    )

    per_label = count_labels(fn_args.train_files)
    metadata = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights": tc.weights,
        "val_loss": result.val_loss,
        "val_accuracy": result.val_accuracy,
        "kept_phase": result.kept,
        "phase1_features": result.phase1.features,
        "train_images_per_class": {classes[k]: v for k, v in sorted(per_label.items())},
        "calibration": calibrated["block"],
    }
    export.export_model(
        clf,
        fn_args.serving_model_dir,
        metadata=metadata,
        warmup_images=sample_images(fn_args.eval_files, 2),
        temperature=calibrated["temperature"],
    )
    logging.info("Exported to %s", os.path.abspath(fn_args.serving_model_dir))
