"""The exported SavedModel: signatures, class names, Grad-CAM agreement and robustness."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keyclass.components.trainer.export import export_model
from keyclass.components.trainer.gradcam import cam_from_gradients
from keyclass.components.trainer.model import build_classifier
from keyclass.serving.model_layout import SIGNATURES, read_metadata
from tests.fixtures import scenes

CLASSES = ["bird", "cat", "dog"]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    clf = build_classifier("tiny", 64, CLASSES, weights="none", seed=1)
    path = str(tmp_path_factory.mktemp("export") / "1")
    export_model(clf, path, metadata={"val_loss": 0.5})
    return clf, path, tf.saved_model.load(path)


def _images(n: int, size: int = 80, seed: int = 0) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    return tf.constant([_png(rng.integers(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)])


def test_signatures_and_metadata(tiny_export):
    _, path, loaded = tiny_export
    assert set(loaded.signatures) == set(SIGNATURES)
    meta = read_metadata(path)
    assert meta["classes"] == CLASSES
    assert meta["backbone"] == "tiny" and meta["image_size"] == 64 and meta["val_loss"] == 0.5


def test_probabilities_sum_to_one_and_class_names_match(tiny_export):
    _, _, loaded = tiny_export
    out = loaded.signatures["serving_default"](images=_images(4))
    probs = out["probabilities"].numpy()
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ids = out["class_id"].numpy()
    assert [n.decode() for n in out["class_name"].numpy()] == [CLASSES[i] for i in ids]
    np.testing.assert_allclose(out["confidence"].numpy(), probs.max(axis=1), atol=1e-6)


def test_grad_cam_agrees_with_serving_default(tiny_export):
    _, _, loaded = tiny_export
    imgs = _images(3, seed=2)
    a = loaded.signatures["serving_default"](images=imgs)
    b = loaded.signatures["grad_cam"](images=imgs)
    np.testing.assert_allclose(a["probabilities"].numpy(), b["probabilities"].numpy(), atol=1e-5)
    heat = b["heatmap"].numpy()
    assert heat.shape == (3, 4, 4)  # 64 px / 16 for the tiny backbone
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_grad_cam_class_explains_the_named_class(tiny_export):
    clf, _, loaded = tiny_export
    imgs = _images(2, seed=3)
    pred = loaded.signatures["grad_cam"](images=imgs)
    named = loaded.signatures["grad_cam_class"](images=imgs, class_index=pred["class_id"].numpy().astype("int32"))
    np.testing.assert_allclose(pred["heatmap"].numpy(), named["heatmap"].numpy(), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["grad_cam_class"](images=imgs, class_index=tf.constant([0, 7]))


def test_tf_example_signature_matches_bytes_signature(tiny_export):
    _, _, loaded = tiny_export
    rng = np.random.default_rng(5)
    arrs = [scenes.scene(i % 2, 64, rng)[0] for i in range(2)]
    examples = tf.constant([scenes.example(a, 0) for a in arrs])
    jpegs = tf.constant([scenes.jpeg(a) for a in arrs])
    a = loaded.signatures["serving_tf_example"](examples=examples)["probabilities"].numpy()
    b = loaded.signatures["serving_default"](images=jpegs)["probabilities"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_decodes_gif_bmp_and_grayscale(tiny_export):
    _, _, loaded = tiny_export
    rng = np.random.default_rng(4)
    blobs = []
    for fmt, mode in (("GIF", "P"), ("BMP", "RGB"), ("PNG", "L"), ("JPEG", "L")):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)).convert(mode).save(buf, fmt)
        blobs.append(buf.getvalue())
    out = loaded.signatures["serving_default"](images=tf.constant(blobs))
    assert out["probabilities"].shape == (4, 3)


def test_served_probabilities_are_softmax_of_logits_over_the_temperature(tmp_path):
    """Every image signature serves softmax(logits / T) with T inside the SavedModel,
    and softmax(logits) as the raw output; the class is the same either way."""
    from keyclass.components.calibration import softmax
    from keyclass.components.trainer.export import decode_images

    clf = build_classifier("tiny", 64, CLASSES, weights="none", seed=3)
    dense = clf.head.get_layer("logits")
    k, b = dense.get_weights()
    dense.set_weights([k * 20, b])  # spread the logits so T visibly matters
    path = str(tmp_path / "1")
    export_model(clf, path, temperature=2.5)
    loaded = tf.saved_model.load(path)
    assert float(loaded.temperature.numpy()) == pytest.approx(2.5)
    imgs = _images(5, seed=11)
    logits = clf.model(decode_images(imgs, 64), training=False).numpy()
    want, raw = softmax(logits, 2.5), softmax(logits)
    assert np.abs(want - raw).max() > 0.05  # the test can tell T = 1 from T = 2.5
    for name, kwargs in (
        ("serving_default", {}),
        ("grad_cam", {}),
        ("grad_cam_class", {"class_index": tf.constant([0, 1, 2, 0, 1])}),
    ):
        out = loaded.signatures[name](images=imgs, **kwargs)
        np.testing.assert_allclose(out["probabilities"].numpy(), want, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(out["confidence"].numpy(), want.max(axis=1), atol=2e-5, err_msg=name)
        np.testing.assert_allclose(out["raw_probabilities"].numpy(), raw, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(out["raw_confidence"].numpy(), raw.max(axis=1), atol=2e-5, err_msg=name)
        np.testing.assert_array_equal(out["class_id"].numpy(), logits.argmax(axis=1))


def test_heatmap_stays_finite_when_saturated_or_all_zero():
    feats = tf.zeros((2, 3, 3, 4))
    grads = tf.ones((2, 3, 3, 4))
    np.testing.assert_array_equal(cam_from_gradients(feats, grads).numpy(), 0.0)
    huge = tf.fill((1, 3, 3, 2), 3e38)
    out = cam_from_gradients(huge, huge).numpy()
    assert np.isfinite(out).all()
    # A saturated softmax: the head's pre-softmax score keeps the gradient alive.
    clf = build_classifier("tiny", 32, ["a", "b"], weights="none")
    dense = clf.head.get_layer("logits")
    k, b = dense.get_weights()
    dense.set_weights([k * 1e4, b])
    from keyclass.components.trainer.gradcam import predict_with_cam

    logits, _, heat = predict_with_cam(clf.base, clf.head, tf.random.uniform((2, 32, 32, 3), 0, 255, seed=1))
    assert np.isfinite(heat.numpy()).all()
    assert float(tf.reduce_max(tf.nn.softmax(logits))) > 0.999


def test_full_size_resnet50_exports_and_both_signatures_run(tmp_path):
    clf = build_classifier("resnet50", 224, ["cat", "dog"], weights="none")
    path = str(tmp_path / "1")
    export_model(clf, path)
    loaded = tf.saved_model.load(path)
    imgs = _images(2, size=240, seed=9)
    pred = loaded.signatures["serving_default"](images=imgs)
    cam = loaded.signatures["grad_cam"](images=imgs)
    assert pred["probabilities"].shape == (2, 2)
    assert cam["heatmap"].shape == (2, 7, 7)
    np.testing.assert_allclose(pred["probabilities"].numpy(), cam["probabilities"].numpy(), atol=1e-5)
    keras.backend.clear_session()
