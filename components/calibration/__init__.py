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

The package, bottom up: :mod:`.scaling` (temperature, ECE, risk-coverage),
:mod:`.certify` (Learn-then-Test, two-class threshold conversion), :mod:`.record` (the
model's calibration record and the Pusher's rule). Every name is importable from here.
"""

from keyclass.components.calibration.certify import (
    _FALLBACK_TARGETS,
    DEFAULT_CONFIDENCE,
    GRID,
    STANDARD_TARGETS,
    Certificate,
    best_certifiable,
    binomial_p_values,
    certify,
    images_needed,
    in_served_units,
    kept_and_errors,
    kept_needed,
    precision_lower_bound,
    raw_certifies,
    raw_threshold,
    refusal_message,
    sequence_start,
    served_threshold,
    threshold_grid,
)
from keyclass.components.calibration.record import (
    PILOT,
    RAW,
    HeldOut,
    calibration_problem,
    held_out,
    metadata_block,
    score_record,
)
from keyclass.components.calibration.scaling import (
    ECE_BINS,
    TEMPERATURE_BOUNDS,
    TEMPERATURE_PART_CAP,
    TEMPERATURE_PRIOR_SIGMA,
    TEMPERATURE_SHARE,
    ReliabilityBin,
    aurc,
    ece,
    ece_change_lower_bound,
    fit_temperature,
    hash_folds,
    nll,
    reliability,
    risk_coverage,
    softmax,
    temperature_part,
)

__all__ = [
    "DEFAULT_CONFIDENCE",
    "ECE_BINS",
    "GRID",
    "PILOT",
    "RAW",
    "STANDARD_TARGETS",
    "TEMPERATURE_BOUNDS",
    "TEMPERATURE_PART_CAP",
    "TEMPERATURE_PRIOR_SIGMA",
    "TEMPERATURE_SHARE",
    "Certificate",
    "HeldOut",
    "ReliabilityBin",
    "aurc",
    "best_certifiable",
    "binomial_p_values",
    "calibration_problem",
    "certify",
    "ece",
    "ece_change_lower_bound",
    "fit_temperature",
    "hash_folds",
    "held_out",
    "images_needed",
    "in_served_units",
    "kept_and_errors",
    "kept_needed",
    "metadata_block",
    "nll",
    "precision_lower_bound",
    "raw_certifies",
    "raw_threshold",
    "refusal_message",
    "reliability",
    "risk_coverage",
    "score_record",
    "sequence_start",
    "served_threshold",
    "softmax",
    "temperature_part",
    "threshold_grid",
    "_FALLBACK_TARGETS",
]
