"""The curation step: after decoding and exact deduplication, before balancing and the
split. One embedding pass of the configured pretrained backbone over the unique pictures,
then near duplicates confirmed by embeddings and label issues pruned
(:mod:`components.cleaner.curate`). Without a pretrained backbone (``tiny``, ``weights
none``, ``clean.curate`` off, or weights that cannot be loaded) it falls back to the
pHash rule alone, prunes nothing, and says so in the report (``curation.mode`` =
``phash_only`` with its ``reason``).

Runs in the executor process; TensorFlow is imported only when there is a backbone to
run (:mod:`components.backbones.embed`), never in a Beam worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from keyclass.components.classes import ClassList
from keyclass.components.cleaner import curate, dedup, funnel
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.components.embeddings import EmbeddingsMeta

EMBEDDING = "embedding"
PHASH_ONLY = "phash_only"


def not_pretrained_reason(backbone: str, weights: str) -> str:
    """Why ``backbone`` with ``weights`` gives meaningless embeddings, or "" when it is
    pretrained (ImageNet weights, or a weights file the user supplied)."""
    if backbone == "tiny":
        return "backbone tiny has random weights (a test backbone with no pretrained weights)"
    if weights == "none":
        return f"backbone {backbone} has random weights (weights none)"
    return ""


# Loads the model JPEGs of the given file hashes: {sha256: JPEG bytes}.
JpegLoader = Callable[[Collection[str]], Mapping[str, bytes]]


@dataclasses.dataclass
class KeptEmbeddings:
    """The pooled embeddings of the kept pictures, for the Trainer."""

    meta: EmbeddingsMeta
    sha256: list[str]
    image_sha256: list[str]
    pooled: np.ndarray


@dataclasses.dataclass
class CurationResult:
    decisions: list[funnel.Decision]  # in record order
    report: dict[str, Any]  # the report's ``curation`` block
    embeddings: KeptEmbeddings | None  # None in phash_only mode


def _near_duplicate_block(settings: CleanerSettings, mode: str, stats: curate.NearDuplicateStats | None) -> dict:
    if mode == PHASH_ONLY:
        return {"rule": "phash", "phash_bits": dedup.HASH_BITS, "max_distance": settings.near_duplicate_distance}
    assert stats is not None
    return {
        "rule": "phash_candidates_confirmed_by_embeddings",
        "phash_bits": dedup.HASH_BITS,
        "candidate_distance": settings.near_duplicate_candidate_distance,
        "close_distance": settings.near_duplicate_close_distance,
        "min_cosine": settings.near_duplicate_min_cosine,
        "far_min_cosine": settings.near_duplicate_far_min_cosine,
        "candidate_pairs": stats.candidates,
        "confirmed_pairs": stats.confirmed,
    }


def _block(settings: CleanerSettings, mode: str, reason: str, near: dict, labels: dict, **extra: Any) -> dict:
    return {
        "mode": mode,
        "reason": reason,
        "backbone": settings.backbone,
        "weights": settings.weights,
        "image_size": settings.image_size,
        "near_duplicate": near,
        "label_issues": labels,
        **extra,
    }


def phash_only(
    records: Sequence[funnel.Record],
    metas: Mapping[str, funnel.ImageMeta],
    settings: CleanerSettings,
    reason: str,
) -> CurationResult:
    """Today's rule: pHash within ``near_duplicate_distance``, no label issues."""
    logging.warning("ImageCleaner: no curation (%s); near duplicates by pHash only", reason)
    screened = funnel.screen(
        records, metas, classes=settings.classes, min_width=settings.min_width, min_height=settings.min_height
    )
    grouped = funnel.group(screened, funnel.phash_links(screened.phashes(metas), settings.near_duplicate_distance))
    out = funnel.finish(
        grouped,
        classes=settings.classes,
        balance=settings.balance,
        eval_fraction=settings.eval_fraction,
        calibration_fraction=settings.calibration_fraction,
    )
    block = _block(
        settings,
        PHASH_ONLY,
        reason,
        _near_duplicate_block(settings, PHASH_ONLY, None),
        curate.nothing_pruned(settings.classes, settings.max_label_issue_fraction, reason),
    )
    return CurationResult([out[r.index] for r in records], block, None)


