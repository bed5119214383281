"""torchvision transforms (``transforms.v2``) that JPEG-compress with dnnjpeg tables.

Needs the ``torch`` extra (torch and torchvision); the core ``dnnjpeg`` package does not
import this module.

Example:
    >>> import torch
    >>> from dnnjpeg.transforms import DNNJPEG, functional
    >>> x = torch.zeros(3, 8, 8, dtype=torch.uint8)
    >>> torch.equal(DNNJPEG("resnet50")(x), functional.dnnjpeg(x, "resnet50"))
    True
"""

from __future__ import annotations

from . import functional
from .transform import DNNJPEG

__all__ = ["DNNJPEG", "functional"]
