"""Objectives: map an evaluation's metrics and the standard-JPEG curve to one number (higher is better).

Every objective is written ``KIND[-SIGNAL][:ARG]`` (``dnnjpeg tune --objective``):

``fitness`` (default)
    The seed's objective: ``signal - fitness(CR)``, where the fitness parabola is fitted to
    standard JPEG's ``signal`` vs CR at qualities 10..95 on the same images
    (:meth:`dnnjpeg.evaluation.curve.StandardCurve.objective`).  Positive = above the standard curve.
``size-matched:Q``
    Best accuracy at the size of standard quality ``Q``:
    ``(signal - signal_Q) - w * s * max(0, ln(bytes / bytes_Q))``: the gain over standard ``Q``
    measured on the same images, minus a penalty for exceeding its size.  ``s`` is standard JPEG's
    exchange rate ``d signal / d ln(bytes)`` at ``Q`` (slope of a quadratic fit), ``w = 2``: a
    table never profits from being larger than ``Q``.
``target-accuracy:A``
    Smallest size at top-1 accuracy ``A`` (a fraction, or a percentage when above 1):
    ``-ln(bytes / bytes_A) - w * max(0, signal_A - signal) / s``, where ``bytes_A`` is the size at
    which standard JPEG reaches ``A`` (isotonic interpolation of its curve) and ``signal_A`` the
    required signal (``A`` itself for top-1; standard JPEG's ``signal`` at that size otherwise).
    Units: log-size saving against standard JPEG (0.1 = about 10% smaller).

Signals: ``top1`` (default, the seed's; noisy: a 500-image top-1 has a standard error of about 1.5
points), ``top5``, ``agreement`` (top-1 equal to the uncompressed prediction), and the continuous,
low-noise ``ce`` (mean cross-entropy on the label) and ``kl`` (mean KL divergence from the
prediction on the uncompressed image), which enter with a minus sign so higher is better.
Examples: ``fitness-kl``, ``size-matched-ce:50``, ``target-accuracy:0.8``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from .base import SearchError

__all__ = [
    "OBJECTIVE_KINDS",
    "SIGNALS",
    "Fitness",
    "Objective",
    "SizeMatched",
    "TargetAccuracy",
    "parse_objective",
    "signed_signal",
]

#: Signals an objective can use, with whether higher raw values are better.
SIGNALS: dict[str, bool] = {"top1": True, "top5": True, "agreement": True, "ce": False, "kl": False}


def signed_signal(metrics: Mapping[str, float], signal: str) -> float:
    """``metrics[signal]``, negated for lower-is-better signals (``ce``, ``kl``).

    Example:
        >>> signed_signal({"top1": 0.8, "kl": 0.05}, "kl")
        -0.05
    """
    if signal not in SIGNALS:
        raise SearchError(f"signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
    v = float(metrics[signal])
    return v if SIGNALS[signal] else -v


def _curve_points(curve: Any, signal: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ln bytes, signed signal)`` of the curve's points, sorted by size."""
    x = np.log(curve.values("bytes_mean"))
    y = curve.values(signal) * (1.0 if SIGNALS[signal] else -1.0)
    order = np.argsort(x)
    return x[order], y[order]


def _exchange_rate(curve: Any, signal: str, at_log_bytes: float) -> float:
    """Standard JPEG's ``d signal / d ln(bytes)`` at ``at_log_bytes`` (quadratic fit; floored at a
    tenth of the curve's average slope so noise cannot make it zero or negative)."""
    x, y = _curve_points(curve, signal)
    if len(x) < 3:
        raise SearchError("the standard curve needs at least 3 qualities for this objective")
    a, b, _ = np.polyfit(x, y, 2)
    slope = 2 * a * at_log_bytes + b
    mean_slope = abs(y[-1] - y[0]) / max(1e-12, x[-1] - x[0])
    return float(max(slope, 0.1 * mean_slope, 1e-12))


