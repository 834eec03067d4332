"""The embeddings the cleaner computed for the kept images, stored beside the splits in
the Examples artifact (``<examples>/embeddings/``), so the Trainer's phase 1 can reuse
them instead of running the frozen backbone again.

An embedding is the backbone's feature map, global-average pooled: exactly what the
phase-1 head's first layer computes, so a head trained on it is trained as on the map.
Reuse is sound only for the same pixels through the same backbone with the same weights,
so each row carries the sha256 of the model JPEG it was computed from, and the metadata
the backbone's weight fingerprint and the image size; the Trainer checks all three.

Files: ``embeddings.npz`` (``sha256``: the record's file hash, the Example's
``image/sha256``; ``image_sha256``: hash of the Example's ``image/encoded`` bytes;
``pooled``: float32 rows) and ``embeddings.json`` (:class:`EmbeddingsMeta`). Read and
written through TFX's fileio, so the artifact may live on GCS or S3.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Sequence

import numpy as np
from tfx.dsl.io import fileio

from keyclass.components import layout

VECTORS_FILE = "embeddings.npz"
META_FILE = "embeddings.json"
POOLING = "global_average"


@dataclasses.dataclass(frozen=True)
class EmbeddingsMeta:
    """What the embeddings were computed with."""

    backbone: str
    weights: str
    fingerprint: str  # Backbone.fingerprint(): architecture, input size and every weight
    image_size: int
    dims: int
    count: int
    pooling: str = POOLING


@dataclasses.dataclass(frozen=True)
class StoredEmbeddings:
    meta: EmbeddingsMeta
    sha256: np.ndarray  # (n,) str
    image_sha256: np.ndarray  # (n,) str
    pooled: np.ndarray  # (n, dims) float32

    def by_sha256(self) -> dict[str, tuple[str, np.ndarray]]:
        """``{record sha256: (model JPEG sha256, embedding)}``."""
        return {
            str(s): (str(d), self.pooled[i])
            for i, (s, d) in enumerate(zip(self.sha256, self.image_sha256, strict=True))
        }


def directory(examples_uri: str) -> str:
    return os.path.join(examples_uri, layout.EMBEDDINGS_DIR)


def examples_uri_of(file_pattern: str) -> str:
    """The Examples artifact a TFX split file pattern (``<uri>/Split-train/*``) reads from."""
    split_dir = os.path.dirname(file_pattern)
    if not os.path.basename(split_dir).startswith("Split-"):
        raise ValueError(f"{file_pattern!r} is not a pattern inside an Examples artifact's Split-* folder")
    return os.path.dirname(split_dir)


def write(
    examples_uri: str,
    meta: EmbeddingsMeta,
    sha256: Sequence[str],
    image_sha256: Sequence[str],
    pooled: np.ndarray,
) -> str:
    """Write the embeddings of the kept images; returns their directory."""
    pooled = np.asarray(pooled, dtype=np.float32)
    if not len(sha256) == len(image_sha256) == len(pooled) == meta.count:
        raise ValueError("embeddings: sha256, image_sha256, vectors and count disagree")
    if pooled.size and pooled.shape[1] != meta.dims:
        raise ValueError(f"embeddings: vectors have {pooled.shape[1]} dims, meta says {meta.dims}")
    out = directory(examples_uri)
    fileio.makedirs(out)
    buf = io.BytesIO()
    np.savez(
        buf,
        sha256=np.asarray(list(sha256), dtype="<U64"),
        image_sha256=np.asarray(list(image_sha256), dtype="<U64"),
        pooled=pooled.reshape(len(sha256), meta.dims),
    )
    with fileio.open(os.path.join(out, VECTORS_FILE), "wb") as f:
        f.write(buf.getvalue())
    with fileio.open(os.path.join(out, META_FILE), "w") as f:
        f.write(json.dumps(dataclasses.asdict(meta), indent=2) + "\n")
    return out


def read(examples_uri: str) -> StoredEmbeddings | None:
    """The stored embeddings, or None when the artifact has none (no curation ran)."""
    d = directory(examples_uri)
    meta_path, vectors_path = os.path.join(d, META_FILE), os.path.join(d, VECTORS_FILE)
    if not (fileio.exists(meta_path) and fileio.exists(vectors_path)):
        return None
    with fileio.open(meta_path, "r") as f:
        meta = EmbeddingsMeta(**json.loads(f.read()))
    with fileio.open(vectors_path, "rb") as f:
        arrays = np.load(io.BytesIO(f.read()), allow_pickle=False)
        return StoredEmbeddings(meta, arrays["sha256"], arrays["image_sha256"], arrays["pooled"])
