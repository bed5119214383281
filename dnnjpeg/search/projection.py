"""Size projection: evaluate every candidate table at the size of a standard JPEG quality.

With ``dnnjpeg tune --quality Q --project``, each proposal is scaled (all 128 steps times one
factor) until its mean JPEG size on the tuning images is just below standard JPEG's at ``Q``,
and only then evaluated.  The search then spends its whole budget on the table's *shape* (which
frequencies keep detail) instead of also on its overall strength, and every candidate is compared
with standard JPEG at the same size: the question a size-matched family member has to answer.

The scale is found by a safeguarded secant search on ``log(mean bytes)`` against ``log(scale)``
(:func:`project_to_size`): about four rate-only encodes of the images (no model), against about
sixteen for bisection.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..evaluation.codec import as_qtable
from ..qtable import QTable

__all__ = ["SizeProjectedEvaluator", "project_to_size", "scale_table"]


def scale_table(table: QTable, scale: float) -> QTable:
    """Every step of ``table`` times ``scale``, rounded and clipped to 1..255.

    Example:
        >>> scale_table(QTable.standard(50), 2.0).luma[:3]
        (32, 22, 20)
    """
    luma = np.clip(np.rint(np.array(table.luma, float) * scale), 1, 255).astype(int)
    chroma = np.clip(np.rint(np.array(table.chroma, float) * scale), 1, 255).astype(int)
    return table.replace(luma=luma, chroma=chroma)


def project_to_size(
    size_of: Callable[[QTable], float],
    table: QTable,
    target: float,
    *,
    tolerance: float = 0.005,
    max_iterations: int = 10,
) -> tuple[QTable, float, float]:
    """Scale ``table`` so that ``size_of(table)`` lies in ``[target * (1 - tolerance), target]``.

    Args:
        size_of: mean JPEG bytes of a table (e.g. ``lambda t: evaluator.sizes(t).mean()``).
        table: the table to scale.
        target: the size to reach from below (bytes).
        tolerance: accepted relative shortfall.
        max_iterations: size queries after the first; the best scale not above ``target`` found
            so far is returned when they run out.  If none is below yet, the scale keeps growing
            (doubling steps) until one is, or the steps reach 255 (then the smallest size).

    Returns:
        ``(scaled table, scale, its size)``.

    Example:
        >>> size = lambda t: 1e5 / float(np.mean(t.luma))   # a toy rate model
        >>> t, s, b = project_to_size(size, QTable.standard(50), 2000.0)
        >>> 1990 <= b <= 2000
        True
    """
    if not target > 0:
        raise ValueError(f"target size must be positive, got {target!r}")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    lo_t = target * (1 - tolerance)
    # points: log-scale -> size, with a bracket [above (size > target), below (size <= target)]
    above: tuple[float, float] | None = None
    below: tuple[float, float, QTable] | None = None
    smallest: tuple[float, float, QTable] | None = None
    x: float | None = 0.0
    last: tuple[float, float] | None = None
    for _ in range(max_iterations + 1):
        assert x is not None
        t = scale_table(table, math.exp(x))
        b = float(size_of(t))
        if smallest is None or b < smallest[1]:
            smallest = (x, b, t)
        if b <= target:
            if below is None or b > below[1]:
                below = (x, b, t)
            if b >= lo_t:
                break
        elif above is None or b < above[1]:
            above = (x, b)
        x, last = _next_x(x, b, target, above, below, last), (x, b)
        if x is None:
            break
    step = 0.05
    while below is None and x is not None and x < math.log(256.0):  # guarantee: end at or below the target
        x = min(max(x, above[0] if above else x) + step, math.log(256.0))
        step *= 2
        t = scale_table(table, math.exp(x))
        b = float(size_of(t))
        if b <= target:
            below = (x, b, t)
        elif smallest is None or b < smallest[1]:
            smallest = (x, b, t)
    best = below if below is not None else smallest
    return best[2], math.exp(best[0]), best[1]


def _next_x(x: float, b: float, target: float, above: tuple[float, float] | None,
            below: tuple[float, float, QTable] | None, last: tuple[float, float] | None = None) -> float | None:
    """Next log-scale: secant between the bracket ends, else a step with a typical slope."""
    lim = math.log(256.0)
    if above is not None and below is not None:
        xa, ba = above
        xb, bb = below[0], below[1]
        if xb - xa <= 1e-4:
            return None
        la, lb, lt = math.log(ba), math.log(bb), math.log(target * 0.9975)
        nxt = xa + (lt - la) * (xb - xa) / (lb - la) if lb != la else (xa + xb) / 2
        # stay strictly inside the bracket (and away from its ends)
        margin = 0.1 * (xb - xa)
        return min(max(nxt, xa + margin), xb - margin)
    # one-sided: log(bytes) falls about 0.7 per unit of log(scale) for photos (else the slope of the
    # last two points); move at least 2%
    # (rounding makes small scale changes a no-op on tables with small steps)
    slope = 0.7
    if last is not None and last[0] != x and last[1] > 0 and b != last[1]:
        slope = min(max(-(math.log(b) - math.log(last[1])) / (x - last[0]), 0.1), 3.0)
    nxt = x + (math.log(b) - math.log(target * 0.9975)) / slope
    nxt = max(nxt, x + 0.02) if b > target else min(nxt, x - 0.02)
    nxt = min(max(nxt, -lim), lim)
    return None if abs(nxt - x) < 1e-6 else nxt


class SizeProjectedEvaluator:
    """Wraps an evaluator: :meth:`evaluate` projects each table to standard JPEG's size at ``quality``.

    Everything else (model, dataset, fingerprints, ``sizes``) is the wrapped evaluator's.

    Args:
        evaluator: a :class:`dnnjpeg.evaluation.evaluate.Evaluator` (or anything with ``evaluate`` and ``sizes``).
        quality: the standard JPEG quality whose mean size (on ``evaluator``'s images) is the target.
        tolerance: accepted relative shortfall below the target size.
    """

    def __init__(self, evaluator: Any, quality: int, *, tolerance: float = 0.005) -> None:
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
        self.inner = evaluator
        self.quality = quality
        self.tolerance = float(tolerance)
        self._projected: dict[QTable, QTable] = {}

    @functools.cached_property
    def target(self) -> float:
        """Standard JPEG's mean size at ``quality`` (measured on first use: a rerun of a finished
        study projects nothing)."""
        return float(np.mean(self.inner.sizes(QTable.standard(self.quality))))

    def project(self, table: QTable) -> QTable:
        """``table`` scaled to the target size (memoized)."""
        hit = self._projected.get(table)
        if hit is None:
            hit, _, _ = project_to_size(lambda t: float(np.mean(self.inner.sizes(t))), table, self.target,
                                        tolerance=self.tolerance)
            self._projected[table] = hit
        return hit

    def evaluate(self, table: Any = None, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        if table is None:
            return self.inner.evaluate(None, indices=indices)
        return self.inner.evaluate(self.project(as_qtable(table)), indices=indices)

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "__getstate__", "__setstate__") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_projected": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<SizeProjectedEvaluator q{self.quality} ({self.target:.0f} B) of {self.inner!r}>"
