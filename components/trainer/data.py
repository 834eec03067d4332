"""Training input: tf.data from the cleaner's gzipped TFRecords.

Parallel interleaved reads, parallel parse+decode, an in-memory cache of the decoded
images when they fit, shuffle, batch, augmentation on the training split only, prefetch.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keyclass.components import layout
from keyclass.components.backbones.pixels import decode_image  # noqa: F401 - the training pixels, re-exported

# Cache decoded uint8 images in memory when they take less than this.
CACHE_LIMIT_BYTES = 4 * 1024**3

_FEATURES = {
    layout.F_IMAGE: tf.io.FixedLenFeature([], tf.string),
    layout.F_LABEL: tf.io.FixedLenFeature([], tf.int64),
    layout.F_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def list_files(file_patterns: list[str] | str) -> list[str]:
    """Expand TFX's ``train_files``/``eval_files`` glob patterns; refuse an empty match."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {patterns}")
    return files


def count_records(files: list[str]) -> int:
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def make_augmenter(seed: int) -> keras.Sequential:
    """The seed design's augmentation as Keras layers: zoom, rotation, width and height
    shift, shear, horizontal flip. Deterministic for a given seed."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(0.15, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
            keras.layers.RandomShear(x_factor=0.1, y_factor=0.1, fill_mode="reflect", seed=seed + 4),
        ],
        name="augment",
    )


def make_dataset(
    file_patterns: list[str] | str,
    image_size: int,
    batch_size: int,
    *,
    training: bool,
    augment: bool = False,
    seed: int = 0,
    num_classes: int = 0,
    shuffle_labels: bool = False,
    cache: bool | None = None,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255 (N,S,S,3), int32 labels (N,)), and with
    ``with_keys`` each image's ``image/sha256`` (N,) third.

    ``shuffle_labels`` replaces each training label with a content-keyed random class:
    a deliberately worse model for gate tests. ``cache=None`` caches when the decoded
    split fits in ``CACHE_LIMIT_BYTES``.
    """
    files = list_files(file_patterns)
    records = count_records(files)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    # A finite dataset of known length: read from files, its cardinality is unknown, and
    # Keras then runs the first epoch into the end of the data and warns "Your input ran
    # out of data; interrupting training". With it, Keras knows the steps per epoch.
    ds = ds.apply(tf.data.experimental.assert_cardinality(records))

    def parse(record):
        ex = tf.io.parse_single_example(record, _FEATURES)
        img = decode_image(ex[layout.F_IMAGE], image_size)
        label = tf.cast(ex[layout.F_LABEL], tf.int32)
        if shuffle_labels:
            if num_classes < 2:
                raise ValueError("shuffle_labels needs num_classes")
            label = tf.cast(tf.strings.to_hash_bucket_fast(ex[layout.F_SHA256], num_classes), tf.int32)
        return (img, label, ex[layout.F_SHA256]) if with_keys else (img, label)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache is None:
        cache = records * image_size * image_size * 3 < CACHE_LIMIT_BYTES
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, *rest: (tf.cast(x, tf.float32), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment:
        augmenter = make_augmenter(seed)
        # Sequential on purpose: the layers draw from one seeded generator, and parallel
        # calls would consume it in a varying order. Prefetch still overlaps it with training.
        ds = ds.map(lambda x, y: (tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0), y))
    return ds.prefetch(tf.data.AUTOTUNE)
