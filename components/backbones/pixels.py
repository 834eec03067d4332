"""The pixels every network in keyclass sees: one cleaned JPEG decoded to the model's
input size. The Trainer trains on them and the curation embedder embeds them, through
this one function, so an embedding is of exactly the training pixels."""

from __future__ import annotations

import tensorflow as tf


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """One cleaned JPEG -> (S,S,3) uint8 pixels: exactly what training sees."""
    img = tf.io.decode_jpeg(encoded, channels=3)
    img = tf.image.resize(img, [image_size, image_size], antialias=True)  # no-op at cleaned size
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8)
