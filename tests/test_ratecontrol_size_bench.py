"""benchmarks/ratecontrol_size.py: its analysis on tiny synthetic arrays with answers checkable by hand,
and a smoke run on 8 dev photos (slow, needs the data)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ratecontrol_size.py"


def _load():
    spec = importlib.util.spec_from_file_location("ratecontrol_size_bench", _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load()


def _curve(rates, accs, kls=None, n=4):
    """A Curve whose every image has the point's rate and KL, and accuracy exactly ``acc`` (n images)."""
    rates = np.asarray(rates, float)
    accs = np.asarray(accs, float)
    kls = np.zeros_like(rates) if kls is None else np.asarray(kls, float)
    correct = np.array([[1.0 if i < round(a * n) else 0.0 for i in range(n)] for a in accs])
    assert np.allclose(correct.mean(axis=1), accs)
    return bench.Curve(np.repeat(rates[:, None], n, axis=1), correct, np.repeat(kls[:, None], n, axis=1))


# -- choose -------------------------------------------------------------------------------------------
def test_choose_smallest_rung_within_tau_else_top_rung():
    nb = np.array([[100.0, 200.0, 400.0], [50.0, 80.0, 90.0]])
    kl = np.array([[0.5, 0.1, 0.0], [0.3, 0.3, 0.2]])
    got = bench.choose(nb, [kl], [0.05, 0.2, 1.0])
    # image 0: only q-top at 0.05, rung 1 at 0.2, rung 0 at 1.0; image 1: nothing <= 0.05 -> top rung, then 2, 0
    assert got.tolist() == [[2, 2], [1, 2], [0, 0]]


def test_choose_smallest_in_bytes_not_in_ladder_order():
    nb = np.array([[300.0, 200.0, 400.0]])  # the second rung is smaller than the first
    kl = np.zeros((1, 3))
    assert bench.choose(nb, [kl], [0.0]).tolist() == [[1]]


def test_choose_every_chooser_must_hold_and_same_top1():
    nb = np.array([[100.0, 200.0, 400.0]])
    a = np.array([[0.0, 0.0, 0.0]])
    b = np.array([[0.9, 0.0, 0.0]])  # the second chooser rejects rung 0
    assert bench.choose(nb, [a, b], [0.1]).tolist() == [[1]]
    same = np.array([[True, False, True]])  # rung 1 changes the top-1
    assert bench.choose(nb, [a, b], [0.1], same_top1=[same]).tolist() == [[2]]
    assert bench.choose(nb, [a], [0.1], same_top1=[same]).tolist() == [[0]]
    assert bench.choose(nb, [b], [0.1], fallback=0).tolist() == [[1]]
    c = np.array([[0.9, 0.5, 0.2]])
    assert bench.choose(nb, [c], [0.01]).tolist() == [[2]]  # nothing holds: the top rung
    assert bench.choose(nb, [c], [0.01], fallback=0).tolist() == [[0]]  # or the given fallback


def test_choice_and_fixed_curves_read_the_chosen_cells():
    nb = np.array([[10.0, 20.0], [30.0, 40.0]])
    ok = np.array([[0.0, 1.0], [1.0, 1.0]])
    kl = np.array([[0.4, 0.0], [0.1, 0.0]])
    c = bench.choice_curve(np.array([[1, 0]]), nb, ok, kl)
    assert c.nbytes.tolist() == [[20.0, 30.0]] and c.correct.tolist() == [[1.0, 1.0]] and c.kl.tolist() == [[0.0, 0.1]]
    f = bench.fixed_curve(nb, ok, kl)
    assert f.nbytes.tolist() == [[10.0, 30.0], [20.0, 40.0]]
    b, t, k = f.means()
    assert b.tolist() == [20.0, 30.0] and t.tolist() == [0.5, 1.0] and np.allclose(k, [0.25, 0.0])


# -- BD-rate -----------------------------------------------------------------------------------------
RATES = [1000.0, 2000.0, 4000.0, 8000.0]
ACCS = [0.25, 0.5, 0.75, 1.0]


