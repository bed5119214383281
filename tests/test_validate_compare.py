"""dnnjpeg.validate.compare on synthetic per-image Results (no model): known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from dnnjpeg.evaluation.evaluate import Result
from dnnjpeg.validation.validate import ValidationError, compare, curve_points

N = 200
BMP = 150582


def make_result(quality: int | None, correct: np.ndarray, nbytes: np.ndarray, indices: np.ndarray | None = None) -> Result:
    n = correct.size
    return Result(
        model="synthetic", data="synthetic", protocol="crop224", table=None, quality=quality, labelled=True,
        indices=np.arange(n) if indices is None else indices, correct=correct.astype(float),
        correct5=np.ones(n), agree=np.ones(n), ce=np.zeros(n), kl=np.zeros(n), bytes=nbytes.astype(float),
        pixels=np.full(n, 224 * 224), bmp_bytes=np.full(n, BMP, dtype=float),
    )


@pytest.fixture(scope="module")
def standard() -> dict[int, Result]:
    rng = np.random.default_rng(0)
    difficulty = rng.random(N)
    out = {}
    for q, acc, mean_bytes in [(10, 0.62, 3000), (30, 0.78, 5600), (50, 0.83, 7400), (70, 0.85, 9800), (90, 0.88, 17000)]:
        correct = (difficulty < acc).astype(float)
        out[q] = make_result(q, correct, mean_bytes * rng.uniform(0.6, 1.4, N))
    return out


def test_standard_q50_against_its_own_curve_gives_zero_and_p_one(standard):
    c = compare(standard[50], standard, resamples=1000)
    assert c.delta_top1 == 0.0 and c.reference_top1_at_cr == standard[50].top1
    assert (c.ci_low, c.ci_high, c.ci_dropped) == (0.0, 0.0, 0)
    assert c.nearest_quality == 50 and c.p_value == 1.0 and c.p_value_ttest == 1.0
    assert c.paired.mcnemar.b == 0 and c.paired.mcnemar.c == 0


def test_known_discordant_pairs_give_the_binomial_p_value(standard):
    q50 = standard[50]
    correct = q50.correct.copy()
    wrong, right = np.flatnonzero(correct == 0), np.flatnonzero(correct == 1)
    correct[wrong[:12]] = 1  # b = 12 images only the table gets right
    correct[right[:3]] = 0  # c = 3 images only q50 gets right
    table = make_result(None, correct, q50.bytes * 1.001)
    c = compare(table, standard, resamples=2000)
    assert c.nearest_quality == 50 and (c.paired.mcnemar.b, c.paired.mcnemar.c) == (12, 3)
    by_hand = 2 * sum(math.comb(15, i) for i in range(4)) / 2**15  # 2 P(X <= 3), X ~ Bin(15, 1/2)
    assert c.p_value == pytest.approx(by_hand, rel=1e-12)
    d = correct - q50.correct
    t = d.mean() / (d.std(ddof=1) / math.sqrt(N))
    assert c.p_value_ttest == pytest.approx(2 * student_t.sf(abs(t), N - 1), rel=1e-9)
    assert c.paired.delta == pytest.approx(9 / N)
    # slightly more bytes than q50: standard's top-1 at that CR lies just below q50's, between q50 and q70
    assert standard[70].top1 >= c.reference_top1_at_cr >= standard[50].top1 - 1e-12
    assert c.ci_low < c.delta_top1 < c.ci_high


def test_interpolated_reference_is_linear_in_cr(standard):
    q30, q50 = standard[30], standard[50]
    # a table whose CR lies exactly 1/4 of the way from q50's CR to q30's CR
    target_cr = q50.cr + 0.25 * (q30.cr - q50.cr)
    nbytes = q50.bytes * (q50.cr / target_cr)
    c = compare(make_result(None, q50.correct, nbytes), standard, resamples=200)
    assert c.cr == pytest.approx(target_cr)
    assert c.reference_top1_at_cr == pytest.approx(q50.top1 + 0.25 * (q30.top1 - q50.top1))


def test_outside_the_curve_gives_no_interpolation(standard):
    tiny = make_result(None, standard[10].correct, standard[10].bytes * 0.5)
    c = compare(tiny, standard, resamples=200)
    assert math.isnan(c.delta_top1) and c.to_dict()["delta_top1"] is None
    assert c.nearest_quality == 10 and c.ci_dropped == 200


def test_different_images_are_refused(standard):
    other = make_result(None, standard[50].correct, standard[50].bytes, indices=np.arange(N)[::-1].copy())
    with pytest.raises(ValidationError, match="other images"):
        compare(other, standard, resamples=10)
    with pytest.raises(ValidationError, match="no points"):
        compare(standard[50], {}, resamples=10)


def test_curve_points_carry_wilson_intervals(standard):
    pts = curve_points(standard)
    assert [p["quality"] for p in pts] == [10, 30, 50, 70, 90]
    for p in pts:
        assert p["top1_ci_low"] < p["top1"] < p["top1_ci_high"] and p["n"] == N


def test_bd_rate_of_a_curve_against_itself_is_zero(standard):
    from dnnjpeg.validation.validate import family_bd_rate

    assert family_bd_rate(standard, standard) == (0.0, 0.0)
    assert family_bd_rate(standard, {50: standard[50]}) == (None, None)  # one member: no curve


def test_bd_interval_of_a_curve_against_itself_is_zero_and_needs_two_members(standard):
    from dnnjpeg.validation.validate import family_bd_interval

    iv = family_bd_interval(standard, standard, resamples=100)
    assert (iv["bd_rate"], iv["ci_low"], iv["ci_high"], iv["dropped"]) == (0.0, 0.0, 0.0, 0)
    assert family_bd_interval(standard, {50: standard[50]}) is None


def test_bd_rate_at_equal_kl_counts_the_bytes_of_the_same_divergence(standard):
    from dataclasses import replace

    from dnnjpeg.validation.validate import family_bd_interval, family_bd_rate

    curve = {q: replace(r, kl=1000.0 / r.bytes) for q, r in standard.items()}  # KL falls as bytes grow
    smaller = {q: replace(r, bytes=0.9 * r.bytes) for q, r in curve.items()}  # same KL in 10% fewer bytes
    bd, reduction = family_bd_rate(curve, smaller, metric="kl")
    assert bd == pytest.approx(-10.0) and reduction > 0  # lower-is-better: the KL reduction at equal rate
    assert family_bd_rate(curve, curve, metric="kl") == (0.0, 0.0)
    iv = family_bd_interval(curve, smaller, metric="kl", resamples=50)
    assert iv["metric"] == "kl" and iv["bd_rate"] == pytest.approx(-10.0)
    assert iv["ci_low"] == pytest.approx(-10.0) and iv["ci_high"] == pytest.approx(-10.0) and iv["prob_smaller"] == 1.0
