"""How much a classifier's prediction cares about each DCT coefficient: Fisher weights.

A table's quantization moves each DCT coefficient ``c`` of each 8x8 block by an error ``e``.  To
second order, the KL divergence of the classifier's prediction on the compressed image from its
prediction on the original is ``1/2 e^T F e``, with ``F`` the Fisher information of the model's
output distribution with respect to the coefficients.  Its diagonal ``F_ii = E_y[(d log p_y / d c_i)^2]``
(``y`` drawn from the model's own prediction) says how much each coefficient of each block matters.

:func:`fisher_statistics` estimates that diagonal without one backward pass per class: for random
signs ``s_y``, the gradient ``g`` of ``sum_y s_y sqrt(p_y) log p_y`` has ``E[g_i^2] = F_ii`` exactly,
so a few backward passes per image suffice (``draws``).  The gradient is taken with respect to the
luma plane and the *downsampled* chroma planes (upsampled back as libjpeg's decoder does), then
moved to the DCT domain with the orthonormal block DCT (the gradient of an orthonormal transform's
input is the transform of the gradient).  The statistics keep, for every block and frequency, the
weight and the coefficient itself, so :mod:`dnnjpeg.search.design.rdopt` can compute the weighted error any step
would cause, exactly.

Measured on EfficientNet-Lite0 and 250 dev crops (docs/search.md, *fisher*): the weighted error
ranks tables like the real KL at qualities 75 and up, and underrates the KL of its own designs at
low qualities (they move error from chroma into luma, whose errors are correlated between blocks),
which is why :class:`dnnjpeg.search.fisher.FisherSearch` searches a correction instead of trusting it.

Example:
    >>> import torch
    >>> from dnnjpeg.evaluation.models import Classifier
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 10))
    >>> clf = Classifier.from_module(net, device="cpu")
    >>> imgs = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> st = fisher_statistics(clf, imgs, ("4:2:0", "4:4:4"))["4:2:0"]
    >>> st.luma_weights.shape, st.chroma_weights.shape, st.n_images
    ((8, 64), (4, 64), 2)
    >>> bool((st.luma_weights >= 0).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import DnnjpegError

__all__ = ["FisherStatistics", "block_coefficients", "fisher_statistics"]

_FACTORS = {"4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2)}


@dataclass(frozen=True)
class FisherStatistics:
    """Per-block Fisher weights and DCT coefficients of a set of images.

    Attributes:
        luma_weights, luma_coefficients: ``(blocks, 64)`` float32, natural order, luma blocks of every
            image in raster order, image after image.
        chroma_weights, chroma_coefficients: the same for the Cb and Cr blocks at ``subsampling``.
        subsampling: the chroma subsampling the chroma blocks were cut at.
        n_images: how many images the statistics come from.
        draws: random-sign backward passes per image.
    """

    luma_weights: np.ndarray
    luma_coefficients: np.ndarray
    chroma_weights: np.ndarray
    chroma_coefficients: np.ndarray
    subsampling: str
    n_images: int
    draws: int


def fisher_statistics(
    classifier: Any,
    images: Any,
    subsamplings: Sequence[str] = ("4:2:0",),
    *,
    draws: int = 2,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, FisherStatistics]:
    """Estimate the Fisher weight of every DCT coefficient of ``images`` for ``classifier``.

    One set of backward passes serves every subsampling: the gradients are taken at the image with
    full-resolution chroma, and each subsampling's chroma gradient is the adjoint of the decoder's
    upsampling (bilinear, as :func:`dnnjpeg.search.design.dct.jpeg_simulate`) applied to it, draw by draw.

    Args:
        classifier: a :class:`dnnjpeg.evaluation.models.Classifier` with mean/std preprocessing (its module is
            differentiated; its parameters are left as they are).
        images: ``(N, H, W, 3)`` uint8 array or a list of ``(H, W, 3)`` arrays; each is cut to a multiple
            of 16 pixels (the blocks a 4:2:0 MCU covers).
        subsamplings: any of ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``.
        draws: random-sign backward passes per image (more: less noise).
        batch_size: images per forward/backward pass.
        seed: seed of the random signs.

    Returns:
        ``{subsampling: FisherStatistics}`` (the luma arrays are shared).

    Raises:
        ValueError: unknown subsampling, no image, an image smaller than 16x16 or not RGB.
    """
    import torch
    import torch.nn.functional as F

    from .dct import block_dct, ycbcr_to_rgb

    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    if isinstance(subsamplings, str) or not subsamplings:
        raise ValueError(f"subsamplings must be a non-empty sequence such as ('4:2:0',), got {subsamplings!r}")
    factors = {}
    for sub in subsamplings:
        arrays, factors[sub] = _check(images, sub)
    module = classifier.module.eval()
    normalize = float_preprocess(classifier)
    device = classifier.device
    gen = torch.Generator().manual_seed(int(seed))
    per_image: dict[int, dict[str, np.ndarray]] = {}
    for idx in _batches(arrays, batch_size):
        luma, chroma = _planes([arrays[i] for i in idx], 1, 1)
        luma = luma.to(device).requires_grad_(True)
        chroma = chroma.to(device).requires_grad_(True)
        logp = F.log_softmax(module(normalize(ycbcr_to_rgb(torch.cat([luma[:, None], chroma], 1)))).float(), dim=1)
        root_p = logp.detach().exp().sqrt()
        acc: dict[str, Any] = {"wy": 0.0, **{sub: 0.0 for sub in factors}}
        for d in range(draws):
            signs = (torch.randint(0, 2, tuple(logp.shape), generator=gen).float() * 2 - 1).to(device)
            gy, gc = torch.autograd.grad((signs * root_p * logp).sum(), [luma, chroma], retain_graph=d < draws - 1)
            acc["wy"] = acc["wy"] + _dct_blocks(block_dct, gy) ** 2 / draws
            for sub, (fy, fx) in factors.items():
                g = _upsampling_adjoint(gc, fy, fx)
                acc[sub] = acc[sub] + _dct_blocks(block_dct, g.flatten(0, 1)).unflatten(0, g.shape[:2]) ** 2 / draws
        xy = _dct_blocks(block_dct, luma.detach() - 128.0)
        rows = {"wy": acc["wy"], "xy": xy}
        for sub, (fy, fx) in factors.items():
            down = F.avg_pool2d(chroma.detach(), kernel_size=(fy, fx))
            rows["xc" + sub] = _dct_blocks(block_dct, down.flatten(0, 1) - 128.0).unflatten(0, down.shape[:2])
            rows["wc" + sub] = acc[sub]
        for k, i in enumerate(idx):
            per_image[i] = {key: t[k].reshape(-1, 64).float().cpu().numpy() for key, t in rows.items()}
    order = range(len(arrays))
    luma_w = np.concatenate([per_image[i]["wy"] for i in order])
    luma_c = np.concatenate([per_image[i]["xy"] for i in order])
    return {
        sub: FisherStatistics(
            luma_weights=luma_w, luma_coefficients=luma_c,
            chroma_weights=np.concatenate([per_image[i]["wc" + sub] for i in order]),
            chroma_coefficients=np.concatenate([per_image[i]["xc" + sub] for i in order]),
            subsampling=sub, n_images=len(arrays), draws=draws,
        )
        for sub in factors
    }


def _upsampling_adjoint(grad: Any, fy: int, fx: int) -> Any:
    """Gradient with respect to the downsampled planes, given the gradient after bilinear upsampling."""
    import torch
    import torch.nn.functional as F

    if (fy, fx) == (1, 1):
        return grad
    n, c, h, w = grad.shape
    z = torch.zeros((n, c, h // fy, w // fx), dtype=grad.dtype, device=grad.device, requires_grad=True)
    up = F.interpolate(z, scale_factor=(fy, fx), mode="bilinear", align_corners=False)
    return torch.autograd.grad(up, z, grad_outputs=grad)[0]


def _dct_blocks(block_dct: Any, planes: Any) -> Any:
    """``(N, H, W)`` planes -> ``(N, H/8 * W/8, 64)`` block DCT coefficients (blocks in raster order)."""
    c = block_dct(planes)
    return c.reshape(c.shape[0], -1, 64)


def block_coefficients(images: Any, subsampling: str = "4:2:0", *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The DCT coefficients libjpeg quantizes: ``(luma, chroma)``, each ``(blocks, 64)`` float32, natural order.

    Blocks are ordered as in :class:`FisherStatistics` (each image cut to a multiple of 16 pixels).

    Example:
        >>> y, c = block_coefficients(np.full((1, 16, 16, 3), 128, np.uint8))
        >>> y.shape, c.shape, float(np.abs(y).max())
        ((4, 64), (2, 64), 0.0)
    """
    from .dct import block_dct

    arrays, (fy, fx) = _check(images, subsampling)
    per_image: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for idx in _batches(arrays, batch_size):
        luma, chroma = _planes([arrays[i] for i in idx], fy, fx)
        xy = _dct_blocks(block_dct, luma - 128.0)
        xc = _dct_blocks(block_dct, chroma.flatten(0, 1) - 128.0).unflatten(0, chroma.shape[:2])
        for k, i in enumerate(idx):
            per_image[i] = (xy[k].reshape(-1, 64).numpy(), xc[k].reshape(-1, 64).numpy())
    return (np.concatenate([per_image[i][0] for i in range(len(arrays))]),
            np.concatenate([per_image[i][1] for i in range(len(arrays))]))


