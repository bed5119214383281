"""Search spaces: which quantization steps a search may change, and how tables map to vectors.

A :class:`SearchSpace` says whether a search tunes

* ``"single"``: one 64-step table used for luma and chroma (the seed's setting), or
* ``"separate"``: a luma and a chroma table (128 steps),

and which chroma subsamplings it may pick: one (fixed, default ``4:2:0``) or several (then the
subsampling is a search variable).  Spaces are written as strings on the command line::

    single                    one table, 4:2:0
    separate                  luma + chroma tables, 4:2:0
    single+subsampling        one table, subsampling chosen among 4:4:4, 4:2:2, 4:2:0
    separate@4:4:4            luma + chroma tables, fixed 4:4:4

Methods that work in a continuous space use *unit coordinates*: each step is mapped to
``[0, 1]`` on a log scale inside a per-coefficient :class:`Box` (log, because a change from 2 to
4 matters as much as one from 50 to 100), and a variable subsampling adds one more coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..qtable import SUBSAMPLINGS, QTable

__all__ = ["SPACE_KINDS", "Box", "SearchSpace", "SearchSpaceError"]

#: Table layouts a space may have.
SPACE_KINDS: tuple[str, ...] = ("single", "separate")


class SearchSpaceError(ValueError):
    """A malformed search-space string or a table that does not belong to the space."""


@dataclass(frozen=True)
class Box:
    """Per-coefficient integer bounds ``lo[i] <= step[i] <= hi[i]`` (inclusive), 1..255.

    Example:
        >>> b = Box.full(2)
        >>> b.lo, b.hi
        ((1, 1), (255, 255))
        >>> b.from_unit([0.0, 1.0]).tolist()
        [1, 255]
    """

    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.lo) != len(self.hi):
            raise SearchSpaceError(f"box bounds differ in length ({len(self.lo)} vs {len(self.hi)})")
        for i, (a, b) in enumerate(zip(self.lo, self.hi)):
            if not 1 <= a <= b <= 255:
                raise SearchSpaceError(f"box coefficient {i}: bounds ({a}, {b}) must satisfy 1 <= lo <= hi <= 255")

    @classmethod
    def full(cls, n: int) -> Box:
        """The whole baseline range 1..255 for ``n`` coefficients."""
        return cls((1,) * n, (255,) * n)

    @classmethod
    def around(cls, tables: np.ndarray, k: float, *, transpose: bool = False, min_width: int = 2) -> Box:
        """Bounds ``[min - k*std, max + k*std]`` of good tables (rows of ``tables``), clipped to 1..255.

        This is the seed's bounded search box.  With ``transpose`` each 8x8 table is also counted
        transposed (the seed did so: horizontal and vertical frequencies are treated alike).  A
        coefficient whose bounds are narrower than ``min_width`` is widened symmetrically.

        Example:
            >>> t = np.array([[10] * 64, [20] * 64])
            >>> b = Box.around(t, 0.5)
            >>> b.lo[0], b.hi[0]
            (8, 22)
        """
        arr = np.asarray(tables, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] % 64:
            raise SearchSpaceError(f"expected an (n, 64*k) array of tables, got shape {arr.shape}")
        if transpose:
            blocks = arr.reshape(arr.shape[0], -1, 8, 8)
            arr = np.concatenate([arr, blocks.transpose(0, 1, 3, 2).reshape(arr.shape)], axis=0)
        std = arr.std(axis=0)
        lo = np.clip(np.rint(arr.min(axis=0) - k * std), 1, 255).astype(int)
        hi = np.clip(np.rint(arr.max(axis=0) + k * std), 1, 255).astype(int)
        narrow = hi - lo < min_width
        if narrow.any():
            mid = (lo + hi) / 2.0
            lo = np.where(narrow, np.clip(np.floor(mid - min_width / 2), 1, 255), lo).astype(int)
            hi = np.where(narrow, np.clip(np.ceil(mid + min_width / 2), 1, 255), hi).astype(int)
        return cls(tuple(int(v) for v in lo), tuple(int(v) for v in hi))

    @property
    def n(self) -> int:
        return len(self.lo)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform random integers inside the box."""
        return rng.integers(np.array(self.lo), np.array(self.hi) + 1)

    def contains(self, values: Sequence[int] | np.ndarray) -> bool:
        v = np.asarray(values)
        return bool(np.all(v >= np.array(self.lo)) and np.all(v <= np.array(self.hi)))

    def to_unit(self, values: Sequence[int] | np.ndarray) -> np.ndarray:
        """Steps -> ``[0, 1]`` coordinates (log scale; a degenerate bound maps to 0.5; not clipped)."""
        v = np.log(np.asarray(values, dtype=np.float64))
        lo, hi = np.log(np.array(self.lo, dtype=np.float64)), np.log(np.array(self.hi, dtype=np.float64))
        width = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(width > 0, (v - lo) / np.where(width > 0, width, 1.0), 0.5)
        return u

    def from_unit(self, u: Sequence[float] | np.ndarray) -> np.ndarray:
        """``[0, 1]`` coordinates (clipped) -> integer steps inside the box."""
        x = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        lo, hi = np.log(np.array(self.lo, dtype=np.float64)), np.log(np.array(self.hi, dtype=np.float64))
        vals = np.rint(np.exp(lo + x * (hi - lo)))
        return np.clip(vals, np.array(self.lo), np.array(self.hi)).astype(int)

    def to_dict(self) -> dict[str, list[int]]:
        return {"lo": list(self.lo), "hi": list(self.hi)}


