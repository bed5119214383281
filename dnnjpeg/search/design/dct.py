"""The 8x8 block DCT and JPEG's colour transform as torch operations (libjpeg's conventions).

Used by the Fisher weights (:mod:`dnnjpeg.search.design.fisher_weights`) to see a classifier's gradient in
the DCT domain.  The differentiable JPEG simulation built on them is research (``research/diffjpeg.py``).

Example:
    >>> import torch
    >>> x = torch.rand(1, 16, 16) * 255 - 128
    >>> bool(torch.allclose(block_idct(block_dct(x)), x, atol=1e-3))
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["block_dct", "block_idct", "dct_matrix", "rgb_to_ycbcr", "ycbcr_to_rgb"]


def dct_matrix(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The orthonormal 8x8 DCT-II matrix ``D`` (JPEG's FDCT is ``D @ block @ D.T``).

    Shape:
        ``(8, 8)``
    """
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * 0.5
    d[0, :] = 1 / math.sqrt(8)
    return torch.tensor(d, dtype=dtype, device=device)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """JPEG (JFIF) RGB -> YCbCr on 0..255 values.

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``
    """
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return torch.stack([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """JPEG (JFIF) YCbCr -> RGB on 0..255 values (no clamping).

    Shape:
        ``(N, 3, H, W)`` -> ``(N, 3, H, W)``
    """
    y, cb, cr = ycc[:, 0], ycc[:, 1] - 128.0, ycc[:, 2] - 128.0
    r = y + 1.402 * cr
    g = y - 0.344136286 * cb - 0.714136286 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], dim=1)


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
    n, bh, bw, _, _ = blocks.shape
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, bh * 8, bw * 8)


def block_dct(plane: torch.Tensor) -> torch.Tensor:
    """8x8 block DCT of level-shifted planes whose sides are multiples of 8.

    Shape:
        ``(N, H, W)`` -> ``(N, H/8, W/8, 8, 8)``
    """
    d = dct_matrix(plane.dtype, plane.device)
    return d @ _blocks(plane) @ d.T


def block_idct(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct`.

    Shape:
        ``(N, H/8, W/8, 8, 8)`` -> ``(N, H, W)``
    """
    d = dct_matrix(coefficients.dtype, coefficients.device)
    return _unblocks(d.T @ coefficients @ d)
