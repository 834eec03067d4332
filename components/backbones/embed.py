"""The curation step's one backbone pass: cleaned model JPEGs -> embeddings.

Runs in the executor process, batched (never in a Beam worker: TensorFlow stays out of
them). Each image is decoded by ``pixels.decode_image`` (the pixels training sees)
and goes once through the configured backbone with its weights, the network phase 1
will freeze. From that one forward pass come two embeddings:

- ``pooled``: the feature map, global-average pooled (C values): what the phase-1 head's
  first layer computes. Label issues are found on it, and the Trainer reuses it.
- ``layout``: the feature map kept as a grid, each cell's C channels projected to
  ``LAYOUT_DIMS`` by a fixed random Gaussian matrix (Johnson-Lindenstrauss: cosines are
  preserved to about 1/sqrt(h*w*LAYOUT_DIMS)). Pooling forgets where things are; two
  different products on a white backdrop pool alike, while a copy cropped by a few per
  cent keeps its layout. Near duplicates are confirmed on both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keyclass.components.backbones import Backbone, build_backbone
from keyclass.components.backbones.pixels import decode_image

LAYOUT_DIMS = 128
PROJECTION_SEED = 20240613  # fixed: equal images give equal layouts in every run


@dataclasses.dataclass(frozen=True)
class Embeddings:
    pooled: np.ndarray  # (n, C) float32
    layout: np.ndarray  # (n, h*w*LAYOUT_DIMS) float32


def layout_projection(channels: int) -> np.ndarray:
    """The fixed (channels, LAYOUT_DIMS) Gaussian projection, scaled to keep norms."""
    rng = np.random.default_rng(PROJECTION_SEED)
    return (rng.standard_normal((channels, LAYOUT_DIMS)) / np.sqrt(LAYOUT_DIMS)).astype(np.float32)


class Embedder:
    """The backbone at the training input size, with a batched, traced forward pass."""

    def __init__(self, backbone: Backbone, image_size: int, batch_size: int = 32):
        self.backbone = backbone
        self.image_size = image_size
        self.batch_size = batch_size
        channels = int(backbone.model.output.shape[-1])
        self._projection = tf.constant(layout_projection(channels))
        self._step = tf.function(self._forward, reduce_retracing=True)
        self.forward_passes = 0  # batches run through the backbone (the cost benchmark reads it)

    @classmethod
    def build(cls, backbone: str, image_size: int, weights: str, batch_size: int = 32) -> Embedder:
        return cls(build_backbone(backbone, image_size, weights), image_size, batch_size)

    def _forward(self, pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        maps = self.backbone.model(pixels, training=False)
        pooled = tf.reduce_mean(maps, axis=[1, 2])
        cells = tf.einsum("nhwc,cd->nhwd", maps, self._projection)
        return pooled, tf.reshape(cells, [tf.shape(cells)[0], -1])

    def __call__(self, jpegs: Sequence[bytes]) -> Embeddings:
        """Embeddings of the model JPEGs, in order."""
        if not jpegs:
            channels = int(self.backbone.model.output.shape[-1])
            return Embeddings(np.zeros((0, channels), np.float32), np.zeros((0, 0), np.float32))
        size = self.image_size
        ds = (
            tf.data.Dataset.from_tensor_slices(tf.constant(list(jpegs), dtype=tf.string))
            .map(lambda b: decode_image(b, size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(self.batch_size)
            .map(lambda x: tf.cast(x, tf.float32))
            .prefetch(tf.data.AUTOTUNE)
        )
        pooled, layout = [], []
        for x in ds:
            p, lay = self._step(x)
            self.forward_passes += 1
            pooled.append(p.numpy())
            layout.append(lay.numpy())
        return Embeddings(np.concatenate(pooled).astype(np.float32), np.concatenate(layout).astype(np.float32))