@dataclass(frozen=True)
class SearchSpace:
    """What a search may change: one or two tables, and the chroma subsampling.

    Args:
        tables: ``"single"`` (one table for every component, the seed's setting) or ``"separate"``
            (a luma and a chroma table).
        subsampling: the subsampling(s) allowed; one string (or a 1-tuple) fixes it, several make
            it a search variable.

    Example:
        >>> s = SearchSpace.parse("separate+subsampling")
        >>> s.n_coeffs, s.variable_subsampling, s.dim, str(s)
        (128, True, 129, 'separate+subsampling')
        >>> t = SearchSpace.parse("single").table([10] * 64)
        >>> t.luma == t.chroma, t.subsampling
        (True, '4:2:0')
    """

    tables: str = "single"
    subsampling: tuple[str, ...] | str = ("4:2:0",)

    def __post_init__(self) -> None:
        if self.tables not in SPACE_KINDS:
            raise SearchSpaceError(f"search space tables must be one of {', '.join(SPACE_KINDS)}, got {self.tables!r}")
        subs = (self.subsampling,) if isinstance(self.subsampling, str) else tuple(self.subsampling)
        if not subs:
            raise SearchSpaceError("a search space needs at least one subsampling")
        for s in subs:
            if s not in SUBSAMPLINGS:
                raise SearchSpaceError(f"subsampling {s!r} is not one of {', '.join(SUBSAMPLINGS)}")
        if len(set(subs)) != len(subs):
            raise SearchSpaceError(f"subsampling choices repeat: {subs}")
        object.__setattr__(self, "subsampling", subs)

    # -- parsing -------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str | SearchSpace) -> SearchSpace:
        """Read ``single``, ``separate``, ``KIND+subsampling`` or ``KIND@4:4:4`` (see the module docstring)."""
        if isinstance(spec, SearchSpace):
            return spec
        if not isinstance(spec, str):
            raise SearchSpaceError(f"search space must be a string, got {type(spec).__name__}")
        s = spec.strip()
        if "+" in s:
            kind, extra = s.split("+", 1)
            if extra != "subsampling":
                raise SearchSpaceError(f"search space {spec!r}: only '+subsampling' may follow the table kind")
            return cls(kind, tuple(SUBSAMPLINGS))
        if "@" in s:
            kind, sub = s.split("@", 1)
            return cls(kind, (sub,))
        if s not in SPACE_KINDS:
            raise SearchSpaceError(
                f"unknown search space {spec!r}; use single, separate, single+subsampling, "
                "separate+subsampling or KIND@SUBSAMPLING (e.g. separate@4:4:4)"
            )
        return cls(s)

    def __str__(self) -> str:
        subs = tuple(self.subsampling)
        if len(subs) == 1:
            return self.tables if subs == ("4:2:0",) else f"{self.tables}@{subs[0]}"
        if set(subs) == set(SUBSAMPLINGS):
            return f"{self.tables}+subsampling"
        return f"{self.tables}+subsampling({','.join(subs)})"

    # -- sizes -----------------------------------------------------------------------------
    @property
    def n_tables(self) -> int:
        return 1 if self.tables == "single" else 2

    @property
    def n_coeffs(self) -> int:
        """Number of quantization steps the search sets (64 or 128)."""
        return 64 * self.n_tables

    @property
    def variable_subsampling(self) -> bool:
        return len(self.subsampling) > 1

    @property
    def dim(self) -> int:
        """Unit-coordinate dimension: the steps plus one coordinate for a variable subsampling."""
        return self.n_coeffs + (1 if self.variable_subsampling else 0)

    def full_box(self) -> Box:
        return Box.full(self.n_coeffs)

    # -- tables <-> vectors ---------------------------------------------------------------
    def table(self, values: Sequence[int] | np.ndarray, subsampling: str | None = None, meta: dict[str, Any] | None = None) -> QTable:
        """The QTable for ``n_coeffs`` steps (luma then chroma, natural order)."""
        v = np.asarray(values)
        if v.shape != (self.n_coeffs,):
            raise SearchSpaceError(f"space {self} takes {self.n_coeffs} steps, got shape {v.shape}")
        sub = self.subsampling[0] if subsampling is None else subsampling
        if sub not in self.subsampling:
            raise SearchSpaceError(f"subsampling {sub!r} is not allowed in space {self} ({', '.join(self.subsampling)})")
        vals = [int(x) for x in v]
        luma = vals[:64]
        chroma = None if self.tables == "single" else vals[64:]
        return QTable(luma, chroma, subsampling=sub, meta=meta)

    def values(self, table: QTable) -> np.ndarray:
        """The ``n_coeffs`` steps of ``table`` (for ``single``: its luma table)."""
        if self.tables == "single":
            return np.array(table.luma, dtype=np.int64)
        return np.array(table.luma + table.chroma, dtype=np.int64)

    def contains(self, table: Any) -> bool:
        """Whether ``table`` is a baseline QTable this space can produce."""
        if not isinstance(table, QTable) or not table.is_baseline:
            return False
        if table.subsampling not in self.subsampling:
            return False
        return self.tables == "separate" or table.luma == table.chroma

    def check(self, table: Any, what: str = "table") -> QTable:
        """Return ``table`` or raise :class:`SearchSpaceError` saying why it is not in this space."""
        if not isinstance(table, QTable):
            raise SearchSpaceError(f"{what} must be a QTable, got {type(table).__name__}")
        if not self.contains(table):
            raise SearchSpaceError(
                f"{what} {table!r} is not in search space {self} "
                f"(subsampling {table.subsampling}, luma == chroma: {table.luma == table.chroma})"
            )
        return table

    def subsampling_index(self, table: QTable) -> int:
        return self.subsampling.index(table.subsampling)

    def to_unit(self, table: QTable, box: Box | None = None) -> np.ndarray:
        """Unit coordinates of ``table`` (``dim`` values; the last codes a variable subsampling)."""
        box = box or self.full_box()
        u = box.to_unit(self.values(table))
        if self.variable_subsampling:
            k = len(self.subsampling)
            u = np.append(u, (self.subsampling_index(table) + 0.5) / k)
        return u

    def from_unit(self, u: Sequence[float] | np.ndarray, box: Box | None = None, meta: dict[str, Any] | None = None) -> QTable:
        """The table at unit coordinates ``u`` (clipped to the unit cube)."""
        box = box or self.full_box()
        x = np.asarray(u, dtype=np.float64)
        if x.shape != (self.dim,):
            raise SearchSpaceError(f"space {self} has {self.dim} unit coordinates, got shape {x.shape}")
        sub = None
        if self.variable_subsampling:
            k = len(self.subsampling)
            sub = self.subsampling[min(k - 1, max(0, math.floor(float(np.clip(x[-1], 0, 1)) * k)))]
            x = x[:-1]
        return self.table(box.from_unit(x), sub, meta)

    def random_subsampling(self, rng: np.random.Generator) -> str:
        return self.subsampling[int(rng.integers(len(self.subsampling)))]
