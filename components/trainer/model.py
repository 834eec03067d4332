"""The classifier: a backbone feature extractor and a small softmax head, kept as two
models so Grad-CAM can take the gradient of the head's logits with respect to the
backbone's feature map in the same forward pass.
"""

from __future__ import annotations

import dataclasses

import keras

from keyclass.components.backbones import Backbone, build_backbone


@dataclasses.dataclass
class Classifier:
    """``model`` maps float pixels (0..255) to logits; it is ``head(base(pixels))``."""

    backbone: Backbone
    head: keras.Model  # feature map -> logits
    model: keras.Model  # pixels -> logits
    class_names: list[str]
    image_size: int

    @property
    def base(self) -> keras.Model:
        return self.backbone.model


HEAD_POOL, HEAD_DROPOUT, HEAD_LOGITS = "avg_pool", "head_dropout", "logits"


def build_head(feature_shape: tuple[int, ...], num_classes: int, dropout: float = 0.2, seed: int = 0) -> keras.Model:
    """Global average pooling, dropout and a dense layer producing pre-softmax logits."""
    feats = keras.Input(feature_shape, name="features")
    x = keras.layers.GlobalAveragePooling2D(name=HEAD_POOL)(feats)
    x = keras.layers.Dropout(dropout, seed=seed, name=HEAD_DROPOUT)(x)
    logits = keras.layers.Dense(num_classes, name=HEAD_LOGITS)(x)
    return keras.Model(feats, logits, name="head")


def pooled_head(head: keras.Model) -> keras.Model:
    """``head`` after its pooling layer: pooled features (N, C) -> logits. It shares the
    dropout and dense layers with ``head``, so training it trains ``head``: the same
    optimisation as on the feature maps, whose pooling has no weights."""
    channels = int(head.input.shape[-1])
    pooled = keras.Input((channels,), name="pooled_features")
    x = head.get_layer(HEAD_DROPOUT)(pooled)
    return keras.Model(pooled, head.get_layer(HEAD_LOGITS)(x), name="pooled_head")


def build_classifier(
    backbone_name: str, image_size: int, class_names: list[str], weights: str = "imagenet", seed: int = 0
) -> Classifier:
    """Backbone + new head. The backbone runs with ``training=False`` so BatchNorm stays in
    inference mode in both phases (the keras transfer-learning recipe)."""
    keras.utils.set_random_seed(seed)
    backbone = build_backbone(backbone_name, image_size, weights)
    feature_shape = tuple(backbone.model.output.shape[1:])
    head = build_head(feature_shape, len(class_names), seed=seed)
    pixels = keras.Input((image_size, image_size, 3), name="pixels")
    feats = backbone.model(pixels, training=False)
    logits = head(feats)
    model = keras.Model(pixels, logits, name=f"keyclass_{backbone.name}")
    return Classifier(backbone, head, model, list(class_names), image_size)


def set_backbone_trainable(clf: Classifier, trainable: bool) -> None:
    """Freeze (phase 1) or unfreeze (phase 2) the backbone, BatchNorm layers excepted:
    they stay frozen and so in inference mode. Keras 3 does not keep the
    ``training=False`` given when the functional model was built, so an unfrozen
    BatchNorm would switch to batch statistics and update its moving averages."""
    clf.base.trainable = trainable
    if trainable:
        for layer in _all_layers(clf.base):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out
