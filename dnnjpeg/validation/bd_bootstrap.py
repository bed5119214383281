"""Bootstrap confidence intervals for a BD-rate measured on one set of images.

A family's BD-rate against standard JPEG (:func:`~dnnjpeg.evaluation.curve.bd_rate`) is one number from a few
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
    >>> from dnnjpeg.evaluation.evaluate import Result
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..evaluation.curve import METRICS, bd_accuracy, bd_rate
from .stats import DEFAULT_CONFIDENCE, DEFAULT_SEED, StatsError, _percentile_ci

__all__ = ["BD_RESAMPLES", "BDInterval", "MembersAhead", "bootstrap_bd", "bootstrap_members_ahead", "format_interval"]

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
        return _json_ready(self)


def _json_ready(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, with non-finite floats as ``None`` (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(record).items()}


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


class _PairedCurves:
    """Per-image values and bytes of two curves on the same images, and their BD figures on a draw."""

    def __init__(self, anchor: Sequence[Any], test: Sequence[Any], metric: str) -> None:
        if metric not in _PER_IMAGE:
            raise StatsError(f"metric must be one of {', '.join(_PER_IMAGE)}, got {metric!r}")
        self.metric = metric
        field = _PER_IMAGE[metric]
        ia, self.va, self.ba = _stack(anchor, field, "anchor")
        it, self.vt, self.bt = _stack(test, field, "test")
        if not np.array_equal(ia, it):
            raise StatsError("anchor and test Results are on different images (indices differ)")
        self.n = ia.size
        if self.n == 0:
            raise StatsError("the Results hold no images")

    def bd(self, sel: np.ndarray | None) -> tuple[float, float]:
        """(BD-rate, BD-accuracy) on the images ``sel`` picks (all when None)."""
        def curve(v: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if sel is None:
                return b.mean(axis=1), v.mean(axis=1)
            return b[:, sel].mean(axis=1), v[:, sel].mean(axis=1)

        a, t = curve(self.va, self.ba), curve(self.vt, self.bt)
        return bd_rate(a, t, metric=self.metric), bd_accuracy(a, t, metric=self.metric)


def _check_draws(resamples: int, sample_size: int | None) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise StatsError(f"resamples must be a positive integer, got {resamples!r}")
    if sample_size is not None and (isinstance(sample_size, bool) or not isinstance(sample_size, int)
                                    or sample_size < 1):
        raise StatsError(f"sample_size must be a positive integer or None, got {sample_size!r}")


def _draws(n: int, resamples: int, seed: int, sample_size: int | None) -> Iterator[np.ndarray]:
    """``resamples`` draws of ``sample_size`` (default ``n``) image positions, with replacement."""
    rng = np.random.default_rng(seed)
    size = n if sample_size is None else sample_size
    for _ in range(resamples):
        yield rng.integers(0, n, size=size)


def bootstrap_bd(
    anchor: Sequence[Any],
    test: Sequence[Any],
    *,
    metric: str = "top1",
    resamples: int = BD_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
    sample_size: int | None = None,
) -> BDInterval:
    """BD-rate of ``test`` against ``anchor`` with a paired bootstrap interval over the images.

    Args:
        anchor: Results of the reference curve (e.g. standard JPEG at several qualities).
        test: Results of the compared curve (e.g. a family's members), on the same images in the
            same order as ``anchor`` (``Result.indices`` equal), at least 2 each.
        metric: ``top1``, ``top5``, ``agreement``, ``ce`` or ``kl`` (as in :func:`~dnnjpeg.evaluation.curve.bd_rate`).
        resamples: bootstrap draws (``numpy.random.default_rng(seed)``; deterministic).
        confidence: coverage of the percentile intervals.
        sample_size: images per draw (default: as many as the Results hold, the usual bootstrap).
            Another number asks how far the figure would move on that many new images *if* these
            images stand for the population they come from: the interval narrows as
            ``1/sqrt(sample_size)``; the point estimate stays the one measured here.

    Returns:
        :class:`BDInterval`; its point estimates equal :func:`~dnnjpeg.evaluation.curve.bd_rate` and
        :func:`~dnnjpeg.evaluation.curve.bd_accuracy` of the Results themselves.

    Raises:
        StatsError: fewer than 2 Results on a side, Results on different images, a bad argument.
    """
    _check_draws(resamples, sample_size)
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in (0, 1), got {confidence!r}")
    curves = _PairedCurves(anchor, test, metric)
    est_rate, est_acc = curves.bd(None)
    rates = np.empty(resamples)
    accs = np.empty(resamples)
    for j, sel in enumerate(_draws(curves.n, resamples, seed, sample_size)):
        rates[j], accs[j] = curves.bd(sel)
    finite = np.isfinite(rates)
    lo, hi = _percentile_ci(rates, confidence)
    alo, ahi = _percentile_ci(accs, confidence)
    prob = float(np.mean(rates[finite] < 0.0)) if finite.any() else math.nan
    return BDInterval(
        bd_rate=float(est_rate), ci_low=lo, ci_high=hi, bd_accuracy=float(est_acc), accuracy_ci_low=alo,
        accuracy_ci_high=ahi, prob_smaller=prob, resamples=resamples, dropped=int(np.sum(~finite)),
        confidence=float(confidence), seed=int(seed), metric=metric,
    )


@dataclass(frozen=True)
class MembersAhead:
    """How often each member of a family beats standard JPEG at its own quality (the table it is
    size-matched to), over paired resamples of the images.  See :func:`bootstrap_members_ahead`.

    Attributes:
        qualities: the members' qualities, ascending; the lists below follow them.
        ahead: per member, whether it is ahead on the images themselves (higher top-1, or lower KL).
        every_ahead: whether every member is ahead on the images themselves.
        prob_ahead: per member, the share of resamples in which it is ahead (a tie is not ahead).
        prob_every_ahead: the share of resamples in which every member is ahead at once.
        bd_rate, bd_target, prob_bd_at_or_below_target: the family's BD-rate against the standard
            curve on the images themselves, the target asked about, and the share of resamples whose
            BD-rate is at or below it (``None`` without a target; undefined draws count as missing it).
        prob_goal: the share of resamples with every member ahead *and* the BD-rate at or below the
            target (``None`` without a target).
        sample_size, resamples, seed, metric: how it was computed (``sample_size`` images per draw).
    """

    qualities: list[int]
    ahead: list[bool]
    every_ahead: bool
    prob_ahead: list[float]
    prob_every_ahead: float
    bd_rate: float | None
    bd_target: float | None
    prob_bd_at_or_below_target: float | None
    prob_goal: float | None
    sample_size: int
    resamples: int
    seed: int
    metric: str

    def to_dict(self) -> dict[str, Any]:
        """Plain values (NaN as ``None``), for JSON."""
        return _json_ready(self)


def bootstrap_members_ahead(
    standard: Mapping[int, Any],
    members: Mapping[int, Any],
    *,
    metric: str = "top1",
    bd_target: float | None = None,
    resamples: int = BD_RESAMPLES,
    seed: int = DEFAULT_SEED,
    sample_size: int | None = None,
) -> MembersAhead:
    """How often every member of a family beats the standard table of its size, on resamples of the images.

    A family's members are size-matched to standard JPEG at their quality, so "member ``q`` beats
    standard JPEG" is a comparison of two Results on the same images.  One member ahead by less
    than the noise of a few hundred images is a coin toss, and "every member ahead" multiplies
    the tosses: this function says how often that (and, with ``bd_target``, a BD-rate at or below
    a target, in the same draw) comes out on images drawn like these.  With ``sample_size`` it
    answers for that many new images, assuming the measured images stand for their population.

    Args:
        standard: quality -> Result of standard JPEG, including every member's quality; all of
            them form the anchor curve of the BD-rate.
        members: quality -> Result of the member size-matched to standard JPEG at that quality,
            on the same images in the same order (e.g. a family's pooled held-out Results).
        metric: ``top1``, ``top5`` or ``agreement`` (higher is ahead), ``ce`` or ``kl`` (lower is ahead).
        bd_target: a BD-rate in percent (e.g. ``-15.0``) whose chance of being reached is wanted.
        resamples, seed: bootstrap draws (deterministic for a seed).
        sample_size: images per draw (default: as many as the Results hold).

    Returns:
        :class:`MembersAhead`.

    Raises:
        StatsError: a member whose quality has no standard Result, fewer than 2 members or
            standard Results, Results on different images, a bad argument.

    Example:
        >>> import numpy as np
        >>> from dnnjpeg.evaluation.evaluate import Result
        >>> def point(ok):
        ...     n = ok.size
        ...     return Result(model="m", data="d", protocol="crop224", table=None, quality=None, labelled=True,
        ...                   indices=np.arange(n), correct=ok, correct5=ok, agree=ok, ce=np.zeros(n),
        ...                   kl=np.zeros(n), bytes=np.full(n, 1000.0), pixels=np.full(n, 50176),
        ...                   bmp_bytes=np.full(n, 150582))
        >>> std = {30: point(np.arange(100) < 70), 50: point(np.arange(100) < 80)}
        >>> fam = {30: point(np.arange(100) < 71), 50: point(np.arange(100) < 81)}  # one image more each
        >>> ahead = bootstrap_members_ahead(std, fam, resamples=2000)
        >>> ahead.every_ahead, [round(p, 2) for p in ahead.prob_ahead], round(ahead.prob_every_ahead, 2)
        (True, [0.63, 0.65], 0.4)

        Each member is ahead only in the draws that contain its one deciding image (1 - 0.99**100 =
        0.63 of them), both only in 0.63**2 = 0.4 of them.
    """
    _check_draws(resamples, sample_size)
    qs = sorted(int(q) for q in members)
    missing = [q for q in qs if q not in standard]
    if missing:
        raise StatsError(f"no standard Result at the members' qualities {missing}: each member is compared with "
                         "the standard table of its own quality")
    curves = _PairedCurves([standard[q] for q in sorted(standard)], [members[q] for q in qs], metric)
    at = {q: i for i, q in enumerate(sorted(standard))}
    std_rows = curves.va[[at[q] for q in qs]]  # the standard table of each member's quality, member order
    sign = 1.0 if METRICS[metric] else -1.0

    def ahead_on(sel: np.ndarray | None) -> np.ndarray:
        t, s = (curves.vt, std_rows) if sel is None else (curves.vt[:, sel], std_rows[:, sel])
        return sign * (t.mean(axis=1) - s.mean(axis=1)) > 0.0

    counts = np.zeros(len(qs))
    every = reached = goal = 0
    for sel in _draws(curves.n, resamples, seed, sample_size):
        won = ahead_on(sel)
        counts += won
        every += bool(won.all())
        if bd_target is not None:
            rate = curves.bd(sel)[0]
            hit = bool(np.isfinite(rate) and rate <= bd_target)
            reached += hit
            goal += hit and bool(won.all())
    won0 = ahead_on(None)
    rate0 = curves.bd(None)[0]
    target = None if bd_target is None else float(bd_target)
    return MembersAhead(
        qualities=qs, ahead=[bool(w) for w in won0], every_ahead=bool(won0.all()),
        prob_ahead=[float(c / resamples) for c in counts], prob_every_ahead=every / resamples,
        bd_rate=float(rate0) if np.isfinite(rate0) else None, bd_target=target,
        prob_bd_at_or_below_target=None if target is None else reached / resamples,
        prob_goal=None if target is None else goal / resamples,
        sample_size=curves.n if sample_size is None else sample_size, resamples=resamples, seed=int(seed),
        metric=metric,
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
