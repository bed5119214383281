"""RD-OPT table design (dnnjpeg.search.design.rdopt): the curves are the sums they claim, the choice is optimal."""

from __future__ import annotations

import numpy as np
import pytest

from dnnjpeg.search.design.fisher_weights import block_coefficients
from dnnjpeg.search.design.rdopt import STEP_GRID, rd_curves, rd_steps


@pytest.fixture(scope="module")
def coefficients() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    y, _ = block_coefficients(skimage_data.astronaut()[:256, :256][None])
    return y


def test_curves_are_the_weighted_errors_and_proxy_bits(coefficients: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    w = rng.random(coefficients.shape).astype(np.float32)
    curves = rd_curves(coefficients, w, steps=np.array([3, 17]), max_blocks=None)
    for j, q in enumerate([3, 17]):
        level = np.round(coefficients.astype(np.float64) / q)
        err = coefficients - q * level
        np.testing.assert_allclose(curves.distortion[:, j], (w * err**2).sum(0), rtol=1e-4)
        bits = (level[:, 1:] != 0) * (4.0 + np.log2(1 + np.abs(coefficients[:, 1:]) / q))
        np.testing.assert_allclose(curves.rate[1:, j], bits.sum(0), rtol=1e-4)
        dc_diff = np.diff(level[:, 0], prepend=0.0)
        assert curves.rate[0, j] == pytest.approx((2.5 + np.log2(1 + np.abs(dc_diff))).sum(), rel=1e-4)


def test_block_subsampling_estimates_the_full_sums(coefficients: np.ndarray) -> None:
    full = rd_curves(coefficients, np.ones(64), max_blocks=None)
    part = rd_curves(coefficients, np.ones(64), max_blocks=len(coefficients) // 3)
    assert part.distortion.sum() == pytest.approx(full.distortion.sum(), rel=0.05)
    assert part.rate.sum() == pytest.approx(full.rate.sum(), rel=0.05)
    np.testing.assert_array_equal(part.rate[0], full.rate[0])  # the DC rate always sees every block


def test_chosen_steps_minimise_the_lagrangian_over_any_grid_table(coefficients: np.ndarray) -> None:
    w = np.random.default_rng(1).random(coefficients.shape).astype(np.float32)
    curves = rd_curves(coefficients, w)
    rng = np.random.default_rng(2)
    for lam in (0.1, 3.0, 100.0):
        mult = rng.uniform(0.2, 5.0, 64)
        steps = rd_steps(curves, lam, mult)
        assert set(steps.tolist()) <= set(STEP_GRID.tolist())
        j = np.searchsorted(curves.steps, steps)

        def cost(cols: np.ndarray, lam: float = lam, mult: np.ndarray = mult) -> float:
            return float((mult * curves.distortion[np.arange(64), cols] + lam * curves.rate[np.arange(64), cols]).sum())

        best = cost(j)
        for _ in range(200):
            other = rng.integers(0, len(curves.steps), 64)
            assert cost(other) >= best
        # a higher rate price never asks for finer steps
        assert (rd_steps(curves, lam * 4, mult) >= steps).all()


def test_bad_arguments_are_named() -> None:
    c = np.zeros((4, 64), np.float32)
    with pytest.raises(ValueError, match="coefficients must be"):
        rd_curves(np.zeros((4, 63)), np.ones(64))
    with pytest.raises(ValueError, match="weights must be"):
        rd_curves(c, np.ones(8))
    with pytest.raises(ValueError, match="non-negative"):
        rd_curves(c, -np.ones(64))
    with pytest.raises(ValueError, match="steps must be"):
        rd_curves(c, np.ones(64), steps=np.array([0, 4]))
    curves = rd_curves(c, np.ones(64))
    with pytest.raises(ValueError, match="lam"):
        rd_steps(curves, float("nan"))
    with pytest.raises(ValueError, match="multipliers"):
        rd_steps(curves, 1.0, np.ones(3))


def test_lam_for_rate_spends_the_budget_and_no_more(coefficients: np.ndarray) -> None:
    from dnnjpeg.search.design.rdopt import lam_for_rate

    curves = rd_curves(coefficients, np.ones(64))
    for budget in (0.3, 0.6) * np.asarray(curves.totals([1] * 64)[1]):
        lam = lam_for_rate([curves, curves], 2 * budget)
        spent = curves.totals(rd_steps(curves, lam))[1]
        assert spent <= budget
        assert curves.totals(rd_steps(curves, lam * 0.98))[1] > spent  # a little cheaper rate buys more bits
    with pytest.raises(ValueError, match="no design spends"):
        lam_for_rate([curves], 1.0)  # less than the DC alone costs at the coarsest step
