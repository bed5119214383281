"""Paired statistics for comparing a table with standard JPEG on the same images.

Everything here works on per-image arrays (``Result.correct``, ``Result.bytes``...), needs no model,
and is deterministic (bootstraps use a fixed seed).

* :func:`mcnemar_exact`: exact McNemar test on the discordant pairs,
  ``scipy.stats.binomtest(b, b + c, 0.5)`` (``p = 1`` when there are none).
* :func:`paired_ttest`: the seed work's paired t-test on per-image correctness
  (``scipy.stats.ttest_rel``; ``p = 1`` when every difference is 0).
* :func:`bootstrap_mean_diff_ci`: paired bootstrap percentile CI of ``mean(a) - mean(b)``.
* :func:`interp_linear`: a value of a curve at ``x``, linear between the neighbouring points
  (sorted by ``x``); NaN outside the measured range.
* :func:`nearest_index`: the point of nearest value (e.g. the standard quality of nearest mean bytes).
* :func:`bootstrap_delta_at_rate`: paired bootstrap CI of *top-1 minus standard top-1 interpolated
  at the same CR*, resampling images jointly for the table and every standard quality.
* :func:`paired_comparison`: all of the paired figures in one :class:`PairedComparison`.

Example:
    >>> import numpy as np
    >>> a = np.array([1, 1, 1, 1, 0, 1, 1, 0])
    >>> b = np.array([1, 0, 0, 0, 0, 1, 1, 0])
    >>> mcnemar_exact(a, b)            # 3 discordant pairs, all favouring a: p = 2 * 0.5**3
    McNemar(b=3, c=0, p_value=0.25)
    >>> round(paired_ttest(a, a).p_value, 3)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import DnnjpegError

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "McNemar",
    "PairedComparison",
    "StatsError",
    "TTest",
    "bootstrap_delta_at_rate",
    "bootstrap_mean_diff_ci",
    "interp_linear",
    "mcnemar_exact",
    "nearest_index",
    "paired_comparison",
    "paired_ttest",
    "wilson_interval",
]

#: Bootstrap resamples used unless told otherwise.
DEFAULT_RESAMPLES = 10_000
#: Seed of the bootstrap's ``numpy.random.default_rng``.
DEFAULT_SEED = 0
#: Two-sided confidence level of the intervals.
DEFAULT_CONFIDENCE = 0.95

_CHUNK = 500  # resamples per vectorized block (bounds memory: chunk x n indices)


class StatsError(DnnjpegError):
    """Inputs that cannot be compared (mismatched lengths, empty arrays, bad levels)."""


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test.

    Attributes:
        b: pairs where the first outcome is right and the second wrong.
        c: pairs where the first outcome is wrong and the second right.
        p_value: two-sided exact binomial p-value of ``b`` successes in ``b + c`` trials at 0.5.
    """

    b: int
    c: int
    p_value: float


@dataclass(frozen=True)
class TTest:
    """Paired t-test on per-image differences: ``statistic`` (t) and two-sided ``p_value``."""

    statistic: float
    p_value: float


