"""One set of encode settings, :class:`EncodeOptions`, for every entry point that writes a JPEG.

``dnnjpeg.save``/``encode``, the ``DNNJPEG`` Pillow format, ``dnnjpeg compress``, ``dnnjpeg.recompress``,
the ``DNNJPEG`` transform and the evaluator all take ``options=EncodeOptions(...)``; their old
keyword arguments still work and are translated here (:meth:`EncodeOptions.from_kwargs`).  Every
field, its default and which entry point uses it: ``docs/encode-options.md``.

Example:
    >>> opts = EncodeOptions("resnet50", optimize=True)
    >>> table, kwargs = opts.resolve()
    >>> table.luma[:4], sorted(kwargs)
    ((17, 16, 17, 20), ['optimize', 'progressive', 'qtables', 'subsampling'])
    >>> EncodeOptions.from_kwargs(table="resnet50", trellis=False, keep_metadata=False).metadata
    'strip'
    >>> EncodeOptions(subsampling="4:1:1")
    Traceback (most recent call last):
    ...
    ValueError: subsampling '4:1:1' is not one of 4:4:4, 4:2:2, 4:2:0 (or None: the table's own)
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from PIL import Image

from .advice import Fix
from .encoders import require_jpeglib
from .families import resolve_table
from .qtable import SUBSAMPLINGS, QTable, QTableError, SixteenBitTableWarning

__all__ = [
    "METADATA_KEYS",
    "METADATA_POLICIES",
    "WRITERS",
    "EncodeOptions",
    "TableSpec",
    "writable_table",
]

#: A table as the entry points take it: a family name, a table/family JSON path or a QTable.
TableSpec = Union[str, "os.PathLike[str]", QTable]
#: Who writes the coefficients: libjpeg-turbo (through Pillow) or mozjpeg's trellis quantization.
WRITERS = ("libjpeg", "trellis")
#: What happens to the source image's metadata (see :class:`EncodeOptions`).
METADATA_POLICIES = ("keep", "strip", "orientation")
#: The metadata Pillow's JPEG writer carries (``img.info`` keys; explicit values of ``save``).
METADATA_KEYS = ("exif", "icc_profile", "xmp", "comment", "dpi")
#: Older keyword spellings of two fields, still accepted: keyword -> field.
ALIASES = {"trellis": "writer", "keep_metadata": "metadata", "strip": "metadata"}

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class EncodeOptions:
    """How dnnjpeg writes a JPEG: the table, its coding and the metadata policy.

    Values are checked, and the table resolved, when the object is made (``ValueError``, or a
    :class:`~dnnjpeg.QTableError` naming the table), so a bad setting fails before any image is read.

    Args:
        table: family name (``dnnjpeg.tables()``), table/family JSON path or :class:`~dnnjpeg.QTable`.
        quality: family member (the standard quality it is size-matched to); ``None``: the family
            default.  Never rescales a table; not allowed with a QTable.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``; ``None``: the table's own.
        optimize: optimized Huffman tables (same pixels, fewer bytes).
        progressive: progressive JPEG (same pixels); default baseline.
        writer: ``"libjpeg"`` (libjpeg-turbo through Pillow) or ``"trellis"`` (mozjpeg 4.0.3's
            trellis quantization of the same table: fewer bytes; needs ``jpeglib``; Huffman tables
            are then always optimized).  Old spelling: ``trellis=True``.
        metadata: ``"keep"`` (EXIF, ICC profile, XMP, comment and DPI of the source), ``"strip"``
            (none of them) or ``"orientation"`` (none but an EXIF orientation other than 1, so the
            picture displays the same way).  Old spellings: ``keep_metadata=False`` is ``"strip"``;
            ``recompress(strip=True)`` is ``"orientation"``.
        allow_16bit: accept a table with steps above 255 (a 16-bit JPEG table, which many decoders
            reject; not with ``writer="trellis"``).
    """

    table: TableSpec = "standard"
    quality: int | None = None
    subsampling: str | None = None
    optimize: bool = False
    progressive: bool = False
    writer: str = "libjpeg"
    metadata: str = "keep"
    allow_16bit: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.table, (str, os.PathLike, QTable)):
            raise ValueError(f"table {self.table!r} must be a family name, a JSON path or a QTable")
        if self.quality is not None:
            if isinstance(self.quality, bool) or not isinstance(self.quality, numbers.Integral):
                raise ValueError(f"quality {self.quality!r} must be an integer (a family member) or None")
            object.__setattr__(self, "quality", int(self.quality))
        if self.subsampling is not None and self.subsampling not in SUBSAMPLINGS:
            raise ValueError(
                f"subsampling {self.subsampling!r} is not one of {', '.join(SUBSAMPLINGS)} (or None: the table's own)"
            )
        for name in ("optimize", "progressive", "allow_16bit"):
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        if self.writer not in WRITERS:
            raise ValueError(f"writer {self.writer!r} is not one of {', '.join(WRITERS)}")
        if self.metadata not in METADATA_POLICIES:
            raise ValueError(f"metadata {self.metadata!r} is not one of {', '.join(METADATA_POLICIES)}")
        qt = writable_table(self.table, self.quality, allow_16bit=self.allow_16bit, trellis=self.trellis)
        object.__setattr__(self, "_qtable", qt)
        if self.trellis:
            require_jpeglib()  # say now, not at the first image, when it is missing

    # -- what the encoders need ---------------------------------------------------------
    @property
    def trellis(self) -> bool:
        """``writer == "trellis"``."""
        return self.writer == "trellis"

    @property
    def qtable(self) -> QTable:
        """The table as given (resolved and checked; its own subsampling and provenance)."""
        return self._qtable  # type: ignore[attr-defined,no-any-return]

    def resolve(self) -> tuple[QTable, dict[str, Any]]:
        """The table written (in the subsampling written) and Pillow's ``"JPEG"`` save keywords that
        code the pixels: ``qtables``, ``subsampling``, ``optimize``, ``progressive`` (never ``quality``,
        which would rescale the table).  With ``writer="trellis"`` mozjpeg writes that table instead."""
        qt = self.qtable
        if self.subsampling is not None and self.subsampling != qt.subsampling:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SixteenBitTableWarning)
                qt = QTable(qt.luma, qt.chroma, self.subsampling, qt.meta, allow_16bit=not qt.is_baseline)
        kwargs = {
            "qtables": [list(qt.luma), list(qt.chroma)],
            "subsampling": qt.subsampling,
            "optimize": self.optimize,
            "progressive": self.progressive,
        }
        return qt, kwargs

    def save_kwargs(self, im: Image.Image, **metadata: Any) -> dict[str, Any]:
        """Pillow ``"JPEG"`` save keywords for ``im``: :meth:`resolve`'s, plus the metadata this policy
        keeps of ``im.info``.  ``metadata``: explicit ``exif``, ``icc_profile``, ``xmp``, ``comment``,
        ``dpi`` values, which override the policy (``b""`` drops one)."""
        unknown = sorted(set(metadata) - set(METADATA_KEYS))
        if unknown:
            raise ValueError(f"unknown metadata key(s) {', '.join(map(repr, unknown))}; known: {', '.join(METADATA_KEYS)}")
        kwargs = self.resolve()[1]
        keep = self.metadata == "keep"
        info = _source_metadata(im) if keep else {}
        if self.metadata == "orientation" and "exif" not in metadata:
            exif = _orientation_exif(im)
            if exif is not None:
                metadata = {**metadata, "exif": exif}
        for key in METADATA_KEYS:
            if key in metadata:
                value = metadata[key]
            elif keep:
                value = info.get(key)
            else:
                value = b"" if key != "dpi" else None
            if value is None:
                continue
            kwargs[key] = tuple(round(float(v)) for v in value) if key == "dpi" else value
        if not keep and "comment" not in metadata:
            kwargs["comment"] = b""  # Pillow otherwise copies im.info["comment"] itself
        return kwargs

    def encoder_family(self) -> str:
        """The :mod:`dnnjpeg.encoders` family that writes a given table as these options do (pixels
        only, no metadata): ``libjpeg``, ``libjpeg-opt``, ``trellis`` or ``mozjpeg`` (trellis, progressive).

        Raises:
            ValueError: progressive libjpeg, which no encoder family writes.
        """
        if self.trellis:
            return "mozjpeg" if self.progressive else "trellis"
        if self.progressive:
            raise ValueError("no encoder family writes progressive libjpeg (progressive=True with writer='libjpeg')")
        return "libjpeg-opt" if self.optimize else "libjpeg"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A table given by its values (with_plain_table: what recompress ships with every task) is
        # pickled as values and rebuilt through a per-process cache: checking a QTable costs ~0.3 ms,
        # more than a small image's encode when tasks hold one file.
        qt = self.table
        if isinstance(qt, QTable) and not qt.meta:
            values = (tuple(qt.luma), tuple(qt.chroma), qt.subsampling)
            return (_cached, (values, *(getattr(self, f.name) for f in dataclasses.fields(self)[1:])))
        return super().__reduce_ex__(protocol)

    # -- building -------------------------------------------------------------------------
    def replace(self, **changes: Any) -> EncodeOptions:
        """A copy with ``changes`` (field names), checked again."""
        return dataclasses.replace(self, **changes)

    def with_plain_table(self) -> EncodeOptions:
        """The same options with the table given by its values (no name, file or provenance): what a
        worker process needs, cheap to pickle and with nothing left to look up."""
        qt = self.qtable
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SixteenBitTableWarning)
            plain = QTable(qt.luma, qt.chroma, qt.subsampling, allow_16bit=not qt.is_baseline)
        return self.replace(table=plain, quality=None)

    @classmethod
    def from_kwargs(cls, options: EncodeOptions | None = None, /, **kwargs: Any) -> EncodeOptions:
        """``options`` (default: the defaults) with keyword arguments: field names, or the old spellings
        ``trellis=`` (``writer``), ``keep_metadata=`` and ``strip=`` (``metadata``).

        With ``options`` given, each keyword must agree with it (it is redundant then).

        Raises:
            ValueError: a keyword that contradicts ``options`` or another keyword, or a bad value.
            TypeError: an unknown keyword.
        """
        fields = agreed_fields(options, **kwargs)
        if options is not None:
            return options
        return cls(**fields)


@functools.lru_cache(maxsize=16)
def _cached(values: tuple[tuple[int, ...], tuple[int, ...], str], *rest: Any) -> EncodeOptions:
    """An EncodeOptions of a table given by its values (see ``EncodeOptions.__reduce_ex__``)."""
    luma, chroma, subsampling = values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SixteenBitTableWarning)
        table = QTable(luma, chroma, subsampling, allow_16bit=max(max(luma), max(chroma)) > 255)
    return EncodeOptions(table, *rest)


def agreed_fields(options: EncodeOptions | None, /, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments (field names or :data:`ALIASES`) as EncodeOptions fields; a ``ValueError`` when one
    contradicts another or, with ``options``, the value it holds.  Values are compared as given
    (``table="resnet50"`` contradicts ``options.table`` holding the same table by path)."""
    names = {f.name for f in dataclasses.fields(EncodeOptions)}
    fields: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in kwargs.items():
        if key in ALIASES:
            field, value = ALIASES[key], _from_alias(key, value)
        elif key in names:
            field = key
        else:
            raise TypeError(f"unknown encode option {key!r}; known: {', '.join(sorted(names | set(ALIASES)))}")
        if field in fields and not _same(fields[field], value):
            raise ValueError(f"{spelled[field]} and {key}={kwargs[key]!r} contradict each other")
        fields[field] = value
        spelled[field] = f"{key}={kwargs[key]!r}"
        if options is not None and not _same(getattr(options, field), value):
            raise ValueError(
                f"{key}={kwargs[key]!r} contradicts options.{field}={getattr(options, field)!r}; "
                "give the setting in one place"
            )
    return fields


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, QTable) or isinstance(b, QTable):
        return isinstance(a, QTable) and isinstance(b, QTable) and a == b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and other odd values: not the same
        return False


