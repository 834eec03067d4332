"""Phase 1 from the cleaner's embeddings: no second backbone pass.

When the cleaner curated with the backbone the Trainer freezes (same architecture, same
weights, same input size), it stored each kept image's pooled feature map inside the
Examples artifact (:mod:`components.embeddings`). Phase 1 with ``train.cache_features``
(augmentation off, frozen backbone) would compute exactly those again; it reuses them
instead, after checking that they are of the same pixels through the same network:

- the stored weight fingerprint equals the fingerprint of the backbone just built;
- the stored image size equals the training image size;
- every example's ``image/sha256`` has an embedding, and the sha256 of the example's
  ``image/encoded`` bytes equals the hash of the JPEG that was embedded.

Any mismatch logs why and phase 1 runs the backbone as before.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf
from absl import logging

from keyclass.components import embeddings, layout
from keyclass.components.backbones import Backbone
from keyclass.components.embeddings import StoredEmbeddings
from keyclass.components.trainer import data
from keyclass.components.trainer.train import features_dataset

_FEATURES = {
    layout.F_IMAGE: tf.io.FixedLenFeature([], tf.string),
    layout.F_LABEL: tf.io.FixedLenFeature([], tf.int64),
    layout.F_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
}


class NotReusable(ValueError):
    """The stored embeddings are not of these pixels through this backbone."""


def check_meta(stored: StoredEmbeddings | None, backbone: Backbone, image_size: int) -> None:
    """Raise NotReusable unless ``stored`` was computed by ``backbone`` at ``image_size``."""
    if stored is None:
        raise NotReusable("the Examples artifact holds no embeddings (the cleaner did not curate)")
    meta = stored.meta
    if meta.backbone != backbone.name:
        raise NotReusable(f"embeddings are of backbone {meta.backbone}, training uses {backbone.name}")
    if meta.image_size != image_size:
        raise NotReusable(f"embeddings are at {meta.image_size} px, training at {image_size} px")
    if meta.pooling != embeddings.POOLING:
        raise NotReusable(f"embeddings are {meta.pooling} pooled; the head pools by global average")
    if meta.fingerprint != backbone.fingerprint():
        raise NotReusable(f"the backbone's weights differ from those the cleaner used ({meta.weights})")


def pooled_split(file_patterns: list[str], stored: StoredEmbeddings) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features, labels) of every example in the split, in file order."""
    by_sha = stored.by_sha256()
    ds = tf.data.TFRecordDataset(data.list_files(file_patterns), compression_type="GZIP")
    ds = ds.batch(256).map(lambda b: tf.io.parse_example(b, _FEATURES))
    feats, labels = [], []
    for batch in ds.as_numpy_iterator():
        for sha, image, label in zip(batch[layout.F_SHA256], batch[layout.F_IMAGE], batch[layout.F_LABEL], strict=True):
            entry = by_sha.get(sha.decode())
            if entry is None:
                raise NotReusable(f"no embedding for example {sha.decode()[:12]}")
            if hashlib.sha256(image).hexdigest() != entry[0]:
                raise NotReusable(f"example {sha.decode()[:12]}'s image is not the one that was embedded")
            feats.append(entry[1])
            labels.append(label)
    if not feats:
        raise NotReusable("the split is empty")
    return np.stack(feats).astype(np.float32), np.asarray(labels, dtype=np.int32)


def pooled_datasets(
    train_files: list[str], eval_files: list[str], backbone: Backbone, image_size: int, batch_size: int, seed: int = 0
) -> tuple[tf.data.Dataset, tf.data.Dataset] | None:
    """Phase 1's (train, eval) datasets of pooled features from the cleaner's embeddings,
    or None (with the reason logged) when they cannot stand for the backbone's output."""
    try:
        stored = embeddings.read(embeddings.examples_uri_of(train_files[0]))
        check_meta(stored, backbone, image_size)
        x_train, y_train = pooled_split(train_files, stored)
        x_eval, y_eval = pooled_split(eval_files, stored)
    except (NotReusable, ValueError) as e:
        logging.warning("Phase 1 runs the backbone: the cleaner's embeddings are not reusable: %s", e)
        return None
    logging.info("Phase 1 reuses the cleaner's embeddings: %d train, %d eval examples", len(y_train), len(y_eval))
    return (
        features_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed),
        features_dataset(x_eval, y_eval, batch_size, shuffle=False),
    )
