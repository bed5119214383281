"""The standard-JPEG rate-accuracy curve, the seed's fitness parabola and objective, and BD-rate.

* :class:`StandardCurve`: standard JPEG qualities (default 5..95 step 5) evaluated by an
  :class:`~dnnjpeg.evaluation.evaluate.Evaluator`, with ``top1_at_cr``, ``cr_at_top1``, the fitted
  :class:`Parabola` and ``objective(result) = top1 - fitness(CR)`` (the seed's objective).
* :func:`fitness_parabola_fit`: least-squares parabola ``metric ~ a CR^2 + b CR + c``.
* :func:`bd_rate`: Bjontegaard delta rate between two rate-accuracy curves: the mean
  percentage of bytes a test curve saves against an anchor at equal accuracy, over the
  accuracy range the curves share.  :func:`bd_accuracy` is its dual (accuracy gain at equal rate).

Accuracies are fractions (0.892, not 89.2) everywhere.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DnnjpegError

__all__ = [
    "DEFAULT_QUALITIES",
    "SEARCH_CURVE_QUALITIES",
    "SEED_FITNESS",
    "CurvePoint",
    "Parabola",
    "StandardCurve",
    "bd_accuracy",
    "bd_rate",
    "fitness_parabola_fit",
    "rate_accuracy",
]

#: Qualities swept by default: 5, 10, ..., 95 (curves, families, validation).
DEFAULT_QUALITIES: tuple[int, ...] = tuple(range(5, 96, 5))
#: The seed's reference curve for a search objective (``dnnjpeg tune``): 10, 20, ..., 90 and 95, ten
#: evaluations instead of nineteen.  Kept apart from DEFAULT_QUALITIES so seeded searches stay identical.
SEARCH_CURVE_QUALITIES: tuple[int, ...] = (*range(10, 91, 10), 95)

#: Metrics a curve point carries; ``higher`` says which direction is better.
METRICS: dict[str, bool] = {"top1": True, "top5": True, "agreement": True, "ce": False, "kl": False}


@dataclass(frozen=True)
class Parabola:
    """``f(cr) = a * cr**2 + b * cr + c``."""

    a: float
    b: float
    c: float

    def __call__(self, cr: float | np.ndarray) -> float | np.ndarray:
        x = np.asarray(cr, dtype=np.float64)
        y = (self.a * x + self.b) * x + self.c
        return float(y) if y.ndim == 0 else y

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "c": self.c}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Parabola:
        return cls(float(d["a"]), float(d["b"]), float(d["c"]))


#: The seed's fitness (ResNet-50, ImageNet val): accuracy as a fraction vs CR.
SEED_FITNESS = Parabola(-6.40782216e-5, -1.81228974e-3, 0.64625525)


def fitness_parabola_fit(cr: Sequence[float] | np.ndarray, metric: Sequence[float] | np.ndarray) -> Parabola:
    """Least-squares parabola through ``(cr, metric)`` points (needs at least 3 distinct CRs).

    Example:
        >>> p = fitness_parabola_fit([10, 20, 30, 40], [0.9, 0.8, 0.6, 0.3])
        >>> round(p(20), 3)
        0.8
    """
    x = np.asarray(cr, dtype=np.float64).reshape(-1)
    y = np.asarray(metric, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"cr and metric differ in length ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if np.unique(x).size < 3:
        raise ValueError("fitting a parabola needs at least 3 points with distinct CRs")
    a, b, c = np.polyfit(x, y, 2)
    return Parabola(float(a), float(b), float(c))


@dataclass(frozen=True)
class CurvePoint:
    """One standard quality's aggregates."""

    quality: int
    top1: float
    top5: float
    agreement: float
    ce: float
    kl: float
    bytes_mean: float
    cr: float
    bpp: float
    n: int

    @classmethod
    def from_result(cls, quality: int, result: Any) -> CurvePoint:
        s = result.summary()
        return cls(
            quality=int(quality),
            **{k: s[k] for k in ("top1", "top5", "agreement", "ce", "kl", "bytes_mean", "cr", "bpp", "n")},
        )


