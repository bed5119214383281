"""Gradient search: tune a table by back-propagating a classifier's loss through simulated JPEG.

The seed's methods treat the 128 steps as a black box and score each candidate by top-1 on a
few hundred images, which measurement-notes.md shows is mostly noise.  This method instead
minimises a smooth, per-image signal — the KL divergence between the classifier's prediction
on the compressed and on the uncompressed image — subject to a size budget, with gradients
through :mod:`research.diffjpeg`:

    minimise  mean KL(p(x) || p(jpeg_T(x)))   subject to   rate_proxy(T) <= rate_proxy(standard q)

as a Lagrangian ``KL + lam * rate / rate_target`` with Adam on the log-steps and a
multiplicative dual update of ``lam``.  The result is rounded and scaled (with real libjpeg
encodes) so its mean file size on the tuning images matches standard JPEG at quality ``q``.

Example::

    from dnnjpeg.evaluation.models import get
    from dnnjpeg.evaluation.data import load_dataset
    from research.gradient_tune import gradient_tune

    crops = load_dataset("photos/").crops()
    table = gradient_tune(get("efficientnet_lite0"), crops, quality=50, steps=200)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnnjpeg.evaluation.runtime import tune_allocator
from dnnjpeg.qtable import SUBSAMPLINGS, QTable
from dnnjpeg.search.design.fisher_weights import float_preprocess

__all__ = ["GradientTuneConfig", "GradientTuneResult", "float_preprocess", "gradient_tune", "match_size", "mean_jpeg_bytes"]


@dataclass(frozen=True)
class GradientTuneConfig:
    """Settings of :func:`gradient_tune` (all recorded in the table's provenance).

    Attributes:
        steps: optimiser steps (each on one mini-batch).
        batch_size: images per step.
        lr: Adam learning rate on the log-steps.
        dual_lr: rate of the multiplicative update of the Lagrange multiplier.
        lam: initial Lagrange multiplier.
        separate_chroma: tune luma and chroma tables separately (else one table for all).
        subsampling: chroma subsampling of the result.
        loss: ``"kl"`` (vs the uncompressed prediction, label-free) or ``"ce"`` (on labels).
        flip: also train on horizontally flipped crops (more views per image).
        seed: mini-batch order and flips.
    """

    steps: int = 200
    batch_size: int = 32
    lr: float = 0.03
    dual_lr: float = 2.0
    lam: float = 0.05
    separate_chroma: bool = True
    subsampling: str = "4:2:0"
    loss: str = "kl"
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps ({self.steps}) and batch_size ({self.batch_size}) must be >= 1")
        if not self.lr > 0 or not self.dual_lr >= 0 or not self.lam >= 0:
            raise ValueError(f"lr ({self.lr}) must be > 0; dual_lr ({self.dual_lr}) and lam ({self.lam}) >= 0")
        if self.subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling {self.subsampling!r} is not one of {', '.join(SUBSAMPLINGS)}")
        if self.loss not in ("kl", "ce"):
            raise ValueError(f"loss {self.loss!r} must be 'kl' or 'ce'")


@dataclass
class GradientTuneResult:
    """The tuned table and the optimisation trace."""

    table: QTable
    scale: float
    bytes_mean: float
    target_bytes_mean: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def mean_jpeg_bytes(crops: np.ndarray, table: QTable, workers: int | None = None) -> float:
    """Mean size in bytes of ``crops`` (N, H, W, 3 uint8) encoded by libjpeg (Pillow) with ``table``.

    Encodes through :class:`dnnjpeg.evaluation.codec.Codec` in ``workers`` threads (default: all usable cores).
    """
    from dnnjpeg.evaluation.codec import Codec

    with Codec(workers) as codec:
        sizes = [len(b) for b in codec.encode_batch(list(crops), table)]
    return sum(sizes) / len(sizes)


def _scaled(luma: np.ndarray, chroma: np.ndarray, scale: float, subsampling: str, meta: dict[str, Any]) -> QTable:
    return QTable(
        np.clip(np.rint(luma * scale), 1, 255).astype(int),
        np.clip(np.rint(chroma * scale), 1, 255).astype(int),
        subsampling=subsampling,
        meta=meta,
    )


def match_size(
    luma: np.ndarray,
    chroma: np.ndarray,
    crops: np.ndarray,
    target_bytes: float,
    subsampling: str = "4:2:0",
    meta: dict[str, Any] | None = None,
    iterations: int = 18,
) -> tuple[QTable, float, float]:
    """Scale float steps so the rounded table's mean libjpeg size is the largest not above ``target_bytes``.

    Returns ``(table, scale, bytes_mean)``.  Bisection on ``log(scale)``: size falls as steps grow.
    """
    meta = dict(meta or {})
    lo, hi = math.log(1 / 16), math.log(16)
    best: tuple[QTable, float, float] | None = None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        table = _scaled(luma, chroma, math.exp(mid), subsampling, meta)
        size = mean_jpeg_bytes(crops, table)
        if size <= target_bytes:
            best = (table, math.exp(mid), size)
            hi = mid
        else:
            lo = mid
    if best is None:
        table = _scaled(luma, chroma, math.exp(hi), subsampling, meta)
        best = (table, math.exp(hi), mean_jpeg_bytes(crops, table))
    return best




def gradient_tune(
    classifier: Any,
    crops: np.ndarray,
    quality: int,
    *,
    labels: np.ndarray | None = None,
    config: GradientTuneConfig | None = None,
    init: QTable | None = None,
    progress: bool = False,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> GradientTuneResult:
    """Tune a table for ``classifier`` on ``crops``, size-matched to standard JPEG at ``quality``.

    Args:
        classifier: a :class:`dnnjpeg.evaluation.models.Classifier` with mean/std preprocessing.
        crops: tuning images, ``(N, H, W, 3)`` uint8 with H, W multiples of 16 (crop224 crops).
        quality: the standard JPEG quality whose mean size (on ``crops``) the result matches.
        labels: class indices, needed for ``loss="ce"``.
        config: optimisation settings.
        init: starting table (default: standard tables at ``quality``).
        progress: show a tqdm bar.
        callback: called with each step's statistics.

    Returns:
        A :class:`GradientTuneResult`; its ``table.meta["provenance"]`` records the settings.
    """
    import torch
    import torch.nn.functional as F

    from .diffjpeg import DiffJPEG, jpeg_simulate, rate_proxy, steps_from_qtable

    cfg = config or GradientTuneConfig()
    crops = np.ascontiguousarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"crops must be (N, H, W, 3) uint8, got {crops.shape} {crops.dtype}")
    if cfg.loss == "ce" and labels is None:
        raise ValueError("loss='ce' needs labels")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality {quality!r} must be in 1..100")
    t0 = time.perf_counter()
    device = classifier.device
    if torch.device(device).type == "cpu":
        tune_allocator()  # see dnnjpeg.evaluation.runtime: activations stay in the heap between steps
    module = classifier.module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    normalize = float_preprocess(classifier)
    standard = QTable.standard(int(quality), subsampling=cfg.subsampling)
    start = init.replace(subsampling=cfg.subsampling) if init is not None else standard
    sim = DiffJPEG(start, subsampling=cfg.subsampling).to(device)
    params = [sim.log_luma, sim.log_chroma] if cfg.separate_chroma else [sim.log_luma]
    optimiser = torch.optim.Adam(params, lr=cfg.lr)

    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    n = len(images)
    # Reference predictions and the rate budget on the uncompressed tuning images.
    with torch.no_grad():
        ref_logp = []
        target_rate = []
        for i in range(0, n, 64):
            xb = images[i : i + 64].to(device)
            ref_logp.append(F.log_softmax(module(normalize(xb)).float(), dim=1).cpu())
            if cfg.flip:
                ref_logp.append(F.log_softmax(module(normalize(xb.flip(-1))).float(), dim=1).cpu())
            target_rate.append(rate_proxy(xb, *(s.to(device) for s in steps_from_qtable(standard)), cfg.subsampling))
        rate_target = float(torch.cat(target_rate).mean())
    if cfg.flip:  # interleaved [b0, b0_flip, b1, b1_flip, ...] per chunk: rebuild as (n, 2, C)
        chunks = [torch.stack([ref_logp[k], ref_logp[k + 1]], dim=1) for k in range(0, len(ref_logp), 2)]
        ref = torch.cat(chunks)
    else:
        ref = torch.cat(ref_logp)[:, None]
    label_t = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)

    gen = torch.Generator().manual_seed(cfg.seed)
    lam = cfg.lam
    history: list[dict[str, float]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"gradient q{quality}", unit="step")
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
        flips = torch.randint(0, 2, (len(idx),), generator=gen) if cfg.flip else torch.zeros(len(idx), dtype=torch.long)
        xb = images[idx]
        xb = torch.where(flips.view(-1, 1, 1, 1).bool(), xb.flip(-1), xb).to(device)
        luma_steps, chroma_steps = sim.steps()
        if not cfg.separate_chroma:
            chroma_steps = luma_steps
        decoded = jpeg_simulate(xb, luma_steps, chroma_steps, cfg.subsampling)
        logp = F.log_softmax(module(normalize(decoded)).float(), dim=1)
        if cfg.loss == "kl":
            ref_b = ref[idx, flips].to(device)
            distortion = (ref_b.exp() * (ref_b - logp)).sum(1).mean()
        else:
            distortion = F.nll_loss(logp, label_t[idx].to(device))
        rate = rate_proxy(xb, luma_steps, chroma_steps, cfg.subsampling).mean() / rate_target
        loss = distortion + lam * rate
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            sim.log_luma.clamp_(0.0, math.log(255))
            sim.log_chroma.clamp_(0.0, math.log(255))
        lam = lam * math.exp(cfg.dual_lr * (float(rate.detach()) - 1.0))
        record = {"step": step, "distortion": float(distortion.detach()), "rate": float(rate.detach()), "lam": lam}
        history.append(record)
        if callback is not None:
            callback(record)
        if bar is not None:
            bar.set_postfix(dist=f"{record['distortion']:.4f}", rate=f"{record['rate']:.3f}", lam=f"{lam:.3g}")
            bar.update(1)
    if bar is not None:
        bar.close()

    luma, chroma = (s.detach().cpu().numpy().astype(np.float64) for s in sim.steps())
    if not cfg.separate_chroma:
        chroma = luma
    target_bytes = mean_jpeg_bytes(crops, standard)
    provenance = {
        "method": "gradient",
        "objective": f"KL vs uncompressed at the size of standard q{quality}" if cfg.loss == "kl"
        else f"cross-entropy at the size of standard q{quality}",
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "quality": int(quality),
        "model": classifier.name,
        "images": int(n),
    }
    table, scale, size = match_size(luma, chroma, crops, target_bytes, cfg.subsampling, {"provenance": provenance})
    return GradientTuneResult(
        table=table,
        scale=scale,
        bytes_mean=size,
        target_bytes_mean=target_bytes,
        history=history,
        seconds=time.perf_counter() - t0,
    )
