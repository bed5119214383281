"""Functional form of the DNNJPEG transform: one JPEG round trip with a dnnjpeg table.

:func:`dnnjpeg` compresses an image with a quantization table through Pillow (libjpeg),
decodes it again with Pillow, and returns it in the input's own form:

================================  ==================================================
input                             output
================================  ==================================================
``PIL.Image.Image``               the decoded JPEG (mode ``L``, ``RGB`` or ``CMYK``;
                                  other modes are first converted by
                                  :func:`dnnjpeg.to_jpeg_mode`)
``uint8`` tensor ``[..., C, H, W]``  ``uint8`` tensor of the same shape
floating tensor in [0, 1]         same dtype and shape (see *Float tensors* below)
``tv_tensors.Image`` / ``Video``  same tv_tensor type
tensor on a CUDA device           tensor on that device (the codec runs on the CPU)
================================  ==================================================

``C`` must be 1 (grayscale, written as a one-component JPEG with the luma table) or 3
(RGB).  Leading dimensions (a batch ``N``, video frames ``T``...) are compressed image by
image, all with the same table.

Float tensors: ``x`` is mapped to ``uint8`` as ``round(clamp(x, 0, 1) * 255)``, compressed,
and mapped back as ``y / 255`` in the input dtype, so the result is a multiple of 1/255.
Values outside [0, 1] are clamped; NaN raises ``ValueError``.

The pixels are exactly those of ``img.save(f, "JPEG", qtables=..., subsampling=...)``
followed by ``Image.open(f)``: the table is never rescaled (no ``quality=`` reaches Pillow)
and Huffman tables are libjpeg's standard ones.  With ``trellis=True`` they are those of
``dnnjpeg.save(img, f, table, trellis=True)`` (mozjpeg's trellis quantization, the same table):
what a dataset written by ``dnnjpeg recompress --trellis`` holds.  Trellis takes L and RGB
images only (a CMYK PIL image raises ``ValueError``).
"""

from __future__ import annotations

import io
import os
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from ..encoders import MozjpegEncoder, check_trellis_mode, require_jpeglib
from ..families import resolve_table
from ..options import EncodeOptions, agreed_fields
from ..pillow_plugin import to_jpeg_mode
from ..qtable import SUBSAMPLINGS, QTable

__all__ = ["apply_options", "dnnjpeg", "jpeg_options"]

#: The table of the transform when none is given.
DEFAULT_TABLE = "resnet50"

ImageLike = TypeVar("ImageLike", Image.Image, torch.Tensor)


def jpeg_options(
    table: str | os.PathLike[str] | QTable, quality: int | None = None, subsampling: str | None = None
) -> dict[str, Any]:
    """Pillow ``save`` keywords (``qtables``, ``subsampling``) for a table; never ``quality``.

    Args:
        table: family name (see :func:`dnnjpeg.tables`), JSON path or :class:`~dnnjpeg.QTable`.
        quality: family member; ``None`` for the family default.  Not allowed with a QTable.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``; ``None`` keeps the table's own.

    Raises:
        ValueError: unknown table or member, bad subsampling, or a 16-bit (non-baseline) table.

    Example:
        >>> opts = jpeg_options("resnet50", subsampling="4:4:4")
        >>> opts["qtables"][0][:4], opts["subsampling"]
        ([17, 16, 17, 20], '4:4:4')
    """
    qt = resolve_table(table, quality)
    return _options_for(qt, subsampling)


def _options_for(qt: QTable, subsampling: str | None, trellis: bool = False) -> dict[str, Any]:
    if not qt.is_baseline:
        raise ValueError(f"table {qt!r} has steps above 255; only baseline (8-bit) tables can be used")
    if subsampling is None:
        subsampling = qt.subsampling
    elif subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling {subsampling!r} is not one of {', '.join(SUBSAMPLINGS)}")
    if not isinstance(trellis, bool):
        raise ValueError(f"trellis must be True or False, got {trellis!r}")  # noqa: TRY004 (project rule)
    opts: dict[str, Any] = {"qtables": [list(qt.luma), list(qt.chroma)], "subsampling": subsampling}
    if trellis:
        require_jpeglib()  # say now, not at the first image, when it is missing
        # Progressive is mozjpeg's cheaper path; its pixels are those of the baseline file.
        table = QTable(qt.luma, qt.chroma, subsampling)
        opts["encoder"] = MozjpegEncoder(table=table, progressive=True, name="trellis")
    return opts


