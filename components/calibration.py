"""Confidence you can trust: temperature scaling, ECE, risk-coverage and a threshold
certified for a target precision (Learn-then-Test), as pure numpy/scipy functions.

Who uses what:

- the Trainer fits one temperature ``T`` on the eval split's logits
  (:func:`fit_temperature`), measures ECE before and after on the calibration split,
  and certifies thresholds for :data:`STANDARD_TARGETS` there (:func:`certify`);
- the Pusher refuses a model whose calibration failed (:func:`calibration_problem`);
- ``keyclass predict`` turns ``--target-precision`` into a threshold from the scores
  the model carries (:func:`certify`), and reports the certified lower bound at any
  ``-t`` (:func:`precision_lower_bound`), ECE and AURC on labelled folders.

**Which images for what.** The calibration split (no training step, early stopping or
model choice saw it) is cut by image hash (:func:`temperature_part`) into a small part
that fits T and a larger part that measures ECE and certifies. Not the eval split for
T: early stopping chose the epoch by the eval split's NLL, which pins its best
temperature near 1 whatever the model does on new images (measured: T = 1.000 on eval
against 0.85 on 5,000 new images, ``benchmarks/bench_calibration.py``).

**What "certified" means.** Precision at a threshold λ is the accuracy of the
predictions whose (calibrated) confidence is at least λ. For a target P and a
confidence level 1 - δ, :func:`certify` returns the lowest grid λ such that, with
probability at least 1 - δ over the draw of the calibration images, *every* λ it
accepted has population precision at least P. Learn-then-Test (Angelopoulos, Bates,
Candès, Jordan, Lei 2021): for each λ the null hypothesis "precision(λ) < P" gets the
exact binomial p-value ``P(Bin(n, 1-P) <= errors)`` over the n calibration images kept at
λ; the hypotheses are tested in a fixed sequence from high λ down, each at level δ,
stopping at the first one not rejected (family-wise error at most δ).

The sequence starts where it is most likely to succeed: at the λ whose p-value is
smallest on a *pilot* set, the eval split and the temperature part (split
fixed-sequence testing, as MAPIE's ``learn_fixed_sequence_order``). Both are
independent of the certifying images, so the order (and T) is fixed before those are
looked at and the guarantee holds exactly; a biased pilot can only make the order
worse, never the certificate wrong. Starting at the very top of the grid instead would
stop at once whenever few images reach 0.9999.

**Two classes.** There ``max softmax(z / T) = sigmoid(|z1 - z2| / T)``: every temperature
orders the images alike, so a threshold on the calibrated confidence keeps exactly the
images some threshold on the raw one (T = 1) keeps. Certification then runs on the raw
confidence, which no fitted parameter touched, over *every* calibration image (the
temperature part too, a quarter more images), with the eval split alone as the pilot;
the certified raw threshold is served as ``sigmoid(logit(λ) / T)`` (:func:`served_threshold`).
With three classes or more the order depends on T, so the temperature part stays out.

Assumption: the images to be predicted are drawn from the same distribution as the
calibration split (the crawled, cleaned images). Nothing is promised under a
distribution shift, for one class alone, or for one image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

ECE_BINS = 15
DEFAULT_CONFIDENCE = 0.9  # 1 - δ
# Targets whose certified thresholds `keyclass train` records in the model's metadata.
STANDARD_TARGETS = (0.95, 0.99, 0.995)
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
PILOT = "pilot"  # scores key of the images that ordered the test (eval + temperature part)
# Fallback precisions named when a target cannot be certified.
_FALLBACK_TARGETS = (0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


def threshold_grid() -> np.ndarray:
    """The thresholds tested, ascending: 0 to 0.95 in steps of 0.01, then 40 steps
    evenly spaced in log(1 - λ) up to 0.9999, plus 0.99, 0.995, 0.999, 0.9995."""
    dense_top = 1 - np.logspace(np.log10(0.05), -4, 40)
    values = np.concatenate([np.linspace(0, 0.95, 96), dense_top, [0.99, 0.995, 0.999, 0.9995, 0.9999]])
    return np.unique(np.round(values, 6))


GRID = threshold_grid()


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


# Learn-then-Test --------------------------------------------------------------------------
def kept_and_errors(
    confidence: np.ndarray, correct: np.ndarray, grid: np.ndarray = GRID
) -> tuple[np.ndarray, np.ndarray]:
    """For each grid λ: how many predictions have confidence >= λ, and how many of
    those are wrong."""
    conf = np.asarray(confidence, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    order = np.argsort(conf)
    sorted_conf = conf[order]
    wrong_from = np.r_[np.cumsum(wrong[order][::-1])[::-1], 0]  # errors among sorted[i:]
    first = np.searchsorted(sorted_conf, np.asarray(grid, dtype=np.float64), side="left")
    return len(conf) - first, wrong_from[first]


def binomial_p_values(kept: np.ndarray, errors: np.ndarray, target: float) -> np.ndarray:
    """Exact p-values of "precision < target": P(Bin(kept, 1 - target) <= errors); 1 when
    nothing is kept."""
    from scipy.stats import binom

    kept = np.asarray(kept)
    p = binom.cdf(np.asarray(errors), kept, 1.0 - target)
    return np.where(kept > 0, p, 1.0)


def precision_lower_bound(
    confidence: np.ndarray, correct: np.ndarray, threshold: float, confidence_level: float = DEFAULT_CONFIDENCE
) -> float | None:
    """The one-sided Clopper-Pearson lower bound on precision at one threshold chosen
    before looking at the data (e.g. ``-t``): the lowest P the binomial test cannot
    reject at level 1 - ``confidence_level``. None when no calibration image is kept."""
    from scipy.stats import beta

    kept, errors = (int(v[0]) for v in kept_and_errors(confidence, correct, np.array([threshold])))
    if kept == 0:
        return None
    delta = 1.0 - confidence_level
    return 1.0 - float(beta.ppf(1.0 - delta, errors + 1, kept - errors)) if errors < kept else 0.0


@dataclasses.dataclass
class Certificate:
    """The outcome of certifying one target precision on one calibration set."""

    target: float
    confidence: float  # 1 - δ
    images: int  # calibration images
    threshold: float | None  # lowest certified λ; None when none is
    coverage: float | None  # share of calibration images kept at ``threshold``
    kept: int
    errors: int
    start: float  # where the fixed sequence began (from the pilot)
    stopped_at: float | None  # the first λ not rejected (None if the grid ran out)
    stopped_p_value: float | None

    @property
    def certified(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sequence_start(
    pilot_confidence: np.ndarray | None,
    pilot_correct: np.ndarray | None,
    target: float,
    grid: np.ndarray = GRID,
) -> int:
    """Index into ``grid`` where the fixed sequence starts: the λ with the smallest pilot
    p-value (the lowest such λ at a tie). Without a pilot, the top of the grid."""
    if pilot_confidence is None or len(pilot_confidence) == 0:
        return len(grid) - 1
    kept, errors = kept_and_errors(pilot_confidence, pilot_correct, grid)
    p = binomial_p_values(kept, errors, target)
    return int(np.flatnonzero(p == p.min())[0])


def certify(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float,
    confidence_level: float = DEFAULT_CONFIDENCE,
    *,
    pilot_confidence: np.ndarray | None = None,
    pilot_correct: np.ndarray | None = None,
    grid: np.ndarray = GRID,
    start: int | None = None,
) -> Certificate:
    """The lowest grid λ whose precision is certified >= ``target`` with probability
    ``confidence_level`` (Learn-then-Test, fixed sequence from ``start`` down).

    ``start`` (a grid index) defaults to :func:`sequence_start` on the pilot, which must
    be independent of ``confidence``/``correct`` for the guarantee to hold.
    """
    if not 0 < target < 1:
        raise ValueError(f"target precision must be in (0, 1), got {target}")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {confidence_level}")
    grid = np.asarray(grid, dtype=np.float64)
    delta = 1.0 - confidence_level
    if start is None:
        start = sequence_start(pilot_confidence, pilot_correct, target, grid)
    kept, errors = kept_and_errors(confidence, correct, grid)
    p = binomial_p_values(kept, errors, target)
    certified = None
    stopped, stopped_p = None, None
    for i in range(start, -1, -1):
        if p[i] <= delta:
            certified = i
        else:
            stopped, stopped_p = float(grid[i]), float(p[i])
            break
    n = len(np.asarray(confidence))
    if certified is None:
        return Certificate(target, confidence_level, n, None, None, 0, 0, float(grid[start]), stopped, stopped_p)
    return Certificate(
        target,
        confidence_level,
        n,
        float(grid[certified]),
        float(kept[certified] / n),
        int(kept[certified]),
        int(errors[certified]),
        float(grid[start]),
        stopped,
        stopped_p,
    )


def kept_needed(error_rate: float, target: float, confidence_level: float = DEFAULT_CONFIDENCE) -> int | None:
    """How many kept predictions at an observed ``error_rate`` the binomial test needs to
    certify ``target`` (230 at no errors for 0.99 at 90 %). None when the error rate is
    not below 1 - target: more images would not help."""
    from scipy.stats import binom

    alpha, delta = 1.0 - target, 1.0 - confidence_level
    if error_rate >= alpha:
        return None
    zero_errors = math.ceil(math.log(delta) / math.log1p(-alpha))
    if error_rate == 0:
        return zero_errors
    lo, hi = zero_errors, zero_errors
    while binom.cdf(math.floor(hi * error_rate), hi, alpha) > delta:
        lo, hi = hi, hi * 2
        if hi > 10**9:
            return None
    while lo < hi:  # first n passing; the floor makes it almost, not exactly, monotone
        mid = (lo + hi) // 2
        if binom.cdf(math.floor(mid * error_rate), mid, alpha) <= delta:
            hi = mid
        else:
            lo = mid + 1
    return hi


def images_needed(
    confidence: np.ndarray,
    correct: np.ndarray,
    target: float,
    confidence_level: float = DEFAULT_CONFIDENCE,
    grid: np.ndarray = GRID,
) -> int | None:
    """Roughly how many calibration images would certify ``target`` if the error rate and
    coverage observed at the best λ stayed as they are; None when every λ errs at least
    1 - target (a better model is needed, not more images)."""
    n = len(np.asarray(confidence))
    if n == 0:
        return None
    kept, errors = kept_and_errors(confidence, correct, grid)
    best = None
    for k, e in zip(kept.tolist(), errors.tolist(), strict=True):
        if k == 0:
            continue
        need = kept_needed(e / k, target, confidence_level)
        if need is not None:
            total = math.ceil(need * n / k)
            best = total if best is None else min(best, total)
    return best


def best_certifiable(
    confidence: np.ndarray,
    correct: np.ndarray,
    below: float,
    confidence_level: float = DEFAULT_CONFIDENCE,
    *,
    pilot_confidence: np.ndarray | None = None,
    pilot_correct: np.ndarray | None = None,
) -> Certificate | None:
    """The highest of a fixed list of precisions below ``below`` that can be certified
    (for the message when a target cannot), or None."""
    for t in _FALLBACK_TARGETS:
        if t < below:
            c = certify(
                confidence,
                correct,
                t,
                confidence_level,
                pilot_confidence=pilot_confidence,
                pilot_correct=pilot_correct,
            )
            if c.certified:
                return c
    return None


def refusal_message(
    target: float,
    confidence_level: float,
    confidence: np.ndarray,
    correct: np.ndarray,
    classes: int,
    *,
    pilot_confidence: np.ndarray | None = None,
    pilot_correct: np.ndarray | None = None,
    served: Callable[[float], float] | None = None,
) -> str:
    """What to tell a user whose target cannot be certified: the best it can certify,
    with its coverage, and roughly how many more held-out images per class would do.
    ``served`` turns a threshold in the scores' units into the one the model serves
    (:meth:`HeldOut.served`; the same when None)."""
    n = len(np.asarray(confidence))
    lines = [
        f"cannot certify precision >= {target:.2%} at {confidence_level:.0%} confidence from the "
        f"{n} held-out (calibration split) images this model was calibrated on"
    ]
    best = best_certifiable(
        confidence, correct, target, confidence_level, pilot_confidence=pilot_confidence, pilot_correct=pilot_correct
    )
    if best is not None:
        lines.append(
            f"the best it can certify: precision >= {best.target:.2%} at threshold "
            f"{(served or float)(best.threshold):.6g} "
            f"(coverage {best.coverage:.1%} of the held-out images)"
        )
    else:
        lines.append("it cannot certify any precision down to 50% (coverage 0%)")
    needed = images_needed(confidence, correct, target, confidence_level)
    if needed is None:
        lines.append(
            f"the model errs at >= {1 - target:.2%} at every threshold on the held-out images: more images "
            "will not certify it; a better model (or cleaner labels) is needed"
        )
    else:
        per_class = max(1, math.ceil((needed - n) / max(classes, 1)))
        lines.append(
            f"about {per_class} more held-out images per class (at the error rate seen) would certify "
            f"{target:.2%}: crawl more images (the calibration split is clean.calibration_fraction of them) "
            f"or raise clean.calibration_fraction, and retrain; or ask for a lower --target-precision"
        )
    return "; ".join(lines)


# The exported model's calibration record ------------------------------------------------
def metadata_block(
    *,
    temperature: float,
    ece_before: float,
    ece_after: float,
    images: int,
    certificates: Sequence[Certificate],
    confidence_level: float = DEFAULT_CONFIDENCE,
    scores: Mapping[str, Any] | None = None,
    temperature_images: int | None = None,
    ece_change_bound: float | None = None,
    certified_on: str = "calibrated",
) -> dict[str, Any]:
    """The ``calibration`` block of ``assets.extra/keyclass.json`` (the shared contract),
    plus the coverage of each certified threshold and the held-out scores that let
    ``predict`` certify other targets and bound any ``-t``. ``images`` counts the
    images ECE was measured on (the certificates too, unless certified on raw
    confidences); ``temperature_images`` those T was fitted on. ``certified_on``: :data:`RAW` when the certificates were found on raw
    confidences over every calibration image (two classes), their thresholds converted
    to served ones; each certificate's image count is in ``certificate_images``."""

    def num(x: float) -> float | None:
        return float(x) if x is not None and math.isfinite(x) else None

    return {
        "temperature": num(temperature),
        "ece_before": num(ece_before),
        "ece_after": num(ece_after),
        "ece_change_lower_bound": num(ece_change_bound),
        "bins": ECE_BINS,
        "images": int(images),
        "temperature_images": temperature_images,
        "confidence": float(confidence_level),
        "certified_thresholds": {_key(c.target): c.threshold for c in certificates},
        "certified_coverage": {_key(c.target): c.coverage for c in certificates},
        "certified_on": certified_on,
        "certificate_images": int(certificates[0].images) if certificates else int(images),
        "scores": dict(scores or {}),
    }