def _from_alias(key: str, value: Any) -> str:
    on = _flag(key, value)
    if key == "trellis":
        return "trellis" if on else "libjpeg"
    if key == "keep_metadata":
        return "keep" if on else "strip"
    return "orientation" if on else "keep"  # strip (recompress): keeps an orientation other than 1


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def writable_table(
    table: Any, quality: int | None = None, *, allow_16bit: bool = False, trellis: bool = False
) -> QTable:
    """The QTable :func:`dnnjpeg.save` writes for ``table`` and ``quality`` with these options.

    Raises:
        QTableError: naming ``table``: unknown, unreadable or invalid, or steps above 255
            without ``allow_16bit`` (or with ``trellis``, which writes baseline tables only).

    Example:
        >>> writable_table("standard", 50).luma[:2]
        (16, 11)
    """
    qt = resolve_table(table, quality, allow_16bit=allow_16bit)
    if qt.is_baseline:
        return qt
    what = f"table{_label(table, qt)} has steps above 255 (16-bit, non-baseline JPEG)"
    if trellis:
        raise QTableError(f"{what}; trellis quantization writes baseline tables only")
    if not allow_16bit:
        raise QTableError(what, fix=Fix("allow_16bit", "allow_16bit=True", "to write it (many decoders reject it)"))
    return qt


