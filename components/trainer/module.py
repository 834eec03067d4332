"""The TFX Trainer entry point. ``run_fn`` is an adapter: it reads ``fn_args`` and calls
the plain ``build_classifier``, ``make_dataset``, ``train`` and ``export_model``."""

from __future__ import annotations

import collections
import os
import time

import tensorflow as tf
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from keyclass.components import layout
from keyclass.components.classes import ClassList
from keyclass.components.trainer import data, export, reuse, train
from keyclass.components.trainer.model import build_classifier
from keyclass.components.trainer.settings import TrainConfig

# custom_config keys (the pipeline factory writes them).
CLASSES_KEY = "classes"
IMAGE_SIZE_KEY = "image_size"
TRAIN_KEY = "train"


def trainer_custom_config(classes: ClassList, image_size: int, train_cfg: TrainConfig) -> dict:
    """What the Trainer component carries to ``run_fn`` (plain JSON)."""
    import dataclasses

    return {CLASSES_KEY: list(classes), IMAGE_SIZE_KEY: int(image_size), TRAIN_KEY: dataclasses.asdict(train_cfg)}


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
    )
    train.write_history(result, fn_args.model_run_dir)
    per_label = count_labels(fn_args.train_files)
    metadata = {
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights": tc.weights,
        "val_loss": result.val_loss,
        "val_accuracy": result.val_accuracy,
        "kept_phase": result.kept,
        "phase1_features": result.phase1.features,
        "train_images_per_class": {classes[k]: v for k, v in sorted(per_label.items())},
    }
    export.export_model(
        clf,
        fn_args.serving_model_dir,
        metadata=metadata,
        warmup_images=sample_images(fn_args.eval_files, 2),
    )
    logging.info("Exported to %s", os.path.abspath(fn_args.serving_model_dir))
