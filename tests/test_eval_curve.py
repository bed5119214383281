"""dnnjpeg.curve: the fitness parabola, the objective, curve interpolation and BD-rate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dnnjpeg.evaluation.curve import (
    SEED_FITNESS,
    CurvePoint,
    Parabola,
    StandardCurve,
    bd_accuracy,
    bd_rate,
    fitness_parabola_fit,
)

# The measurement notes' Lite0 curve (q, top1, CR) on the dev data.
NOTES = [
    (10, 0.618, 49.66),
    (20, 0.740, 34.07),
    (30, 0.778, 27.04),
    (40, 0.806, 23.07),
    (50, 0.826, 20.24),
    (60, 0.820, 17.87),
    (75, 0.846, 13.83),
    (90, 0.876, 8.41),
    (95, 0.888, 5.98),
]


def _curve(points=NOTES) -> StandardCurve:
    pts = [
        CurvePoint(
            quality=q,
            top1=t,
            top5=min(1.0, t + 0.1),
            agreement=t + 0.05,
            ce=2.0 - 2 * t,
            kl=1 - t,
            bytes_mean=150582 / cr,
            cr=cr,
            bpp=8 * 150582 / cr / 50176,
            n=500,
        )
        for q, t, cr in points
    ]
    return StandardCurve(points=pts, model="m", data="d", reference={"top1": 0.892})


def test_seed_fitness() -> None:
    assert SEED_FITNESS(21.69) == pytest.approx(-6.40782216e-5 * 21.69**2 - 1.81228974e-3 * 21.69 + 0.64625525)


def test_parabola_fit_recovers_coefficients() -> None:
    p = Parabola(-1e-4, -2e-3, 0.9)
    cr = np.linspace(5, 50, 10)
    fit = fitness_parabola_fit(cr, p(cr))
    assert (fit.a, fit.b, fit.c) == pytest.approx((p.a, p.b, p.c), rel=1e-6)
    with pytest.raises(ValueError):
        fitness_parabola_fit([1, 1, 2], [0.1, 0.2, 0.3])


def test_fitness_uses_seed_quality_range() -> None:
    pts = NOTES + [(5, 0.2, 80.0)]  # an outlier at q5 is outside the fit range (q10..q95)
    c = _curve(sorted(pts))
    direct = fitness_parabola_fit([p[2] for p in NOTES], [p[1] for p in NOTES])
    assert c.fitness() == direct


def test_objective() -> None:
    c = _curve()
    f = c.fitness()
    assert c.objective(value=0.83, cr=20.0) == pytest.approx(0.83 - f(20.0))
    # lower-is-better metrics: positive when below the curve
    fce = c.fitness("ce")
    assert c.objective(value=0.3, cr=20.0, metric="ce") == pytest.approx(fce(20.0) - 0.3)
    with pytest.raises(ValueError):
        c.objective()


def test_top1_at_cr_and_inverse() -> None:
    c = _curve()
    assert c.top1_at_cr(20.24) == pytest.approx(0.826)
    assert c.top1_at_cr((20.24 + 23.07) / 2) == pytest.approx((0.826 + 0.806) / 2)
    assert math.isnan(c.top1_at_cr(60.0)) and math.isnan(c.top1_at_cr(3.0))
    # isotonic: the q50/q60 inversion is pooled
    assert c.top1_at_cr(20.24, method="isotonic") == pytest.approx(0.823)
    assert c.top1_at_cr(20.0, method="parabola") == pytest.approx(c.fitness()(20.0))
    # inverse: the largest CR reaching a top-1
    assert c.cr_at_top1(0.778) == pytest.approx(27.04)
    cr = c.cr_at_top1(0.80)
    assert 23.07 < cr < 27.04 and c.top1_at_cr(cr, method="isotonic") == pytest.approx(0.80)
    assert math.isnan(c.cr_at_top1(0.95)) and math.isnan(c.cr_at_top1(0.5))
    assert c.cr_at_top1(0.888) == pytest.approx(5.98)


def test_bd_rate_known_shifts() -> None:
    rates = [1000.0, 2000.0, 4000.0, 8000.0, 16000.0]
    acc = [0.5, 0.7, 0.8, 0.85, 0.87]
    for method in ("pchip", "poly3"):
        assert bd_rate((rates, acc), (rates, acc), method=method) == pytest.approx(0.0, abs=1e-9)
        smaller = [r * 0.9 for r in rates]
        assert bd_rate((rates, acc), (smaller, acc), method=method) == pytest.approx(-10.0, abs=1e-6)
        assert bd_rate((smaller, acc), (rates, acc), method=method) == pytest.approx(100 / 9, abs=1e-6)
    assert bd_accuracy((rates, acc), (rates, [a + 0.01 for a in acc])) == pytest.approx(0.01)
    assert math.isnan(bd_rate((rates, acc), (rates, [a + 0.5 for a in acc])))


def test_bd_rate_on_noisy_curves() -> None:
    c = _curve()
    # the same curve 5% smaller: BD-rate -5% despite the non-monotone q50/q60 pair
    shifted = (c.values("bytes_mean") * 0.95, c.values("top1"))
    assert bd_rate(c, shifted) == pytest.approx(-5.0, abs=1e-6)
    assert bd_accuracy(c, c) == pytest.approx(0.0)


def test_json_roundtrip_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    c = _curve()
    c.to_json(tmp_path / "c.json")
    back = StandardCurve.from_json(tmp_path / "c.json")
    assert back.points == c.points and back.fitness() == c.fitness() and back.reference == c.reference
    c.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compute_with_an_evaluator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.testing import make_image_folder, tiny_classifier

    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path / "cache"))
    ev = Evaluator(tiny_classifier(), make_image_folder(tmp_path / "d", n=6), device="cpu")
    c = StandardCurve.compute(ev, [90, 10, 50])
    assert c.qualities.tolist() == [10, 50, 90]
    assert c.values("cr")[0] > c.values("cr")[1] > c.values("cr")[2]
    assert c.reference["agreement"] == 1.0 and set(c.results) == {10, 50, 90}
    assert c.point(50).bytes_mean == pytest.approx(c.results[50].bytes_mean)
    assert isinstance(c.fitness(), Parabola)
