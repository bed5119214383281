"""The :class:`QTable`: a pair of JPEG quantization tables plus chroma subsampling.

A ``QTable`` is a tuple ``(luma, chroma)`` of two 64-value tables in natural
row-major order, so it can be handed straight to Pillow::

    img.save("x.jpg", qtables=dnnjpeg.load("resnet50"))

It also carries the chroma ``subsampling`` the table was tuned for and a
read-only ``meta`` mapping (provenance, metrics, name, ...).
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ._standard import STD_CHROMA, STD_LUMA, quality_scale_factor, scale_table
from ._zigzag import from_zigzag, to_zigzag
from .advice import Fix, Fixable

__all__ = [
    "ALLOW_16BIT",
    "SUBSAMPLINGS",
    "TABLE_FORMAT",
    "QTable",
    "QTableError",
    "SixteenBitTableWarning",
]

#: Chroma subsampling modes a QTable may carry (Pillow's ``subsampling`` strings).
SUBSAMPLINGS: tuple[str, ...] = ("4:4:4", "4:2:2", "4:2:0")

#: Value of the ``format`` key in a single-table JSON file.
TABLE_FORMAT = "dnnjpeg-qtable"
_TABLE_FORMAT_VERSION = 1


class QTableError(Fixable, ValueError):
    """A table value, shape or file is not a valid JPEG quantization table.

    ``fix`` names the option that fixes it, if one does (see :mod:`dnnjpeg.advice`).
    """


#: The fix of a table with steps above 255: the ``allow_16bit`` option (``--allow-16bit``).
ALLOW_16BIT = Fix("allow_16bit", "allow_16bit=True", "for 16-bit tables (many decoders reject them)")


class SixteenBitTableWarning(UserWarning):
    """A table has steps above 255: only 16-bit (extended, non-baseline) JPEG can hold it."""


def _validate_values(values: Any, what: str, allow_16bit: bool) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Iterable, np.ndarray)):
        raise QTableError(f"{what}: expected 64 integers (8x8), got {type(values).__name__}")
    arr = np.asarray(values, dtype=object)
    if arr.shape not in ((64,), (8, 8)):
        raise QTableError(f"{what}: expected 64 values or an 8x8 array, got shape {arr.shape}")
    flat = arr.reshape(64)
    out: list[int] = []
    upper = 32767 if allow_16bit else 255
    for i, v in enumerate(flat):
        where = f"{what}[{i}] (row {i // 8}, column {i % 8})"
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise QTableError(f"{where} = {v!r} is not an integer")
        if isinstance(v, numbers.Integral):
            iv = int(v)
        else:
            fv = float(v)
            if math.isnan(fv):
                raise QTableError(f"{where} is NaN")
            if math.isinf(fv) or fv != math.floor(fv):
                raise QTableError(f"{where} = {fv!r} is not an integer")
            iv = int(fv)
        if iv < 1:
            raise QTableError(f"{where} = {iv} is below 1 (a quantization step must be >= 1)")
        if iv > upper:
            if allow_16bit:
                raise QTableError(f"{where} = {iv} exceeds 32767, the largest 16-bit JPEG step")
            raise QTableError(f"{where} = {iv} exceeds 255, the largest baseline JPEG step", fix=ALLOW_16BIT)
        out.append(iv)
    return tuple(out)


def _validate_subsampling(subsampling: Any) -> str:
    if subsampling not in SUBSAMPLINGS:
        raise QTableError(f"subsampling {subsampling!r} is not one of {', '.join(SUBSAMPLINGS)}")
    return subsampling


def _jsonable(obj: Any) -> Any:
    """Deep-copy ``obj`` into plain JSON types, refusing anything else."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    raise QTableError(f"meta value {obj!r} ({type(obj).__name__}) cannot be stored as JSON")