def _encode_settings(
    options: EncodeOptions | None, table: Any, quality: Any, subsampling: str | None, trellis: bool | None
) -> tuple[Any, Any, str | None, bool]:
    """``(table, quality, subsampling, trellis)`` of the transform's arguments: ``options`` when given (the
    others, where not ``None``, must agree with it), else the arguments with their defaults."""
    given = {k: v for k, v in (("table", table), ("quality", quality), ("subsampling", subsampling),
                               ("trellis", trellis)) if v is not None}  # fmt: skip
    if options is None:
        return given.get("table", DEFAULT_TABLE), quality, subsampling, given.get("trellis", False)
    if not isinstance(options, EncodeOptions):
        raise ValueError(f"options must be a dnnjpeg.EncodeOptions, got {type(options).__name__}")
    agreed_fields(options, **given)
    return options.table, options.quality, options.subsampling, options.trellis


def dnnjpeg(
    img: ImageLike,
    table: str | os.PathLike[str] | QTable | None = None,
    quality: int | None = None,
    subsampling: str | None = None,
    trellis: bool | None = None,
    *,
    options: EncodeOptions | None = None,
) -> ImageLike:
    """JPEG-compress and decompress ``img`` with a dnnjpeg quantization table.

    Args:
        img: PIL image, or tensor ``[..., 1 or 3, H, W]`` of dtype ``uint8`` or floating
            (values in [0, 1]); plain tensor or ``tv_tensors.Image``/``Video``; any device.
        table: family name, JSON path or :class:`~dnnjpeg.QTable` (default ``"resnet50"``).
        quality: family member (the standard quality it is size-matched to); ``None`` for
            the family default.  Must be ``None`` with a QTable.
        subsampling: chroma subsampling override; ``None`` keeps the table's own.
        trellis: quantize with mozjpeg's trellis quantization instead of libjpeg's rounding
            (``writer="trellis"``; default False).
        options: the encode settings (:class:`~dnnjpeg.EncodeOptions`) instead of ``table``,
            ``quality``, ``subsampling`` and ``trellis`` (which must then agree with it).  Its
            ``optimize`` and ``progressive`` change the bytes, not the pixels, and metadata has
            none to act on: they are not used here.

    Returns:
        The decompressed image, of the same kind, shape, dtype and device as ``img``
        (a PIL image comes back in a JPEG mode: ``L``, ``RGB`` or ``CMYK``).

    Shape:
        - Input: ``[..., C, H, W]`` with ``C`` in (1, 3), or a PIL image.
        - Output: the same as the input.

    Raises:
        TypeError: ``img`` is not a PIL image or tensor, or the tensor dtype is not
            ``uint8`` or floating.
        ValueError: bad table/quality/subsampling, a channel count other than 1 or 3,
            fewer than 3 dimensions, or NaN in a float tensor.

    Example:
        >>> import torch
        >>> x = torch.full((3, 16, 16), 200, dtype=torch.uint8)
        >>> y = dnnjpeg(x, "resnet50")
        >>> y.shape, y.dtype, int(y[0, 0, 0])
        (torch.Size([3, 16, 16]), torch.uint8, 200)
        >>> dnnjpeg(x.float() / 255, "standard", quality=90).dtype
        torch.float32
    """
    table, quality, subsampling, trellis = _encode_settings(options, table, quality, subsampling, trellis)
    opts = _options_for(resolve_table(table, quality), subsampling, trellis)
    return apply_options(img, opts)


def apply_options(img: ImageLike, opts: dict[str, Any]) -> ImageLike:
    """Round-trip ``img`` through JPEG with ready-made Pillow ``save`` keywords (see :func:`jpeg_options`).

    An extra key ``"encoder"`` (an encoder of :mod:`dnnjpeg.encoders`) writes the JPEG instead of Pillow.
    """
    if isinstance(img, Image.Image):
        return _roundtrip_pil(to_jpeg_mode(img), opts)
    if isinstance(img, torch.Tensor):
        return _roundtrip_tensor(img, opts)
    raise TypeError(f"expected a PIL image or a torch.Tensor, got {type(img).__name__}")