def _check(images: Any, subsampling: str) -> tuple[list[np.ndarray], tuple[int, int]]:
    if subsampling not in _FACTORS:
        raise ValueError(f"subsampling must be one of {', '.join(_FACTORS)}, got {subsampling!r}")
    arrays = [np.asarray(im) for im in images]
    if not arrays:
        raise ValueError("no images")
    for i, a in enumerate(arrays):
        if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 16 or a.shape[1] < 16:
            raise ValueError(f"image {i} must be RGB (H, W, 3) with H, W >= 16, got shape {a.shape}")
    return arrays, _FACTORS[subsampling]


def _batches(arrays: list[np.ndarray], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of equal-size images (crop224 crops are all one size)."""
    order = sorted(range(len(arrays)), key=lambda i: arrays[i].shape[:2])
    batches: list[list[int]] = []
    for i in order:
        if batches and arrays[batches[-1][0]].shape[:2] == arrays[i].shape[:2] and len(batches[-1]) < batch_size:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _planes(batch: list[np.ndarray], fy: int, fx: int) -> tuple[Any, Any]:
    """Luma ``(N, H, W)`` and downsampled chroma ``(N, 2, H/fy, W/fx)`` of equal-size RGB images (0..255 floats)."""
    import torch
    import torch.nn.functional as F

    from .dct import rgb_to_ycbcr

    h, w = (s - s % 16 for s in batch[0].shape[:2])
    x = torch.from_numpy(np.stack([a[:h, :w] for a in batch]).astype(np.float32)).permute(0, 3, 1, 2)
    ycc = rgb_to_ycbcr(x)
    return ycc[:, 0].contiguous(), F.avg_pool2d(ycc[:, 1:], kernel_size=(fy, fx))


def float_preprocess(classifier: Any) -> Callable[[Any], Any]:
    """The classifier's preprocessing as a differentiable map of 0..255 float NCHW tensors.

    Raises:
        DnnjpegError: the classifier has a custom (opaque) preprocess callable.
    """
    import torch

    mean = classifier.config.get("mean")
    std = classifier.config.get("std")
    if mean is None or std is None or "preprocess" in classifier.config:
        raise DnnjpegError(
            f"gradients through the model (gradient and fisher searches) need a differentiable preprocessing (mean/std normalisation); "
            f"model {classifier.name!r} uses a custom preprocess callable"
        )
    m = torch.tensor(mean, dtype=torch.float32, device=classifier.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=classifier.device).view(1, 3, 1, 1)
    return lambda x: (x / 255.0 - m) / s
