"""Other JPEG encoders, put on the same rate-accuracy axes as the tables: a small registry.

An *encoder* is an object with a ``name`` and ``encode(img) -> bytes`` (uint8 HWC RGB or HW gray in,
a JPEG file that Pillow decodes out).  An *encoder family* makes one encoder per quality, so it
can be swept like standard JPEG and compared at equal bytes.

Registered families (:func:`encoder_families`):

``libjpeg``
    libjpeg-turbo through Pillow, standard (Annex K) tables at quality ``q``, default Huffman
    tables, baseline, 4:2:0: exactly the evaluator's standard JPEG.
``libjpeg-opt``
    The same tables with optimized Huffman tables (Pillow's ``optimize=True``): same pixels,
    fewer bytes.
``mozjpeg``
    mozjpeg 4.0.3 (bundled by ``jpeglib``) with its defaults at quality ``q``: its own default
    tables (``quant_table=3``, tuned on MS-SSIM), trellis quantization, progressive coding with
    optimized scans, 4:2:0.  What ``cjpeg -quality q`` of mozjpeg writes.
``mozjpeg-std``
    mozjpeg 4.0.3 with the standard Annex K tables at quality ``q`` (``base_quant_tbl_idx=0``),
    trellis quantization, progressive: isolates trellis from mozjpeg's table choice.
``trellis``
    mozjpeg 4.0.3 trellis quantization with the standard tables at quality ``q`` (or a given
    table), written as baseline sequential with optimized Huffman tables: what
    ``dnnjpeg.save(..., trellis=True)`` and ``dnnjpeg recompress --trellis`` write.

Any :class:`~dnnjpeg.QTable` can also be written by an encoder: :func:`make_encoder` with
``table=`` (e.g. ``make_encoder("mozjpeg", table=t)`` writes ``t`` with trellis quantization, in ``t``'s
subsampling).

mozjpeg is called through ``jpeglib``, whose library version is process-global; every mozjpeg
encode holds a module lock while it selects ``mozjpeg403`` and restores the previous version
afterwards, so encoders are thread-safe (mozjpeg encodes run one at a time).

Example:
    >>> import numpy as np
    >>> img = np.full((16, 16, 3), 128, dtype=np.uint8)
    >>> data = make_encoder("libjpeg-opt", quality=50).encode(img)
    >>> data[:2] == b"\\xff\\xd8"
    True
    >>> sorted(encoder_families())
    ['libjpeg', 'libjpeg-opt', 'mozjpeg', 'mozjpeg-std', 'trellis']
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from .errors import DnnjpegError
from .qtable import QTable

__all__ = [
    "MOZJPEG_VERSION",
    "TRELLIS_MODES",
    "Encoder",
    "EncoderError",
    "EncoderFamily",
    "MozjpegEncoder",
    "PillowEncoder",
    "check_trellis_mode",
    "encoder_families",
    "get_family",
    "make_encoder",
    "parse_encoder_list",
    "register_encoder_family",
    "require_jpeglib",
]

#: The jpeglib build used for mozjpeg.
MOZJPEG_VERSION = "mozjpeg403"
# The jpeglib build that rewrites mozjpeg's output as baseline (mozjpeg's own writer keeps
# its progressive scan script even with progressive mode off).
_TRANSCODER_VERSION = "turbo210"
#: The PIL image modes mozjpeg's trellis quantization writes (CMYK goes through libjpeg).
TRELLIS_MODES = ("L", "RGB")


class EncoderError(DnnjpegError):
    """Unknown encoder name, bad quality, or an encoder library that is missing."""


def require_jpeglib() -> Any:
    """The ``jpeglib`` module (mozjpeg's way in), or an :class:`EncoderError` saying how to install it."""
    try:
        import jpeglib
    except ImportError:
        raise EncoderError(
            "mozjpeg (trellis quantization) needs the jpeglib package: pip install 'dnnjpeg[trellis]'"
        ) from None
    return jpeglib


def check_trellis_mode(mode: str) -> None:
    """Raise ``ValueError`` unless trellis quantization can write a PIL image of this ``mode``.

    Example:
        >>> check_trellis_mode("RGB")
        >>> check_trellis_mode("CMYK")
        Traceback (most recent call last):
        ...
        ValueError: trellis quantization writes L and RGB images; this image is CMYK (write it with trellis=False)
    """
    if mode not in TRELLIS_MODES:
        raise ValueError(
            f"trellis quantization writes {' and '.join(TRELLIS_MODES)} images; this image is {mode} "
            "(write it with trellis=False)"
        )


@runtime_checkable
class Encoder(Protocol):
    """Anything with a ``name``, ``encode(img) -> bytes`` (a JPEG file), ``meta`` and ``to_dict()``.

    :meth:`dnnjpeg.evaluation.evaluate.Evaluator.evaluate` accepts such an object in place of a table.
    """

    name: str

    @property
    def meta(self) -> dict[str, Any]:  # pragma: no cover - protocol
        ...

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - protocol
        ...

    def encode(self, img: np.ndarray) -> bytes:  # pragma: no cover - protocol
        ...


def _check_image(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise EncoderError(f"expected a uint8 HxWx3 or HxW image, got {arr.dtype} array of shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class PillowEncoder:
    """libjpeg-turbo through Pillow with an explicit table (never ``quality=``, which would rescale it).

    Args:
        table: the QTable to write (its ``subsampling`` is used).
        optimize: optimized Huffman tables.
        name: label for results.
    """

    table: QTable
    optimize: bool = False
    name: str = "libjpeg"

    @property
    def meta(self) -> dict[str, Any]:
        """``name`` and ``quality`` (the table's standard quality, if any), like ``QTable.meta``."""
        return {"name": self.name, "quality": self.table.meta.get("quality")}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored as ``Result.table`` by the evaluator)."""
        return {"name": self.name, "encoder": "pillow", "optimize": self.optimize, "table": self.table.to_dict()}

    def encode(self, img: np.ndarray) -> bytes:
        arr = _check_image(img)
        im = Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
        buf = io.BytesIO()
        opts = self.table.save_options()
        if im.mode == "L":
            opts = {"qtables": [opts["qtables"][0]]}
        im.save(buf, "JPEG", optimize=self.optimize, **opts)
        return buf.getvalue()


_MOZ_LOCK = threading.Lock()
#: jpeglib's sampling factors (vertical, horizontal) of Y, Cb, Cr for each of ``qtable.SUBSAMPLINGS``
_SAMPLING_FACTORS = {"4:4:4": ((1, 1), (1, 1), (1, 1)), "4:2:2": ((1, 2), (1, 1), (1, 1)),
                     "4:2:0": ((2, 2), (1, 1), (1, 1))}


@dataclass(frozen=True)
class MozjpegEncoder:
    """mozjpeg 4.0.3 through ``jpeglib``: trellis quantization, progressive, 4:2:0 unless a table says otherwise.

    With ``progressive=False`` mozjpeg's coefficients (the same trellis decisions) are rewritten
    losslessly as a baseline sequential JPEG with optimized Huffman tables (libjpeg-turbo's
    transcoder, as ``jpegtran -optimize`` would), so any baseline decoder reads it.

    Args:
        quality: 1..100, scaling mozjpeg's base table ``base_table`` (ignored when ``table`` is given).
        table: write this QTable (luma for Y, chroma for Cb/Cr, and its ``subsampling``: 4:4:4, 4:2:2
            or 4:2:0) instead of a scaled base table.
        base_table: mozjpeg's base table index for ``quality`` (``None`` = mozjpeg's default, 3;
            0 = Annex K).
        trellis: trellis quantization of AC and DC coefficients (mozjpeg's default, on).
        progressive: progressive coding with mozjpeg's optimized scans (its default); ``False``
            writes the same coefficients as a baseline JPEG.
        name: label for results.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> img = np.zeros((16, 16, 3), dtype=np.uint8)
        >>> data = MozjpegEncoder(table=QTable.standard(50), progressive=False).encode(img)
        >>> "progressive" in Image.open(io.BytesIO(data)).info
        False
    """

    quality: int | None = None
    table: QTable | None = None
    base_table: int | None = None
    trellis: bool = True
    progressive: bool = True
    name: str = "mozjpeg"

    def __post_init__(self) -> None:
        if self.table is None:
            q = self.quality
            if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= int(q) <= 100:
                raise EncoderError(f"mozjpeg quality {q!r} must be an integer in 1..100")

    @property
    def meta(self) -> dict[str, Any]:
        """``name`` and ``quality`` (``None`` when a table is given), like ``QTable.meta``."""
        return {"name": self.name, "quality": None if self.table is not None else int(self.quality)}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (stored as ``Result.table`` by the evaluator)."""
        return {
            "name": self.name, "encoder": MOZJPEG_VERSION, "quality": self.meta["quality"],
            "base_table": self.base_table, "trellis": self.trellis, "progressive": self.progressive,
            "table": None if self.table is None else self.table.to_dict(),
        }

    def encode(self, img: np.ndarray) -> bytes:
        jpeglib = require_jpeglib()
        arr = _check_image(img)
        if arr.ndim == 2:
            arr = arr[..., None]
        kwargs: dict[str, Any] = {}
        if self.table is not None:
            tables = [self.table.luma] if arr.shape[2] == 1 else [self.table.luma, self.table.chroma]
            kwargs["qt"] = np.array(tables, dtype=np.uint16).reshape(-1, 8, 8)
        else:
            kwargs["qt"] = int(self.quality)  # type: ignore[arg-type]
            if self.base_table is not None:
                kwargs["base_quant_tbl_idx"] = int(self.base_table)
        if not self.trellis:
            kwargs["flags"] = ["-TRELLIS_QUANT", "-TRELLIS_QUANT_DC"]
        fd, path = tempfile.mkstemp(suffix=".jpg", prefix="dnnjpeg-moz-")
        os.close(fd)
        try:
            with _MOZ_LOCK:
                try:
                    with jpeglib.version(MOZJPEG_VERSION):
                        jpeg = jpeglib.from_spatial(np.ascontiguousarray(arr))
                        if self.table is not None and arr.shape[2] == 3:
                            jpeg.samp_factor = np.array(_SAMPLING_FACTORS[self.table.subsampling])
                        jpeg.write_spatial(path, **kwargs)
                    if not self.progressive:
                        _rewrite_sequential(path)
                except (RuntimeError, NotImplementedError) as exc:
                    raise EncoderError(f"jpeglib cannot load {MOZJPEG_VERSION}: {exc}") from None
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.unlink(path)


def _rewrite_sequential(path: str) -> None:
    """Rewrite the JPEG at ``path`` as baseline sequential, optimized Huffman tables, same coefficients."""
    jpeglib = require_jpeglib()
    with jpeglib.version(_TRANSCODER_VERSION):
        coefficients = jpeglib.read_dct(path)
        coefficients.markers = []  # the writer adds its own JFIF header
        coefficients.write_dct(path, flags=["+OPTIMIZE_CODING"])


@dataclass(frozen=True)
class EncoderFamily:
    """An encoder per quality: ``factory(quality=q)`` or ``factory(table=t)``."""

    name: str
    description: str
    factory: Callable[..., Encoder]

    def at(self, quality: int) -> Encoder:
        """The encoder at ``quality`` (1..100)."""
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= int(quality) <= 100:
            raise EncoderError(f"quality {quality!r} must be an integer in 1..100")
        return self.factory(quality=int(quality))

    def with_table(self, table: QTable) -> Encoder:
        """This encoder writing ``table``."""
        return self.factory(table=table)


_FAMILIES: dict[str, EncoderFamily] = {}


def register_encoder_family(name: str, description: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Decorator registering ``factory(quality=None, table=None) -> Encoder`` under ``name``."""

    def deco(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        if name in _FAMILIES:
            raise ValueError(f"encoder family {name!r} is already registered")
        _FAMILIES[name] = EncoderFamily(name, description, factory)
        return factory

    return deco


def _table_or_standard(quality: int | None, table: QTable | None) -> QTable:
    if table is not None:
        return table
    if quality is None:
        raise EncoderError("give a quality or a table")
    return QTable.standard(int(quality))


@register_encoder_family("libjpeg", "libjpeg-turbo (Pillow), standard tables, default Huffman tables, baseline")
def _libjpeg(quality: int | None = None, table: QTable | None = None) -> Encoder:
    return PillowEncoder(_table_or_standard(quality, table), optimize=False, name="libjpeg")


@register_encoder_family("libjpeg-opt", "libjpeg-turbo (Pillow), standard tables, optimized Huffman tables")
def _libjpeg_opt(quality: int | None = None, table: QTable | None = None) -> Encoder:
    return PillowEncoder(_table_or_standard(quality, table), optimize=True, name="libjpeg-opt")


@register_encoder_family("mozjpeg", "mozjpeg 4.0.3 defaults: its own tables, trellis quantization, progressive")
def _mozjpeg(quality: int | None = None, table: QTable | None = None) -> Encoder:
    return MozjpegEncoder(quality=quality, table=table, name="mozjpeg")


@register_encoder_family("mozjpeg-std", "mozjpeg 4.0.3 with standard Annex K tables, trellis, progressive")
def _mozjpeg_std(quality: int | None = None, table: QTable | None = None) -> Encoder:
    return MozjpegEncoder(quality=quality, table=table, base_table=0, name="mozjpeg-std")


@register_encoder_family("trellis", "mozjpeg 4.0.3 trellis quantization, standard tables, baseline, optimized Huffman")
def _trellis(quality: int | None = None, table: QTable | None = None) -> Encoder:
    return MozjpegEncoder(table=_table_or_standard(quality, table), progressive=False, name="trellis")


def encoder_families() -> dict[str, str]:
    """Registered encoder family names with their descriptions."""
    return {name: fam.description for name, fam in _FAMILIES.items()}


def get_family(name: str) -> EncoderFamily:
    """The :class:`EncoderFamily` called ``name``."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise EncoderError(f"unknown encoder {name!r}; known: {', '.join(sorted(_FAMILIES))}") from None


def make_encoder(name: str, quality: int | None = None, table: QTable | None = None) -> Encoder:
    """The encoder ``name`` at ``quality``, or writing ``table`` (exactly one of the two).

    Example:
        >>> make_encoder("mozjpeg", quality=75).name
        'mozjpeg'
    """
    fam = get_family(name)
    if (quality is None) == (table is None):
        raise EncoderError(f"encoder {name!r}: give exactly one of quality= and table=")
    return fam.at(quality) if table is None else fam.with_table(table)  # type: ignore[arg-type]


def parse_encoder_list(text: str | None) -> list[str]:
    """``"mozjpeg,libjpeg-opt"`` -> names (validated); ``""``/``"none"``/``None`` -> ``[]``.

    Example:
        >>> parse_encoder_list("mozjpeg, libjpeg-opt")
        ['mozjpeg', 'libjpeg-opt']
        >>> parse_encoder_list("none")
        []
    """
    if text is None or text.strip().lower() in ("", "none"):
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        get_family(n)
    if len(set(names)) != len(names):
        raise EncoderError(f"encoder list {text!r} names an encoder twice")
    return names
