"""dnnjpeg.bd_bootstrap: bootstrap intervals of BD-rate on cases whose answer is known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from dnnjpeg.evaluation.curve import bd_accuracy, bd_rate
from dnnjpeg.evaluation.evaluate import Result
from dnnjpeg.validation.bd_bootstrap import BDInterval, MembersAhead, bootstrap_bd, bootstrap_members_ahead
from dnnjpeg.validation.stats import StatsError

#: (mean bytes, top-1 probability) of a curve shaped like standard JPEG's for Lite0.
POINTS = [(4000, 0.62), (5500, 0.74), (7000, 0.80), (9000, 0.83), (12000, 0.86), (18000, 0.88)]


def result(nbytes: np.ndarray, correct: np.ndarray, indices: np.ndarray | None = None) -> Result:
    n = correct.size
    return Result(model="m", data="d", protocol="crop224", table=None, quality=None, labelled=True,
                  indices=np.arange(n) if indices is None else indices, correct=correct.astype(bool),
                  correct5=np.ones(n, bool), agree=np.ones(n, bool), ce=np.zeros(n), kl=np.zeros(n),
                  bytes=nbytes.astype(np.float64), pixels=np.full(n, 50176), bmp_bytes=np.full(n, 150582))


def curve(n: int, seed: int, scale: float = 1.0) -> list[Result]:
    """Per-image sizes that keep their order across qualities (a large image is large at every
    quality), correctness drawn per point."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(0.0, 0.3, n)
    return [result(scale * b * size, rng.random(n) < p) for b, p in POINTS]


def test_identical_curves_give_zero_with_a_zero_width_interval():
    a = curve(300, 0)
    iv = bootstrap_bd(a, a, resamples=100)
    assert iv.bd_rate == 0.0 and (iv.ci_low, iv.ci_high) == (0.0, 0.0)
    assert iv.bd_accuracy == 0.0 and iv.prob_smaller == 0.0 and iv.dropped == 0


def test_the_same_outcomes_in_smaller_files_give_that_saving_in_every_resample():
    a = curve(300, 0)
    t = [dataclasses.replace(r, bytes=0.8 * r.bytes) for r in a]
    iv = bootstrap_bd(a, t, resamples=200)
    assert iv.bd_rate == pytest.approx(-20.0)
    assert iv.ci_low == pytest.approx(-20.0) and iv.ci_high == pytest.approx(-20.0)
    assert iv.prob_smaller == 1.0


def test_point_estimates_are_the_bd_figures_of_the_results_and_lie_in_their_intervals():
    a, t = curve(400, 1), curve(400, 2, scale=0.9)[1:5]
    iv = bootstrap_bd(a, t, resamples=300)
    assert iv.bd_rate == pytest.approx(bd_rate(a, t))
    assert iv.bd_accuracy == pytest.approx(bd_accuracy(a, t))
    assert iv.ci_low < iv.bd_rate < iv.ci_high
    assert iv.accuracy_ci_low < iv.bd_accuracy < iv.accuracy_ci_high
    assert 0.0 < iv.prob_smaller < 1.0


def test_more_images_give_a_narrower_interval():
    def width(n: int) -> float:
        iv = bootstrap_bd(curve(n, 3), curve(n, 4, scale=0.9)[1:5], resamples=300)
        return iv.ci_high - iv.ci_low

    assert width(4000) < 0.6 * width(250)


def test_same_seed_same_interval_other_seed_other_interval():
    a, t = curve(300, 5), curve(300, 6, scale=0.95)[1:5]
    first = bootstrap_bd(a, t, resamples=200, seed=7)
    assert bootstrap_bd(a, t, resamples=200, seed=7) == first
    assert bootstrap_bd(a, t, resamples=200, seed=8) != first


def test_to_dict_is_json_ready():
    iv = bootstrap_bd(curve(200, 0), curve(200, 1)[2:], resamples=50)
    d = iv.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(BDInterval)}
    assert all(v is None or isinstance(v, (int, float, str)) for v in d.values())
    nan = dataclasses.replace(iv, ci_low=math.nan).to_dict()
    assert nan["ci_low"] is None


def test_results_on_other_images_are_refused():
    a = curve(100, 0)
    moved = [dataclasses.replace(r, indices=r.indices + 1) for r in a]
    with pytest.raises(StatsError, match="different images"):
        bootstrap_bd(a, moved, resamples=10)
    mixed = a[:2] + moved[2:]
    with pytest.raises(StatsError, match="anchor Result 2 is on other images"):
        bootstrap_bd(mixed, a, resamples=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "psnr"}, "metric must be one of"),
    ({"resamples": 0}, "resamples must be a positive integer"),
    ({"resamples": 2.5}, "resamples must be a positive integer"),
    ({"confidence": 1.0}, "confidence must be in"),
    ({"sample_size": 0}, "sample_size must be a positive integer"),
])
def test_bad_arguments_are_named(kwargs, match):
    a = curve(50, 0)
    with pytest.raises(StatsError, match=match):
        bootstrap_bd(a, a, **kwargs)


def test_a_curve_of_one_point_is_refused():
    a = curve(50, 0)
    with pytest.raises(StatsError, match="test curve needs at least 2 Results, got 1"):
        bootstrap_bd(a, a[:1], resamples=10)


