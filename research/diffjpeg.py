"""A differentiable simulation of baseline JPEG (libjpeg's pipeline) in torch.

It follows libjpeg step by step — RGB -> YCbCr (BT.601 full range), 4:2:0 / 4:2:2 box
downsampling of chroma, level shift, orthonormal 8x8 DCT (libjpeg's FDCT), uniform
quantization with the table's steps, dequantization, IDCT, triangle ("fancy") chroma
upsampling, YCbCr -> RGB and clamping — so that gradients of a classifier's loss can
flow to the quantization steps.  Rounding uses the straight-through estimator, so the
forward pass gives (up to libjpeg's fixed-point rounding) the pixels libjpeg decodes,
and ``d output / d step = (round(c / q) - c / q)``.

A differentiable *rate proxy* goes with it (:func:`rate_proxy`): each coefficient that
rounds to a nonzero value costs about 4 bits of Huffman code plus ``log2 |c / q|``
magnitude bits, which tracks libjpeg's file sizes closely.

Example:
    >>> import torch
    >>> from dnnjpeg import QTable
    >>> x = torch.full((1, 3, 16, 16), 128.0)
    >>> y = jpeg_simulate(x, *steps_from_qtable(QTable.standard(50)))
    >>> y.shape, float((y - x).abs().max()) < 1.0
    (torch.Size([1, 3, 16, 16]), True)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnnjpeg import QTable
from dnnjpeg.search.design.dct import block_dct, block_idct, dct_matrix, rgb_to_ycbcr, ycbcr_to_rgb
from dnnjpeg.search.design.rdopt import RATE_NONZERO_BITS

__all__ = [
    "DiffJPEG",
    "block_dct",
    "block_idct",
    "dct_matrix",
    "jpeg_simulate",
    "quantize_ste",
    "rate_proxy",
    "rgb_to_ycbcr",
    "steps_from_qtable",
    "ycbcr_to_rgb",
]


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def quantize_ste(coefficients: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Quantize and dequantize ``q * round(c / q)`` with straight-through rounding.

    Shape:
        ``coefficients (..., 8, 8)``, ``steps (8, 8)`` -> ``(..., 8, 8)``
    """
    return steps * _round_ste(coefficients / steps)


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _chroma_factors(subsampling: str) -> tuple[int, int]:
    return {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2)}[subsampling]


def _encode_planes(rgb: torch.Tensor, subsampling: str) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    fy, fx = _chroma_factors(subsampling)
    ycc = rgb_to_ycbcr(_pad_to(rgb, 8 * max(fy, fx)))
    luma = ycc[:, 0] - 128.0
    chroma = ycc[:, 1:]
    if (fy, fx) != (1, 1):
        chroma = F.avg_pool2d(chroma, kernel_size=(fy, fx))
    chroma = _pad_to(chroma, 8) - 128.0
    return luma, chroma, (fy, fx)


