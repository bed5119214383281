"""``deepn``: DeepN-JPEG (Liu et al., DAC 2018), a table derived from the data's DCT statistics.

DeepN-JPEG gives small steps to the frequencies whose DCT coefficients vary most across the data
set.  For each of the 64 frequencies it computes the standard deviation ``d`` of the coefficient
over all 8x8 blocks of the images (JPEG's YCbCr, level-shifted, orthonormal DCT, i.e. the values
libjpeg quantizes), then maps it with the piecewise linear function of the authors' reference
code::

    Q(d) = a - k1 d   if d <= T1
           b - k2 d   if T1 < d <= T2
           c - k3 d   if d > T2
    Q = max(Q, Qmin)                 a=255 b=80 c=240 T1=20 T2=60 k1=9.75 k2=1 k3=3 Qmin=5

The luma table comes from the Y blocks; a separate chroma table from the Cb and Cr blocks at the
table's subsampling.  As a search method it proposes that table scaled by a factor ``s`` (all
steps multiplied, rounded, clipped to 1..255): first ``s = 1``, then a coarse-to-fine 1-D search
on ``log s`` around the best scale so far.  It is a baseline: the table's shape is fixed by the
statistics, only its overall strength is tuned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ..qtable import QTable
from .base import SearchError, SearchMethod, Value, register_method

__all__ = ["PLM_PARAMS", "DeepNSearch", "dct_std", "deepn_steps"]

#: Piecewise-linear-mapping parameters of the authors' reference implementation.
PLM_PARAMS: Mapping[str, float] = {
    "a": 255.0, "b": 80.0, "c": 240.0, "T1": 20.0, "T2": 60.0, "k1": 9.75, "k2": 1.0, "k3": 3.0, "Qmin": 5.0,
}


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16.0) * np.sqrt(2.0 / 8.0)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix()


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = (plane.shape[0] // 8) * 8, (plane.shape[1] // 8) * 8
    p = plane[:h, :w].astype(np.float64) - 128.0
    return p.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)


def _subsample(plane: np.ndarray, subsampling: str) -> np.ndarray:
    p = plane.astype(np.float64)
    if subsampling == "4:4:4":
        return p
    h = p.shape[0] - p.shape[0] % 2
    w = p.shape[1] - p.shape[1] % 2
    p = p[:h, :w]
    if subsampling == "4:2:2":
        return 0.5 * (p[:, 0::2] + p[:, 1::2])
    return 0.25 * (p[0::2, 0::2] + p[0::2, 1::2] + p[1::2, 0::2] + p[1::2, 1::2])


def dct_std(images: Any, subsampling: str = "4:2:0") -> tuple[np.ndarray, np.ndarray]:
    """Per-frequency standard deviation of the DCT coefficients: ``(luma, chroma)``, each 64 values
    in natural order (chroma pools Cb and Cr, downsampled as ``subsampling`` does).

    Args:
        images: ``(N, H, W, 3)`` uint8 array or a list of ``(H, W, 3)`` arrays (RGB).
        subsampling: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.

    Example:
        >>> flat = np.full((1, 16, 16, 3), 128, np.uint8)
        >>> y, c = dct_std(flat)
        >>> float(y.max()), float(c.max())
        (0.0, 0.0)
    """
    ys, cs = [], []
    for img in images:
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise SearchError(f"DeepN-JPEG needs RGB images (H, W, 3), got shape {arr.shape}")
        ycc = np.asarray(Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8), "RGB").convert("YCbCr"))
        ys.append(_blocks(ycc[..., 0]))
        for ch in (1, 2):
            cs.append(_blocks(_subsample(ycc[..., ch], subsampling) + 0.0))
    if not ys:
        raise SearchError("DeepN-JPEG needs at least one image")
    out = []
    for blocks in (np.concatenate(ys), np.concatenate(cs)):
        if len(blocks) == 0:
            raise SearchError("DeepN-JPEG needs images of at least 16x16 pixels (no complete 8x8 block)")
        coef = np.einsum("ij,njk,lk->nil", _DCT, blocks, _DCT)
        ddof = 1 if len(coef) > 1 else 0
        out.append(coef.reshape(len(coef), 64).std(axis=0, ddof=ddof))
    return out[0], out[1]


def deepn_steps(std: np.ndarray, params: Mapping[str, float] = PLM_PARAMS) -> np.ndarray:
    """DeepN-JPEG's piecewise linear mapping from standard deviations to steps (floats, >= Qmin).

    Example:
        >>> deepn_steps(np.array([0.0, 20.0, 40.0, 100.0])).tolist()
        [255.0, 60.0, 40.0, 5.0]
    """
    p = dict(PLM_PARAMS, **params)
    d = np.asarray(std, dtype=np.float64)
    q = np.where(d <= p["T1"], p["a"] - p["k1"] * d, np.where(d <= p["T2"], p["b"] - p["k2"] * d, p["c"] - p["k3"] * d))
    return np.maximum(q, p["Qmin"])


@register_method("deepn")
class DeepNSearch(SearchMethod):
    """DeepN-JPEG's statistics-derived table, with its overall scale tuned by a 1-D search.

    Options:
        params: overrides of :data:`PLM_PARAMS`.
        max_images: images used for the statistics (default 200, the first ones).
        scale_range: ``(low, high)`` bounds of the scale factor (default ``(0.125, 8.0)``).

    Example:
        >>> from dnnjpeg.search import SearchContext
        >>> imgs = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> m = DeepNSearch("single", context=SearchContext(images=imgs))
        >>> m.scale_for(0), m.scale_for(1), m.scale_for(2)
        (1.0, 0.5, 2.0)
    """

    needs_images = True
    stochastic = False
    defaults: ClassVar[dict[str, Any]] = {"params": {}, "max_images": 200, "scale_range": (0.125, 8.0)}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        unknown = set(o["params"]) - set(PLM_PARAMS)
        if unknown:
            raise SearchError(f"option params has unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(PLM_PARAMS)}")
        lo, hi = (float(x) for x in o["scale_range"])
        if not 0 < lo <= 1.0 <= hi:
            raise SearchError(f"option scale_range must satisfy 0 < low <= 1 <= high, got {o['scale_range']!r}")
        images = self.context.images
        n = min(len(images), int(o["max_images"]))
        self.base: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for sub in self.space.subsampling:
            y, c = dct_std(images[:n], sub)
            luma = deepn_steps(y, o["params"])
            chroma = deepn_steps(c, o["params"]) if self.space.tables == "separate" else luma
            self.base[sub] = (luma, chroma)
        self.proposed: dict[QTable, float] = {}
        self.results: list[tuple[float, float]] = []

    def table_at(self, scale: float, subsampling: str) -> QTable:
        """The DeepN-JPEG table for ``subsampling`` with every step multiplied by ``scale``."""
        luma, chroma = self.base[subsampling]
        y = np.clip(np.rint(luma * scale), 1, 255).astype(int)
        if self.space.tables == "single":
            return self.space.table(y, subsampling)
        c = np.clip(np.rint(chroma * scale), 1, 255).astype(int)
        return self.space.table(np.concatenate([y, c]), subsampling)

    def scale_for(self, n: int) -> float:
        """Scale of proposal ``n``: 1, 1/2, 2, then halving log-steps around the best scale so far."""
        lo, hi = (math.log2(float(x)) for x in self.options["scale_range"])
        if n == 0:
            return 1.0
        if n <= 2:
            return float(2.0 ** float(np.clip(-1.0 if n == 1 else 1.0, lo, hi)))
        best = self._best_log_scale()
        r, side = divmod(n - 3, 2)
        step = 0.5 / 2 ** (r % 6)  # coarse to fine, then again around the (new) best
        x = best + (-step if side == 0 else step)
        return float(2.0 ** float(np.clip(x, lo, hi)))

    def _best_log_scale(self) -> float:
        best_x, best_v = 0.0, -math.inf
        for x, v in self.results:
            if v > best_v:
                best_x, best_v = x, v
        return best_x

    def _ask(self) -> QTable:
        n = self.n_asked
        k = len(self.space.subsampling)
        sub = self.space.subsampling[n % k] if k > 1 else self.space.subsampling[0]
        if k > 1:  # every subsampling at each scale step, then the best one's refinement
            n //= k
        scale = self.scale_for(n)
        table = self.table_at(scale, sub)
        self.proposed[table] = math.log2(scale)
        return table

    def _rebind(self, asked: QTable, table: QTable) -> None:
        if asked in self.proposed:
            self.proposed[table] = self.proposed.pop(asked)

    def _tell(self, table: QTable, value: Value) -> None:
        x = self.proposed.get(table)
        if x is not None and value is not None:
            self.results.append((x, float(value)))  # type: ignore[arg-type]