def test_a_larger_sample_size_narrows_the_interval_around_the_same_estimate():
    a, t = curve(300, 3), curve(300, 4, scale=0.9)[1:5]
    here = bootstrap_bd(a, t, resamples=300)
    larger = bootstrap_bd(a, t, resamples=300, sample_size=4800)  # 16x the images: about 1/4 of the width
    assert larger.bd_rate == here.bd_rate
    ratio = (larger.ci_high - larger.ci_low) / (here.ci_high - here.ci_low)
    assert 0.15 < ratio < 0.4


# -- every member ahead -----------------------------------------------------------------------

QUALITIES = [20, 30, 40, 50, 75, 90]  # one per point of POINTS


def family(n: int, seed: int, gain: float, scale: float = 1.0) -> tuple[dict[int, Result], dict[int, Result]]:
    """(standard, members): members at the standard's sizes (times ``scale``) whose images are each
    right where the standard's are, and right on a further ``gain`` share of the images."""
    rng = np.random.default_rng(seed)
    size = rng.lognormal(0.0, 0.3, n)
    standard, members = {}, {}
    for q, (b, p) in zip(QUALITIES, POINTS):
        u = rng.random(n)
        standard[q] = result(b * size, u < p)
        members[q] = result(scale * b * size, u < p + gain)
    return standard, members


def test_members_equal_to_the_standard_are_never_ahead():
    standard, _ = family(200, 0, 0.0)
    out = bootstrap_members_ahead(standard, dict(standard), resamples=200)
    assert out.ahead == [False] * 6 and not out.every_ahead  # a tie is not ahead
    assert out.prob_ahead == [0.0] * 6 and out.prob_every_ahead == 0.0


def test_members_far_ahead_are_ahead_in_every_draw_and_a_small_lead_is_a_coin_toss():
    standard, members = family(400, 1, 0.10)
    far = bootstrap_members_ahead(standard, members, resamples=300)
    assert far.every_ahead and far.prob_ahead == [1.0] * 6 and far.prob_every_ahead == 1.0
    standard, members = family(400, 1, 0.005)  # two images of 400 more right per member
    near = bootstrap_members_ahead(standard, members, resamples=300)
    assert all(0.3 < p < 1.0 for p in near.prob_ahead)
    # every member at once is rarer than any one of them
    assert near.prob_every_ahead < min(near.prob_ahead)


def test_more_images_make_a_real_small_lead_show_more_often():
    standard, members = family(400, 2, 0.01)
    here = bootstrap_members_ahead(standard, members, resamples=300)
    more = bootstrap_members_ahead(standard, members, resamples=300, sample_size=8000)
    assert more.sample_size == 8000 and here.sample_size == 400
    assert more.prob_every_ahead > here.prob_every_ahead
    assert all(m >= h for m, h in zip(more.prob_ahead, here.prob_ahead))


def test_a_bd_target_is_reached_as_often_as_the_draws_say():
    standard, members = family(300, 3, 0.02, scale=0.8)  # same outcomes or better, in 20% fewer bytes
    out = bootstrap_members_ahead(standard, members, resamples=200, bd_target=-15.0)
    assert out.bd_rate is not None and out.bd_rate < -20.0
    assert out.prob_bd_at_or_below_target == 1.0
    assert out.prob_goal == out.prob_every_ahead
    # a target beyond reach; and none asked for
    far = bootstrap_members_ahead(standard, members, resamples=200, bd_target=-60.0)
    assert far.prob_bd_at_or_below_target == 0.0 and far.prob_goal == 0.0
    none = bootstrap_members_ahead(standard, members, resamples=200)
    assert none.bd_target is None and none.prob_bd_at_or_below_target is None and none.prob_goal is None
    assert none.prob_every_ahead == out.prob_every_ahead  # the same draws


def test_kl_counts_lower_as_ahead():
    standard, _ = family(200, 4, 0.0)
    rng = np.random.default_rng(0)
    kl = {q: rng.random(200) for q in standard}
    std = {q: dataclasses.replace(r, kl=kl[q]) for q, r in standard.items()}
    lower = {q: dataclasses.replace(r, kl=0.5 * kl[q]) for q, r in standard.items()}
    assert bootstrap_members_ahead(std, lower, metric="kl", resamples=100).prob_every_ahead == 1.0
    assert bootstrap_members_ahead(lower, std, metric="kl", resamples=100).prob_every_ahead == 0.0


def test_same_seed_same_answer_and_json_ready():
    standard, members = family(300, 5, 0.01)
    first = bootstrap_members_ahead(standard, members, resamples=200, seed=3, bd_target=-5.0)
    assert bootstrap_members_ahead(standard, members, resamples=200, seed=3, bd_target=-5.0) == first
    d = first.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(MembersAhead)}
    assert d["qualities"] == QUALITIES and d["sample_size"] == 300


def test_a_member_without_a_standard_table_of_its_quality_is_refused():
    standard, members = family(100, 6, 0.0)
    del standard[40]
    with pytest.raises(StatsError, match=r"no standard Result at the members' qualities \[40\]"):
        bootstrap_members_ahead(standard, members, resamples=10)
