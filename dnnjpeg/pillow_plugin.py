"""Pillow integration: ``dnnjpeg.save()`` and the ``DNNJPEG`` save format.

After ``dnnjpeg.register()``::

    img.save("x.jpg", "DNNJPEG", table="resnet50", quality=50)

writes a standard JPEG with the table's luma/chroma steps, unscaled: baseline unless
``progressive=True``.  With ``trellis=True`` mozjpeg chooses the coefficients (trellis
quantization: fewer bytes for the same table, see research/tuned-families.md); the file is
still baseline unless ``progressive=True``.

Options (the one place they are documented):

================  ===========================================================
``table``         family name, JSON path or :class:`~dnnjpeg.QTable` (default ``"standard"``)
``quality``       family member (the standard quality it is size-matched to);
                  ``None`` for the family default.  Never rescales a table.
``subsampling``   ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``; default: the table's own
``optimize``      optimized Huffman tables (bool, default False)
``progressive``   progressive JPEG (bool, default False)
``keep_metadata`` copy ``exif``, ``icc_profile``, ``xmp``, ``comment`` and ``dpi``
                  from ``img.info`` (default True)
``exif``, ``icc_profile``, ``xmp``, ``comment``, ``dpi``
                  explicit values, override ``img.info``; ``b""`` drops one
``allow_16bit``   permit a table with steps > 255 (non-baseline; default False)
``trellis``       let mozjpeg 4.0.3 (through ``jpeglib``) choose the quantized
                  coefficients by trellis quantization (bool, default False);
                  Huffman tables are then always optimized.  ``L`` and ``RGB``
                  images only (after the mode rule below); baseline tables only.
                  Needs ``jpeglib`` (``pip install 'dnnjpeg[trellis]'``).
================  ===========================================================

Any other option raises ``ValueError``.

Image modes: ``L``, ``RGB`` and ``CMYK`` are written as they are.  Other modes are
converted by this rule (:func:`to_jpeg_mode`):

* ``1`` -> ``L``; ``P`` -> ``RGB`` (``RGBA`` first if it has transparency);
* ``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA`` -> alpha composited over white, then ``RGB`` / ``L``;
* ``I;16*`` (16-bit) -> ``L`` by keeping the top 8 bits (value / 257, rounded);
* ``I`` (32-bit integer) and ``F`` (float) -> ``L``, values clipped to 0..255 and rounded;
* ``RGBX``, ``YCbCr``, ``LAB``, ``HSV`` -> ``RGB``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
from PIL import Image, JpegImagePlugin

from .advice import Fix
from .families import resolve_table
from .qtable import SUBSAMPLINGS, QTable, QTableError

__all__ = ["FORMAT", "SAVE_OPTIONS", "encode", "register", "save", "to_jpeg_mode", "writable_table"]

FORMAT = "DNNJPEG"

#: Every option ``save()`` and the DNNJPEG format accept.
SAVE_OPTIONS: frozenset[str] = frozenset(
    {
        "table",
        "quality",
        "subsampling",
        "optimize",
        "progressive",
        "keep_metadata",
        "exif",
        "icc_profile",
        "xmp",
        "comment",
        "dpi",
        "allow_16bit",
        "trellis",
    }
)
_METADATA_KEYS = ("exif", "icc_profile", "xmp", "comment", "dpi")
# Keys Pillow itself may put into ``encoderinfo`` on its way to a save handler.
_PILLOW_INTERNAL_KEYS = frozenset({"append_images", "save_all"})


def _flatten_alpha(im: Image.Image, mode: str) -> Image.Image:
    rgba = im.convert("RGBA") if mode.startswith("RGB") or mode == "PA" else im.convert("LA")
    if rgba.mode == "LA":
        bg = Image.new("LA", rgba.size, (255, 255))
        return Image.alpha_composite(bg.convert("RGBA"), rgba.convert("RGBA")).convert("L")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def to_jpeg_mode(im: Image.Image) -> Image.Image:
    """Convert ``im`` to a mode JPEG can store (L, RGB, CMYK) by the documented rule.

    Example:
        >>> from PIL import Image, JpegImagePlugin
        >>> to_jpeg_mode(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).getpixel((0, 0))
        (255, 255, 255)
        >>> to_jpeg_mode(Image.new("I;16", (2, 2), 65535)).getpixel((0, 0))
        255
    """
    mode = im.mode
    if mode in ("L", "RGB", "CMYK"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "P":
        if "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA":
            return _flatten_alpha(im.convert("RGBA"), "RGBA")
        return im.convert("RGB")
    if mode in ("RGBA", "RGBa", "PA"):
        return _flatten_alpha(im, "RGBA")
    if mode in ("LA", "La"):
        return _flatten_alpha(im, "LA")
    if mode.startswith("I;16"):
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")
    if mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
    if mode in ("RGBX", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    raise ValueError(f"cannot write image mode {mode!r} as JPEG (no conversion rule)")


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - SAVE_OPTIONS)
    if unknown:
        raise ValueError(
            f"DNNJPEG: unknown option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(SAVE_OPTIONS))}"
        )


_EXIF_HEADER = b"Exif\x00\x00"


def _source_metadata(im: Image.Image) -> dict[str, Any]:
    """``im.info``'s metadata in the form the JPEG writer needs.

    Pillow's WebP reader gives EXIF without the ``Exif\\0\\0`` header that a JPEG APP1
    segment needs (written as is, no reader finds the EXIF, orientation included).
    """
    info = {k: im.info[k] for k in _METADATA_KEYS if k in im.info}
    exif = info.get("exif")
    if isinstance(exif, bytes) and exif and not exif.startswith(_EXIF_HEADER):
        info["exif"] = _EXIF_HEADER + exif
    return info


def jpeg_save_kwargs(im: Image.Image, **options: Any) -> dict[str, Any]:
    """Translate DNNJPEG options to Pillow ``"JPEG"`` save keywords (never ``quality``; ``trellis`` is not Pillow's)."""
    _check_options(options)
    qt = writable_table(
        options.get("table", "standard"),
        options.get("quality"),
        allow_16bit=bool(options.get("allow_16bit", False)),
        trellis=bool(options.get("trellis", False)),
    )
    subsampling = options.get("subsampling") or qt.subsampling
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling {subsampling!r} is not one of {', '.join(SUBSAMPLINGS)}")
    kwargs: dict[str, Any] = {
        "qtables": [list(qt.luma), list(qt.chroma)],
        "subsampling": subsampling,
        "optimize": bool(options.get("optimize", False)),
        "progressive": bool(options.get("progressive", False)),
    }
    keep = options.get("keep_metadata", True)
    info = _source_metadata(im) if keep else {}
    for key in _METADATA_KEYS:
        if key in options:
            value = options[key]
        elif keep:
            value = info.get(key)
        else:
            value = b"" if key != "dpi" else None
        if value is None:
            continue
        if key == "dpi":
            kwargs["dpi"] = tuple(round(float(v)) for v in value)
        else:
            kwargs[key] = value
    if not keep and "comment" not in options:
        kwargs["comment"] = b""  # Pillow otherwise copies im.info["comment"] itself
    return kwargs


def writable_table(
    table: Any, quality: int | None = None, *, allow_16bit: bool = False, trellis: bool = False
) -> QTable:
    """The QTable :func:`save` writes for ``table`` and ``quality`` with these options.

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


def save(im: Image.Image, fp: str | os.PathLike[str] | IO[bytes], table: Any = "standard", **options: Any) -> None:
    """Save ``im`` as a JPEG (baseline unless ``progressive=True``) with a dnnjpeg table (the functional
    form of ``"DNNJPEG"``).

    Args:
        im: any Pillow image; converted by :func:`to_jpeg_mode` when needed.
        fp: file name, path or binary file object.
        table: family name, JSON path or QTable.
        **options: see the module docstring.

    Example:
        >>> import io
        >>> from PIL import Image, JpegImagePlugin
        >>> buf = io.BytesIO()
        >>> save(Image.new("RGB", (16, 16), "red"), buf, "resnet50")
        >>> Image.open(buf).quantization[0][:4]
        [17, 16, 17, 20]
    """
    if options.get("trellis", False):
        data = _trellis_encode(im, table=table, **options)
        if hasattr(fp, "write"):
            fp.write(data)  # type: ignore[union-attr]
        else:
            with open(fp, "wb") as f:
                f.write(data)
        return
    kwargs = jpeg_save_kwargs(im, table=table, **options)
    to_jpeg_mode(im).save(fp, "JPEG", **kwargs)


def encode(im: Image.Image, table: Any = "standard", **options: Any) -> bytes:
    """JPEG bytes of ``im`` with ``table`` (see :func:`save`)."""
    buf = io.BytesIO()
    save(im, buf, table, **options)
    return buf.getvalue()


def _trellis_encode(im: Image.Image, **options: Any) -> bytes:
    """JPEG bytes written by mozjpeg (trellis quantization) with Pillow's metadata segments."""
    from ._jpegmarkers import replace_metadata
    from .encoders import MozjpegEncoder, check_trellis_mode

    kwargs = jpeg_save_kwargs(im, **options)
    out = to_jpeg_mode(im)
    check_trellis_mode(out.mode)
    luma, chroma = kwargs.pop("qtables")  # baseline: writable_table refuses 16-bit tables with trellis
    qt = QTable(luma, chroma, kwargs.pop("subsampling"))
    progressive = kwargs.pop("progressive")
    del kwargs["optimize"]  # mozjpeg always optimizes its Huffman tables
    coded = MozjpegEncoder(table=qt, progressive=progressive, name="trellis").encode(np.asarray(out))
    template = io.BytesIO()
    Image.new(out.mode, (8, 8)).save(template, "JPEG", **kwargs)  # only the metadata segments are used
    return replace_metadata(coded, template.getvalue())


def _pillow_save_handler(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    options = {k: v for k, v in im.encoderinfo.items() if k not in _PILLOW_INTERNAL_KEYS}
    table = options.pop("table", "standard")
    if options.get("trellis", False):
        fp.write(_trellis_encode(im, table=table, **options))
        return
    kwargs = jpeg_save_kwargs(im, table=table, **options)
    out = to_jpeg_mode(im)
    # Call Pillow's JPEG writer directly with exactly our options.  A nested
    # ``out.save(...)`` would merge the caller's encoderinfo (our ``quality`` among
    # them) back in, and Pillow would rescale the tables.
    previous = getattr(out, "encoderinfo", None)
    out.encoderinfo = kwargs
    try:
        JpegImagePlugin._save(out, fp, filename)
    finally:
        if previous is None:
            del out.encoderinfo
        else:
            out.encoderinfo = previous


def register() -> None:
    """Register the ``DNNJPEG`` save format with Pillow (idempotent).

    Files written this way are ordinary JPEGs: ``Image.open`` reads them back as ``"JPEG"``.

    Example:
        >>> import io, dnnjpeg
        >>> from PIL import Image, JpegImagePlugin
        >>> dnnjpeg.register()
        >>> buf = io.BytesIO()
        >>> Image.new("L", (8, 8)).save(buf, "DNNJPEG", table="standard", quality=90)
        >>> Image.open(buf).format
        'JPEG'
    """
    Image.register_save(FORMAT, _pillow_save_handler)
    Image.register_mime(FORMAT, "image/jpeg")
