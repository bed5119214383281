"""Rate-distortion design of a quantization table, one frequency at a time (RD-OPT).

With a distortion that adds up over coefficients (mean squared error, or the Fisher-weighted
error of :mod:`dnnjpeg.search.design.fisher_weights`) and a rate that adds up too, the table minimising
``distortion + lam * rate`` is found by choosing each of the 64 steps on its own (Ratnakar and
Livny's RD-OPT, 1995).  :func:`rd_curves` tabulates, for every frequency and every candidate step
of :data:`STEP_GRID`, the weighted squared error ``sum_blocks w (c - q round(c / q))^2`` and the
estimated bits; :func:`rd_steps` picks the best step of each frequency for a ``lam``.

Two rate models.  Given a ``reference`` table, the bits libjpeg's standard Huffman tables spend on
each coefficient, with the zero runs the reference leaves (:func:`dnnjpeg.search.design.jpegbits.coefficient_bits`:
exact at the reference, an approximation near it).  Without one, :mod:`dnnjpeg.search.design.dct`'s
run-blind proxy with hard rounding: a coefficient that quantizes to a nonzero value costs
``RATE_NONZERO_BITS + log2(1 + |c| / q)`` bits; the DC coefficient, coded as the difference from the
previous block's, costs ``2.5 + log2(1 + |difference|)``.  The proxy undercharges isolated
coefficients after long zero runs, which matters at low qualities: on the first 250 dev crops
(``research/rate_models.py``) it falls 830 bytes per image short of the real size of standard JPEG
at quality 30 (5697 B) but 1260 short for a squared-error RD-OPT table of about that size (6210 B),
so it favours such designs by 7% of their size; the Huffman model falls 1150 to 1270 bytes short of
every table measured (the EOB codes and the headers it leaves out).

Example:
    >>> rng = np.random.default_rng(0)
    >>> coef = rng.laplace(0, 20, (500, 64)).astype(np.float32)
    >>> curves = rd_curves(coef, np.ones_like(coef))
    >>> coarse, fine = rd_steps(curves, 10.0), rd_steps(curves, 0.01)
    >>> bool((coarse >= fine).all()), int(fine.min()) >= 1
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .jpegbits import check_component, coefficient_bits

#: Bits a nonzero quantized coefficient costs beyond its magnitude bits (its Huffman run/size code), in the
#: run-blind rate proxy; fitted to libjpeg file sizes (research/gradient.md).
RATE_NONZERO_BITS = 4.0

__all__ = ["STEP_GRID", "RDCurves", "lam_for_rate", "rd_curves", "rd_steps", "rd_steps_for_rate"]

#: Candidate steps: every step 1..24, then about 4% apart up to 255.
STEP_GRID: np.ndarray = np.unique(np.concatenate([np.arange(1, 25), np.rint(np.geomspace(25, 255, 60))])).astype(int)

DC_BITS = 2.5


@dataclass(frozen=True)
class RDCurves:
    """Weighted squared error and bits of every frequency at every step of ``steps``.

    Attributes:
        distortion: ``(64, len(steps))``, sum over blocks of ``w * error^2``.
        rate: ``(64, len(steps))``, estimated bits summed over blocks.
        steps: the candidate steps (ascending ints).
    """

    distortion: np.ndarray
    rate: np.ndarray
    steps: np.ndarray

    def totals(self, table: Sequence[int]) -> tuple[float, float]:
        """``(distortion, rate)`` summed over frequencies for 64 steps (each taken at its nearest grid step)."""
        j = np.abs(self.steps[None, :] - np.asarray(table)[:, None]).argmin(1)
        return float(self.distortion[np.arange(64), j].sum()), float(self.rate[np.arange(64), j].sum())


def rd_curves(
    coefficients: np.ndarray,
    weights: np.ndarray,
    steps: np.ndarray | None = None,
    *,
    max_blocks: int | None = 60_000,
    reference: Sequence[int] | None = None,
    component: str = "luma",
) -> RDCurves:
    """Tabulate distortion and rate per frequency and step.

    The AC sums run over at most ``max_blocks`` evenly spaced blocks, scaled up to all of them (the DC
    rate, which needs consecutive blocks, always uses every block); ``None`` uses every block.

    Args:
        coefficients: ``(blocks, 64)`` DCT coefficients (level-shifted, orthonormal DCT, natural order);
            blocks in coding order (the DC rate uses consecutive differences).
        weights: ``(blocks, 64)`` non-negative weight of each coefficient's squared error, or ``(64,)``.
        steps: candidate steps (default :data:`STEP_GRID`).
        reference: 64 steps (natural order): rate in libjpeg's Huffman bits with this table's zero
            runs; ``None``: the run-blind proxy.
        component: ``"luma"`` or ``"chroma"``: whose Huffman tables (with ``reference`` only).

    Raises:
        ValueError: shapes that do not match, negative or non-finite weights, a bad reference.
    """
    import torch

    c = np.asarray(coefficients, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    if c.ndim != 2 or c.shape[1] != 64 or len(c) == 0:
        raise ValueError(f"coefficients must be (blocks, 64) with blocks >= 1, got {c.shape}")
    if w.shape not in (c.shape, (64,)):
        raise ValueError(f"weights must be {c.shape} or (64,), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    check_component(component)  # before the curves are computed, not after
    grid = STEP_GRID if steps is None else np.asarray(steps, dtype=int)
    if grid.ndim != 1 or len(grid) == 0 or grid.min() < 1:
        raise ValueError(f"steps must be a non-empty 1-D array of positive integers, got {steps!r}")
    w = np.broadcast_to(w, c.shape)
    rows = np.arange(len(c))
    if max_blocks is not None and len(c) > max_blocks:
        rows = np.linspace(0, len(c) - 1, int(max_blocks)).round().astype(int)
    scale = len(c) / len(rows)
    ct = torch.from_numpy(np.ascontiguousarray(c[rows]))
    wt = torch.from_numpy(np.ascontiguousarray(w[rows]))
    dc = torch.from_numpy(np.ascontiguousarray(c[:, 0]))
    dist = np.empty((64, len(grid)))
    rate = np.empty((64, len(grid)))
    for j, q in enumerate(grid.tolist()):
        level = torch.round(ct / q)
        dist[:, j] = (wt * (ct - q * level) ** 2).sum(0, dtype=torch.float64).numpy() * scale
        if reference is None:
            ac = (level[:, 1:] != 0) * (RATE_NONZERO_BITS + torch.log2(1 + ct[:, 1:].abs() / q))
            rate[1:, j] = ac.sum(0, dtype=torch.float64).numpy() * scale
            dc_level = torch.round(dc / q)
            diff = torch.diff(dc_level, prepend=dc_level[:1] * 0)
            rate[0, j] = float((DC_BITS + torch.log2(1 + diff.abs())).sum(dtype=torch.float64))
    if reference is not None:
        rate = coefficient_bits(c, reference, component, steps=grid, max_blocks=max_blocks)
    return RDCurves(distortion=dist, rate=rate, steps=grid)


def rd_steps(curves: RDCurves, lam: float, multipliers: np.ndarray | None = None) -> np.ndarray:
    """The step of each frequency minimising ``multiplier * distortion + lam * rate`` (64 ints, natural order).

    Args:
        curves: from :func:`rd_curves`.
        lam: price of one bit in distortion units (larger: coarser steps).
        multipliers: ``(64,)`` factors on each frequency's distortion (default all 1).
    """
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    m = np.ones(64) if multipliers is None else np.asarray(multipliers, dtype=np.float64)
    if m.shape != (64,) or (m < 0).any() or not np.isfinite(m).all():
        raise ValueError("multipliers must be 64 finite non-negative numbers")
    cost = m[:, None] * curves.distortion + lam * curves.rate
    return curves.steps[np.argmin(cost, axis=1)].astype(int)


def lam_for_rate(curves: Sequence[RDCurves], bits: float, *, iterations: int = 60) -> float:
    """The smallest ``lam`` whose designs (:func:`rd_steps` on every curve) spend at most ``bits`` in all.

    Bisection on ``log lam``: the rate of a design never grows with ``lam``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> curves = rd_curves(rng.laplace(0, 20, (500, 64)).astype(np.float32), np.ones(64))
        >>> budget = curves.totals([16] * 64)[1]
        >>> lam = lam_for_rate([curves], budget)
        >>> curves.totals(rd_steps(curves, lam))[1] <= budget
        True
    """
    def spent(lam: float) -> float:
        return sum(c.totals(rd_steps(c, lam))[1] for c in curves)

    lo, hi = math.log(1e-12), math.log(1e12)
    if spent(math.exp(hi)) > bits:
        raise ValueError(f"no design spends {bits:.0f} bits or fewer (the coarsest spends {spent(math.exp(hi)):.0f})")
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if spent(math.exp(mid)) <= bits:
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def rd_steps_for_rate(curves: Sequence[RDCurves], bits: float) -> list[np.ndarray]:
    """The designs (one per curve, one shared ``lam``) that spend at most ``bits`` in all, as closely as
    :func:`lam_for_rate` finds."""
    lam = lam_for_rate(curves, bits)
    return [rd_steps(c, lam) for c in curves]
