"""Serving fixtures: one exported model (the single place to swap in the real export),
sample images, a two-version model directory and the TF Serving stand-in."""

from __future__ import annotations

import io
import json
import os
import shutil
from typing import NamedTuple

import pytest
from PIL import Image

from serving.standin_server import StandinServer


class ExportedModel(NamedTuple):
    models_dir: str  # TF Serving base: <models_dir>/<model_name>/<version>/
    model_name: str
    version: int

    @property
    def path(self) -> str:
        return os.path.join(self.models_dir, self.model_name, str(self.version))


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> ExportedModel:
    """A tiny model that satisfies exactly the export contract of
    components/trainer/export.py (signatures, dtypes, shapes, assets.extra/keyclass.json).

    To test against the real export instead, build a ``tiny``-backbone Classifier and
    call ``components.trainer.export.export_model`` here; nothing else changes.
    """
    import keras
    import tensorflow as tf

    classes, size, version = ["cat", "dog", "fish"], 32, 1700000000
    keras.utils.set_random_seed(7)
    base = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 127.5, offset=-1),
            keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu"),
        ]
    )
    head = keras.Sequential([keras.Input((8, 8, 8)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    images_spec = tf.TensorSpec([None], tf.string, name="images")

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.base, self.head = base, head
            self.table = tf.constant(classes)

        def _decode(self, images):
            def one(data):
                img = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
                img.set_shape([None, None, 3])
                return tf.image.resize(tf.cast(img, tf.float32), [size, size], antialias=True)

            return tf.map_fn(one, images, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))

        def _outputs(self, logits):
            probs = tf.nn.softmax(logits)
            cid = tf.argmax(probs, axis=-1)
            return {
                "probabilities": probs,
                "class_id": cid,
                "class_name": tf.gather(self.table, cid),
                "confidence": tf.reduce_max(probs, axis=-1),
            }

        def _cam(self, images, class_index=None):
            feats = self.base(self._decode(images))
            with tf.GradientTape() as tape:
                tape.watch(feats)
                logits = self.head(feats)
                target = tf.argmax(logits, -1, output_type=tf.int32) if class_index is None else class_index
                score = tf.gather(logits, target, axis=1, batch_dims=1)
            grads = tape.gradient(score, feats)
            cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, (1, 2), keepdims=True) * feats, -1))
            out = self._outputs(logits)
            out["heatmap"] = tf.math.divide_no_nan(cam, tf.reduce_max(cam, (1, 2), keepdims=True))
            return out

        @tf.function(input_signature=[images_spec])
        def serving_default(self, images):
            return self._outputs(self.head(self.base(self._decode(images))))

        @tf.function(input_signature=[images_spec])
        def grad_cam(self, images):
            return self._cam(images)

        @tf.function(input_signature=[images_spec, tf.TensorSpec([None], tf.int32, name="class_index")])
        def grad_cam_class(self, images, class_index):
            tf.debugging.assert_less(class_index, len(classes), message="class_index out of range")
            tf.debugging.assert_non_negative(class_index, message="class_index out of range")
            return self._cam(images, class_index)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serving_tf_example(self, examples):
            parsed = tf.io.parse_example(examples, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
            return self._outputs(self.head(self.base(self._decode(parsed["image/encoded"]))))

    module = Tiny()
    models_dir = str(tmp_path_factory.mktemp("models"))
    model_name = "cat-dog-fish-0123abcd"
    path = os.path.join(models_dir, model_name, str(version))
    names = ("serving_default", "grad_cam", "grad_cam_class", "serving_tf_example")
    tf.saved_model.save(module, path, signatures={n: getattr(module, n) for n in names})
    os.makedirs(os.path.join(path, "assets.extra"))
    meta = {"classes": classes, "image_size": size, "backbone": "tiny", "signatures": list(names)}
    with open(os.path.join(path, "assets.extra", "keyclass.json"), "w") as f:
        json.dump(meta, f)
    return ExportedModel(models_dir, model_name, version)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def images() -> list[bytes]:
    """Four small images, one per format the model decodes, of different sizes."""
    out = []
    for i, (fmt, size) in enumerate([("JPEG", (40, 30)), ("PNG", (32, 32)), ("GIF", (50, 64)), ("BMP", (20, 28))]):
        img = Image.new("RGB", size, (40 * i, 255 - 50 * i, 90))
        img.paste((255, 255, 255), (2 + i, 3, size[0] // 2, size[1] // 2))
        out.append(_encode(img, fmt))
    return out


class ServedModels(NamedTuple):
    models_dir: str
    model_name: str
    versions: list[int]  # ascending
    labels: dict[str, int]


@pytest.fixture(scope="session")
def served_models(exported_model, tmp_path_factory) -> ServedModels:
    """The exported model as two versions (v and v+1), labels stable=v, canary=v+1."""
    base = str(tmp_path_factory.mktemp("served"))
    versions = [exported_model.version, exported_model.version + 1]
    for v in versions:
        shutil.copytree(exported_model.path, os.path.join(base, exported_model.model_name, str(v)))
    return ServedModels(base, exported_model.model_name, versions, {"stable": versions[0], "canary": versions[1]})


@pytest.fixture(scope="session")
def standin(served_models):
    """The TF Serving stand-in serving ``served_models`` on loopback ports."""
    with StandinServer(served_models.models_dir, labels={served_models.model_name: served_models.labels}) as server:
        yield server