class QTable(tuple):
    """Luma and chroma quantization tables (natural row-major order) with subsampling and provenance.

    A ``QTable`` *is* a tuple ``(luma, chroma)`` of two tuples of 64 ints, which is
    exactly what Pillow's ``qtables=`` option takes.  Values are validated on
    construction: 64 integers (or an 8x8 array) each in 1..255.  Steps up to 32767
    (16-bit tables) need ``allow_16bit=True`` and emit :class:`SixteenBitTableWarning`,
    since many decoders reject non-baseline JPEGs.

    Args:
        luma: 64 integers (or 8x8) for the Y component, natural row-major order.
        chroma: the same for Cb and Cr; ``None`` uses the luma table for all
            components (the seed work's single-table setting).
        subsampling: chroma subsampling the table is meant for, one of
            ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``.
        meta: provenance and other JSON-able information (``provenance``,
            ``metrics``, ``name``, ``description``, ``quality``...). Stored read-only.
        allow_16bit: permit steps above 255.

    Example:
        >>> qt = QTable([16] * 64, subsampling="4:4:4")
        >>> qt.luma[:3], qt.chroma[:3], qt.subsampling
        ((16, 16, 16), (16, 16, 16), '4:4:4')
        >>> QTable.standard(50).luma[:8]
        (16, 11, 10, 16, 24, 40, 51, 61)
    """

    def __new__(  # noqa: PYI034 - returns the validated tuple subclass
        cls,
        luma: Any,
        chroma: Any = None,
        subsampling: str = "4:2:0",
        meta: Mapping[str, Any] | None = None,
        *,
        allow_16bit: bool = False,
    ) -> QTable:
        y = _validate_values(luma, "luma table", allow_16bit)
        c = y if chroma is None else _validate_values(chroma, "chroma table", allow_16bit)
        sub = _validate_subsampling(subsampling)
        if allow_16bit and max(max(y), max(c)) > 255:
            warnings.warn(
                "quantization steps above 255 need a 16-bit (extended, SOF1) JPEG table; "
                "many decoders and browsers reject such files",
                SixteenBitTableWarning,
                stacklevel=2,
            )
        self = super().__new__(cls, (y, c))
        self._subsampling = sub
        self._meta = MappingProxyType(_jsonable(dict(meta or {})))
        self._allow_16bit = bool(allow_16bit)
        return self

    # -- accessors -----------------------------------------------------------------
    @property
    def luma(self) -> tuple[int, ...]:
        """Luma (Y) table, 64 ints, natural row-major order."""
        return self[0]

    @property
    def chroma(self) -> tuple[int, ...]:
        """Chroma (Cb, Cr) table, 64 ints, natural row-major order."""
        return self[1]

    @property
    def subsampling(self) -> str:
        """Chroma subsampling this table is meant for (Pillow's string form)."""
        return self._subsampling

    @property
    def meta(self) -> Mapping[str, Any]:
        """Read-only provenance/metrics mapping."""
        return self._meta

    @property
    def is_baseline(self) -> bool:
        """True when every step fits baseline JPEG (<= 255)."""
        return max(max(self.luma), max(self.chroma)) <= 255

    def as_array(self) -> np.ndarray:
        """Both tables as a ``(2, 8, 8)`` uint16 array (luma, chroma).

        Shape:
            ``(2, 8, 8)``
        """
        return np.array(self, dtype=np.uint16).reshape(2, 8, 8)

    def zigzag(self) -> tuple[list[int], list[int]]:
        """Both tables in zigzag order (the order a JPEG DQT segment stores)."""
        return to_zigzag(self.luma), to_zigzag(self.chroma)

    def replace(self, **changes: Any) -> QTable:
        """A copy with some of ``luma``, ``chroma``, ``subsampling``, ``meta`` replaced."""
        kwargs: dict[str, Any] = {
            "luma": self.luma, "chroma": self.chroma, "subsampling": self.subsampling, "meta": dict(self.meta)
        }
        unknown = set(changes) - set(kwargs)
        if unknown:
            raise TypeError(f"replace() got unknown fields: {', '.join(sorted(unknown))}")
        kwargs.update(changes)
        allow = self._allow_16bit
        if allow:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SixteenBitTableWarning)
                return QTable(**kwargs, allow_16bit=True)
        return QTable(**kwargs)

    def save_options(self) -> dict[str, Any]:
        """Keyword arguments for ``Image.save(..., "JPEG", **opts)``: ``qtables`` and ``subsampling``.

        Never includes ``quality``: Pillow >= 11.3 would rescale the tables.
        """
        return {"qtables": [list(self.luma), list(self.chroma)], "subsampling": self.subsampling}

    # -- constructors --------------------------------------------------------------
    @classmethod
    def standard(cls, quality: int = 75, subsampling: str = "4:2:0") -> QTable:
        """libjpeg's tables at ``quality`` (1..100), exactly as ``cjpeg -quality`` and Pillow write them.

        Example:
            >>> QTable.standard(90).luma[:4]
            (3, 2, 2, 3)
        """
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or not 1 <= quality <= 100:
            raise QTableError(f"quality {quality!r} must be an integer in 1..100")
        sf = quality_scale_factor(int(quality))
        return cls(
            scale_table(STD_LUMA, sf),
            scale_table(STD_CHROMA, sf),
            subsampling=subsampling,
            meta={"name": "standard", "quality": int(quality), "description": "libjpeg standard tables"},
        )

    @classmethod
    def from_zigzag(cls, luma: Any, chroma: Any = None, **kwargs: Any) -> QTable:
        """Build from tables given in zigzag order."""
        y = from_zigzag(list(_validate_values(luma, "luma table", True)))
        c = None if chroma is None else from_zigzag(list(_validate_values(chroma, "chroma table", True)))
        return cls(y, c, **kwargs)

    @classmethod
    def from_pillow(cls, quantization: Mapping[int, Any], subsampling: str = "4:2:0") -> QTable:
        """From ``Image.open(f).quantization`` (dict of natural-order tables)."""
        if 0 not in quantization:
            raise QTableError("quantization has no table 0")
        chroma = quantization.get(1)
        values = list(quantization[0]) + list(chroma or [])
        return cls(quantization[0], chroma, subsampling=subsampling, allow_16bit=max(values) > 255)

    # -- JSON ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-schema dict (see docs/table-format.md)."""
        meta = dict(self.meta)
        d: dict[str, Any] = {"format": TABLE_FORMAT, "version": _TABLE_FORMAT_VERSION}
        for key in ("name", "description", "quality"):
            if key in meta:
                d[key] = meta.pop(key)
        d["luma"] = list(self.luma)
        d["chroma"] = list(self.chroma)
        d["subsampling"] = self.subsampling
        if not self.is_baseline:
            d["allow_16bit"] = True
        d["provenance"] = meta.pop("provenance", {})
        d["metrics"] = meta.pop("metrics", {})
        if meta:
            d["extra"] = meta
        return copy.deepcopy(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "table", allow_16bit: bool = False) -> QTable:
        """Parse the JSON-schema dict; errors name ``source``.  Steps above 255 need the dict's
        ``allow_16bit`` key or ``allow_16bit=True``."""
        if not isinstance(d, Mapping):
            raise QTableError(f"{source}: expected a JSON object, got {type(d).__name__}")
        fmt = d.get("format", TABLE_FORMAT)
        if fmt != TABLE_FORMAT:
            raise QTableError(f"{source}: 'format' is {fmt!r}, expected {TABLE_FORMAT!r}")
        if "luma" not in d:
            raise QTableError(f"{source}: missing required key 'luma'")
        meta: dict[str, Any] = {}
        for key in ("name", "description", "quality"):
            if key in d:
                meta[key] = d[key]
        meta["provenance"] = d.get("provenance", {})
        meta["metrics"] = d.get("metrics", {})
        meta.update(d.get("extra", {}))
        try:
            return cls(
                d["luma"],
                d.get("chroma"),
                subsampling=d.get("subsampling", "4:2:0"),
                meta=meta,
                allow_16bit=allow_16bit or bool(d.get("allow_16bit", False)),
            )
        except QTableError as exc:
            raise exc.prefixed(source) from None

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int = 2) -> str:
        """Serialize to JSON text; also write it to ``path`` when given."""
        text = _dump_json(self.to_dict(), indent)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str], *, allow_16bit: bool = False) -> QTable:
        """Read a table from a JSON file path (or JSON text starting with ``{``); ``allow_16bit`` as for
        :meth:`from_dict`."""
        if isinstance(source, str) and source.lstrip().startswith("{"):
            text, name = source, "JSON text"
        else:
            path = Path(source)
            name = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise QTableError(f"{name}: cannot read table file: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QTableError(f"{name}: not valid JSON: {exc}") from None
        return cls.from_dict(data, source=name, allow_16bit=allow_16bit)

    # -- dunder --------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (list(self.luma), list(self.chroma), self.subsampling, dict(self.meta), self._allow_16bit))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QTable):
            return tuple.__eq__(self, other) and self.subsampling == other.subsampling
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((tuple(self), self.subsampling))

    def __repr__(self) -> str:
        name = self.meta.get("name")
        q = self.meta.get("quality")
        label = f" {name!r}" if name else ""
        label += f" quality={q}" if q is not None else ""
        return f"<QTable{label} subsampling={self.subsampling} luma[0]={self.luma[0]} chroma[0]={self.chroma[0]}>"

    def __str__(self) -> str:
        rows = []
        for title, table in (("luma", self.luma), ("chroma", self.chroma)):
            rows.append(f"{title}:")
            rows.extend(" ".join(f"{v:4d}" for v in table[r * 8 : r * 8 + 8]) for r in range(8))
        rows.append(f"subsampling: {self.subsampling}")
        return "\n".join(rows)


def _rebuild(luma: list[int], chroma: list[int], subsampling: str, meta: dict[str, Any], allow_16bit: bool) -> QTable:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SixteenBitTableWarning)
        return QTable(luma, chroma, subsampling, meta, allow_16bit=allow_16bit)


def _dump_json(obj: Any, indent: int) -> str:
    """JSON with each 64-value table on 8 short lines (readable diffs)."""
    text = json.dumps(obj, indent=indent)
    # Collapse runs of numbers produced for table arrays onto rows of 8.
    out_lines: list[str] = []
    buf: list[str] = []
    prefix = ""
    for line in text.splitlines():
        stripped = line.strip().rstrip(",")
        if stripped.lstrip("-").isdigit() and line.startswith(" "):
            if not buf:
                prefix = line[: len(line) - len(line.lstrip())]
            buf.append(stripped)
            continue
        if buf:
            rows = [", ".join(buf[i : i + 8]) for i in range(0, len(buf), 8)]
            out_lines.extend(prefix + r + ("," if k < len(rows) - 1 else "") for k, r in enumerate(rows))
            buf = []
        out_lines.append(line)
    return "\n".join(out_lines) + "\n"