def _key(target: float) -> str:
    return f"{target:g}"


def score_record(
    confidence: np.ndarray, correct: np.ndarray, raw_confidence: np.ndarray | None = None
) -> dict[str, list]:
    """Calibrated confidences (float32 values, as the model serves them) and correctness,
    JSON-ready; with two classes also the raw confidences certification runs on."""
    conf = np.asarray(confidence, dtype=np.float32)
    out = {"confidence": [float(c) for c in conf], "correct": [bool(c) for c in np.asarray(correct, dtype=bool)]}
    if raw_confidence is not None:
        out["raw_confidence"] = [float(c) for c in np.asarray(raw_confidence, dtype=np.float32)]
    return out


def calibration_problem(block: Mapping[str, Any] | None) -> str | None:
    """Why a model's calibration failed (the Pusher refuses it), or None when it is sound:
    no record, a non-finite or non-positive temperature, or ECE after scaling worse than
    before. "Worse" beyond sampling noise when the record has the bootstrap bound
    (``ece_change_lower_bound`` > 0); without the bound, any increase."""
    if not block:
        return "the model carries no calibration record (assets.extra/keyclass.json 'calibration')"
    t = block.get("temperature")
    if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        return f"the fitted temperature is not a finite positive number ({t!r})"
    before, after = block.get("ece_before"), block.get("ece_after")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (before, after)):
        return f"ECE before/after scaling is missing or not finite ({before!r}, {after!r})"
    if after > before:
        bound = block.get("ece_change_lower_bound")
        if not isinstance(bound, (int, float)) or not math.isfinite(bound):
            return f"ECE after temperature scaling ({after:.4f}) is worse than before ({before:.4f})"
        if bound > 0:
            return (
                f"ECE after temperature scaling ({after:.4f}) is worse than before ({before:.4f}), by more than "
                f"sampling noise (bootstrap lower bound on the increase {bound:.4f})"
            )
    return None