@dataclass(frozen=True)
class Objective:
    """Base class: ``bind(curve)`` then call with an evaluation's metrics (``Result.summary()``).

    Attributes:
        signal: the accuracy signal (see :data:`SIGNALS`).
        weight: penalty weight ``w`` of the constrained objectives.
    """

    kind: ClassVar[str] = ""
    signal: str = "top1"
    weight: float = 2.0
    curve: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise SearchError(f"objective signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")
        if not self.weight > 0:
            raise SearchError(f"objective weight must be > 0, got {self.weight!r}")

    @property
    def spec(self) -> str:
        """The string form (what :func:`parse_objective` reads)."""
        s = self.kind if self.signal == "top1" else f"{self.kind}-{self.signal}"
        arg = self._arg()
        return s if arg is None else f"{s}:{arg}"

    def __str__(self) -> str:
        return self.spec

    def _arg(self) -> str | None:
        return None

    def required_qualities(self) -> tuple[int, ...]:
        """Standard qualities the curve must contain for this objective."""
        return ()

    def bind(self, curve: Any) -> Objective:
        """A copy that uses ``curve`` (a :class:`dnnjpeg.evaluation.curve.StandardCurve` on the same images)."""
        bound = replace(self, curve=curve)
        bound._prepare()
        return bound

    def _prepare(self) -> None:
        pass

    def _set_consts(self, **values: float) -> None:
        object.__setattr__(self, "_consts", dict(values))

    def _need_curve(self) -> Any:
        if self.curve is None:
            raise SearchError(f"objective {self.spec!r} is not bound to a standard curve (call bind(curve))")
        return self.curve

    def __call__(self, metrics: Mapping[str, float]) -> float:
        """The objective value of one evaluation (higher is better)."""
        raise NotImplementedError

    def pair(self, metrics: Mapping[str, float]) -> tuple[float, float]:
        """``(signed signal, bytes_mean)``: the two objectives of multi-objective search."""
        return signed_signal(metrics, self.signal), float(metrics["bytes_mean"])


@dataclass(frozen=True)
class Fitness(Objective):
    """``signal - fitness(CR)`` (the seed's objective with ``signal="top1"``).

    Example:
        >>> from dnnjpeg.evaluation.curve import StandardCurve, CurvePoint
        >>> pts = [CurvePoint(q, a, a, a, 1 - a, 0.1, b, 150582 / b, 0.1, 100)
        ...        for q, a, b in [(10, 0.6, 3000), (50, 0.8, 7000), (90, 0.88, 17000)]]
        >>> f = Fitness().bind(StandardCurve(pts))
        >>> round(f({"top1": 0.85, "cr": 150582 / 7000, "bytes_mean": 7000}), 6)
        0.05
    """

    kind: ClassVar[str] = "fitness"

    def __call__(self, metrics: Mapping[str, float]) -> float:
        curve = self._need_curve()
        return float(curve.objective(value=float(metrics[self.signal]), cr=float(metrics["cr"]), metric=self.signal))


@dataclass(frozen=True)
class SizeMatched(Objective):
    """Gain over standard quality ``quality`` at no more than its size (see the module docstring).

    Example:
        >>> from dnnjpeg.evaluation.curve import StandardCurve, CurvePoint
        >>> pts = [CurvePoint(q, a, a, a, 1 - a, 0.1, b, 150582 / b, 0.1, 100)
        ...        for q, a, b in [(10, 0.6, 3000), (50, 0.8, 7000), (90, 0.88, 17000)]]
        >>> o = SizeMatched(quality=50).bind(StandardCurve(pts))
        >>> round(o({"top1": 0.81, "bytes_mean": 7000}), 6), o({"top1": 0.81, "bytes_mean": 8000}) < 0
        (0.01, True)
    """

    kind: ClassVar[str] = "size-matched"
    quality: int = 50

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise SearchError(f"size-matched quality must be an integer in 1..100, got {self.quality!r}")

    def _arg(self) -> str:
        return str(self.quality)

    def required_qualities(self) -> tuple[int, ...]:
        return (self.quality,)

    def _prepare(self) -> None:
        curve = self._need_curve()
        try:
            p = curve.point(self.quality)
        except KeyError:
            raise SearchError(f"the standard curve has no point at quality {self.quality} (has {curve.qualities.tolist()})") from None
        self._set_consts(
            signal_q=signed_signal({self.signal: getattr(p, self.signal)}, self.signal),
            log_bytes_q=math.log(p.bytes_mean),
            rate=_exchange_rate(curve, self.signal, math.log(p.bytes_mean)),
        )

    def __call__(self, metrics: Mapping[str, float]) -> float:
        self._need_curve()
        c = self._consts
        excess = max(0.0, math.log(float(metrics["bytes_mean"])) - c["log_bytes_q"])
        return signed_signal(metrics, self.signal) - c["signal_q"] - self.weight * c["rate"] * excess


