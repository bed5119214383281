"""Small, fast stand-ins for tests: synthetic image folders and a tiny classifier.

Tests of code built on the evaluator (search, validation, transforms) can run in seconds with::

    from dnnjpeg.testing import make_image_folder, tiny_classifier
    root = make_image_folder(tmp_path / "data", n=12)
    ev = Evaluator(tiny_classifier(), root, device="cpu")

Nothing here downloads anything.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .evaluation.data import imagenet_wnids
from .evaluation.models import Classifier

__all__ = ["TinyNet", "make_image_folder", "synthetic_image", "tiny_classifier", "without_dates"]


def without_dates(obj: Any) -> Any:
    """A JSON object without its ``created`` dates: what a rerun of ``dnnjpeg family`` or ``tune`` on
    finished journals changes in the file it writes.

    Example:
        >>> without_dates({"provenance": {"created": "2026-11-27", "seed": 0}, "members": [{"created": 1}]})
        {'provenance': {'seed': 0}, 'members': [{}]}
    """
    if isinstance(obj, dict):
        return {k: without_dates(v) for k, v in obj.items() if k != "created"}
    if isinstance(obj, list):
        return [without_dates(v) for v in obj]
    return obj


def synthetic_image(seed: int, size: tuple[int, int] = (300, 260), mode: str = "RGB") -> Image.Image:
    """A deterministic, natural-ish test image (smooth colour fields, edges and a little noise).

    ``size`` is ``(width, height)``.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), dtype=np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 6.0, 2) / max(w, h)
        phase = rng.uniform(0, 2 * np.pi)
        img[..., c] = 128 + 90 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
    for _ in range(4):  # a few rectangles: sharp edges
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        x1, y1 = x0 + int(rng.integers(8, max(9, w // 3))), y0 + int(rng.integers(8, max(9, h // 3)))
        img[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    arr = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    return im if mode == "RGB" else im.convert(mode)


def make_image_folder(
    root: str | Path,
    n: int = 8,
    *,
    layout: str = "labels.csv",
    classes: list[int] | None = None,
    size: tuple[int, int] = (300, 260),
    fmt: str = "PNG",
    seed: int = 0,
) -> Path:
    """Write ``n`` synthetic images into ``root`` and return it.

    Layouts: ``"labels.csv"`` (``file,class_index``), ``"wnid"`` (ImageFolder of ImageNet wnids),
    ``"int"`` (ImageFolder of integer class folders), ``"unlabelled"``.
    Labels cycle through ``classes`` (default ``0, 2, 4, ...``).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    classes = list(classes) if classes is not None else [2 * i for i in range(n)]
    ext = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp"}.get(fmt.upper(), fmt.lower())
    rows = []
    wnids: list[str] = []
    if layout == "wnid":
        wnids = imagenet_wnids()
    for i in range(n):
        label = classes[i % len(classes)]
        w = size[0] + 7 * (i % 3)  # a few different sizes and aspect ratios
        h = size[1] + 5 * (i % 2)
        im = synthetic_image(seed * 100003 + i, (w, h) if i % 4 != 3 else (h, w))
        if layout == "labels.csv" or layout == "unlabelled":
            folder = root
        elif layout == "wnid":
            folder = root / wnids[label]
        elif layout == "int":
            folder = root / str(label)
        else:
            raise ValueError(f"unknown layout {layout!r}")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"img{i:03d}.{ext}"
        im.save(folder / name, fmt)
        rows.append((name, label))
    if layout == "labels.csv":
        with open(root / "labels.csv", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["file", "class_index"])
            wr.writerows(rows)
    return root


class TinyNet(nn.Module):
    """conv(3->16, 5x5, stride 2) -> ReLU -> conv(16->32, stride 2) -> ReLU -> 4x4 pool -> linear."""

    def __init__(self, num_classes: int = 1000, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.fc = nn.Linear(32 * 16, num_classes)
        self.num_classes = num_classes
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(1, p[0].numel()) ** 0.5))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)) * 4.0


def tiny_classifier(num_classes: int = 1000, seed: int = 0, device: Any = "cpu", **kwargs: Any) -> Any:
    """A deterministic random :class:`~dnnjpeg.evaluation.models.Classifier` (a few ms per batch on CPU).

    Its predictions are arbitrary but depend smoothly on the pixels, so JPEG artefacts change
    them: good for testing evaluation and search mechanics, useless for accuracy claims.
    """

    return Classifier.from_module(TinyNet(num_classes, seed), name=f"tiny{seed}", device=device, **kwargs)