# Two classes: certify on the raw confidence ----------------------------------------------
RAW = "raw"  # the block's ``certified_on`` when certification ran on raw confidences


def raw_certifies(classes: int) -> bool:
    """Whether certification runs on the raw confidence over every calibration image: with
    two classes, where every temperature orders the images alike (module docstring)."""
    return classes == 2


def _logit(p: float) -> float:
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)


def _sigmoid(x: float) -> float:
    if x == math.inf:
        return 1.0
    if x == -math.inf:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def served_threshold(raw_threshold: float, temperature: float) -> float:
    """The calibrated confidence ``sigmoid(logit(λ) / T)`` a two-class model serves exactly
    where its raw confidence is ``raw_threshold`` (0 and 1 stay)."""
    return _sigmoid(_logit(float(raw_threshold)) / float(temperature))


def raw_threshold(served: float, temperature: float) -> float:
    """The inverse of :func:`served_threshold`."""
    return _sigmoid(_logit(float(served)) * float(temperature))


def in_served_units(cert: Certificate, temperature: float) -> Certificate:
    """A certificate found on raw confidences, its thresholds as the model serves them."""

    def conv(x: float | None) -> float | None:
        return None if x is None else served_threshold(x, temperature)

    return dataclasses.replace(
        cert,
        threshold=conv(cert.threshold),
        start=served_threshold(cert.start, temperature),
        stopped_at=conv(cert.stopped_at),
    )


