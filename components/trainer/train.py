"""The two training phases, as plain functions.

Phase 1 (transfer learning): backbone frozen, BatchNorm in inference mode, new softmax
head, Adam, early stopping on validation loss, best weights kept. Phase 2
(fine-tuning): everything trainable at 1e-5; its result is kept only if its best
validation loss beats phase 1's, otherwise phase 1's weights are restored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.io import fileio

from keyclass.components import layout, progress
from keyclass.components.trainer.model import Classifier, pooled_head, set_backbone_trainable


@dataclasses.dataclass
class PhaseResult:
    name: str
    history: dict[str, list[float]]
    best_val_loss: float
    best_val_accuracy: float
    best_epoch: int
    seconds: float = 0.0
    features: str = "pixels"  # what phase 1 fed the head: pixels, backbone_cache or cleaner_embeddings


@dataclasses.dataclass
class TrainResult:
    phase1: PhaseResult
    phase2: PhaseResult | None
    kept: str  # "phase1" or "phase2"

    @property
    def val_loss(self) -> float:
        return self.phase2.best_val_loss if self.kept == "phase2" else self.phase1.best_val_loss

    @property
    def val_accuracy(self) -> float:
        return self.phase2.best_val_accuracy if self.kept == "phase2" else self.phase1.best_val_accuracy

    def to_dict(self) -> dict:
        return {
            "phase1": dataclasses.asdict(self.phase1),
            "phase2": dataclasses.asdict(self.phase2) if self.phase2 else None,
            "kept": self.kept,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
        }


class KeepBest(keras.callbacks.Callback):
    """Remembers the weights of the epoch with the lowest val_loss and restores them at
    the end of training, whether or not early stopping fired."""

    def __init__(self):
        super().__init__()
        self.best = math.inf
        self.best_epoch = -1
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is not None and np.isfinite(loss) and loss < self.best:
            self.best, self.best_epoch = float(loss), epoch
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class EpochBar(keras.callbacks.Callback):
    """Moves one progress bar an epoch at a time through both phases, showing the phase
    and the last validation loss beside it."""

    def __init__(self, bar: progress.Bar):
        super().__init__()
        self.bar = bar
        self.phase = 0

    def on_train_begin(self, logs=None):
        self.phase += 1

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(1)
        loss = (logs or {}).get("val_loss")
        self.bar.note(f"phase {self.phase}" + (f", val_loss {loss:.4f}" if loss is not None else ""))


def closing_line(result: TrainResult) -> str:
    """The train stage's one line: epochs run, the phase kept, its validation scores."""
    p1 = len(result.phase1.history.get("loss", []))
    epochs = f"{p1} epochs"
    if result.phase2 is not None:
        p2 = len(result.phase2.history.get("loss", []))
        epochs = f"{p1 + p2} epochs (frozen {p1}, fine-tuned {p2}; kept {'fine-tuned' if result.kept == 'phase2' else 'frozen'})"
    acc = f", val_accuracy {result.val_accuracy:.1%}" if np.isfinite(result.val_accuracy) else ""
    return f"train: {epochs}: val_loss {result.val_loss:.4f}{acc}"


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def _fit(
    name: str,
    model: keras.Model,
    train_ds: tf.data.Dataset,
    eval_ds: tf.data.Dataset,
    epochs: int,
    patience: int,
    callbacks: list[keras.callbacks.Callback],
    verbose: int,
) -> PhaseResult:
    import time

    keep = KeepBest()
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=False)
    t0 = time.perf_counter()
    hist = model.fit(
        train_ds, validation_data=eval_ds, epochs=epochs, callbacks=[keep, stop, *callbacks], verbose=verbose
    )
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best_acc = history.get("val_accuracy", [math.nan])[keep.best_epoch] if keep.best_epoch >= 0 else math.nan
    logging.info("%s: best val_loss %.4f at epoch %d", name, keep.best, keep.best_epoch + 1)
    return PhaseResult(name, history, keep.best, float(best_acc), keep.best_epoch + 1, seconds)


def train_transfer(
    clf: Classifier,
    train_ds: tf.data.Dataset,
    eval_ds: tf.data.Dataset,
    *,
    learning_rate: float = 1e-3,
    max_epochs: int = 100,
    patience: int = 5,
    callbacks: list | None = None,
    verbose: int = 2,
    cache_features: bool = False,
    pooled: tuple[tf.data.Dataset, tf.data.Dataset] | None = None,
) -> PhaseResult:
    """Phase 1: frozen backbone, train the head; best weights by val_loss are kept.

    With ``cache_features`` the frozen backbone runs once over both splits and the head
    trains on the cached feature maps: the same optimisation at a fraction of the cost,
    valid only without augmentation (each epoch would otherwise see new pixels).
    ``pooled`` (train, eval) datasets of already pooled features, such as the cleaner's
    embeddings of the same pixels through the same backbone, replace that pass: the
    backbone does not run at all and the head trains after its pooling layer.
    """
    set_backbone_trainable(clf, False)
    if pooled is not None:
        train_ds, eval_ds = pooled
        model, features = pooled_head(clf.head), "cleaner_embeddings"
    elif cache_features:
        train_ds = cache_backbone_features(clf, train_ds, shuffle=True)
        eval_ds = cache_backbone_features(clf, eval_ds, shuffle=False)
        model, features = clf.head, "backbone_cache"
    else:
        model, features = clf.model, "pixels"
    _compile(model, learning_rate)
    result = _fit("phase1", model, train_ds, eval_ds, max_epochs, patience, callbacks or [], verbose)
    return dataclasses.replace(result, features=features)


