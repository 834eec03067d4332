"""Temperature scaling, ECE and the risk-coverage curve: how far a model's confidences
can be read as probabilities, measured on held-out images (pure numpy/scipy)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

ECE_BINS = 15
DEFAULT_CONFIDENCE = 0.9  # 1 - δ
# The temperature is searched in [1/20, 20], wide for any real over- or under-confidence.
TEMPERATURE_BOUNDS = (0.05, 20.0)
# A log-normal prior on T, centred at 1 with this standard deviation in log T: the fit is
# the posterior mode. With hundreds of images it is the NLL minimum to within a few
# percent; on a small, perfectly separated split (the NLL then falls forever as T -> 0,
# to confidences of exactly 1) it stays at a finite, modest sharpening.
TEMPERATURE_PRIOR_SIGMA = 1.0
# The share of the calibration split that fits the temperature (the rest certifies),
# at most TEMPERATURE_PART_CAP images: one parameter needs a few hundred at most.
TEMPERATURE_SHARE = 0.25
TEMPERATURE_PART_CAP = 300


# Temperature scaling -----------------------------------------------------------------
def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64, stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(z)), np.asarray(labels, dtype=np.int64)]))


def fit_temperature(
    logits: np.ndarray,
    labels: np.ndarray,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    prior_sigma: float | None = TEMPERATURE_PRIOR_SIGMA,
) -> float:
    """The temperature T minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017),
    plus ``(log T)^2 / (2 prior_sigma^2)`` against the summed NLL (a log-normal prior;
    None for the plain maximum likelihood).

    The NLL is convex in 1/T, and so is the objective in log T, so a bounded scalar
    search over log T finds the global minimum. Returns NaN when there is nothing to fit
    on or the logits are not finite: a failed calibration, which the Pusher refuses.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or len(logits) == 0 or len(labels) != len(logits) or not np.isfinite(logits).all():
        return math.nan
    weight = 0.0 if prior_sigma is None else 1.0 / (2.0 * prior_sigma**2 * len(logits))

    def objective(s: float) -> float:
        return nll(logits, labels, math.exp(s)) + weight * s * s

    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    s = float(minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}).x)
    # The bounded search never evaluates the bounds themselves; a minimum there (a
    # perfectly separated split without the prior) is reported at the bound.
    s = min((lo, s, hi), key=objective)
    return bounds[0] if s == lo else bounds[1] if s == hi else math.exp(s)


def temperature_part(
    keys: Sequence[str], share: float = TEMPERATURE_SHARE, cap: int = TEMPERATURE_PART_CAP
) -> np.ndarray:
    """Which calibration images fit the temperature (True) rather than certify (False):
    the ``min(cap, round(share * n))`` smallest ``sha256("temperature:" + key)``, at least
    one of each when there are two images or more. A function of the image hashes
    alone, so it is independent of the model's answers."""
    import hashlib

    n = len(keys)
    count = min(cap, round(share * n))
    if n >= 2:
        count = min(max(count, 1), n - 1)
    ranks = sorted(range(n), key=lambda i: (hashlib.sha256(f"temperature:{keys[i]}".encode()).hexdigest(), i))
    mask = np.zeros(n, dtype=bool)
    mask[ranks[:count]] = True
    return mask


def hash_folds(keys: Sequence[str], folds: int) -> np.ndarray:
    """Each image's fold, 0..folds-1: the images ranked by ``sha256("fold:" + key)`` and
    dealt out in turn, so the folds are as even as can be and depend on the hashes
    alone (not on the model's answers)."""
    import hashlib

    ranks = sorted(range(len(keys)), key=lambda i: (hashlib.sha256(f"fold:{keys[i]}".encode()).hexdigest(), i))
    out = np.zeros(len(keys), dtype=np.int64)
    out[ranks] = np.arange(len(keys)) % folds
    return out


# ECE and reliability ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float  # mean confidence in the bin (NaN when empty)
    accuracy: float  # fraction correct in the bin (NaN when empty)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """Equal-width confidence bins over [0, 1]: bin m holds (m/B, (m+1)/B] (the first
    also holds 0), as in Guo et al. 2017."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = _bin_index(conf, bins)
    out = []
    for m in range(bins):
        sel = index == m
        n = int(sel.sum())
        out.append(
            ReliabilityBin(
                float(edges[m]),
                float(edges[m + 1]),
                n,
                float(conf[sel].mean()) if n else math.nan,
                float(ok[sel].mean()) if n else math.nan,
            )
        )
    return out


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over bins of (bin share) x |accuracy - confidence|.
    NaN for no predictions."""
    n = len(np.asarray(confidence))
    if n == 0:
        return math.nan
    return float(
        sum(b.count / n * abs(b.accuracy - b.confidence) for b in reliability(confidence, correct, bins) if b.count)
    )


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)


def ece_change_lower_bound(
    raw_confidence: np.ndarray,
    confidence: np.ndarray,
    correct: np.ndarray,
    confidence_level: float = DEFAULT_CONFIDENCE,
    bins: int = ECE_BINS,
    resamples: int = 1000,
    seed: int = 0,
) -> float:
    """A lower confidence bound (paired percentile bootstrap over the images) on
    ECE(after scaling) - ECE(before): above 0 means scaling made calibration worse by
    more than the sampling noise of a few hundred images explains. ECE with 15 bins on
    300 images moves by a few points from sample to sample, so "after > before" alone
    is a coin toss whenever the best temperature is near 1. NaN for no images."""
    raw = np.asarray(raw_confidence, dtype=np.float64)
    cal_conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    n = len(ok)
    if n == 0:
        return math.nan
    rng = np.random.default_rng(seed)
    bin_raw, bin_cal = _bin_index(raw, bins), _bin_index(cal_conf, bins)

    def fast_ece(index: np.ndarray, conf: np.ndarray, weights: np.ndarray) -> float:
        count = np.bincount(index, weights, bins)
        gap = np.bincount(index, weights * conf, bins) - np.bincount(index, weights * ok, bins)
        return float(np.abs(gap).sum() / count.sum())

    deltas = np.empty(resamples)
    for b in range(resamples):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        deltas[b] = fast_ece(bin_cal, cal_conf, w) - fast_ece(bin_raw, raw, w)
    return float(np.quantile(deltas, 1.0 - confidence_level))


# Risk-coverage ------------------------------------------------------------------------
def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk) keeping the k most confident predictions, k = 1..N.
    Ties in confidence are kept together (a threshold cannot split them)."""
    conf = np.asarray(confidence, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    n = len(conf)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    errors = np.cumsum(wrong[order])
    # Tied confidences form contiguous groups; each member takes its group's last index.
    _, first, counts = np.unique(-conf[order], return_index=True, return_counts=True)
    group_end = np.repeat(first + counts - 1, counts)
    return (group_end + 1) / n, errors[group_end] / (group_end + 1)


def aurc(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019): the mean selective
    risk over coverages 1/N..1. Lower is better; NaN for no predictions."""
    _, risk = risk_coverage(confidence, correct)
    return float(risk.mean()) if len(risk) else math.nan