@dataclasses.dataclass
class HeldOut:
    """The held-out scores a model carries, in the units certification runs on: raw
    confidences for a two-class model certified on them (``temperature`` set: thresholds
    convert with :meth:`served` and :meth:`raw`), else calibrated ones."""

    confidence: np.ndarray
    correct: np.ndarray
    pilot_confidence: np.ndarray | None = None
    pilot_correct: np.ndarray | None = None
    temperature: float | None = None

    def served(self, threshold: float) -> float:
        """A threshold in certification units, as the model serves it."""
        return threshold if self.temperature is None else served_threshold(threshold, self.temperature)

    def raw(self, served: float) -> float:
        """A served threshold in certification units."""
        return served if self.temperature is None else raw_threshold(served, self.temperature)


def held_out(block: Mapping[str, Any] | None, split: str) -> HeldOut | None:
    """The certifying scores of a calibration block (``scores[split]`` and the pilot), in
    the units its certificates were found in; None when it holds none."""
    raw = (block or {}).get("certified_on") == RAW
    key = "raw_confidence" if raw else "confidence"
    scores = (block or {}).get("scores") or {}
    rec, pilot = scores.get(split), scores.get(PILOT)
    if not rec or key not in rec:
        return None
    out = HeldOut(np.asarray(rec[key], dtype=np.float64), np.asarray(rec["correct"], dtype=bool))
    if pilot and key in pilot:
        out.pilot_confidence = np.asarray(pilot[key], dtype=np.float64)
        out.pilot_correct = np.asarray(pilot["correct"], dtype=bool)
    if raw:
        t = block.get("temperature")
        if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            return None
        out.temperature = float(t)
    return out
