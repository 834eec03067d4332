"""Grad-CAM (Selvaraju et al.) computed in the same forward pass as the prediction.

``predict_with_cam`` runs the backbone once, watches its feature map, runs the head,
and takes the gradient of the chosen class's pre-softmax score with respect to the
map. Channel weights are the spatially averaged gradients; the map is the ReLU of the
weighted sum of channels, normalised to 0..1 per image. Pre-softmax scores keep the
gradient alive when the softmax saturates; all-zero or non-finite maps become zeros.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def cam_from_gradients(features: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
    """(N,h,w,C) activations and their gradients -> (N,h,w) heatmaps in 0..1."""
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (N,1,1,C): alpha_k^c
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))  # (N,h,w)
    cam = tf.where(tf.math.is_finite(cam), cam, tf.zeros_like(cam))
    peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
    return tf.math.divide_no_nan(cam, peak)


def predict_with_cam(
    base: keras.Model, head: keras.Model, pixels: tf.Tensor, class_index: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One forward pass: (logits (N,K), explained class (N,), heatmap (N,h,w)).

    ``class_index`` names the class to explain per image; by default the predicted one.
    """
    features = base(pixels, training=False)
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = head(features, training=False)
        if class_index is None:
            target = tf.argmax(logits, axis=-1, output_type=tf.int32)
        else:
            target = tf.cast(class_index, tf.int32)
        score = tf.gather(logits, target, axis=1, batch_dims=1)
    grads = tape.gradient(score, features)
    return logits, target, cam_from_gradients(features, grads)


def make_gradcam_heatmap(img_array, model_base: keras.Model, model_head: keras.Model, pred_index=None):
    """keras-io's ``make_gradcam_heatmap`` shape, for one image batch as numpy."""
    idx = None if pred_index is None else tf.fill([tf.shape(img_array)[0]], pred_index)
    _, _, heatmap = predict_with_cam(model_base, model_head, tf.convert_to_tensor(img_array, tf.float32), idx)
    return heatmap.numpy()