@dataclass
class StandardCurve:
    """Standard JPEG's rate-accuracy curve for one model, dataset and protocol.

    Attributes:
        points: one :class:`CurvePoint` per quality, sorted by quality.
        model, data, protocol: what was measured.
        reference: aggregates of the uncompressed reference (``top1`` etc.), may be empty.
        fit_qualities: the inclusive quality range the fitness parabola is fitted on
            (default ``(10, 95)``: the seed's range).
        results: the full :class:`~dnnjpeg.evaluation.evaluate.Result` per quality when computed in this
            process (for paired statistics); not serialized.
    """

    points: list[CurvePoint]
    model: str = ""
    data: str = ""
    protocol: str = "crop224"
    reference: dict[str, Any] = field(default_factory=dict)
    fit_qualities: tuple[int, int] = (10, 95)
    results: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def compute(
        cls,
        evaluator: Any,
        qualities: Iterable[int] = DEFAULT_QUALITIES,
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        progress: bool = False,
        keep_results: bool = True,
    ) -> StandardCurve:
        """Sweep ``qualities`` with ``evaluator`` (plus the uncompressed reference)."""
        qs = sorted({int(q) for q in qualities})
        if not qs:
            raise ValueError("no qualities to sweep")
        ref = evaluator.evaluate(None, indices=indices)
        results: dict[int, Any] = {}
        it: Iterable[int] = qs
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(qs, desc="standard curve", unit="q")
            it = bar
        try:
            for q in it:
                results[q] = evaluator.evaluate_standard(q, indices=indices)
                if bar is not None:
                    bar.set_postfix(q=q, top1=f"{results[q].top1:.3f}", cr=f"{results[q].cr:.1f}")
        finally:
            if bar is not None:
                bar.close()
        return cls(
            points=[CurvePoint.from_result(q, results[q]) for q in qs],
            model=ref.model,
            data=ref.data,
            protocol=ref.protocol,
            reference=ref.summary(),
            results=results if keep_results else {},
        )

    # -- arrays --------------------------------------------------------------------------
    @property
    def qualities(self) -> np.ndarray:
        return np.array([p.quality for p in self.points], dtype=np.int64)

    def values(self, metric: str = "top1") -> np.ndarray:
        """Per-quality values of ``metric`` (``top1``, ``top5``, ``agreement``, ``ce``, ``kl``,
        ``cr``, ``bpp``, ``bytes_mean``)."""
        return np.array([getattr(p, metric) for p in self.points], dtype=np.float64)

    def point(self, quality: int) -> CurvePoint:
        """The point measured at ``quality``."""
        for p in self.points:
            if p.quality == quality:
                return p
        raise KeyError(f"quality {quality} is not on this curve (has {self.qualities.tolist()})")

    # -- fitness and objective -------------------------------------------------------------
    def fitness(self, metric: str = "top1") -> Parabola:
        """The parabola ``metric ~ CR`` fitted on the qualities in ``fit_qualities`` (all points when
        fewer than 3 lie in that range)."""
        _check_metric(metric)
        lo, hi = self.fit_qualities
        q = self.qualities
        sel = (q >= lo) & (q <= hi)
        if sel.sum() < 3:
            sel = np.ones_like(sel)
        return fitness_parabola_fit(self.values("cr")[sel], self.values(metric)[sel])

    def objective(
        self, result: Any = None, *, metric: str = "top1", value: float | None = None, cr: float | None = None
    ) -> float:
        """``metric - fitness(CR)`` for a Result (or explicit ``value``, ``cr``); higher is better.

        For lower-is-better metrics (``ce``, ``kl``) the sign is flipped: ``fitness(CR) - metric``.
        """
        _check_metric(metric)
        if result is not None:
            s = result.summary() if hasattr(result, "summary") else dict(result)
            value = s[metric] if value is None else value
            cr = s["cr"] if cr is None else cr
        if value is None or cr is None:
            raise ValueError("objective() needs a result, or both value= and cr=")
        f = self.fitness(metric)(float(cr))
        return float(value) - f if METRICS[metric] else f - float(value)

    # -- interpolation ---------------------------------------------------------------------
    def _sorted(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        cr = self.values("cr")
        y = self.values(metric)
        order = np.argsort(cr, kind="stable")
        return cr[order], y[order]

    def top1_at_cr(self, cr: float, *, metric: str = "top1", method: str = "linear") -> float:
        """Standard JPEG's ``metric`` at compression rate ``cr``.

        Methods: ``"linear"`` (piecewise linear between measured points, sorted by CR),
        ``"isotonic"`` (the same on the monotone least-squares fit, non-increasing in CR),
        ``"parabola"`` (the fitness parabola).  Outside the measured CR range: NaN
        (``"parabola"`` extrapolates).
        """
        _check_metric(metric)
        if method == "parabola":
            return float(self.fitness(metric)(float(cr)))
        x, y = self._sorted(metric)
        if method == "isotonic":
            y = _monotone_in_cr(y, METRICS[metric])
        elif method != "linear":
            raise ValueError(f"method must be 'linear', 'isotonic' or 'parabola', got {method!r}")
        if not x[0] <= cr <= x[-1]:
            return math.nan
        return float(np.interp(cr, x, y))

    def cr_at_top1(self, top1: float, *, metric: str = "top1") -> float:
        """The largest CR at which standard JPEG reaches ``top1`` (isotonic fit, linear between
        points); NaN when ``top1`` lies outside the curve's range."""
        _check_metric(metric)
        higher = METRICS[metric]
        x, y = self._sorted(metric)
        yi = _monotone_in_cr(y, higher)
        sign = 1.0 if higher else -1.0
        g = sign * yi  # non-increasing in CR
        v = sign * float(top1)
        if v > g[0] + 1e-12 or v < g[-1] - 1e-12:
            return math.nan
        reach = np.flatnonzero(g >= v - 1e-12)
        j = int(reach[-1])
        if j == len(x) - 1:
            return float(x[-1])
        if g[j] == g[j + 1]:
            return float(x[j])
        return float(x[j] + (g[j] - v) / (g[j] - g[j + 1]) * (x[j + 1] - x[j]))

    # -- I/O -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        fitness = {}
        for m in METRICS:
            try:
                fitness[m] = self.fitness(m).to_dict()
            except ValueError:
                pass
        return {
            "format": CURVE_FORMAT,
            "version": 1,
            "model": self.model,
            "data": self.data,
            "protocol": self.protocol,
            "reference": dict(self.reference),
            "fit_qualities": list(self.fit_qualities),
            "fitness": fitness,
            "points": [asdict(p) for p in self.points],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StandardCurve:
        if d.get("format", CURVE_FORMAT) != CURVE_FORMAT:
            raise ValueError(f"not a {CURVE_FORMAT} document (format {d.get('format')!r})")
        return cls(
            points=sorted((CurvePoint(**p) for p in d["points"]), key=lambda p: p.quality),
            model=d.get("model", ""),
            data=d.get("data", ""),
            protocol=d.get("protocol", "crop224"),
            reference=dict(d.get("reference", {})),
            fit_qualities=tuple(d.get("fit_qualities", (10, 95))),  # type: ignore[arg-type]
        )

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> StandardCurve:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def plot(self, path: str | os.PathLike[str], *, metric: str = "top1", extra: Iterable[Any] = ()) -> None:
        """Save a PNG of ``metric`` vs CR with the fitted parabola (matplotlib, Agg backend).
        ``extra``: Results or ``(label, cr, value)`` triples drawn as labelled markers."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise DnnjpegError("plotting needs matplotlib (pip install 'dnnjpeg[tune]' or matplotlib)") from None

        _check_metric(metric)
        cr, y = self.values("cr"), self.values(metric)
        fit = self.fitness(metric)
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        ax.plot(cr, y, "o-", color="tab:blue", lw=1, ms=4, label="standard JPEG")
        for q, xv, yv in zip(self.qualities, cr, y):
            ax.annotate(f"q{q}", (xv, yv), textcoords="offset points", xytext=(3, 3), fontsize=7, color="0.35")
        xs = np.linspace(cr.min(), cr.max(), 200)
        lo, hi = self.fit_qualities
        ax.plot(
            xs,
            fit(xs),
            "--",
            color="tab:orange",
            label=f"fitness: {fit.a:.3g} CR² {fit.b:+.3g} CR {fit.c:+.3g} (q{lo}..q{hi})",
        )
        ref = self.reference.get(metric)
        if ref is not None:
            ax.axhline(ref, color="0.5", ls=":", lw=1, label=f"uncompressed ({ref:.3f})")
        for item in extra:
            if hasattr(item, "summary"):
                s = item.summary()
                label = (item.table or {}).get("name", "table")
                ax.plot([s["cr"]], [s[metric]], "s", ms=6, label=str(label))
            else:
                label, xv, yv = item
                ax.plot([xv], [yv], "s", ms=6, label=str(label))
        ax.set_xlabel("compression rate (BMP bytes / JPEG bytes)" if self.protocol == "crop224" else "compression rate")
        ax.set_ylabel(metric)
        n = self.points[0].n if self.points else 0
        ax.set_title(f"{self.model} on {self.data} [{self.protocol}], n={n}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


CURVE_FORMAT = "dnnjpeg-curve"


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def _isotonic_increasing(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators, equal weights)."""
    vals: list[float] = []
    counts: list[int] = []
    for v in np.asarray(y, dtype=np.float64):
        vals.append(float(v))
        counts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            c = counts[-2] + counts[-1]
            vals[-2] = (vals[-2] * counts[-2] + vals[-1] * counts[-1]) / c
            counts[-2] = c
            vals.pop()
            counts.pop()
    return np.repeat(vals, counts)


def _monotone_in_cr(y: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Isotonic fit of ``y`` (sorted by increasing CR) that gets worse as CR grows."""
    if higher_is_better:  # non-increasing in CR
        return -_isotonic_increasing(-y)
    return _isotonic_increasing(y)


def rate_accuracy(curve: Any, metric: str = "top1", rate: str = "bytes_mean") -> tuple[np.ndarray, np.ndarray]:
    """``(rates, accuracies)`` of a StandardCurve, a sequence of Results, or a ``(rates, accs)`` pair."""
    _check_metric(metric)
    if isinstance(curve, StandardCurve):
        return curve.values(rate), curve.values(metric)
    if isinstance(curve, tuple) and len(curve) == 2 and not hasattr(curve[0], "summary"):
        r, a = (np.asarray(v, dtype=np.float64).reshape(-1) for v in curve)
        if r.shape != a.shape:
            raise ValueError("rates and accuracies differ in length")
        return r, a
    items = list(curve)
    if items and all(hasattr(x, "summary") for x in items):
        sums = [x.summary() for x in items]
        return (
            np.array([s[rate] for s in sums], dtype=np.float64),
            np.array([s[metric] for s in sums], dtype=np.float64),
        )
    raise TypeError("expected a StandardCurve, a sequence of Results, or a (rates, accuracies) pair")


def _prepare_bd(curve: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    r, a = rate_accuracy(curve, metric)
    ok = np.isfinite(r) & np.isfinite(a) & (r > 0)
    r, a = r[ok], a[ok]
    if r.size < 2:
        raise ValueError("a rate-accuracy curve needs at least 2 points")
    sign = 1.0 if METRICS[metric] else -1.0
    return np.log(r), sign * a


def _monotone_curve(logr: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by rate, average duplicate rates, isotonic non-decreasing accuracy."""
    order = np.argsort(logr, kind="stable")
    x, y = logr[order], acc[order]
    ux, inv = np.unique(x, return_inverse=True)
    uy = np.bincount(inv, weights=y) / np.bincount(inv)
    return ux, _isotonic_increasing(uy)


def _integral_mean(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, n: int = 2001) -> float:
    xs = np.linspace(lo, hi, n)
    ys = f(xs)
    return float(np.sum((ys[1:] + ys[:-1]) * 0.5 * np.diff(xs)) / (hi - lo))


def _pchip(x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    if x.size == 2:
        return lambda t: np.interp(t, x, y)
    try:
        from scipy.interpolate import PchipInterpolator
    except ImportError:
        raise DnnjpegError(
            "BD-rate with method='pchip' needs scipy; pip install scipy, or use method='poly3'"
        ) from None

    return PchipInterpolator(x, y, extrapolate=False)


def bd_rate(anchor: Any, test: Any, *, metric: str = "top1", method: str = "pchip") -> float:
    """Bjontegaard delta rate of ``test`` against ``anchor``, in percent.

    Both curves: a :class:`StandardCurve`, a sequence of Results, or ``(rates, accuracies)``
    (rates in bytes, bpp, or 1/CR: any quantity proportional to bytes).  Log-rate is
    interpolated as a function of accuracy, integrated over the accuracy interval both curves
    cover, and the mean difference is returned as ``100 * (exp(mean) - 1)``: negative means
    ``test`` needs fewer bytes for the same accuracy (``-5.0`` = 5% smaller files).

    Methods: ``"pchip"`` (piecewise cubic Hermite on the monotone, isotonic fit of accuracy vs
    log-rate; robust for noisy, non-monotone accuracy curves) or ``"poly3"`` (the classic cubic
    polynomial fit of Bjontegaard's VCEG-M33).  NaN when the curves' accuracy ranges do not overlap.

    Example:
        >>> rates = [1000, 2000, 4000, 8000]; acc = [0.5, 0.7, 0.8, 0.85]
        >>> round(bd_rate((rates, acc), ([r * 0.9 for r in rates], acc)), 6)
        -10.0
    """
    _check_metric(metric)
    la, aa = _prepare_bd(anchor, metric)
    lt, at = _prepare_bd(test, metric)
    if method == "poly3":
        lo, hi = max(aa.min(), at.min()), min(aa.max(), at.max())
        if not hi > lo:
            return math.nan
        pa = np.polyint(np.polyfit(aa, la, min(3, aa.size - 1)))
        pt = np.polyint(np.polyfit(at, lt, min(3, at.size - 1)))
        diff = (np.polyval(pt, hi) - np.polyval(pt, lo) - np.polyval(pa, hi) + np.polyval(pa, lo)) / (hi - lo)
        return float(100.0 * (math.exp(diff) - 1.0))
    if method != "pchip":
        raise ValueError(f"method must be 'pchip' or 'poly3', got {method!r}")
    curves = []
    for logr, acc in ((la, aa), (lt, at)):
        x, y = _monotone_curve(logr, acc)
        # invert: log-rate as a function of accuracy; a plateau keeps its cheapest rate
        uy, first = np.unique(y, return_index=True)
        if uy.size < 2:
            return math.nan
        curves.append((uy, x[first]))
    lo = max(curves[0][0][0], curves[1][0][0])
    hi = min(curves[0][0][-1], curves[1][0][-1])
    if not hi > lo:
        return math.nan
    fa, ft = _pchip(*curves[0]), _pchip(*curves[1])
    diff = _integral_mean(lambda t: ft(t) - fa(t), lo, hi)
    return float(100.0 * (math.exp(diff) - 1.0))


def bd_accuracy(anchor: Any, test: Any, *, metric: str = "top1", method: str = "pchip") -> float:
    """Mean accuracy gain (fraction) of ``test`` over ``anchor`` at equal rate, over the shared
    log-rate interval (the BD-PSNR analogue).  For lower-is-better metrics (``ce``, ``kl``) the
    result is the mean *reduction* (positive = ``test`` better).

    Example:
        >>> rates = [1000, 2000, 4000, 8000]; acc = [0.5, 0.7, 0.8, 0.85]
        >>> round(bd_accuracy((rates, acc), (rates, [a + 0.01 for a in acc])), 6)
        0.01
    """
    _check_metric(metric)
    la, aa = _prepare_bd(anchor, metric)
    lt, at = _prepare_bd(test, metric)
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if not hi > lo:
        return math.nan
    if method == "poly3":
        pa = np.polyint(np.polyfit(la, aa, min(3, la.size - 1)))
        pt = np.polyint(np.polyfit(lt, at, min(3, lt.size - 1)))
        return float((np.polyval(pt, hi) - np.polyval(pt, lo) - np.polyval(pa, hi) + np.polyval(pa, lo)) / (hi - lo))
    if method != "pchip":
        raise ValueError(f"method must be 'pchip' or 'poly3', got {method!r}")
    fa = _pchip(*_monotone_curve(la, aa))
    ft = _pchip(*_monotone_curve(lt, at))
    return _integral_mean(lambda t: ft(t) - fa(t), lo, hi)