@dataclass(frozen=True)
class TargetAccuracy(Objective):
    """Log-size saving against standard JPEG at top-1 ``accuracy`` (see the module docstring).

    Example:
        >>> from dnnjpeg.evaluation.curve import StandardCurve, CurvePoint
        >>> pts = [CurvePoint(q, a, a, a, 1 - a, 0.1, b, 150582 / b, 0.1, 100)
        ...        for q, a, b in [(10, 0.6, 3000), (50, 0.8, 7000), (90, 0.88, 17000)]]
        >>> o = TargetAccuracy(accuracy=0.8).bind(StandardCurve(pts))
        >>> round(o({"top1": 0.8, "bytes_mean": 7000 * math.exp(-0.1)}), 6)
        0.1
    """

    kind: ClassVar[str] = "target-accuracy"
    accuracy: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        a = self.accuracy
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 < float(a) <= 100.0:
            raise SearchError(f"target accuracy must be a fraction in (0, 1] or a percentage, got {a!r}")
        if float(a) > 1.0:
            object.__setattr__(self, "accuracy", float(a) / 100.0)

    def _arg(self) -> str:
        return f"{self.accuracy:g}"

    def _prepare(self) -> None:
        curve = self._need_curve()
        cr_a = curve.cr_at_top1(self.accuracy, metric="top1")
        if not math.isfinite(cr_a):
            top = curve.values("top1")
            raise SearchError(
                f"target accuracy {self.accuracy:g} is outside standard JPEG's top-1 range on these images "
                f"({top.min():.4f}..{top.max():.4f}); pick a target inside it"
            )
        bmp_mean = float(curve.points[0].bytes_mean * curve.points[0].cr)
        bytes_a = bmp_mean / cr_a
        if self.signal == "top1":
            signal_a = self.accuracy
        else:
            raw = curve.top1_at_cr(cr_a, metric=self.signal, method="isotonic")
            signal_a = signed_signal({self.signal: raw}, self.signal)
        self._set_consts(
            log_bytes_a=math.log(bytes_a),
            signal_a=signal_a,
            rate=_exchange_rate(curve, self.signal, math.log(bytes_a)),
        )

    def __call__(self, metrics: Mapping[str, float]) -> float:
        self._need_curve()
        c = self._consts
        shortfall = max(0.0, c["signal_a"] - signed_signal(metrics, self.signal))
        return c["log_bytes_a"] - math.log(float(metrics["bytes_mean"])) - self.weight * shortfall / c["rate"]


#: Objective kinds by name.
OBJECTIVE_KINDS: dict[str, type[Objective]] = {
    "fitness": Fitness,
    "size-matched": SizeMatched,
    "target-accuracy": TargetAccuracy,
}


def parse_objective(spec: str | Objective) -> Objective:
    """Read ``KIND[-SIGNAL][:ARG]`` (see the module docstring).

    Example:
        >>> parse_objective("fitness-kl").signal, parse_objective("size-matched:50").quality
        ('kl', 50)
        >>> parse_objective("target-accuracy-ce:80").accuracy
        0.8
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise SearchError(f"objective must be a non-empty string, got {spec!r}")
    s = spec.strip()
    for kind in sorted(OBJECTIVE_KINDS, key=len, reverse=True):
        if s == kind or s.startswith((kind + "-", kind + ":")):
            rest = s[len(kind):]
            break
    else:
        raise SearchError(f"unknown objective {spec!r}; kinds: {', '.join(OBJECTIVE_KINDS)} (e.g. fitness-kl, size-matched:50)")
    arg: str | None = None
    if ":" in rest:
        rest, arg = rest.split(":", 1)
    signal = rest[1:] if rest.startswith("-") else "top1"
    if rest and not rest.startswith("-"):
        raise SearchError(f"objective {spec!r}: expected KIND[-SIGNAL][:ARG]")
    if signal not in SIGNALS:
        raise SearchError(f"objective {spec!r}: signal {signal!r} is not one of {', '.join(SIGNALS)}")
    cls = OBJECTIVE_KINDS[kind]
    if cls is Fitness:
        if arg is not None:
            raise SearchError(f"objective {spec!r}: fitness takes no argument")
        return Fitness(signal=signal)
    if arg is None or not arg.strip():
        what = "a standard quality, e.g. size-matched:50" if cls is SizeMatched else "an accuracy, e.g. target-accuracy:0.8"
        raise SearchError(f"objective {spec!r} needs {what}")
    try:
        if cls is SizeMatched:
            return SizeMatched(signal=signal, quality=int(arg))
        return TargetAccuracy(signal=signal, accuracy=float(arg))
    except ValueError as exc:
        if isinstance(exc, SearchError):
            raise
        raise SearchError(f"objective {spec!r}: bad argument {arg!r}") from None