def curate_with_embeddings(
    records: Sequence[funnel.Record],
    metas: Mapping[str, funnel.ImageMeta],
    settings: CleanerSettings,
    load_jpegs: JpegLoader,
    embedder: Any,
) -> CurationResult:
    """One pass of ``embedder`` (:class:`embed.Embedder`, or anything with its call and
    ``backbone``) over the unique pictures; then confirmed near duplicates and label issues."""
    classes = ClassList(settings.classes)
    screened = funnel.screen(
        records, metas, classes=settings.classes, min_width=settings.min_width, min_height=settings.min_height
    )
    files = [screened.representative(key).sha256 for key in screened.order]
    jpegs = load_jpegs(set(files))
    missing = sorted(set(files) - set(jpegs))
    if missing:
        raise RuntimeError(f"ImageCleaner: no model JPEG staged for {len(missing)} decoded files, e.g. {missing[0]}")

    t0 = time.perf_counter()
    emb = embedder([jpegs[sha] for sha in files])
    t1 = time.perf_counter()
    links, stats = curate.confirmed_links(
        screened.phashes(metas),
        curate.duplicate_embedding(emb.pooled, emb.layout),
        candidate_distance=settings.near_duplicate_candidate_distance,
        close_distance=settings.near_duplicate_close_distance,
        min_cosine=settings.near_duplicate_min_cosine,
        far_min_cosine=settings.near_duplicate_far_min_cosine,
    )
    grouped = funnel.group(screened, links)
    t2 = time.perf_counter()

    position = {key: pos for pos, key in enumerate(screened.order)}
    items = sorted((key, cls) for cls, pairs in grouped.unique.items() for key, _ in pairs)
    result = curate.find_label_issues(
        emb.pooled[[position[key] for key, _ in items]] if items else np.zeros((0, emb.pooled.shape[1]), np.float32),
        [classes.label(cls) for _, cls in items],
        classes.names,
        folds=settings.label_issue_folds,
        off_topic_p_value=settings.off_topic_p_value,
        max_fraction=settings.max_label_issue_fraction,
    )
    issues = {items[pos][0]: issue for pos, issue in result.issues.items()}
    out = funnel.finish(
        grouped,
        classes=settings.classes,
        balance=settings.balance,
        eval_fraction=settings.eval_fraction,
        calibration_fraction=settings.calibration_fraction,
        label_issues=issues,
    )
    t3 = time.perf_counter()

    decisions = [out[r.index] for r in records]
    kept_keys = {key for pairs in grouped.unique.values() for key, r in pairs if out[r.index].outcome == funnel.KEPT}
    kept = sorted((screened.representative(key).sha256, position[key]) for key in kept_keys)
    meta = EmbeddingsMeta(
        backbone=settings.backbone,
        weights=settings.weights,
        fingerprint=embedder.backbone.fingerprint(),
        image_size=settings.image_size,
        dims=int(emb.pooled.shape[1]),
        count=len(kept),
    )
    embeddings = KeptEmbeddings(
        meta,
        [sha for sha, _ in kept],
        [hashlib.sha256(jpegs[sha]).hexdigest() for sha, _ in kept],
        emb.pooled[[pos for _, pos in kept]] if kept else np.zeros((0, meta.dims), np.float32),
    )
    block = _block(
        settings,
        EMBEDDING,
        "",
        _near_duplicate_block(settings, EMBEDDING, stats),
        curate.label_issue_summary(result, settings.max_label_issue_fraction, settings.off_topic_p_value),
        images_embedded=len(files),
        seconds={
            "embedding": round(t1 - t0, 3),
            "near_duplicates": round(t2 - t1, 3),
            "label_issues": round(t3 - t2, 3),
        },
    )
    logging.info(
        "ImageCleaner: curated %d pictures with %s: %d of %d candidate pairs confirmed near copies; label issues %s",
        len(files),
        settings.backbone,
        stats.confirmed,
        stats.candidates,
        result.per_class,
    )
    return CurationResult(decisions, block, embeddings)


def curate_records(
    records: Sequence[funnel.Record],
    metas: Mapping[str, funnel.ImageMeta],
    settings: CleanerSettings,
    load_jpegs: JpegLoader,
) -> CurationResult:
    """The curation step for ``settings``: with the backbone's embeddings when it is
    pretrained and can be loaded, else the pHash-only fallback with its reason."""
    if not settings.curate:
        return phash_only(records, metas, settings, "clean.curate is off")
    reason = not_pretrained_reason(settings.backbone, settings.weights)
    if reason:
        return phash_only(records, metas, settings, reason)
    from keyclass.components.backbones import embed

    try:
        embedder = embed.Embedder.build(
            settings.backbone, settings.image_size, settings.weights, settings.embedding_batch_size
        )
    except Exception as e:  # noqa: BLE001 - Keras' weight download raises a bare Exception; the run goes on
        return phash_only(
            records, metas, settings, f"backbone {settings.backbone}: weights {settings.weights} not loaded ({e})"
        )
    return curate_with_embeddings(records, metas, settings, load_jpegs, embedder)
