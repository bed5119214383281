"""dnnjpeg.bd_bootstrap: bootstrap intervals of BD-rate on cases whose answer is known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from dnnjpeg.bd_bootstrap import BDInterval, bootstrap_bd
from dnnjpeg.curve import bd_accuracy, bd_rate
from dnnjpeg.evaluate import Result
from dnnjpeg.stats import StatsError

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
])
def test_bad_arguments_are_named(kwargs, match):
    a = curve(50, 0)
    with pytest.raises(StatsError, match=match):
        bootstrap_bd(a, a, **kwargs)


def test_a_curve_of_one_point_is_refused():
    a = curve(50, 0)
    with pytest.raises(StatsError, match="test curve needs at least 2 Results, got 1"):
        bootstrap_bd(a, a[:1], resamples=10)
