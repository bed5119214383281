"""Search spaces and objectives, with standard curves measured by real libjpeg round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.evaluation.curve import StandardCurve
from dnnjpeg.search import Box, SearchError, SearchSpace, SearchSpaceError, parse_objective
from dnnjpeg.search.objectives import Fitness, SizeMatched, TargetAccuracy
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos
from dnnjpeg.search.sorted import sorted_table


@pytest.fixture(scope="module")
def ev() -> PSNREvaluator:
    return PSNREvaluator(synthetic_photos(12, 48, seed=5), "synthetic12", threshold_db=27.0)


@pytest.fixture(scope="module")
def curve(ev) -> StandardCurve:
    return StandardCurve.compute(ev, (10, 30, 50, 70, 90), keep_results=False)


# -- spaces ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "n", "variable", "text"),
    [
        ("single", 64, False, "single"),
        ("separate", 128, False, "separate"),
        ("single+subsampling", 64, True, "single+subsampling"),
        ("separate@4:4:4", 128, False, "separate@4:4:4"),
    ],
)
def test_space_parse(spec: str, n: int, variable: bool, text: str) -> None:
    s = SearchSpace.parse(spec)
    assert (s.n_coeffs, s.variable_subsampling, str(s)) == (n, variable, text)
    assert SearchSpace.parse(str(s)) == s


@pytest.mark.parametrize(
    ("spec", "message"),
    [("double", "unknown search space 'double'"), ("single+chroma", "only '\\+subsampling'"),
     ("single@4:1:1", "subsampling '4:1:1' is not one of"), ("triple@4:2:0", "must be one of single, separate")],
)
def test_space_errors_name_the_value(spec: str, message: str) -> None:
    with pytest.raises(SearchSpaceError, match=message):
        SearchSpace.parse(spec)


def test_space_unit_round_trip_and_membership() -> None:
    rng = np.random.default_rng(0)
    for spec in ("single", "separate+subsampling"):
        s = SearchSpace.parse(spec)
        for _ in range(20):
            t = sorted_table(s, rng)
            assert s.from_unit(s.to_unit(t)) == t
    single = SearchSpace.parse("single")
    assert single.contains(QTable([9] * 64)) and not single.contains(QTable.standard(50))
    with pytest.raises(SearchSpaceError, match="not in search space single"):
        single.check(QTable.standard(50))
    with pytest.raises(SearchSpaceError, match="takes 64 steps"):
        single.table([1] * 63)


def test_box_around_good_tables_with_transposes() -> None:
    a = np.arange(1, 65).reshape(8, 8)
    b = Box.around(np.stack([a.reshape(-1)]), k=0.0, transpose=True)
    lo, hi = np.array(b.lo).reshape(8, 8), np.array(b.hi).reshape(8, 8)
    off = ~np.eye(8, dtype=bool)
    assert (lo[off] == np.minimum(a, a.T)[off]).all() and (hi[off] == np.maximum(a, a.T)[off]).all()
    d = np.diag(a)  # a table equals its transpose on the diagonal: widened to the minimum width 2
    assert (np.diag(lo) == np.maximum(d - 1, 1)).all() and (np.diag(hi) == d + 1).all()
    u = b.to_unit(b.sample(np.random.default_rng(1)))
    assert ((u >= 0) & (u <= 1)).all()
    with pytest.raises(SearchSpaceError, match="1 <= lo <= hi <= 255"):
        Box((5,), (4,))


# -- objectives -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "kind", "signal"),
    [("fitness", Fitness, "top1"), ("fitness-kl", Fitness, "kl"), ("fitness-ce", Fitness, "ce"),
     ("size-matched:50", SizeMatched, "top1"), ("size-matched-kl:30", SizeMatched, "kl"),
     ("target-accuracy:0.8", TargetAccuracy, "top1"), ("target-accuracy-ce:75", TargetAccuracy, "ce")],
)
def test_parse_objective(spec: str, kind: type, signal: str) -> None:
    o = parse_objective(spec)
    assert isinstance(o, kind) and o.signal == signal
    assert parse_objective(o.spec) == o


@pytest.mark.parametrize(
    ("spec", "message"),
    [("fitness:3", "fitness takes no argument"), ("size-matched", "needs a standard quality"),
     ("size-matched:abc", "bad argument 'abc'"), ("fitness-psnr", "signal 'psnr' is not one of"),
     ("target-accuracy:0", "target accuracy must be"), ("speed", "unknown objective 'speed'"),
     ("size-matched:101", "integer in 1..100")],
)
def test_objective_errors_name_the_value(spec: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_objective(spec)


def test_fitness_is_the_signal_minus_the_standard_parabola(ev, curve) -> None:
    for signal in ("top1", "ce", "kl"):
        f = Fitness(signal=signal).bind(curve)
        s = ev.evaluate_standard(50).summary()
        expected = curve.objective(value=s[signal], cr=s["cr"], metric=signal)
        assert f(s) == pytest.approx(expected)
    # a better signal at the same size scores higher
    s = dict(ev.evaluate_standard(50).summary())
    f = Fitness(signal="ce").bind(curve)
    better = dict(s, ce=s["ce"] - 0.1)
    assert f(better) == pytest.approx(f(s) + 0.1)
    with pytest.raises(SearchError, match="not bound"):
        Fitness()(s)


def test_size_matched_scores_gain_at_no_more_than_the_size_of_q(ev, curve) -> None:
    o = SizeMatched(quality=50, signal="ce").bind(curve)
    q50 = ev.evaluate_standard(50).summary()
    assert o(q50) == pytest.approx(0.0)
    smaller = dict(q50, bytes_mean=q50["bytes_mean"] * 0.9)
    assert o(smaller) == pytest.approx(0.0)  # no bonus for being smaller
    larger = dict(q50, bytes_mean=q50["bytes_mean"] * 1.1)
    assert o(larger) < 0
    # standard q70 is larger and better than q50: its size excess costs more than its gain
    assert o(ev.evaluate_standard(70).summary()) < 0
    with pytest.raises(SearchError, match="no point at quality 60"):
        SizeMatched(quality=60).bind(curve)


def test_target_accuracy_scores_log_size_saving(ev, curve) -> None:
    top = curve.values("top1")
    target = float((top.min() + top.max()) / 2)
    o = TargetAccuracy(accuracy=target).bind(curve)
    base = {"top1": target, "bytes_mean": 5000.0}
    assert o(dict(base, bytes_mean=4500.0)) - o(base) == pytest.approx(math.log(5000 / 4500))
    assert o(dict(base, top1=target - 0.1)) < o(base)  # missing the target costs
    assert o(dict(base, top1=target + 0.1)) == pytest.approx(o(base))  # beating it earns nothing
    assert top.max() < 1.0
    with pytest.raises(SearchError, match="outside standard JPEG's top-1 range"):
        TargetAccuracy(accuracy=1.0).bind(curve)
