"""Backbone weights from a file: the air-gapped path for ResNet50 (--weights PATH)."""

import hashlib

import keras
import numpy as np
import pytest

from keyclass.components import backbones


def test_resnet50_loads_a_weights_file(tmp_path):
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    path = tmp_path / "resnet50.weights.h5"
    source.save_weights(str(path))
    bb = backbones.build_backbone("resnet50", 64, str(path))
    inner = bb.model.get_layer("resnet50")
    for a, b in zip(source.get_weights(), inner.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert bb.feature_layer == "conv5_block3_out" and bb.model.output.shape[1:] == (2, 2, 2048)


def test_a_damaged_keras_weights_file_is_refused(tmp_path):
    path = tmp_path / backbones.RESNET50_NOTOP_FILE
    path.write_bytes(b"not the weights")
    digest = hashlib.md5(b"not the weights").hexdigest()  # noqa: S324
    with pytest.raises(ValueError, match=f"md5 {digest}"):
        backbones.build_backbone("resnet50", 64, str(path))


def test_unknown_backbone_and_missing_file_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.build_backbone("vgg", 64, "none")
    with pytest.raises(ValueError, match="not imagenet, none or an existing file"):
        backbones.build_backbone("resnet50", 64, str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="no ImageNet weights"):
        backbones.build_backbone("tiny", 64, "imagenet")