def _label(table: Any, qt: QTable) -> str:
    """How an error names ``table`` (after a space): the name or path given, else the QTable's own name."""
    if isinstance(table, (str, os.PathLike)):
        return f" {os.fspath(table)!r}"
    name = qt.meta.get("name")
    return f" {name!r}" if name else ""


def _source_metadata(im: Image.Image) -> dict[str, Any]:
    """``im.info``'s metadata in the form the JPEG writer needs.

    Pillow's WebP reader gives EXIF without the ``Exif\\0\\0`` header that a JPEG APP1
    segment needs (written as is, no reader finds the EXIF, orientation included).
    """
    info = {k: im.info[k] for k in METADATA_KEYS if k in im.info}
    exif = info.get("exif")
    if isinstance(exif, bytes) and exif and not exif.startswith(_EXIF_HEADER):
        info["exif"] = _EXIF_HEADER + exif
    return info


def _orientation_exif(im: Image.Image) -> bytes | None:
    """An EXIF block holding only ``im``'s orientation, when it is other than 1 (else ``None``)."""
    orientation = im.getexif().get(_ORIENTATION)
    if orientation in (None, 1):
        return None
    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    return exif.tobytes()


def check_mapping(options: Mapping[str, Any], valid: frozenset[str], where: str) -> None:
    """A ``ValueError`` listing ``valid`` when ``options`` holds a key outside it."""
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(valid))}"
        )