# -- PIL ------------------------------------------------------------------------------


def _roundtrip_pil(im: Image.Image, opts: dict[str, Any]) -> Image.Image:
    encoder = opts.get("encoder")
    if encoder is None:
        buf = io.BytesIO()
        im.save(buf, "JPEG", **opts)
    else:
        check_trellis_mode(im.mode)
        buf = io.BytesIO(encoder.encode(np.asarray(im)))
    buf.seek(0)
    out = Image.open(buf, formats=("JPEG",))
    out.load()
    return out


# -- tensors --------------------------------------------------------------------------


def _check_tensor(x: torch.Tensor) -> None:
    if x.ndim < 3:
        raise ValueError(f"expected an image tensor of shape [..., C, H, W], got shape {tuple(x.shape)}")
    if x.shape[-3] not in (1, 3):
        raise ValueError(
            f"expected 1 (grayscale) or 3 (RGB) channels at dim -3, got shape {tuple(x.shape)} "
            f"({x.shape[-3]} channels)"
        )
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise TypeError(f"expected a uint8 or floating-point tensor, got dtype {x.dtype}")


def _float_to_uint8(x: torch.Tensor) -> torch.Tensor:
    if torch.isnan(x).any():
        raise ValueError("float image tensor contains NaN")
    work = x if x.dtype == torch.float64 else x.to(torch.float32)
    return work.mul(255).round_().clamp_(0, 255).to(torch.uint8)


def _uint8_to_float(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    work = torch.float64 if dtype == torch.float64 else torch.float32
    return y.to(work).div_(255).to(dtype)


def _roundtrip_tensor(x: torch.Tensor, opts: dict[str, Any]) -> torch.Tensor:
    _check_tensor(x)
    device, dtype = x.device, x.dtype
    data = x.detach().as_subclass(torch.Tensor)
    if dtype != torch.uint8:
        data = _float_to_uint8(data)  # on the input's device: 4x less to copy to the CPU
    if device.type != "cpu":
        data = data.cpu()
    shape = data.shape
    batch = data.reshape((-1,) + tuple(shape[-3:]))
    out = torch.empty(batch.shape, dtype=torch.uint8)
    src, dst = batch.numpy(), out.numpy()
    for i in range(src.shape[0]):
        _decode_into(_roundtrip_pil(_pil_from_chw(src[i]), opts), dst[i])
    result = out.reshape(shape)
    if dtype != torch.uint8:
        # On the CPU: CUDA divides by a scalar through its reciprocal, which can differ from
        # the CPU result in the last bit; converting first keeps devices bit-identical.
        result = _uint8_to_float(result, dtype)
    if device.type != "cpu":
        result = result.to(device)
    if isinstance(x, tv_tensors.TVTensor):
        result = tv_tensors.wrap(result, like=x)
    return result


def _pil_from_chw(a: np.ndarray) -> Image.Image:
    """A PIL image viewing (``L``) or built from (``RGB``, one pass) a CHW uint8 array."""
    h, w = a.shape[1:]
    planes = [Image.frombuffer("L", (w, h), np.ascontiguousarray(p), "raw", "L", 0, 1) for p in a]
    if len(planes) == 1:
        return planes[0]
    return Image.merge("RGB", planes)


def _decode_into(im: Image.Image, dst: np.ndarray) -> None:
    """Copy a decoded ``L``/``RGB`` image into the CHW uint8 array ``dst``."""
    c, h, w = dst.shape
    if im.size != (w, h) or im.mode != ("L" if c == 1 else "RGB"):
        raise RuntimeError(f"JPEG decoded to {im.mode} {im.size}, expected {c} channels of {w}x{h}")
    if c == 1:
        dst[0] = np.frombuffer(im.tobytes(), dtype=np.uint8).reshape(h, w)
    else:
        # "RGB;L" packs each row plane by plane (R row, G row, B row): a cheap copy to CHW.
        rows = np.frombuffer(im.tobytes("raw", "RGB;L"), dtype=np.uint8).reshape(h, 3, w)
        dst.transpose(1, 0, 2)[...] = rows
