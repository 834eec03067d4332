"""Learn-then-Test: the lowest threshold whose precision is certified >= a target, the
lower bound at a given threshold, and what to say when a target cannot be certified;
and, for two classes, the conversion between raw and served thresholds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from keyclass.components.calibration.scaling import DEFAULT_CONFIDENCE

# Targets whose certified thresholds `keyclass train` records in the model's metadata.
STANDARD_TARGETS = (0.95, 0.99, 0.995)
# Fallback precisions named when a target cannot be certified.
_FALLBACK_TARGETS = (0.995, 0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)


def threshold_grid() -> np.ndarray:
    """The thresholds tested, ascending: 0 to 0.95 in steps of 0.01, then 40 steps
    evenly spaced in log(1 - λ) up to 0.9999, plus 0.99, 0.995, 0.999, 0.9995."""
    dense_top = 1 - np.logspace(np.log10(0.05), -4, 40)
    values = np.concatenate([np.linspace(0, 0.95, 96), dense_top, [0.99, 0.995, 0.999, 0.9995, 0.9999]])
    return np.unique(np.round(values, 6))


GRID = threshold_grid()


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


# Two classes: certify on the raw confidence ----------------------------------------------


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