def features_dataset(features: np.ndarray, labels: np.ndarray, batch: int, shuffle: bool, seed: int = 0):
    """(features, labels) in memory, batched, shuffled each epoch when ``shuffle``."""
    out = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        out = out.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return out.batch(batch).prefetch(tf.data.AUTOTUNE)


def cache_backbone_features(clf: Classifier, ds: tf.data.Dataset, shuffle: bool, seed: int = 0) -> tf.data.Dataset:
    """Run the frozen backbone once over ``ds``; a dataset of (features, labels) in memory."""
    feats, labels, sizes = [], [], []
    extract = tf.function(lambda x: clf.base(x, training=False), reduce_retracing=True)
    for x, y in ds:
        feats.append(extract(x).numpy())
        labels.append(y.numpy())
        sizes.append(len(y))
    if not feats:
        raise ValueError("cannot cache features of an empty dataset")
    return features_dataset(np.concatenate(feats), np.concatenate(labels), max(sizes), shuffle, seed)


def fine_tune(
    clf: Classifier,
    train_ds: tf.data.Dataset,
    eval_ds: tf.data.Dataset,
    baseline_val_loss: float,
    *,
    learning_rate: float = 1e-5,
    epochs: int = 10,
    patience: int = 5,
    callbacks: list | None = None,
    verbose: int = 2,
) -> tuple[PhaseResult, bool]:
    """Phase 2: unfreeze everything at a low rate. Returns (result, kept); when the best
    fine-tuned val_loss does not beat ``baseline_val_loss`` the weights are restored."""
    before = clf.model.get_weights()
    set_backbone_trainable(clf, True)
    _compile(clf.model, learning_rate)
    result = _fit("phase2", clf.model, train_ds, eval_ds, epochs, patience, callbacks or [], verbose)
    kept = result.best_val_loss < baseline_val_loss
    if not kept:
        clf.model.set_weights(before)
        logging.info(
            "phase2: val_loss %.4f does not beat phase1's %.4f; phase 1 weights restored",
            result.best_val_loss,
            baseline_val_loss,
        )
    set_backbone_trainable(clf, False)
    return result, kept


def train(
    clf: Classifier,
    train_ds: tf.data.Dataset,
    eval_ds: tf.data.Dataset,
    *,
    learning_rate: float,
    max_epochs: int,
    patience: int,
    fine_tune_epochs: int,
    fine_tune_learning_rate: float,
    log_dir: str | None = None,
    verbose: int = 2,
    cache_features: bool = False,
    pooled: tuple[tf.data.Dataset, tf.data.Dataset] | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Both phases; writes TensorBoard logs under ``log_dir/phase{1,2}`` when given;
    ``callbacks`` join both phases (e.g. an :class:`EpochBar`); ``pooled``: see
    :func:`train_transfer`."""

    def tb(phase: str) -> list:
        board = [keras.callbacks.TensorBoard(os.path.join(log_dir, phase))] if log_dir else []
        return board + list(callbacks or [])

    p1 = train_transfer(
        clf,
        train_ds,
        eval_ds,
        learning_rate=learning_rate,
        max_epochs=max_epochs,
        patience=patience,
        callbacks=tb("phase1"),
        verbose=verbose,
        cache_features=cache_features,
        pooled=pooled,
    )
    if fine_tune_epochs <= 0:
        return TrainResult(p1, None, "phase1")
    p2, kept = fine_tune(
        clf,
        train_ds,
        eval_ds,
        p1.best_val_loss,
        learning_rate=fine_tune_learning_rate,
        epochs=fine_tune_epochs,
        patience=patience,
        callbacks=tb("phase2"),
        verbose=verbose,
    )
    return TrainResult(p1, p2, "phase2" if kept else "phase1")


def write_history(result: TrainResult, out_dir: str) -> list[str]:
    """``history.json`` and ``history.png`` (loss and accuracy per epoch, both phases)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fileio.makedirs(out_dir)
    json_path = os.path.join(out_dir, layout.HISTORY_JSON)
    with fileio.open(json_path, "w") as f:
        f.write(json.dumps(result.to_dict(), indent=2))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    offset = 0
    for phase in (result.phase1, result.phase2):
        if phase is None:
            continue
        n = len(phase.history.get("loss", []))
        epochs = list(range(offset + 1, offset + n + 1))
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                if key in phase.history:
                    ax.plot(epochs, phase.history[key], style, label=f"{phase.name} {key}")
        offset += n
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend(fontsize=7)
    fig.tight_layout()
    png_path = os.path.join(out_dir, "history.png")
    with fileio.open(png_path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return [json_path, png_path]
