"""Pillow integration: ``dnnjpeg.save()`` and the ``DNNJPEG`` save format.

After ``dnnjpeg.register()``::

    img.save("x.jpg", "DNNJPEG", table="resnet50", quality=50)

writes a standard JPEG with the table's luma/chroma steps, unscaled: baseline unless
``progressive=True``.  With ``trellis=True`` mozjpeg chooses the coefficients (trellis
quantization: fewer bytes for the same table, see research/tuned-families.md); the file is
still baseline unless ``progressive=True``.

Options: every field of :class:`~dnnjpeg.EncodeOptions` (``table``, ``quality``, ``subsampling``,
``optimize``, ``progressive``, ``writer``, ``metadata``, ``allow_16bit``; documented in one place,
``docs/encode-options.md``), or ``options=EncodeOptions(...)`` itself; the old spellings
``trellis=True`` (``writer="trellis"``) and ``keep_metadata=False`` (``metadata="strip"``); and
explicit metadata values for this image:

==========================================================  =====================================
``exif``, ``icc_profile``, ``xmp``, ``comment``, ``dpi``      override ``img.info`` and the
                                                            metadata policy; ``b""`` drops one
==========================================================  =====================================

Any other option raises ``ValueError``, and so does a keyword that contradicts ``options``.

Image modes: ``L``, ``RGB`` and ``CMYK`` are written as they are.  Other modes are
converted by this rule (:func:`to_jpeg_mode`):

* ``1`` -> ``L``; ``P`` -> ``RGB`` (``RGBA`` first if it has transparency);
* ``RGBA``, ``RGBa``, ``LA``, ``La``, ``PA`` -> alpha composited over white, then ``RGB`` / ``L``;
* ``I;16*`` (16-bit) -> ``L`` by keeping the top 8 bits (value / 257, rounded);
* ``I`` (32-bit integer) and ``F`` (float) -> ``L``, values clipped to 0..255 and rounded;
* ``RGBX``, ``YCbCr``, ``LAB``, ``HSV`` -> ``RGB``.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
from PIL import Image, JpegImagePlugin

from ._jpegmarkers import replace_metadata
from .encoders import MozjpegEncoder, check_trellis_mode
from .options import METADATA_KEYS, EncodeOptions, check_mapping, writable_table

__all__ = ["FORMAT", "SAVE_OPTIONS", "encode", "register", "save", "to_jpeg_mode", "writable_table"]

FORMAT = "DNNJPEG"

#: Every option ``save()`` and the DNNJPEG format accept.
SAVE_OPTIONS: frozenset[str] = frozenset(
    {f.name for f in dataclasses.fields(EncodeOptions)}
    | {"trellis", "keep_metadata", "options"}
    | set(METADATA_KEYS)
)
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


def _encode_settings(
    options: Mapping[str, Any], valid: frozenset[str] = SAVE_OPTIONS
) -> tuple[EncodeOptions, dict[str, Any]]:
    """The :class:`EncodeOptions` and the explicit metadata values (``exif``... ``dpi``) of save options."""
    check_mapping(options, valid, "DNNJPEG")
    given = dict(options)
    opts = given.pop("options", None)
    if opts is not None and not isinstance(opts, EncodeOptions):
        raise ValueError(f"options must be a dnnjpeg.EncodeOptions, got {type(opts).__name__}")
    metadata = {k: given.pop(k) for k in METADATA_KEYS if k in given}
    return EncodeOptions.from_kwargs(opts, **given), metadata


def jpeg_save_kwargs(im: Image.Image, **options: Any) -> dict[str, Any]:
    """Translate DNNJPEG options to Pillow ``"JPEG"`` save keywords (never ``quality``; ``trellis`` is not Pillow's)."""
    enc, metadata = _encode_settings(options)
    return enc.save_kwargs(im, **metadata)


def save(
    im: Image.Image,
    fp: str | os.PathLike[str] | IO[bytes],
    table: Any = None,
    *,
    options: EncodeOptions | None = None,
    **kwargs: Any,
) -> None:
    """Save ``im`` as a JPEG (baseline unless ``progressive=True``) with a dnnjpeg table (the functional
    form of ``"DNNJPEG"``).

    Args:
        im: any Pillow image; converted by :func:`to_jpeg_mode` when needed.
        fp: file name, path or binary file object.
        table: family name, JSON path or QTable (default ``"standard"``, or ``options.table``).
        options: the encode settings (:class:`~dnnjpeg.EncodeOptions`); keyword arguments that
            contradict it raise ``ValueError``.
        **kwargs: :class:`~dnnjpeg.EncodeOptions` fields (or their old spellings ``trellis``,
            ``keep_metadata``) and explicit metadata values; see the module docstring.

    Example:
        >>> import io
        >>> from PIL import Image, JpegImagePlugin
        >>> buf = io.BytesIO()
        >>> save(Image.new("RGB", (16, 16), "red"), buf, "resnet50")
        >>> Image.open(buf).quantization[0][:4]
        [17, 16, 17, 20]
    """
    if table is not None:
        kwargs["table"] = table
    enc, metadata = _encode_settings({**kwargs, "options": options})
    if enc.trellis:
        data = _trellis_encode(im, enc, metadata)
        if hasattr(fp, "write"):
            fp.write(data)  # type: ignore[union-attr]
        else:
            with open(fp, "wb") as f:
                f.write(data)
        return
    to_jpeg_mode(im).save(fp, "JPEG", **enc.save_kwargs(im, **metadata))


def encode(im: Image.Image, table: Any = None, *, options: EncodeOptions | None = None, **kwargs: Any) -> bytes:
    """JPEG bytes of ``im`` with ``table`` (see :func:`save`)."""
    buf = io.BytesIO()
    save(im, buf, table, options=options, **kwargs)
    return buf.getvalue()


def _trellis_encode(im: Image.Image, enc: EncodeOptions, metadata: Mapping[str, Any]) -> bytes:
    """JPEG bytes written by mozjpeg (trellis quantization) with Pillow's metadata segments."""

    out = to_jpeg_mode(im)
    check_trellis_mode(out.mode)
    qt, coding = enc.resolve()  # baseline: EncodeOptions refuses 16-bit tables with trellis
    # mozjpeg always optimizes its Huffman tables
    coded = MozjpegEncoder(table=qt, progressive=enc.progressive, name="trellis").encode(np.asarray(out))
    kwargs = {k: v for k, v in enc.save_kwargs(im, **metadata).items() if k not in coding}
    template = io.BytesIO()
    Image.new(out.mode, (8, 8)).save(template, "JPEG", **kwargs)  # only the metadata segments are used
    return replace_metadata(coded, template.getvalue())


def _pillow_save_handler(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    options = {k: v for k, v in im.encoderinfo.items() if k not in _PILLOW_INTERNAL_KEYS}
    enc, metadata = _encode_settings(options)
    if enc.trellis:
        fp.write(_trellis_encode(im, enc, metadata))
        return
    kwargs = enc.save_kwargs(im, **metadata)
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
