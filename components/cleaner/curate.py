"""Curation decisions from embeddings, as pure functions (numpy, scikit-learn, cleanlab).

**Near duplicates** (:func:`confirmed_links`): candidate pairs are pictures whose 64-bit
pHashes are within ``candidate_distance`` bits, found by multi-index hashing
(:func:`dedup.near_pairs`; never all pairs). A candidate is a near copy when the cosine
of the two pictures' *duplicate embeddings* reaches ``min_cosine``, or ``far_min_cosine``
when the hashes are more than ``close_distance`` bits apart: the two signals are
evidence that adds up, so hashes that agree less need embeddings that agree more. The duplicate
embedding (:func:`duplicate_embedding`) joins the unit pooled embedding and the unit
layout embedding, scaled by 1/sqrt(2): its cosine is the mean of the pooled cosine (robust
to crops and re-encoding of textured photos) and the layout cosine (which tells apart two
look-alike objects posed alike).

**Label issues** (:func:`find_label_issues`), out of fold: K stratified folds (the
backbone ran once; only small models are fitted K times on the unit pooled embeddings).
For each fold, on the other folds:

- a logistic regression gives predicted probabilities, and cleanlab's core API flags
  ``mislabelled`` pictures: ``cleanlab.filter.find_label_issues(labels, pred_probs,
  filter_by="prune_by_noise_rate")``, those that confidently look like another class;
  their label quality is ``cleanlab.rank.get_label_quality_scores`` (the probability of
  their own class) and the class they look like is the most probable one;
- class-conditional Gaussians (Lee et al. 2018's Mahalanobis detector: PCA to
  ``OFF_TOPIC_DIMS`` dimensions, one mean per class from its 80 % most central
  pictures, one shared Ledoit-Wolf covariance) flag ``off_topic`` pictures: those whose
  squared Mahalanobis distance to their own class's mean exceeds the bound a new picture
  of a Gaussian class exceeds with probability ``off_topic_p_value`` (Hotelling's
  prediction bound, which allows for the estimated mean and covariance), and that the
  classifier, never having seen them, finds more likely not of their class (label
  quality below ``OFF_TOPIC_MAX_QUALITY`` = 0.5); or whose distance exceeds the bound
  at ``OFF_TOPIC_ALONE_P_VALUE`` = 0.001 whatever the classifier says. Pictures of no
  class at all land here; confident learning cannot count them, since they confidently
  look like no class. The classifier's vote keeps an unusual picture it still
  recognises at the looser bound; at the stricter one a picture of the class lands
  beyond by chance once in a thousand, so no vote is needed, and with two classes
  (where the classifier gives a picture of neither class a coin toss) it is the rule
  that finds the far ones.

At most ``max_fraction`` of a class is pruned, lowest label quality first; the classes
where that cap bit are reported.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np

from keyclass.components.cleaner import dedup
from keyclass.components.cleaner.funnel import LabelIssue, Link

MISLABELLED = "mislabelled"
OFF_TOPIC = "off_topic"
CLASSIFIER_C = 10.0  # inverse L2 strength of the logistic regression on unit embeddings
CLASSIFIER_MAX_ITER = 1000


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def duplicate_embedding(pooled: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """Unit rows whose cosine is the mean of the pooled and the layout cosines."""
    return np.concatenate([unit_rows(pooled), unit_rows(layout)], axis=1) / np.float32(math.sqrt(2.0))


def pair_cosines(emb: np.ndarray, pairs: Sequence[tuple[int, int]], chunk: int = 2048) -> np.ndarray:
    """The cosine of each pair of rows of ``emb`` (unit rows), in chunks to bound memory."""
    out = np.empty(len(pairs), dtype=np.float64)
    idx = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    for s in range(0, len(idx), chunk):
        i, j = idx[s : s + chunk, 0], idx[s : s + chunk, 1]
        out[s : s + chunk] = np.einsum("nd,nd->n", emb[i], emb[j], dtype=np.float64)
    return out


@dataclasses.dataclass(frozen=True)
class NearDuplicateStats:
    candidates: int  # pairs within the candidate distance
    confirmed: int  # of which the embeddings confirmed


def confirmed_links(
    hashes: Sequence[int],
    dup_embedding: np.ndarray,
    *,
    candidate_distance: int,
    close_distance: int,
    min_cosine: float,
    far_min_cosine: float,
) -> tuple[dict[tuple[int, int], Link], NearDuplicateStats]:
    """Pairs of positions (``i < j``) that are near copies, with both figures: pHash
    candidates whose duplicate embeddings' cosine reaches ``min_cosine`` (within
    ``close_distance`` bits) or ``far_min_cosine`` (farther)."""
    hashes = list(hashes)
    if len(hashes) != len(dup_embedding):
        raise ValueError(f"{len(hashes)} hashes but {len(dup_embedding)} embeddings")
    pairs = dedup.near_pairs(hashes, candidate_distance)
    cosines = pair_cosines(dup_embedding, pairs)
    links = {}
    for (i, j), c in zip(pairs, cosines, strict=True):
        distance = dedup.hamming(hashes[i], hashes[j])
        if c >= (min_cosine if distance <= close_distance else far_min_cosine):
            links[(i, j)] = Link(distance, float(c))
    return links, NearDuplicateStats(len(pairs), len(links))


OFF_TOPIC_DIMS = 16  # PCA dimensions of the class-conditional Gaussians
OFF_TOPIC_TRIM = 0.2  # each class's mean is refitted on its 80 % most central pictures
OFF_TOPIC_MAX_QUALITY = 0.5  # ...and only pictures the classifier finds more likely not of their class
OFF_TOPIC_ALONE_P_VALUE = 0.001  # ...unless they lie beyond the bound at this p-value: off-topic on distance alone


def _class_distances(
    x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray, y: np.ndarray, dims: int, p_values: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Squared Mahalanobis distance of each ``x`` to its class ``y``'s mean, under
    Gaussians fitted on (``x_fit``, ``y_fit``): PCA to ``dims``, a shared Ledoit-Wolf
    covariance, class means refitted once on each class's most central pictures; and for
    each, (n, len(p_values)), the distances a new picture of its class exceeds with
    probability ``p_values``.

    That limit is Hotelling's prediction bound, not the chi-square quantile: the mean and
    covariance are estimates from a few hundred pictures, so a new picture lands farther
    out than the fitted ones (by ``(1 + 1/n_c) nu d / (nu - d + 1) F(d, nu - d + 1)``
    for ``n_c`` pictures of its class and ``nu`` degrees of freedom of the covariance)."""
    from scipy.stats import f as f_dist
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, svd_solver="randomized", random_state=0).fit(x_fit)
    z_fit, z = pca.transform(x_fit), pca.transform(x)
    classes = np.unique(y_fit)
    keep = np.ones(len(y_fit), dtype=bool)
    for _ in range(2):
        means = {c: z_fit[keep & (y_fit == c)].mean(axis=0) for c in classes}
        sizes = {c: int((keep & (y_fit == c)).sum()) for c in classes}
        residuals = np.concatenate([z_fit[keep & (y_fit == c)] - means[c] for c in classes])
        precision = LedoitWolf().fit(residuals).precision_
        centred = z_fit - np.stack([means[c] for c in y_fit])
        d_fit = np.einsum("nd,de,ne->n", centred, precision, centred)
        keep = np.zeros(len(y_fit), dtype=bool)
        for c in classes:
            members = np.flatnonzero(y_fit == c)
            central = members[np.argsort(d_fit[members], kind="stable")]
            keep[central[: max(2, int(round(len(members) * (1 - OFF_TOPIC_TRIM))))]] = True
    centred = z - np.stack([means[c] for c in y])
    nu = len(residuals) - len(classes)
    dof = max(1, nu - dims + 1)
    scale = np.array([nu * dims / dof * float(f_dist.ppf(1.0 - p, dims, dof)) for p in p_values])
    limits = np.array([(1.0 + 1.0 / sizes[c]) * scale for c in y]).reshape(len(y), len(p_values))
    return np.einsum("nd,de,ne->n", centred, precision, centred), limits


