"""Bootstrap confidence intervals for a BD-rate measured on one set of images.

A family's BD-rate against standard JPEG (:func:`~dnnjpeg.curve.bd_rate`) is one number from a few
hundred images; on 500 images one top-1 figure moves by about 1.5 points by chance, and where the
accuracy curve is flat a point of top-1 is worth many percent of rate.  :func:`bootstrap_bd`
says how far the number could move: it resamples the *images* with replacement (the same draw for
every curve point of both curves, so the comparison stays paired), recomputes every point's
accuracy and mean bytes on the draw, and recomputes BD-rate and BD-accuracy.

What it covers: the sampling of the evaluation images.  What it does not: the tables are held
fixed, so the chance in the search that found them (which tables a search happened to try) is
not in the interval; class-disjoint cross-validation is what guards against that.

Example:
    >>> import numpy as np
    >>> from dnnjpeg.evaluate import Result
    >>> rng = np.random.default_rng(1)
    >>> def point(nbytes, p):
    ...     n = 400
    ...     return Result(model="m", data="d", protocol="crop224", table=None, quality=None, labelled=True,
    ...                   indices=np.arange(n), correct=rng.random(n) < p, correct5=np.ones(n, bool),
    ...                   agree=np.ones(n, bool), ce=np.zeros(n), kl=np.zeros(n),
    ...                   bytes=np.full(n, float(nbytes)), pixels=np.full(n, 50176), bmp_bytes=np.full(n, 150582))
    >>> anchor = [point(b, p) for b, p in [(4000, 0.6), (6000, 0.7), (9000, 0.8), (14000, 0.9)]]
    >>> test = [point(0.8 * b, p) for b, p in [(4000, 0.6), (6000, 0.7), (9000, 0.8), (14000, 0.9)]]
    >>> iv = bootstrap_bd(anchor, test, resamples=200)
    >>> iv.ci_low < iv.bd_rate < iv.ci_high, iv.resamples
    (True, 200)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .curve import bd_accuracy, bd_rate
from .stats import DEFAULT_CONFIDENCE, DEFAULT_SEED, StatsError, _percentile_ci

__all__ = ["BD_RESAMPLES", "BDInterval", "bootstrap_bd", "format_interval"]

#: Resamples of :func:`bootstrap_bd` unless told otherwise (each recomputes two BD integrals).
BD_RESAMPLES = 2000

#: Per-image field of a Result behind each metric.
_PER_IMAGE = {"top1": "correct", "top5": "correct5", "agreement": "agree", "ce": "ce", "kl": "kl"}


@dataclass(frozen=True)
class BDInterval:
    """BD-rate and BD-accuracy on the original images, with paired bootstrap percentile intervals.

    Attributes:
        bd_rate, ci_low, ci_high: BD-rate in percent (negative = smaller files at equal accuracy).
        bd_accuracy, accuracy_ci_low, accuracy_ci_high: mean accuracy gain at equal rate (fraction).
        prob_smaller: fraction of resamples whose BD-rate is below 0 (test needs fewer bytes).
        resamples, dropped: draws made, and draws where the curves shared no accuracy range
            (their BD-rate is undefined; left out of the interval and of ``prob_smaller``).
        confidence, seed, metric: how it was computed.
    """

    bd_rate: float
    ci_low: float
    ci_high: float
    bd_accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    prob_smaller: float
    resamples: int
    dropped: int
    confidence: float
    seed: int
    metric: str

    def to_dict(self) -> dict[str, Any]:
        """Plain floats (NaN as ``None``), for JSON."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _stack(results: Sequence[Any], field: str, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(results) < 2:
        raise StatsError(f"the {what} curve needs at least 2 Results, got {len(results)}")
    first = np.asarray(results[0].indices)
    for i, r in enumerate(results):
        if not np.array_equal(np.asarray(r.indices), first):
            raise StatsError(f"{what} Result {i} is on other images than the first (indices differ); "
                             "a paired bootstrap needs every Result on the same images in the same order")
    values = np.vstack([np.asarray(getattr(r, field), dtype=np.float64) for r in results])
    nbytes = np.vstack([np.asarray(r.bytes, dtype=np.float64) for r in results])
    return first, values, nbytes


