"""A torch-free evaluator that scores pixel fidelity (PSNR) instead of a classifier.

:class:`PSNREvaluator` has the interface :func:`dnnjpeg.search.tune` uses from
:class:`dnnjpeg.evaluation.evaluate.Evaluator` (``evaluate``, ``evaluate_standard``, ``sizes``, ``subset``,
``images``, ``n``) and returns real :class:`dnnjpeg.evaluation.evaluate.Result` objects, computed with real
libjpeg round trips (Pillow).  It makes the search engine usable without a model: to tune tables
for PSNR, in examples and doctests, and in fast tests.  Per image:

``correct``
    PSNR >= ``threshold_db`` (so ``top1`` is the share of images above it; ``correct5`` uses
    ``threshold_db - 3``; ``agree`` equals ``correct``);
``ce``, ``kl``
    ``ln(1 + MSE)`` over RGB and over luma (continuous distortions, lower is better);
``bytes``, ``pixels``, ``bmp_bytes``
    as the real evaluator.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..evaluation.codec import as_qtable, encode, roundtrip
from ..evaluation.data import bmp_size
from ..evaluation.evaluate import Result
from ..qtable import QTable
from .base import SearchError

__all__ = ["PSNREvaluator", "synthetic_photos"]


def synthetic_photos(n: int = 4, size: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` deterministic photo-like RGB images ``(n, size, size, 3)`` uint8: smooth colour fields,
    a few sharp-edged shapes and mild noise.

    Example:
        >>> synthetic_photos(2, 32).shape
        (2, 32, 32, 3)
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        img = np.zeros((size, size, 3))
        for c in range(3):
            fx, fy = rng.uniform(0.3, 3.0, 2)
            img[..., c] = 128 + 80 * np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 6.3))
        for _ in range(3):
            x0, y0 = rng.integers(0, size - 4, 2)
            w, h = rng.integers(4, max(5, size // 2), 2)
            img[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 4, img.shape)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


class PSNREvaluator:
    """Evaluate tables by pixel fidelity on a set of RGB images (see the module docstring).

    Args:
        images: ``(N, H, W, 3)`` uint8 array or a list of ``(H, W, 3)`` arrays.
        name: data name used in results and provenance.
        threshold_db: PSNR counted as "correct".

    Example:
        >>> ev = PSNREvaluator(synthetic_photos(3, 48))
        >>> r = ev.evaluate_standard(50)
        >>> r.n, bool(0 < r.bytes_mean < r.bmp_bytes.mean()), r.ce_mean > 0
        (3, True, True)
    """

    model_name = "psnr"
    #: what computes the scores (numpy on the CPU); recorded with every trial like a model's device
    device = "cpu"

    def __init__(self, images: Any, name: str = "images", threshold_db: float = 30.0) -> None:
        imgs = [np.ascontiguousarray(np.asarray(im, dtype=np.uint8)) for im in images]
        if not imgs:
            raise SearchError("PSNREvaluator needs at least one image")
        for i, im in enumerate(imgs):
            if im.ndim != 3 or im.shape[2] != 3:
                raise SearchError(f"image {i}: expected (H, W, 3) RGB, got shape {im.shape}")
        self._images = imgs
        self.data_name = str(name)
        self.protocol = "pixels"
        self.threshold_db = float(threshold_db)

    @property
    def n(self) -> int:
        return len(self._images)

    @property
    def images(self) -> list[np.ndarray]:
        return self._images

    def fingerprint(self) -> str:
        """SHA-256 prefix over the images' shapes and pixels."""
        h = hashlib.sha256(f"psnr|{self.threshold_db}".encode())
        for im in self._images:
            h.update(str(im.shape).encode())
            h.update(im.tobytes())
        return h.hexdigest()[:32]

    def _idx(self, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if indices is None:
            return np.arange(self.n, dtype=np.int64)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.n:
            raise SearchError(f"indices must be a non-empty selection of 0..{self.n - 1}")
        return idx

    def evaluate(self, table: Any = None, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """A :class:`dnnjpeg.evaluation.evaluate.Result` for ``table`` (``None``: uncompressed)."""

        t0 = time.perf_counter()
        qt = as_qtable(table)
        idx = self._idx(indices)
        mse, mse_y, nbytes, pixels, bmp = [], [], [], [], []
        for i in idx:
            img = self._images[int(i)]
            h, w = img.shape[:2]
            pixels.append(h * w)
            bmp.append(bmp_size(h, w))
            if qt is None:
                mse.append(0.0)
                mse_y.append(0.0)
                nbytes.append(bmp[-1])
                continue
            dec, size = roundtrip(img, qt)
            diff = dec.astype(np.float64) - img.astype(np.float64)
            mse.append(float(np.mean(diff**2)))
            mse_y.append(float(np.mean((diff @ np.array([0.299, 0.587, 0.114])) ** 2)))
            nbytes.append(size)
        m = np.array(mse)
        with np.errstate(divide="ignore"):
            psnr = np.where(m > 0, 10 * np.log10(255.0**2 / np.maximum(m, 1e-12)), 99.0)
        correct = psnr >= self.threshold_db
        return Result(
            model=self.model_name,
            data=self.data_name,
            protocol=self.protocol,
            table=None if qt is None else qt.to_dict(),
            quality=qt.meta.get("quality") if isinstance(qt, QTable) and qt.meta.get("name") == "standard" else None,
            labelled=False,
            indices=idx.copy(),
            correct=correct,
            correct5=psnr >= self.threshold_db - 3.0,
            agree=correct.copy(),
            ce=np.log1p(m),
            kl=np.log1p(np.array(mse_y)),
            bytes=np.array(nbytes, dtype=np.int64),
            pixels=np.array(pixels, dtype=np.int64),
            bmp_bytes=np.array(bmp, dtype=np.int64),
            seconds=time.perf_counter() - t0,
        )

    def evaluate_standard(self, quality: int, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        return self.evaluate(QTable.standard(int(quality)), indices=indices)

    def sizes(self, table: Any, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """JPEG bytes per image."""

        qt = as_qtable(table)
        return np.array([len(encode(self._images[int(i)], qt)) for i in self._idx(indices)], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> PSNREvaluator:
        idx = self._idx(indices)
        return PSNREvaluator([self._images[int(i)] for i in idx], f"{self.data_name}[subset]", self.threshold_db)

    def __repr__(self) -> str:
        return f"<PSNREvaluator {self.data_name!r} n={self.n} threshold={self.threshold_db:g} dB>"
