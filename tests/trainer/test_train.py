"""Training: tf.data input, the two phases, keep-best logic, run_fn, Grad-CAM localisation."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from keyclass.components.trainer import data, train
from keyclass.components.trainer.gradcam import predict_with_cam
from keyclass.components.trainer.model import build_classifier
from keyclass.components.trainer.module import run_fn, trainer_custom_config
from keyclass.pipeline.config import TrainConfig
from tests.fixtures import scenes

SIZE = 64


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("examples"))
    boxes = scenes.write_examples(root, {"train": 160, "eval": 40, "calibration": 40}, SIZE, seed=3)
    return root, boxes


def _files(root, split):
    return [os.path.join(root, f"Split-{split}", "*")]


def test_dataset_shapes_labels_and_augmentation_is_seeded(records):
    root, boxes = records
    ds = data.make_dataset(_files(root, "eval"), SIZE, 8, training=False)
    x, y = next(iter(ds))
    assert x.shape == (8, SIZE, SIZE, 3) and x.dtype == tf.float32
    assert float(tf.reduce_max(x)) <= 255.0 and float(tf.reduce_min(x)) >= 0.0
    assert y.numpy().tolist() == [lbl for lbl, _ in boxes["eval"][:8]]

    def first_batch(seed):
        keras.utils.set_random_seed(seed)
        ds = data.make_dataset(_files(root, "train"), SIZE, 8, training=True, augment=True, seed=seed)
        return next(iter(ds))[0].numpy()

    a, b = first_batch(7), first_batch(7)
    np.testing.assert_array_equal(a, b)


def test_shuffled_labels_differ_from_truth(records):
    root, boxes = records
    ds = data.make_dataset(_files(root, "train"), SIZE, 200, training=False, num_classes=2, shuffle_labels=True)
    shuffled = next(iter(ds))[1].numpy()
    truth = np.array([lbl for lbl, _ in boxes["train"]])
    agreement = (shuffled == truth).mean()
    assert 0.3 < agreement < 0.7  # unrelated to the truth


def test_empty_file_pattern_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord files"):
        data.list_files([str(tmp_path / "Split-train" / "*")])


def test_phase1_learns_and_phase2_is_kept_only_if_better(records):
    root, _ = records
    train_ds = data.make_dataset(_files(root, "train"), SIZE, 16, training=True, seed=1)
    eval_ds = data.make_dataset(_files(root, "eval"), SIZE, 16, training=False)
    clf = build_classifier("tiny", SIZE, scenes.CLASSES, weights="none", seed=1)
    p1 = train.train_transfer(clf, train_ds, eval_ds, learning_rate=3e-3, max_epochs=4, patience=2, verbose=0)
    assert len(p1.history["loss"]) <= 4
    assert p1.best_val_loss == min(p1.history["val_loss"])
    # The backbone was frozen: only the head trained.
    assert all(not w.trainable for w in clf.base.weights)
    before = [w.copy() for w in clf.model.get_weights()]
    # A destructive learning rate makes fine-tuning worse; its weights must be discarded.
    p2, kept = train.fine_tune(clf, train_ds, eval_ds, p1.best_val_loss, learning_rate=50.0, epochs=1, verbose=0)
    assert not kept and p2.best_val_loss >= p1.best_val_loss
    for a, b in zip(before, clf.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fine_tuning_keeps_batchnorm_in_inference_mode(records):
    root, _ = records
    clf = build_classifier("tiny", SIZE, scenes.CLASSES, weights="none", seed=2)
    bn = clf.base.get_layer("bn0")
    moving = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    conv = clf.base.get_layer("conv0").kernel.numpy().copy()
    ds = data.make_dataset(_files(root, "train"), SIZE, 16, training=True)
    train.fine_tune(clf, ds, ds, baseline_val_loss=1e9, learning_rate=1e-3, epochs=1, verbose=0)
    for a, b in zip(moving, (bn.moving_mean, bn.moving_variance), strict=True):
        np.testing.assert_array_equal(a, b.numpy())  # moving statistics untouched
    assert not np.array_equal(conv, clf.base.get_layer("conv0").kernel.numpy())  # the backbone did train


def test_run_fn_trains_both_phases_and_exports(records, tmp_path):
    root, _ = records
    tc = TrainConfig(backbone="tiny", weights="none", batch_size=16, max_epochs=2, fine_tune_epochs=1, augment=True)
    fn_args = FnArgs(
        train_files=_files(root, "train"),
        eval_files=_files(root, "eval"),
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        custom_config=trainer_custom_config(scenes.CLASSES, SIZE, tc),
    )
    run_fn(fn_args)
    loaded = tf.saved_model.load(fn_args.serving_model_dir)
    assert "grad_cam" in loaded.signatures
    meta = json.loads((tmp_path / "serving" / "assets.extra" / "keyclass.json").read_text())
    assert meta["classes"] == scenes.CLASSES
    assert meta["train_images_per_class"] == {"circle": 80, "square": 80}
    assert np.isfinite(meta["val_loss"])
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    assert hist["phase2"] is not None and hist["kept"] in ("phase1", "phase2")
    assert (tmp_path / "run" / "history.png").stat().st_size > 1000
    assert any(p.name.startswith("events.out") for p in (tmp_path / "run").rglob("*"))
    assert (tmp_path / "serving" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    # Calibration: T fitted on eval, measured and certified on the calibration split,
    # inside the model and in its metadata (the shared contract's keys).
    block = meta["calibration"]
    assert {"temperature", "ece_before", "ece_after", "bins", "images", "confidence", "certified_thresholds"} <= set(
        block
    )
    # Two classes: all 40 calibration images fit T (ECE out of fold) and certify, on the
    # raw confidence, with the 40 eval images as the pilot.
    assert block["bins"] == 15 and block["images"] == 40 and block["temperature_images"] == 40
    assert block["certified_on"] == "raw" and block["certificate_images"] == 40
    assert block["confidence"] == 0.9
    assert set(block["certified_thresholds"]) == {"0.95", "0.99", "0.995"}
    assert np.isclose(float(loaded.temperature.numpy()), block["temperature"], rtol=1e-6)
    calibration_scores = block["scores"]["calibration"]
    assert len(calibration_scores["confidence"]) == len(calibration_scores["raw_confidence"]) == 40
    assert len(block["scores"]["pilot"]["correct"]) == 40
    report = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert report["fitted_on"] == {"split": "calibration", "images": 40}
    assert report["measured_on"] == {"split": "calibration (out of fold: 5 folds by image hash)", "images": 40}
    assert report["ece_before"] == block["ece_before"] and report["ece_after"] == block["ece_after"]
    for png in ("reliability.png", "risk_coverage.png"):
        assert (tmp_path / "run" / png).stat().st_size > 1000, png


def test_gradcam_peak_falls_on_the_object(tmp_path):
    """Class decided by an object at a random spot; the heatmap's peak must fall on it."""
    size = 96
    rng = np.random.default_rng(0)
    xs, ys, boxes = [], [], []
    for k in range(360):
        arr, box = scenes.scene(k % 2, size, rng)
        xs.append(arr)
        ys.append(k % 2)
        boxes.append(box)
    x = np.stack(xs).astype("float32")
    y = np.array(ys)
    clf = build_classifier("tiny", size, scenes.CLASSES, weights="none", seed=0)
    clf.base.trainable = True
    clf.model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    clf.model.fit(x[:300], y[:300], batch_size=20, epochs=6, verbose=0)
    test_x, test_boxes = x[300:], boxes[300:]
    logits, _, heat = predict_with_cam(clf.base, clf.head, tf.constant(test_x))
    acc = (np.argmax(logits.numpy(), 1) == y[300:]).mean()
    assert acc > 0.9
    grid = heat.shape[1]
    cell = size / grid
    hits = 0
    for h, (x0, y0, x1, y1) in zip(heat.numpy(), test_boxes, strict=True):
        r, c = np.unravel_index(np.argmax(h), h.shape)
        cy, cx = (r + 0.5) * cell, (c + 0.5) * cell
        # The peak cell's centre lies on the object, allowing one cell of slack.
        if x0 - cell <= cx <= x1 + cell and y0 - cell <= cy <= y1 + cell:
            hits += 1
    assert hits / len(test_boxes) >= 0.7, f"peak on object in {hits}/{len(test_boxes)} images"