def bootstrap_bd(
    anchor: Sequence[Any],
    test: Sequence[Any],
    *,
    metric: str = "top1",
    resamples: int = BD_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> BDInterval:
    """BD-rate of ``test`` against ``anchor`` with a paired bootstrap interval over the images.

    Args:
        anchor: Results of the reference curve (e.g. standard JPEG at several qualities).
        test: Results of the compared curve (e.g. a family's members), on the same images in the
            same order as ``anchor`` (``Result.indices`` equal), at least 2 each.
        metric: ``top1``, ``top5``, ``agreement``, ``ce`` or ``kl`` (as in :func:`~dnnjpeg.curve.bd_rate`).
        resamples: bootstrap draws (``numpy.random.default_rng(seed)``; deterministic).
        confidence: coverage of the percentile intervals.

    Returns:
        :class:`BDInterval`; its point estimates equal :func:`~dnnjpeg.curve.bd_rate` and
        :func:`~dnnjpeg.curve.bd_accuracy` of the Results themselves.

    Raises:
        StatsError: fewer than 2 Results on a side, Results on different images, a bad argument.
    """
    if metric not in _PER_IMAGE:
        raise StatsError(f"metric must be one of {', '.join(_PER_IMAGE)}, got {metric!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise StatsError(f"resamples must be a positive integer, got {resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in (0, 1), got {confidence!r}")
    field = _PER_IMAGE[metric]
    ia, va, ba = _stack(anchor, field, "anchor")
    it, vt, bt = _stack(test, field, "test")
    if not np.array_equal(ia, it):
        raise StatsError("anchor and test Results are on different images (indices differ)")
    n = ia.size
    if n == 0:
        raise StatsError("the Results hold no images")

    def bd_pair(sel: np.ndarray | None) -> tuple[float, float]:
        def curve(v: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if sel is None:
                return b.mean(axis=1), v.mean(axis=1)
            return b[:, sel].mean(axis=1), v[:, sel].mean(axis=1)

        a, t = curve(va, ba), curve(vt, bt)
        return bd_rate(a, t, metric=metric), bd_accuracy(a, t, metric=metric)

    est_rate, est_acc = bd_pair(None)
    rng = np.random.default_rng(seed)
    rates = np.empty(resamples)
    accs = np.empty(resamples)
    for j in range(resamples):
        rates[j], accs[j] = bd_pair(rng.integers(0, n, size=n))
    finite = np.isfinite(rates)
    lo, hi = _percentile_ci(rates, confidence)
    alo, ahi = _percentile_ci(accs, confidence)
    prob = float(np.mean(rates[finite] < 0.0)) if finite.any() else math.nan
    return BDInterval(
        bd_rate=float(est_rate), ci_low=lo, ci_high=hi, bd_accuracy=float(est_acc), accuracy_ci_low=alo,
        accuracy_ci_high=ahi, prob_smaller=prob, resamples=resamples, dropped=int(np.sum(~finite)),
        confidence=float(confidence), seed=int(seed), metric=metric,
    )


def format_interval(interval: Mapping[str, Any] | None) -> str:
    """``" (95% CI -20.1% to +3.4%, smaller in 94% of 2000 resamples)"``, from
    :meth:`BDInterval.to_dict`; ``""`` when there is none (e.g. a file written before intervals).

    Example:
        >>> format_interval({"ci_low": -20.14, "ci_high": 3.37, "confidence": 0.95, "prob_smaller": 0.9415,
        ...                  "resamples": 2000})
        ' (95% CI -20.1% to +3.4%, smaller in 94% of 2000 resamples)'
        >>> format_interval(None)
        ''
    """
    if not interval or interval.get("ci_low") is None or interval.get("ci_high") is None:
        return ""
    prob = interval.get("prob_smaller")
    share = "" if prob is None else f", smaller in {100 * prob:.0f}% of {interval['resamples']} resamples"
    return (f" ({100 * interval['confidence']:.0f}% CI {interval['ci_low']:+.1f}% to "
            f"{interval['ci_high']:+.1f}%{share})")