@dataclass(frozen=True)
class PairedComparison:
    """Paired comparison of two outcome arrays on the same images (first minus second).

    Attributes:
        n: number of images.
        mean_a, mean_b: the two means (top-1 when the arrays are correctness).
        delta: ``mean_a - mean_b``.
        mcnemar: exact McNemar test (binary outcomes only, else ``None``).
        ttest: the seed's paired t-test.
        ci_low, ci_high: paired bootstrap percentile interval of ``delta``.
        confidence, resamples, seed: how the interval was computed.
    """

    n: int
    mean_a: float
    mean_b: float
    delta: float
    mcnemar: McNemar | None
    ttest: TTest
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (nested ``mcnemar``/``ttest`` dicts)."""
        return asdict(self)


def _as_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise StatsError(f"paired arrays must have the same length, got {x.size} and {y.size}")
    if x.size == 0:
        raise StatsError("paired arrays are empty")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise StatsError("paired arrays contain NaN or infinite values")
    return x, y


def _check_binary(x: np.ndarray, what: str) -> None:
    bad = x[(x != 0) & (x != 1)]
    if bad.size:
        raise StatsError(f"{what} must hold 0/1 outcomes, found {float(bad[0]):g}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in (0, 1), got {confidence!r}")


def mcnemar_exact(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray) -> McNemar:
    """Exact McNemar test of two paired binary outcome arrays (e.g. per-image top-1 hits).

    ``b`` counts pairs (first right, second wrong), ``c`` (first wrong, second right); the
    p-value is ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``, and 1 when ``b + c = 0``.

    Args:
        a, b: 0/1 (or bool) arrays of equal length.

    Example:
        >>> mcnemar_exact([1, 0, 1, 1], [1, 1, 0, 0]).b
        2
        >>> mcnemar_exact([1, 0], [1, 0]).p_value
        1.0
    """
    x, y = _as_pair(a, b)
    _check_binary(x, "first outcome array")
    _check_binary(y, "second outcome array")
    nb = int(np.sum((x == 1) & (y == 0)))
    nc = int(np.sum((x == 0) & (y == 1)))
    if nb + nc == 0:
        return McNemar(nb, nc, 1.0)
    from scipy.stats import binomtest

    return McNemar(nb, nc, float(min(1.0, binomtest(nb, nb + nc, 0.5).pvalue)))


def paired_ttest(a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray) -> TTest:
    """The seed's paired t-test: ``scipy.stats.ttest_rel(a, b)`` on per-image values.

    Defined as ``t = 0, p = 1`` when every difference is 0 (scipy returns NaN there).  Needs at
    least 2 pairs.

    Example:
        >>> r = paired_ttest([1, 0], [0, 0])     # t = 1 with 1 degree of freedom: p = 0.5
        >>> round(r.statistic, 6), round(r.p_value, 6)
        (1.0, 0.5)
    """
    x, y = _as_pair(a, b)
    if x.size < 2:
        raise StatsError(f"a paired t-test needs at least 2 pairs, got {x.size}")
    d = x - y
    if np.all(d == 0):
        return TTest(0.0, 1.0)
    from scipy.stats import ttest_rel

    res = ttest_rel(x, y)
    return TTest(float(res.statistic), float(res.pvalue))


def _resample_indices(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    return rng.integers(0, n, size=(count, n))


def _chunks(total: int) -> list[int]:
    return [min(_CHUNK, total - s) for s in range(0, total, _CHUNK)]


def _percentile_ci(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    ok = samples[np.isfinite(samples)]
    if ok.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ok, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_mean_diff_ci(
    a: Sequence[Any] | np.ndarray,
    b: Sequence[Any] | np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Paired bootstrap percentile interval of ``mean(a) - mean(b)``.

    Images are resampled with replacement (the same draw for ``a`` and ``b``) ``resamples``
    times with ``numpy.random.default_rng(seed)``.

    Example:
        >>> bootstrap_mean_diff_ci([1, 1, 0, 1], [1, 1, 0, 1], resamples=200)
        (0.0, 0.0)
    """
    x, y = _as_pair(a, b)
    _check_confidence(confidence)
    if resamples < 1:
        raise StatsError(f"resamples must be >= 1, got {resamples}")
    d = x - y
    rng = np.random.default_rng(seed)
    out = np.concatenate([d[_resample_indices(rng, d.size, k)].mean(axis=1) for k in _chunks(resamples)])
    return _percentile_ci(out, confidence)


def interp_linear(x_points: Sequence[float] | np.ndarray, y_points: Sequence[float] | np.ndarray,
                  x: float) -> float:
    """``y`` at ``x`` on the polyline through the points sorted by ``x``; NaN outside their range.

    Used to read standard JPEG's top-1 at a table's CR ("linear in CR between neighbouring
    standard qualities").  Points with equal ``x`` are averaged.

    Example:
        >>> round(interp_linear([20.0, 10.0, 30.0], [0.8, 0.9, 0.6], 25.0), 12)
        0.7
        >>> interp_linear([10.0, 20.0], [0.9, 0.8], 40.0)
        nan
    """
    xs = np.asarray(x_points, dtype=np.float64).reshape(-1)
    ys = np.asarray(y_points, dtype=np.float64).reshape(-1)
    if xs.shape != ys.shape or xs.size == 0:
        raise StatsError(f"need equal, non-empty point arrays, got {xs.size} x and {ys.size} y values")
    ux, inv = np.unique(xs, return_inverse=True)
    uy = np.bincount(inv, weights=ys) / np.bincount(inv)
    xv = float(x)
    if not math.isfinite(xv) or xv < ux[0] or xv > ux[-1]:
        return math.nan
    return float(np.interp(xv, ux, uy))