def out_of_fold_scores(
    features: np.ndarray, labels: np.ndarray, folds: int, p_values: Sequence[float], seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out of fold (stratified): (n, K) logistic-regression probabilities, each picture's
    squared Mahalanobis distance to its class and, (n, len(p_values)), the distances a
    picture of its class exceeds with probability ``p_values``. ``labels`` are 0..K-1,
    every class present at least ``folds`` times."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = unit_rows(features)
    k = int(labels.max()) + 1
    probs = np.zeros((len(labels), k), dtype=np.float64)
    distances = np.zeros(len(labels), dtype=np.float64)
    limits = np.zeros((len(labels), len(p_values)), dtype=np.float64)
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, labels))
    dims = max(1, min(OFF_TOPIC_DIMS, int(min(len(train) for train, _ in splits) * (1 - OFF_TOPIC_TRIM)) - k - 1))
    for train, test in splits:
        clf = LogisticRegression(C=CLASSIFIER_C, max_iter=CLASSIFIER_MAX_ITER)
        clf.fit(x[train], labels[train])
        probs[np.ix_(test, clf.classes_)] = clf.predict_proba(x[test])
        distances[test], limits[test] = _class_distances(x[train], labels[train], x[test], labels[test], dims, p_values)
    return probs, distances, limits