def jpeg_simulate(
    rgb: torch.Tensor, luma_steps: torch.Tensor, chroma_steps: torch.Tensor, subsampling: str = "4:2:0"
) -> torch.Tensor:
    """Compress and decompress ``rgb`` (0..255 floats) as baseline JPEG would; differentiable in the steps.

    Args:
        rgb: images with values in 0..255.
        luma_steps, chroma_steps: quantization steps (positive floats) in natural order.
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.

    Shape:
        ``rgb (N, 3, H, W)``, steps ``(8, 8)`` -> ``(N, 3, H, W)``, values clamped to 0..255 and
        rounded (straight-through).
    """
    n, _, h, w = rgb.shape
    luma, chroma, (fy, fx) = _encode_planes(rgb, subsampling)
    y_rec = block_idct(quantize_ste(block_dct(luma), luma_steps)) + 128.0
    c = chroma.reshape(n * 2, *chroma.shape[-2:])
    c_rec = block_idct(quantize_ste(block_dct(c), chroma_steps)).reshape(n, 2, *chroma.shape[-2:]) + 128.0
    y_rec = _round_ste(y_rec.clamp(0, 255))
    c_rec = _round_ste(c_rec.clamp(0, 255))
    ph, pw = y_rec.shape[-2:]
    if (fy, fx) != (1, 1):
        c_rec = c_rec[..., : ph // fy, : pw // fx]
        c_rec = F.interpolate(c_rec, scale_factor=(fy, fx), mode="bilinear", align_corners=False)
    out = ycbcr_to_rgb(torch.cat([y_rec[:, None], c_rec[..., :ph, :pw]], dim=1))
    return _round_ste(out.clamp(0, 255))[..., :h, :w]


#: The softness of the "is it nonzero" step (the bits of a nonzero coefficient, RATE_NONZERO_BITS, live
#: in dnnjpeg's RD design, which uses the same count); fitted to libjpeg file sizes (research/gradient.md).
RATE_SOFTNESS = 0.1


def _coefficient_bits(coefficients: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    r = coefficients.abs() / steps
    nonzero = torch.sigmoid((r - 0.5) / RATE_SOFTNESS)
    return nonzero * (RATE_NONZERO_BITS + torch.log2(1 + r))


def rate_proxy(
    rgb: torch.Tensor, luma_steps: torch.Tensor, chroma_steps: torch.Tensor, subsampling: str = "4:2:0"
) -> torch.Tensor:
    """Differentiable size proxy per image, in bits.

    Each coefficient ``c`` quantized with step ``q`` costs ``s(|c|/q) * (4 + log2(1 + |c|/q))``
    where ``s`` is a soft "rounds to nonzero" step (a sigmoid centred on 0.5): a nonzero value
    costs its Huffman run/size code (about 4 bits) plus its magnitude bits; a value that
    rounds to zero costs nothing.  Proportional to libjpeg's file size to within about 2%
    across standard and random tables (``research/rate_proxy_fit.py``).

    Shape:
        ``rgb (N, 3, H, W)`` -> ``(N,)``
    """
    n = rgb.shape[0]
    luma, chroma, _ = _encode_planes(rgb, subsampling)
    ly = _coefficient_bits(block_dct(luma), luma_steps).reshape(n, -1).sum(1)
    c = chroma.reshape(n * 2, *chroma.shape[-2:])
    lc = _coefficient_bits(block_dct(c), chroma_steps).reshape(n, -1).sum(1)
    return ly + lc


def steps_from_qtable(table: QTable, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(luma, chroma)`` steps of a QTable as ``(8, 8)`` float tensors."""
    arr = table.as_array().astype(np.float32)
    return torch.tensor(arr[0], dtype=dtype), torch.tensor(arr[1], dtype=dtype)


class DiffJPEG(nn.Module):
    """Module form of :func:`jpeg_simulate` with learnable log-steps.

    Args:
        table: initial QTable (its steps become ``exp(log_luma)``, ``exp(log_chroma)``).
        subsampling: chroma subsampling; default the table's own.
        learnable: whether the log-steps are ``nn.Parameter`` s.

    Shape:
        ``(N, 3, H, W)`` 0..255 -> ``(N, 3, H, W)`` 0..255

    Example:
        >>> import torch
        >>> m = DiffJPEG(QTable.standard(75))
        >>> m(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
        >>> m.to_qtable() == QTable.standard(75)
        True
    """

    def __init__(self, table: QTable, subsampling: str | None = None, learnable: bool = True) -> None:
        super().__init__()
        luma, chroma = steps_from_qtable(table)
        self.subsampling = subsampling or table.subsampling
        _chroma_factors(self.subsampling)  # validates
        log_luma, log_chroma = luma.log(), chroma.log()
        if learnable:
            self.log_luma = nn.Parameter(log_luma)
            self.log_chroma = nn.Parameter(log_chroma)
        else:
            self.register_buffer("log_luma", log_luma)
            self.register_buffer("log_chroma", log_chroma)

    def steps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current steps clamped to the baseline range 1..255."""
        return self.log_luma.exp().clamp(1, 255), self.log_chroma.exp().clamp(1, 255)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return jpeg_simulate(rgb, *self.steps(), subsampling=self.subsampling)

    def rate(self, rgb: torch.Tensor) -> torch.Tensor:
        return rate_proxy(rgb, *self.steps(), subsampling=self.subsampling)

    def to_qtable(self, scale: float = 1.0, **meta: object) -> QTable:
        """Round the current steps (times ``scale``) into a baseline QTable."""
        with torch.no_grad():
            luma, chroma = (s.detach().cpu().numpy() * scale for s in self.steps())
        return QTable(
            np.clip(np.rint(luma), 1, 255).astype(int),
            np.clip(np.rint(chroma), 1, 255).astype(int),
            subsampling=self.subsampling,
            meta=dict(meta),
        )