def test_training_runs_whole_epochs_without_running_out_of_data(records, recwarn):
    """Keras warns "Your input ran out of data" when it runs an epoch into the end of a
    dataset of unknown length; the datasets say their length, so each epoch is whole."""
    root, boxes = records
    train_ds = data.make_dataset(_files(root, "train"), SIZE, 16, training=True, seed=1)
    eval_ds = data.make_dataset(_files(root, "eval"), SIZE, 16, training=False)
    assert int(train_ds.cardinality()) == len(boxes["train"]) // 16  # 160 / 16
    assert int(eval_ds.cardinality()) == -(-len(boxes["eval"]) // 16)
    clf = build_classifier("tiny", SIZE, scenes.CLASSES, weights="none", seed=1)
    for cache_features in (False, True):
        train.train_transfer(clf, train_ds, eval_ds, max_epochs=2, patience=2, verbose=0, cache_features=cache_features)
    ran_out = [w for w in recwarn if "ran out of data" in str(w.message)]
    assert not ran_out, ran_out[0].message


def test_the_train_stage_ends_as_one_line(records, tmp_path, capsys):
    from keyclass.components import progress

    root, _ = records
    saved = (progress.bars_setting(), progress.level())
    progress.configure(bars=False, level=progress.NORMAL)
    try:
        tc = TrainConfig(backbone="tiny", weights="none", batch_size=16, max_epochs=2, fine_tune_epochs=1)
        run_fn(
            FnArgs(
                train_files=_files(root, "train"),
                eval_files=_files(root, "eval"),
                serving_model_dir=str(tmp_path / "serving"),
                model_run_dir=str(tmp_path / "run"),
                custom_config=trainer_custom_config(scenes.CLASSES, SIZE, tc),
            )
        )
    finally:
        progress.configure(bars=saved[0], level=saved[1])
    out, err = capsys.readouterr()
    assert "Epoch 1/2" not in out + err  # Keras' own lines only with -v
    (line,) = [line for line in err.splitlines() if line.startswith("train:")]
    assert line.startswith("train: 3 epochs (frozen 2, fine-tuned 1; kept ") and "val_loss 0." in line
