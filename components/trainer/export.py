"""Export: one SavedModel with preprocessing, class names, the fitted temperature and
four signatures.

- ``serving_default(images)``: encoded image bytes -> probabilities, class_id,
  class_name, confidence (calibrated: ``softmax(logits / T)``), raw_probabilities and
  raw_confidence (``softmax(logits)``).
- ``grad_cam(images)``: the same plus ``heatmap`` (N,h,w) for the predicted class.
- ``grad_cam_class(images, class_index)``: the heatmap for a named class.
- ``serving_tf_example(examples)``: serialized tf.Examples (for TFMA, which judges the
  validation loss on ``raw_probabilities``, as before calibration existed).

The temperature is a variable of the SavedModel, so TF Serving and in-process
prediction serve the same calibrated numbers; the predicted class is the argmax of the
logits either way (T > 0 does not change it).

Decoding happens inside the graph (``tf.io.decode_image``: JPEG, PNG, GIF first frame,
BMP) and resizes bilinearly with antialiasing to the training size, as the cleaner's
Pillow resize does. The in-graph decoder does not apply EXIF orientation, convert CMYK
JPEGs faithfully or read WebP/TIFF; keyclass's own predict command normalises images
with the cleaner's decoder first, so it sees exactly what training saw.
"""

from __future__ import annotations

import tensorflow as tf

from keyclass.components import layout
from keyclass.components.trainer.gradcam import predict_with_cam
from keyclass.components.trainer.model import Classifier
from keyclass.serving import model_layout
from keyclass.serving.model_layout import SIGNATURES


def decode_images(images: tf.Tensor, image_size: int) -> tf.Tensor:
    """(N,) encoded bytes -> (N,S,S,3) float32 pixels in 0..255."""

    def one(data: tf.Tensor) -> tf.Tensor:
        img = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        img.set_shape([None, None, 3])
        img = tf.image.resize(tf.cast(img, tf.float32), [image_size, image_size], antialias=True)
        return tf.clip_by_value(img, 0.0, 255.0)

    return tf.map_fn(
        one, images, fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32), parallel_iterations=16
    )


class KeyclassModule(tf.Module):
    """The exported object: the two Keras models plus the class table."""

    def __init__(self, clf: Classifier, temperature: float = 1.0):
        super().__init__(name="keyclass")
        self.base = clf.base
        self.head = clf.head
        self.image_size = clf.image_size
        self.class_table = tf.constant(clf.class_names, dtype=tf.string)
        self.temperature = tf.Variable(float(temperature), dtype=tf.float32, trainable=False, name="temperature")

    def _outputs(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        probs = tf.nn.softmax(logits / self.temperature, axis=-1)
        raw = tf.nn.softmax(logits, axis=-1)
        class_id = tf.argmax(logits, axis=-1)
        return {
            "probabilities": probs,
            "class_id": class_id,
            "class_name": tf.gather(self.class_table, class_id),
            "confidence": tf.reduce_max(probs, axis=-1),
            "raw_probabilities": raw,
            "raw_confidence": tf.reduce_max(raw, axis=-1),
        }

    def _predict(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._outputs(self.head(self.base(pixels, training=False), training=False))

    def _cam(self, pixels: tf.Tensor, class_index: tf.Tensor | None) -> dict[str, tf.Tensor]:
        logits, _, heatmap = predict_with_cam(self.base, self.head, pixels, class_index)
        out = self._outputs(logits)
        out["heatmap"] = heatmap
        return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serving_default(self, images):
        return self._predict(decode_images(images, self.image_size))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def grad_cam(self, images):
        return self._cam(decode_images(images, self.image_size), None)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="images"),
            tf.TensorSpec([None], tf.int32, name="class_index"),
        ]
    )
    def grad_cam_class(self, images, class_index):
        k = tf.shape(self.class_table, out_type=tf.int32)[0]
        tf.debugging.assert_less(class_index, k, message="class_index out of range")
        tf.debugging.assert_non_negative(class_index, message="class_index out of range")
        return self._cam(decode_images(images, self.image_size), class_index)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serving_tf_example(self, examples):
        parsed = tf.io.parse_example(examples, {layout.F_IMAGE: tf.io.FixedLenFeature([], tf.string)})
        return self._predict(decode_images(parsed[layout.F_IMAGE], self.image_size))


def export_model(
    clf: Classifier,
    export_dir: str,
    metadata: dict | None = None,
    warmup_images: list[bytes] | None = None,
    temperature: float = 1.0,
) -> str:
    """Write the SavedModel to ``export_dir`` with ``assets.extra/keyclass.json`` and,
    given sample images, TF Serving warmup requests. ``temperature`` divides the logits
    of every served probability. Returns ``export_dir``."""
    module = KeyclassModule(clf, temperature)
    signatures = {name: getattr(module, name) for name in SIGNATURES}
    tf.saved_model.save(module, export_dir, signatures=signatures)
    meta = {
        "classes": list(clf.class_names),
        "image_size": clf.image_size,
        "backbone": clf.backbone.name,
        "feature_layer": clf.backbone.feature_layer,
        "signatures": list(SIGNATURES),
    }
    meta.update(metadata or {})
    model_layout.write_metadata(export_dir, meta)
    if warmup_images:
        from keyclass.serving.warmup import write_warmup_requests

        write_warmup_requests(export_dir, warmup_images, len(clf.class_names))
    return export_dir
