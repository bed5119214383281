"""dnnjpeg.stats against answers computed independently (binomial formula, closed-form t CDFs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnjpeg.validation.stats import (
    StatsError,
    bootstrap_delta_at_rate,
    bootstrap_mean_diff_ci,
    interp_linear,
    mcnemar_exact,
    nearest_index,
    paired_comparison,
    paired_ttest,
    wilson_interval,
)


def outcomes(both: int, only_a: int, only_b: int, neither: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 arrays with the given cell counts, shuffled."""
    a = np.array([1] * both + [1] * only_a + [0] * only_b + [0] * neither)
    b = np.array([1] * both + [0] * only_a + [1] * only_b + [0] * neither)
    perm = np.random.default_rng(seed).permutation(a.size)
    return a[perm], b[perm]


def exact_mcnemar_by_hand(b: int, c: int) -> float:
    """Two-sided exact binomial test at 0.5: 2 * P(X <= min(b, c)), X ~ Bin(b + c, 1/2), capped at 1."""
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize("b, c", [(7, 2), (2, 7), (12, 3), (30, 18), (1, 0), (5, 5), (40, 10)])
def test_mcnemar_matches_the_binomial_formula(b, c):
    a, r = outcomes(both=50, only_a=b, only_b=c, neither=20)
    res = mcnemar_exact(a, r)
    assert (res.b, res.c) == (b, c)
    assert res.p_value == pytest.approx(exact_mcnemar_by_hand(b, c), rel=1e-12)


def test_mcnemar_known_value_and_no_discordance():
    a, r = outcomes(both=10, only_a=7, only_b=2, neither=5)
    assert mcnemar_exact(a, r).p_value == pytest.approx(92 / 512, rel=1e-12)  # 2 * (1 + 9 + 36) / 2**9
    same = np.array([1, 0, 1, 1, 0])
    assert mcnemar_exact(same, same).p_value == 1.0
    assert mcnemar_exact([True, False], [True, False]).b == 0


def test_mcnemar_rejects_non_binary_and_mismatched():
    with pytest.raises(StatsError, match="0/1 outcomes, found 2"):
        mcnemar_exact([1, 2], [1, 0])
    with pytest.raises(StatsError, match="same length, got 3 and 2"):
        mcnemar_exact([1, 0, 1], [1, 0])
    with pytest.raises(StatsError, match="empty"):
        mcnemar_exact([], [])


def test_ttest_known_closed_forms():
    # df = 1 (Cauchy): p = 1 - (2/pi) atan|t|; differences [1, 0]: t = 1, p = 0.5
    r = paired_ttest([1, 0], [0, 0])
    assert r.statistic == pytest.approx(1.0) and r.p_value == pytest.approx(0.5, abs=1e-12)
    # df = 2: p = 1 - |t| / sqrt(2 + t^2); differences [1, 0, 0]: t = 1, p = 1 - 1/sqrt(3)
    r = paired_ttest([1, 1, 0], [0, 1, 0])
    assert r.statistic == pytest.approx(1.0) and r.p_value == pytest.approx(1 - 1 / math.sqrt(3), abs=1e-12)
    # differences [2, 0, 1, -1]: mean 0.5, sd sqrt(5/3), t = 0.5 / (sd / 2); df = 3 closed form
    d = np.array([2.0, 0.0, 1.0, -1.0])
    t = d.mean() / (d.std(ddof=1) / 2)
    theta = math.atan(t / math.sqrt(3))
    p_df3 = 1 - (2 / math.pi) * (theta + math.sin(theta) * math.cos(theta))
    r = paired_ttest(d, np.zeros(4))
    assert r.statistic == pytest.approx(t) and r.p_value == pytest.approx(p_df3, abs=1e-12)


def test_ttest_all_equal_is_p_one_and_needs_two_pairs():
    assert paired_ttest([1, 0, 1], [1, 0, 1]).p_value == 1.0
    assert paired_ttest([1, 0, 1], [1, 0, 1]).statistic == 0.0
    with pytest.raises(StatsError, match="at least 2 pairs, got 1"):
        paired_ttest([1], [0])


