"""components.calibration: temperature scaling, ECE, risk-coverage, and Learn-then-Test
certification checked against brute force and, exhaustively, against its guarantee."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from keyclass.components import calibration as cal


# Temperature scaling --------------------------------------------------------------------
def _sampled(n: int, k: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits z, labels drawn from softmax(z); the model reports z * scale."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, k))
    p = cal.softmax(z)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z * scale, labels


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_temperature_fitting_recovers_a_known_over_or_under_confidence(scale):
    logits, labels = _sampled(6000, 5, scale, seed=1)
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(scale, rel=0.08)
    logits, labels = _sampled(20000, 5, scale, seed=2)  # fresh images from the same model
    conf_raw, conf = cal.softmax(logits).max(axis=1), cal.softmax(logits, t).max(axis=1)
    ok = logits.argmax(axis=1) == labels
    before, after = cal.ece(conf_raw, ok), cal.ece(conf, ok)
    assert before > 0.05 and after < 0.02 and after < before / 3


def test_temperature_fit_fails_loudly_and_stops_at_the_bound_when_separable():
    assert math.isnan(cal.fit_temperature(np.zeros((0, 3)), np.zeros(0)))
    assert math.isnan(cal.fit_temperature(np.array([[np.nan, 1.0]]), np.array([0])))
    # Perfectly separated: the NLL keeps falling as T -> 0. The maximum likelihood ends at
    # the search's bound; the prior keeps a finite, modest sharpening.
    separable = np.array([[0.2, 0.0], [0.0, 0.3], [0.25, 0.0]])
    labels = np.array([0, 1, 0])
    assert cal.fit_temperature(separable, labels, prior_sigma=None) == cal.TEMPERATURE_BOUNDS[0]
    assert cal.TEMPERATURE_BOUNDS[0] < cal.fit_temperature(separable, labels) < 1.0


# ECE, reliability, AURC ---------------------------------------------------------------------
def test_ece_arithmetic_on_a_hand_made_case():
    # 15 bins of width 1/15: 0.95 -> (14/15, 1], 0.65 -> (9/15, 10/15], 0.25 -> (3/15, 4/15].
    conf = np.array([0.95, 0.95, 0.65, 0.65, 0.65, 0.25])
    ok = np.array([True, False, True, True, False, True])
    # (2 * |0.5 - 0.95| + 3 * |2/3 - 0.65| + 1 * |1 - 0.25|) / 6
    assert cal.ece(conf, ok) == pytest.approx((0.9 + 0.05 + 0.75) / 6)
    bins = cal.reliability(conf, ok)
    assert [(i, b.count) for i, b in enumerate(bins) if b.count] == [(3, 1), (9, 3), (14, 2)]
    assert bins[14].accuracy == 0.5 and bins[14].confidence == pytest.approx(0.95)
    assert cal.ece(np.array([1.0, 1.0]), np.array([True, True])) == 0.0
    assert math.isnan(cal.ece(np.zeros(0), np.zeros(0, bool)))


def test_risk_coverage_and_aurc_by_hand():
    conf = np.array([0.9, 0.8, 0.8, 0.6])
    ok = np.array([True, False, True, False])
    coverage, risk = cal.risk_coverage(conf, ok)
    # The two 0.8s are kept or dropped together: both take the risk of keeping three.
    np.testing.assert_allclose(coverage, [0.25, 0.75, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 1 / 3, 1 / 3, 0.5])
    assert cal.aurc(conf, ok) == pytest.approx((0 + 1 / 3 + 1 / 3 + 0.5) / 4)


# Learn-then-Test against brute force ------------------------------------------------------
def _binom_cdf(k: int, n: int, alpha: float) -> Fraction:
    a = Fraction(alpha)
    return sum((math.comb(n, j) * a**j * (1 - a) ** (n - j) for j in range(k + 1)), Fraction(0))


def _brute_p(conf, ok, lam: float, target: float) -> Fraction:
    kept = [o for c, o in zip(conf, ok, strict=True) if c >= lam]
    if not kept:
        return Fraction(1)
    return _binom_cdf(sum(1 for o in kept if not o), len(kept), 1 - target)


def _brute_certify(conf, ok, target: float, delta: float, grid, start: int):
    """Fixed sequence from grid[start] down with exact rational p-values."""
    best = None
    for lam in reversed(list(grid[: start + 1])):
        if _brute_p(conf, ok, lam, target) <= Fraction(delta):
            best = lam
        else:
            break
    return best


def _brute_start(conf, ok, target: float, grid) -> int:
    ps = [_brute_p(conf, ok, lam, target) for lam in grid]
    return ps.index(min(ps))  # the lowest λ at a tie


GRID = np.array([0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999])


def test_certified_threshold_matches_brute_force_on_small_cases():
    rng = np.random.default_rng(7)
    levels = np.array([0.5, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0])  # grid values included: ties
    checked = certified = 0
    for _ in range(300):
        n = int(rng.integers(0, 60))
        conf = rng.choice(levels, n)
        ok = rng.random(n) < np.where(conf >= 0.9, 0.995, 0.85)
        pilot_n = int(rng.integers(0, 40))
        pilot_conf = rng.choice(levels, pilot_n)
        pilot_ok = rng.random(pilot_n) < 0.95
        target = float(rng.choice([0.8, 0.9, 0.95]))
        delta = float(rng.choice([0.05, 0.1, 0.2]))
        start = _brute_start(pilot_conf, pilot_ok, target, GRID) if pilot_n else len(GRID) - 1
        assert cal.sequence_start(pilot_conf, pilot_ok, target, GRID) == start
        want = _brute_certify(conf, ok, target, delta, GRID, start)
        got = cal.certify(conf, ok, target, 1 - delta, pilot_confidence=pilot_conf, pilot_correct=pilot_ok, grid=GRID)
        assert got.threshold == want, (n, target, delta, start)
        if want is not None:
            certified += 1
            kept = conf >= want
            assert got.kept == kept.sum() and got.errors == (~ok[kept]).sum()
            assert got.coverage == pytest.approx(kept.mean())
        checked += 1
    assert certified > 50 and checked - certified > 50  # both outcomes exercised


def test_zero_errors_certify_one_percent_at_90_percent_only_from_230_kept():
    assert cal.kept_needed(0.0, 0.99, 0.9) == 230
    assert 0.99**230 <= 0.1 < 0.99**229
    ok = np.ones(230, bool)
    start = int(np.searchsorted(cal.GRID, 0.999))
    assert cal.certify(np.full(230, 0.999), ok, 0.99, 0.9, start=start).coverage == 1.0
    assert cal.certify(np.full(229, 0.999), ok[:229], 0.99, 0.9, start=start).threshold is None
    # With errors, the count needed is the smallest n whose binomial p-value passes.
    n = cal.kept_needed(0.002, 0.99, 0.9)
    assert _binom_cdf(math.floor(n * 0.002), n, 0.01) <= Fraction(0.1)
    assert _binom_cdf(math.floor((n - 1) * 0.002), n - 1, 0.01) > Fraction(0.1)
    assert cal.kept_needed(0.02, 0.99, 0.9) is None  # errs more than allowed: no n helps


def test_the_guarantee_holds_exactly_on_an_enumerated_population():
    """Every calibration set of 14 draws from a three-level population, weighted by its
    multinomial probability: the chance of certifying a λ whose true precision is below
    the target is at most δ. A naive rule (empirical precision >= target) breaks it."""
    levels = [0.6, 0.9, 0.99]
    share = [0.3, 0.4, 0.3]
    err = [0.3, 0.1, 0.02]
    grid = np.array([0.0, 0.7, 0.95])
    target, delta, n = 0.88, 0.1, 14
    true_prec = []
    for lam in grid:
        mass = [s for lv, s in zip(levels, share, strict=True) if lv >= lam]
        wrong = [s * e for lv, s, e in zip(levels, share, err, strict=True) if lv >= lam]
        true_prec.append(1 - sum(wrong) / sum(mass))
    assert true_prec[0] < target < true_prec[1]  # λ = 0 is a false claim, 0.7 a true one
    cells = [
        (lv, ok, s * (1 - e) if ok else s * e)
        for lv, s, e in zip(levels, share, err, strict=True)
        for ok in (True, False)
    ]
    wrong_claim = naive_wrong = 0.0
    for counts in itertools.product(range(n + 1), repeat=len(cells) - 1):
        last = n - sum(counts)
        if last < 0:
            continue
        counts = (*counts, last)
        prob = math.factorial(n)
        for (_, _, p), c in zip(cells, counts, strict=True):
            prob *= p**c / math.factorial(c)
        conf = np.repeat([c[0] for c in cells], counts)
        ok = np.repeat([c[1] for c in cells], counts)
        got = cal.certify(conf, ok, target, 1 - delta, grid=grid, start=len(grid) - 1)
        if got.threshold is not None and true_prec[list(grid).index(got.threshold)] < target:
            wrong_claim += prob
        naive = [lam for lam in grid if (conf >= lam).any() and ok[conf >= lam].mean() >= target]
        if naive and true_prec[list(grid).index(min(naive))] < target:
            naive_wrong += prob
    assert wrong_claim <= delta
    assert naive_wrong > 2 * delta


@pytest.mark.parametrize("target", [0.9, 0.99])
def test_the_test_has_its_level_exactly_at_the_boundary(target):
    """Every image at one confidence level, each wrong with probability exactly 1 - target
    (the worst case of the null): summing the binomial probability of every error count
    that certifies gives the chance of a false certificate. It must stay at or below δ
    for every n, and come close to it (the exact test wastes little)."""
    from scipy.stats import binom

    delta, alpha = 0.1, 1 - target
    sizes = []
    for n in range(5, 700, 23):
        size = 0.0
        for errors in range(n + 1):
            ok = np.r_[np.ones(n - errors, bool), np.zeros(errors, bool)]
            if cal.certify(np.full(n, 0.5), ok, target, 1 - delta, grid=np.array([0.0, 0.5]), start=1).certified:
                size += binom.pmf(errors, n, alpha)
            else:
                break  # more errors never certify
        sizes.append(size)
    assert max(sizes) <= delta
    assert max(sizes) > 0.08


def test_precision_lower_bound_is_clopper_pearson():
    conf = np.r_[np.full(95, 0.99), np.full(5, 0.995), np.full(50, 0.4)]
    ok = np.r_[np.ones(97, bool), np.zeros(3, bool), np.ones(50, bool)]
    lb = cal.precision_lower_bound(conf, ok, 0.9, 0.9)
    # The lowest precision the exact binomial test cannot reject at 10 %: 3 errors in 100.
    assert _binom_cdf(3, 100, 1 - lb) == pytest.approx(0.1, abs=1e-6)
    assert lb < 0.97
    assert cal.precision_lower_bound(conf, ok, 0.999, 0.9) is None


def test_an_impossible_target_is_explained():
    conf = np.r_[np.full(50, 0.999), np.full(20, 0.9)]
    ok = np.r_[np.ones(50, bool), np.r_[np.ones(18, bool), np.zeros(2, bool)]]
    pilot = dict(pilot_confidence=conf, pilot_correct=ok)  # an independent split that looks alike
    assert not cal.certify(conf, ok, 0.99, 0.9, **pilot).certified
    msg = cal.refusal_message(0.99, 0.9, conf, ok, classes=2, **pilot)
    assert "cannot certify precision >= 99.00% at 90% confidence from the 70 held-out" in msg
    # 0 errors in 50 certifies 95 % (0.95^50 < 0.1); the 2 errors below 0.91 do not.
    assert "the best it can certify: precision >= 95.00% at threshold 0.91 (coverage 71.4%" in msg
    # 0 errors above 0.9 at coverage 5/7: 230 kept need 322 images, 252 more, 126 per class.
    assert "about 126 more held-out images per class" in msg
    hopeless = cal.refusal_message(0.99, 0.9, np.full(50, 0.9), np.r_[np.ones(45, bool), np.zeros(5, bool)], 2)
    assert "more images will not certify it" in hopeless


def test_calibration_problems_are_named():
    good = {"temperature": 1.4, "ece_before": 0.05, "ece_after": 0.01}
    assert cal.calibration_problem(good) is None
    assert "temperature" in cal.calibration_problem({**good, "temperature": float("nan")})
    assert "temperature" in cal.calibration_problem({**good, "temperature": None})
    assert "worse than before" in cal.calibration_problem({**good, "ece_after": 0.06})
    assert "no calibration record" in cal.calibration_problem(None)
    # With the bootstrap bound: worse beyond noise is refused, within noise is not.
    noisy = {**good, "ece_after": 0.06, "ece_change_lower_bound": -0.01}
    assert cal.calibration_problem(noisy) is None
    assert "by more than sampling noise" in cal.calibration_problem({**noisy, "ece_change_lower_bound": 0.004})


def test_the_ece_change_bound_separates_real_harm_from_noise():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.4, 1.0, 2000)
    ok = rng.random(2000) < conf  # calibrated
    assert cal.ece_change_lower_bound(conf, conf, ok) == 0.0
    sharper = 1 - (1 - conf) / 3  # over-confident: ECE up by about 0.2
    assert cal.ece_change_lower_bound(conf, sharper, ok) > 0.1
    jitter = np.clip(conf + rng.normal(0, 0.02, 2000), 0, 1)  # as good, numbers moved a little
    assert cal.ece_change_lower_bound(conf, jitter, ok) < 0


def test_grid_reaches_above_099():
    assert {0.99, 0.995, 0.999, 0.9999} <= set(cal.GRID.tolist())
    assert cal.GRID[0] == 0.0 and np.all(np.diff(cal.GRID) > 0)


def test_the_temperature_part_is_a_stable_quarter_chosen_by_hash():
    keys = [f"{i:064x}" for i in range(400)]
    part = cal.temperature_part(keys)
    assert part.sum() == 100
    assert cal.temperature_part(keys[::-1])[::-1].tolist() == part.tolist()  # order does not matter
    assert cal.temperature_part([f"{i:064x}" for i in range(4000)]).sum() == cal.TEMPERATURE_PART_CAP
    assert cal.temperature_part(keys[:2]).tolist().count(True) == 1  # tiny: one of each
    assert 0.1 < part[:200].mean() < 0.4  # spread, not the first quarter