def test_identical_curves_give_zero_and_half_the_bytes_minus_fifty():
    a = _curve(RATES, ACCS, kls=[0.4, 0.3, 0.2, 0.1])
    half = bench.Curve(a.nbytes / 2, a.correct, a.kl)
    for metric in ("top1", "kl"):
        same = bench.bd_interval(a, a, metric=metric, resamples=0)
        assert same["pchip"]["bd_rate"] == pytest.approx(0.0, abs=1e-9)
        assert same["linear"]["bd_rate"] == pytest.approx(0.0, abs=1e-9)
        h = bench.bd_interval(a, half, metric=metric, resamples=0)
        assert h["pchip"]["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
        assert h["linear"]["bd_rate"] == pytest.approx(-50.0, abs=1e-9)


def test_bootstrap_of_a_constant_ratio_is_that_ratio_in_every_draw():
    rng = np.random.default_rng(3)
    n = 40
    nb = rng.uniform(1e3, 1e4, (4, n)) * np.array([[1.0], [2.0], [4.0], [8.0]])
    ok = (rng.random((4, n)) < np.array([[0.3], [0.5], [0.7], [0.9]])).astype(float)
    kl = rng.uniform(0, 1, (4, n)) / np.array([[1.0], [2.0], [4.0], [8.0]])
    a = bench.Curve(nb, ok, kl)
    half = bench.Curve(nb / 2, ok, kl)
    for metric in ("top1", "kl"):
        iv = bench.bd_interval(a, half, metric=metric, resamples=50)
        for method in ("pchip", "linear"):
            assert iv[method]["bd_rate"] == pytest.approx(-50.0)
            assert iv[method]["ci_low"] == pytest.approx(-50.0) and iv[method]["ci_high"] == pytest.approx(-50.0)
            assert iv[method]["prob_smaller"] == 1.0


def test_linear_bd_by_hand():
    # anchor: log-rate = y * ln2 on y in [0, 2]; test: half the bytes on [0, 1], then catching up
    # gap = -ln2 on [0, 1], -ln2 + (y - 1) ln2 on [1, 2]: mean -0.75 ln2 -> 2**-0.75 - 1
    anchor = ([1.0, 2.0, 4.0], [0.0, 1.0, 2.0])
    test = ([0.5, 1.0, 4.0], [0.0, 1.0, 2.0])
    assert bench.bd_rate_linear(anchor, test) == pytest.approx(100 * (2 ** -0.75 - 1))
    # lower is better: the same numbers as KL, negated, give the same answer
    assert bench.bd_rate_linear((anchor[0], [-v for v in anchor[1]]), (test[0], [-v for v in test[1]]),
                                metric="kl") == pytest.approx(100 * (2 ** -0.75 - 1))


def test_linear_bd_running_best_drops_a_dominated_point_and_needs_overlap():
    clean = ([1000.0, 2000.0], [0.5, 0.8])
    noisy = ([1000.0, 2000.0, 4000.0], [0.5, 0.8, 0.7])  # the 4000-byte point is worse than a cheaper one
    assert bench.bd_rate_linear(clean, ([r / 2 for r in noisy[0]], noisy[1])) == pytest.approx(-50.0)
    assert math.isnan(bench.bd_rate_linear(([1.0, 2.0], [0.1, 0.2]), ([1.0, 2.0], [0.3, 0.4])))


# -- the whole analysis on a synthetic ladder -------------------------------------------------------------
def _tables(spec, nbytes, kl, top1, labels, models=("m0", "m1", "m2")):
    n, r = nbytes.shape
    return bench.Tables(spec, [f"q{10 + 5 * i}" for i in range(r)], np.arange(10, 10 + 5 * r, 5, dtype=float),
                        nbytes, {m: kl for m in models}, {m: top1 for m in models},
                        {m: labels.copy() for m in models}, labels)


def _synthetic(spec, scale=1.0, n=30, r=18, seed=0):
    rng = np.random.default_rng(seed)
    q = np.arange(r)
    nbytes = scale * np.exp(0.12 * q)[None, :] * rng.uniform(5e3, 2e4, (n, 1))
    hard = rng.uniform(0.2, 3.0, (n, 1))
    kl = hard * np.exp(-0.4 * q)[None, :]
    labels = np.arange(n)
    top1 = np.where(kl < 0.5, labels[:, None], -1)  # the model errs where the rung distorts much
    return _tables(spec, nbytes, kl, top1, labels)


def test_analyse_and_markdown_on_synthetic_ladders():
    std = _synthetic(bench.normalize_spec("standard"))
    moz = _synthetic(bench.normalize_spec("mozjpeg"), scale=0.5)  # same reading at half the bytes
    tables = {std.ladder: std, moz.ladder: moz}
    res = bench.analyse(tables, ["m0", "m1", "m2"], resamples=0, log=lambda *a: None)
    fixed_moz = [r for r in res["bd"] if r.get("fixed") and r["ladder"] == moz.ladder]
    assert {r["metric"] for r in fixed_moz} == {"top1", "kl"}
    for r in fixed_moz:
        assert r["pchip"]["bd_rate"] == pytest.approx(-50.0) and r["linear"]["bd_rate"] == pytest.approx(-50.0)
    # the same choice on a ladder of half the bytes: -50% more than the standard ladder's choice
    def choice_vs_std(ladder):
        return next(r for r in res["bd"] if r["ladder"] == ladder and r["anchor"] == std.ladder
                    and not r["keep_top1"] and not r.get("fixed") and r["metric"] == "kl")["linear"]["bd_rate"]
    assert 1 + choice_vs_std(moz.ladder) / 100 == pytest.approx(0.5 * (1 + choice_vs_std(std.ladder) / 100))
    assert res["uncompressed_top1"] == {"m0": 1.0, "m1": 1.0, "m2": 1.0}
    # keep-top1 with tau = inf keeps every label here: top-1 equals the uncompressed one
    inf_rows = [r for r in res["keep_top1"] if r["tau"] is None]
    assert all(r["delta_points"] == 0.0 for r in inf_rows)
    # three models: chosen by m0 read by m1 and m2, chosen by m0+m1 read by m2, m2 in its own loop
    assert len({(tuple(r["choosers"]), r["reader"]) for r in res["cross_model"]}) == 4
    md = bench.markdown({**res, "resamples": 0})
    assert "| mozjpeg:10-95:5 |" in md and "keep-top1" in md and "Reproduction" in md
    json.dumps(res, default=bench._json_default)


def test_union_picks_the_smaller_encoder_per_image():
    std = _synthetic(bench.normalize_spec("standard"))
    moz = _synthetic(bench.normalize_spec("mozjpeg"), scale=0.5)
    u = bench.union([std, moz], "u")
    assert u.nbytes.shape == (std.n, 36)
    assert np.all(np.diff(u.nbytes.mean(axis=0)) >= 0)  # ordered by mean size: the largest rung is the fallback
    a = bench.reader_curves(moz, ["m0"], "m0", [0.1]).nbytes
    b = bench.reader_curves(u, ["m0"], "m0", [0.1]).nbytes
    assert np.allclose(a, b)  # mozjpeg's rung always wins at the same KL


def test_tables_round_trip(tmp_path):
    t = _synthetic(bench.normalize_spec("standard"), n=5, r=3)
    t.meta["protocol"] = "native"
    bench.save_tables(tmp_path / "x.npz", t)
    u = bench.load_tables(tmp_path / "x.npz")
    assert u.ladder == t.ladder and u.rungs == t.rungs and u.meta == t.meta
    assert np.array_equal(u.nbytes, t.nbytes) and all(np.array_equal(u.kl[m], t.kl[m]) for m in t.kl)
    assert all(np.array_equal(u.top1[m], t.top1[m]) for m in t.top1)


def test_normalize_spec():
    assert bench.normalize_spec("standard") == "standard:10-95:5"
    assert bench.normalize_spec("mozjpeg:20,30") == "mozjpeg:20,30"
    assert bench.normalize_spec("family:efficientnet_lite0") == "family:efficientnet_lite0"


# -- smoke run ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.needs_data
def test_smoke_limit_8(dev_data, tmp_path):
    pytest.importorskip("torch")
    rc = pytest.importorskip("dnnjpeg.ratecontrol")
    if not hasattr(rc, "evaluate_rungs"):
        pytest.skip("dnnjpeg.ratecontrol.evaluate_rungs is not there yet")
    argv = ["--data", str(dev_data), "--workdir", str(tmp_path), "--limit", "8", "--ladders", "standard:10-90:40",
            "--resamples", "20"]
    assert bench.main(argv) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["n"] == 8 and res["ladders"] == ["standard:10-95:5", "standard:10-90:40"]
    assert (tmp_path / "results.md").read_text().count("|") > 20
    cached = sorted(p.name for p in tmp_path.glob("rungs-*.npz"))
    assert len(cached) == 2
    assert bench.main(argv) == 0  # a rerun reads the cache