@dataclasses.dataclass
class LabelIssues:
    """Per position: the issue (or none); and the report's figures."""

    issues: dict[int, LabelIssue]
    per_class: dict[str, int]  # pruned per class (after the cap)
    flagged: dict[str, int]  # found per class (before the cap)
    cap_hit: list[str]
    by_rule: dict[str, int]
    folds: int = 0
    off_topic_limit: float | None = None  # median squared Mahalanobis distance beyond which a picture is off-topic
    off_topic_alone_limit: float | None = None  # ...and beyond which it is, whatever the classifier says
    skipped: str = ""  # why no classifier ran ("" when it did)


def find_label_issues(
    features: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    *,
    folds: int,
    off_topic_p_value: float,
    max_fraction: float,
    seed: int = 0,
) -> LabelIssues:
    """Label issues among pictures with embeddings ``features`` and labels (indices into
    ``class_names``). Deterministic for the same inputs in the same order."""
    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    counts = {name: int((labels == i).sum()) for i, name in enumerate(class_names)}
    zero = {name: 0 for name in class_names}
    present = [i for i, name in enumerate(class_names) if counts[name] > 0]
    smallest = min((counts[class_names[i]] for i in present), default=0)
    usable = min(folds, smallest)
    if len(present) < 2:
        return LabelIssues({}, zero, dict(zero), [], {}, skipped="fewer than two classes have images")
    if usable < 2:
        return LabelIssues({}, zero, dict(zero), [], {}, skipped="a class has fewer than two images")

    # Classes without images take no part: re-index the present ones 0..K'-1.
    remap = np.full(len(class_names), -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    y = remap[labels]
    probs, distances, limits = out_of_fold_scores(
        features, y, usable, (off_topic_p_value, min(off_topic_p_value, OFF_TOPIC_ALONE_P_VALUE)), seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns on tiny or perfectly clean classes
        # One process: cleanlab's worker pool costs more than it saves at these sizes.
        mislabelled = cleanlab_find(y, probs, filter_by="prune_by_noise_rate", n_jobs=1)
        quality = get_label_quality_scores(y, probs)
    suggested = probs.argmax(axis=1)
    off_topic = ((distances > limits[:, 0]) & (quality < OFF_TOPIC_MAX_QUALITY)) | (distances > limits[:, 1])

    flagged_by_class: dict[int, list[int]] = {i: [] for i in range(len(present))}
    for pos in np.flatnonzero(mislabelled | off_topic):
        flagged_by_class[int(y[pos])].append(int(pos))
    issues: dict[int, LabelIssue] = {}
    per_class, flagged, cap_hit = dict(zero), dict(zero), []
    for c, positions in flagged_by_class.items():
        name = class_names[present[c]]
        flagged[name] = len(positions)
        cap = int(math.floor(max_fraction * counts[name] + 1e-9))
        if len(positions) > cap:
            cap_hit.append(name)
            positions = sorted(positions, key=lambda p: (quality[p], p))[:cap]
        per_class[name] = len(positions)
        for pos in positions:
            rule = MISLABELLED if mislabelled[pos] else OFF_TOPIC
            issues[pos] = LabelIssue(
                quality=float(quality[pos]),
                suggested_class=class_names[present[int(suggested[pos])]],
                rule=rule,
                note=(
                    f"class distance {distances[pos]:.1f} (off-topic beyond {limits[pos, 0]:.1f} if doubted, "
                    f"{limits[pos, 1]:.1f} alone)"
                ),
            )
    by_rule = {MISLABELLED: 0, OFF_TOPIC: 0}
    for issue in issues.values():
        by_rule[issue.rule] += 1
    return LabelIssues(
        issues,
        per_class,
        flagged,
        sorted(cap_hit),
        by_rule,
        folds=usable,
        off_topic_limit=float(np.median(limits[:, 0])),
        off_topic_alone_limit=float(np.median(limits[:, 1])),
    )


def label_issue_summary(result: LabelIssues, cap: float, off_topic_p_value: float | None) -> dict[str, object]:
    """The report's ``curation.label_issues`` block."""
    return {
        "per_class": dict(result.per_class),
        "cap": cap,
        "cap_hit": list(result.cap_hit),
        "flagged_before_cap": dict(result.flagged),
        "by_rule": dict(result.by_rule),
        "folds": result.folds,
        "off_topic_p_value": off_topic_p_value,
        "off_topic_distance_limit": None if result.off_topic_limit is None else round(result.off_topic_limit, 3),
        "off_topic_alone_p_value": None
        if off_topic_p_value is None
        else min(off_topic_p_value, OFF_TOPIC_ALONE_P_VALUE),
        "off_topic_alone_distance_limit": None
        if result.off_topic_alone_limit is None
        else round(result.off_topic_alone_limit, 3),
        "skipped": result.skipped,
    }


def nothing_pruned(class_names: Sequence[str], cap: float, reason: str) -> dict[str, object]:
    """The ``curation.label_issues`` block when no classifier ran."""
    zero = {name: 0 for name in class_names}
    return label_issue_summary(LabelIssues({}, zero, dict(zero), [], {}, skipped=reason), cap, None)
