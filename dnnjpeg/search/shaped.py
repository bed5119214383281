"""``shaped``: standard JPEG's tables, bent by a few parameters, searched in that small space.

Random tables (the seed's ``sorted`` generator) rarely beat the standard tables at equal size:
the annex-K tables encode decades of knowledge about which frequencies photos need.  This method
keeps their shape and searches only a handful of smooth deviations from it, so a search of 30-60
evaluations covers the space and cannot overfit 64-128 free steps to a few hundred images:

* ``tilt`` (luma) and ``chroma_tilt``: each step times ``((1 + u + v) / 8) ** tilt`` (``u, v`` the
  row and column, 0..7): positive tilts quantize high frequencies more, negative ones less;
* ``chroma_ratio`` (``separate`` spaces): chroma steps times this factor relative to luma;
* ``scale``: all steps times this factor (irrelevant with ``tune(project=True)``, which scales
  every candidate to a target size anyway);
* the chroma subsampling, when the space lets it vary.

Proposals: first standard JPEG's own shape (with each allowed subsampling), then alternately a
uniform random point of the parameter box and a Gaussian step around the best point so far.

Options:
    base_quality: the standard quality whose tables give the shape (default 50).
    tilt: ``[lo, hi]`` range of both tilts (default ``[-0.6, 0.6]``).
    chroma_ratio: ``[lo, hi]`` range, log-uniform (default ``[0.4, 2.5]``).
    scale: ``[lo, hi]`` range, log-uniform (default ``[0.25, 4.0]``).
    local_sigma: step size of the local proposals, in units of each range (default 0.15).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..qtable import QTable
from .base import SearchError, SearchMethod, register_method

__all__ = ["ShapedSearch", "shaped_table", "unit_proposal"]

_U, _V = np.divmod(np.arange(64), 8)
_FREQ = (1.0 + _U + _V) / 8.0


def shaped_table(base: QTable, tilt: float = 0.0, chroma_tilt: float = 0.0, chroma_ratio: float = 1.0,
                 scale: float = 1.0, subsampling: str | None = None, single: bool = False) -> QTable:
    """``base`` bent by the parameters (see the module docstring); steps rounded, clipped to 1..255.

    Example:
        >>> std = QTable.standard(50)
        >>> shaped_table(std) == std.replace(subsampling="4:2:0")
        True
        >>> t = shaped_table(std, tilt=0.5)
        >>> t.luma[0] < std.luma[0], t.luma[63] > std.luma[63] * 0.99
        (True, True)
    """
    luma = np.asarray(base.luma, float) * scale * _FREQ ** tilt
    luma_i = np.clip(np.rint(luma), 1, 255).astype(int)
    if single:
        return QTable(luma_i, None, subsampling=subsampling or base.subsampling)
    chroma = np.asarray(base.chroma, float) * scale * chroma_ratio * _FREQ ** chroma_tilt
    chroma_i = np.clip(np.rint(chroma), 1, 255).astype(int)
    return QTable(luma_i, chroma_i, subsampling=subsampling or base.subsampling)


@register_method("shaped")
class ShapedSearch(SearchMethod):
    """Search a few smooth deviations from standard JPEG's tables (see the module docstring).

    Example:
        >>> a = ShapedSearch("separate+subsampling", seed=2); b = ShapedSearch("separate+subsampling", seed=2)
        >>> first = a.ask(); first.luma == QTable.standard(50).luma
        True
        >>> [a.ask() for _ in range(4)] == [b.ask() for _ in range(5)][1:]
        True
    """

    defaults: ClassVar[dict[str, Any]] = {
        "base_quality": 50, "tilt": [-0.6, 0.6], "chroma_ratio": [0.4, 2.5], "scale": [0.25, 4.0],
        "local_sigma": 0.15,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        q = o["base_quality"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
            raise SearchError(f"option base_quality must be an integer in 1..100, got {q!r}")
        self._ranges = {k: _range(k, o[k], positive=k != "tilt") for k in ("tilt", "chroma_ratio", "scale")}
        if not 0 < float(o["local_sigma"]) <= 1:
            raise SearchError(f"option local_sigma must be in (0, 1], got {o['local_sigma']!r}")
        self._base = QTable.standard(q)
        self._single = self.space.tables == "single"
        # unit coordinates: tilt, chroma_tilt, log chroma_ratio, log scale (+ subsampling index)
        self._params: dict[QTable, np.ndarray] = {}
        self._origin = self._unit_of(tilt=0.0, chroma_tilt=0.0, chroma_ratio=1.0, scale=1.0)

    # -- parameters <-> tables -------------------------------------------------------------
    def _unit_of(self, **p: float) -> np.ndarray:
        (tlo, thi), (clo, chi), (slo, shi) = (self._ranges[k] for k in ("tilt", "chroma_ratio", "scale"))
        return np.clip(np.array([
            (p["tilt"] - tlo) / (thi - tlo), (p["chroma_tilt"] - tlo) / (thi - tlo),
            (math.log(p["chroma_ratio"]) - math.log(clo)) / (math.log(chi) - math.log(clo)),
            (math.log(p["scale"]) - math.log(slo)) / (math.log(shi) - math.log(slo)),
        ]), 0.0, 1.0)

    def _table(self, u: np.ndarray, sub_index: int) -> QTable:
        (tlo, thi), (clo, chi), (slo, shi) = (self._ranges[k] for k in ("tilt", "chroma_ratio", "scale"))
        t = shaped_table(
            self._base,
            tilt=tlo + u[0] * (thi - tlo), chroma_tilt=tlo + u[1] * (thi - tlo),
            chroma_ratio=math.exp(math.log(clo) + u[2] * (math.log(chi) - math.log(clo))),
            scale=math.exp(math.log(slo) + u[3] * (math.log(shi) - math.log(slo))),
            subsampling=self.space.subsampling[sub_index], single=self._single,
        )
        self._params[t] = np.append(u, sub_index)
        return t

    # -- SearchMethod ----------------------------------------------------------------------
    def _ask(self) -> QTable:
        n_sub = len(self.space.subsampling)
        if self.n_asked < n_sub:  # standard JPEG's shape with each allowed subsampling
            return self._table(self._origin, self.n_asked)
        best, _ = self.best
        local = (self.n_asked - n_sub) % 2 == 1 and best is not None and best in self._params
        u, sub = unit_proposal(self.rng, self._params[best] if local else None, 4, n_sub,
                               float(self.options["local_sigma"]))
        return self._table(u, sub)

    def _rebind(self, asked: QTable, table: QTable) -> None:
        if asked in self._params and table not in self._params:
            self._params[table] = self._params[asked]


def unit_proposal(rng: np.random.Generator, around: np.ndarray | None, dims: int, n_sub: int,
                  sigma: float) -> tuple[np.ndarray, int]:
    """A point of the unit box ``[0, 1]^dims`` and a subsampling index below ``n_sub``.

    Uniform when ``around`` is ``None``; else a Gaussian step of ``sigma`` around ``around[:dims]``,
    keeping its subsampling index ``around[dims]`` with probability 0.8.
    """
    if around is None:
        return rng.random(dims), int(rng.integers(n_sub))
    u = np.clip(around[:dims] + rng.normal(0.0, sigma, dims), 0.0, 1.0)
    return u, int(around[dims]) if rng.random() < 0.8 else int(rng.integers(n_sub))


def _range(name: str, value: Any, *, positive: bool) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in value)
    except (TypeError, ValueError):
        raise SearchError(f"option {name} must be [lo, hi], got {value!r}") from None
    if not lo < hi or (positive and lo <= 0):
        raise SearchError(f"option {name} must be [lo, hi] with lo < hi" + (" and lo > 0" if positive else "")
                          + f", got {value!r}")
    return lo, hi