def nearest_index(values: Sequence[float] | np.ndarray, target: float) -> int:
    """Index of the value nearest to ``target`` (the first on ties).

    Example:
        >>> nearest_index([9000.0, 7400.0, 6100.0], 7000.0)
        1
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise StatsError("no values to choose from")
    return int(np.argmin(np.abs(v - float(target))))


def bootstrap_delta_at_rate(
    correct: np.ndarray,
    nbytes: np.ndarray,
    bmp_bytes: np.ndarray,
    ref_correct: np.ndarray,
    ref_bytes: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float, int]:
    """Paired bootstrap of ``top1 - top1_ref_at(CR)``: a table against a reference curve at equal CR.

    Each resample draws images with replacement and recomputes, on that draw, the table's top-1 and
    CR (``mean(bmp_bytes) / mean(bytes)``), every reference point's top-1 and CR, and the reference
    top-1 interpolated (:func:`interp_linear`) at the table's CR.  Resamples whose CR falls outside
    the reference curve's range are dropped (their count is returned).

    Args:
        correct, nbytes, bmp_bytes: per-image arrays of the table, shape ``(n,)``.
        ref_correct, ref_bytes: the reference curve, shape ``(q, n)`` (one row per quality), same images.

    Returns:
        ``(estimate, ci_low, ci_high, dropped)``; ``estimate`` is on the original images.
    """
    c = np.asarray(correct, dtype=np.float64).reshape(-1)
    nb = np.asarray(nbytes, dtype=np.float64).reshape(-1)
    bmp = np.asarray(bmp_bytes, dtype=np.float64).reshape(-1)
    rc = np.asarray(ref_correct, dtype=np.float64)
    rb = np.asarray(ref_bytes, dtype=np.float64)
    n = c.size
    if n == 0 or nb.size != n or bmp.size != n:
        raise StatsError(f"table arrays must be non-empty and equally long, got {c.size}, {nb.size}, {bmp.size}")
    if rc.ndim != 2 or rc.shape != rb.shape or rc.shape[1] != n:
        raise StatsError(f"reference arrays must have shape (qualities, {n}), got {rc.shape} and {rb.shape}")
    _check_confidence(confidence)
    if resamples < 1:
        raise StatsError(f"resamples must be >= 1, got {resamples}")

    def delta(top1: float, cr: float, ref_top1: np.ndarray, ref_cr: np.ndarray) -> float:
        return top1 - interp_linear(ref_cr, ref_top1, cr)

    estimate = delta(c.mean(), bmp.mean() / nb.mean(), rc.mean(axis=1), bmp.mean() / rb.mean(axis=1))
    rng = np.random.default_rng(seed)
    all_correct = np.vstack([c[None, :], rc])
    all_bytes = np.vstack([nb[None, :], rb])
    samples: list[np.ndarray] = []
    for k in _chunks(resamples):
        idx = _resample_indices(rng, n, k)
        bmp_m = bmp[idx].mean(axis=1)
        # the table is row 0 of one stack, so a table equal to a reference row gets identical arithmetic
        top1_all = all_correct[:, idx].mean(axis=2)  # (1 + q, k)
        cr_all = bmp_m[None, :] / all_bytes[:, idx].mean(axis=2)
        samples.append(top1_all[0] - _interp_columns(cr_all[1:], top1_all[1:], cr_all[0]))
    arr = np.concatenate(samples)
    lo, hi = _percentile_ci(arr, confidence)
    return float(estimate), lo, hi, int(np.sum(~np.isfinite(arr)))


def _interp_columns(xp: np.ndarray, yp: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Column-wise :func:`interp_linear`: ``xp``, ``yp`` of shape ``(q, k)``, ``x`` of shape ``(k,)``."""
    order = np.argsort(xp, axis=0, kind="stable")
    xs = np.take_along_axis(xp, order, axis=0)
    ys = np.take_along_axis(yp, order, axis=0)
    q, k = xs.shape
    out = np.full(k, np.nan)
    inside = (x >= xs[0]) & (x <= xs[-1])
    if q == 1:
        out[inside] = ys[0, inside]
        return out
    hi = np.clip((xs < x[None, :]).sum(axis=0), 1, q - 1)  # first point with xs >= x
    cols = np.arange(k)
    x0, x1 = xs[hi - 1, cols], xs[hi, cols]
    y0, y1 = ys[hi - 1, cols], ys[hi, cols]
    width = x1 - x0
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(width > 0, (x - x0) / width, 0.5)
    val = y0 * (1.0 - w) + y1 * w  # exact at the nodes (w = 0 or 1)
    out[inside] = val[inside]
    return out


def paired_comparison(
    a: Sequence[Any] | np.ndarray,
    b: Sequence[Any] | np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """McNemar (when binary), the paired t-test and a paired bootstrap CI of ``mean(a) - mean(b)``.

    Example:
        >>> pc = paired_comparison([1, 1, 0, 1], [1, 0, 0, 1], resamples=100)
        >>> pc.delta, pc.mcnemar.b, pc.mcnemar.c
        (0.25, 1, 0)
    """
    x, y = _as_pair(a, b)
    binary = bool(np.all((x == 0) | (x == 1)) and np.all((y == 0) | (y == 1)))
    lo, hi = bootstrap_mean_diff_ci(x, y, resamples=resamples, confidence=confidence, seed=seed)
    return PairedComparison(
        n=int(x.size),
        mean_a=float(x.mean()),
        mean_b=float(y.mean()),
        delta=float(x.mean() - y.mean()),
        mcnemar=mcnemar_exact(x, y) if binary else None,
        ttest=paired_ttest(x, y) if x.size >= 2 else TTest(math.nan, math.nan),
        ci_low=lo,
        ci_high=hi,
        confidence=float(confidence),
        resamples=int(resamples),
        seed=int(seed),
    )


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (error bars of one top-1 figure).

    Example:
        >>> lo, hi = wilson_interval(446, 500)
        >>> round(lo, 3), round(hi, 3)
        (0.862, 0.916)
    """
    if n <= 0 or not 0 <= successes <= n:
        raise StatsError(f"need 0 <= successes <= n and n > 0, got successes={successes}, n={n}")
    _check_confidence(confidence)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