def test_bootstrap_ci_degenerate_cases_and_determinism():
    a, b = outcomes(both=40, only_a=9, only_b=4, neither=7)
    assert bootstrap_mean_diff_ci(a, a, resamples=300) == (0.0, 0.0)
    assert bootstrap_mean_diff_ci(np.ones(30), np.zeros(30), resamples=300) == (1.0, 1.0)
    assert bootstrap_mean_diff_ci(a, b, resamples=2000, seed=3) == bootstrap_mean_diff_ci(a, b, resamples=2000, seed=3)
    x, y = np.random.default_rng(1).normal(size=(2, 50))  # continuous: another seed moves the quantiles
    assert bootstrap_mean_diff_ci(x, y, resamples=500, seed=3) != bootstrap_mean_diff_ci(x, y, resamples=500, seed=4)


def test_bootstrap_ci_width_matches_the_normal_approximation():
    # 400 images, 60 discordant (45 favour a): delta = 30/400, sd of paired differences known exactly
    a, b = outcomes(both=300, only_a=45, only_b=15, neither=40)
    d = a - b
    half = 1.959964 * d.std(ddof=0) / math.sqrt(d.size)
    lo, hi = bootstrap_mean_diff_ci(a, b, resamples=10_000, seed=0)
    assert lo < d.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_paired_comparison_collects_everything():
    a, b = outcomes(both=100, only_a=12, only_b=3, neither=25)
    pc = paired_comparison(a, b, resamples=1000)
    assert pc.n == 140 and pc.delta == pytest.approx(9 / 140)
    assert pc.mcnemar.p_value == pytest.approx(exact_mcnemar_by_hand(12, 3))
    assert pc.ci_low < pc.delta < pc.ci_high and pc.resamples == 1000 and pc.seed == 0
    cont = paired_comparison([0.1, 0.5, 0.3], [0.2, 0.1, 0.3], resamples=50)
    assert cont.mcnemar is None and cont.to_dict()["mcnemar"] is None


def test_interp_linear_and_nearest():
    crs, top1 = [30.0, 20.0, 10.0], [0.70, 0.80, 0.85]
    assert interp_linear(crs, top1, 25.0) == pytest.approx(0.75)
    assert interp_linear(crs, top1, 12.5) == pytest.approx(0.8375)
    assert interp_linear(crs, top1, 20.0) == 0.80
    assert math.isnan(interp_linear(crs, top1, 31.0)) and math.isnan(interp_linear(crs, top1, 9.9))
    assert nearest_index([7000.0, 5000.0, 3000.0], 4100.0) == 1
    with pytest.raises(StatsError, match="equal, non-empty"):
        interp_linear([1.0], [1.0, 2.0], 1.0)


def test_bootstrap_delta_at_rate_is_zero_for_a_curve_point_and_recovers_a_shift():
    rng = np.random.default_rng(5)
    n, q = 300, 5
    ref_correct = (rng.random((q, n)) < np.linspace(0.6, 0.9, q)[:, None]).astype(float)
    ref_bytes = np.linspace(3000, 15000, q)[:, None] * rng.uniform(0.7, 1.3, (q, n))
    bmp = np.full(n, 150582.0)
    est, lo, hi, dropped = bootstrap_delta_at_rate(ref_correct[2], ref_bytes[2], bmp, ref_correct, ref_bytes,
                                                   resamples=500)
    assert (est, lo, hi, dropped) == (0.0, 0.0, 0.0, 0)
    # the same bytes as point 2 but 30 more images right: +0.1 exactly on the original images
    better = ref_correct[2].copy()
    better[np.flatnonzero(better == 0)[:30]] = 1
    est, lo, hi, _ = bootstrap_delta_at_rate(better, ref_bytes[2], bmp, ref_correct, ref_bytes, resamples=2000)
    assert est == pytest.approx(0.1) and lo < 0.1 < hi and lo > 0
    with pytest.raises(StatsError, match=r"shape \(qualities, 300\)"):
        bootstrap_delta_at_rate(better, ref_bytes[2], bmp, ref_correct[:, :10], ref_bytes, resamples=10)


def test_wilson_interval_known_value():
    # Wilson 95% for 8/10: centre (0.8 + z^2/20)/(1 + z^2/10), half-width by the formula, z = 1.959964
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    with pytest.raises(StatsError, match="successes=11, n=10"):
        wilson_interval(11, 10)
