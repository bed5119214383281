"""DNNJPEG inside a DataLoader with spawned workers, and on CUDA tensors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.datasets import FakeData
from torchvision.transforms import v2

import dnnjpeg
from dnnjpeg import QTable
from dnnjpeg.transforms import DNNJPEG
from dnnjpeg.transforms.functional import dnnjpeg as F_dnnjpeg

N_IMAGES = 16
LOW_Q = QTable.standard(10)


def _dataset(transform=None) -> FakeData:
    # FakeData seeds each image by its index (and restores the RNG), so images are fixed
    # and the transform's draws come from the worker's own torch stream.
    return FakeData(size=N_IMAGES, image_size=(3, 24, 32), num_classes=5, transform=transform)


def _load_all(seed: int, transform) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    loader = DataLoader(
        _dataset(v2.Compose([transform, v2.PILToTensor()])),
        batch_size=4,
        num_workers=2,
        multiprocessing_context="spawn",
    )
    images, labels = zip(*loader)
    return torch.cat(images), torch.cat(labels)


@pytest.mark.slow
def test_dataloader_spawn_workers_correct_and_reproducible():
    transform = DNNJPEG(["resnet50", LOW_Q])
    plain = _dataset()
    candidates = []
    for i in range(N_IMAGES):
        pil, _ = plain[i]
        tables = (dnnjpeg.load("resnet50"), LOW_Q)
        candidates.append([torch.from_numpy(np.array(F_dnnjpeg(pil, qt))).permute(2, 0, 1) for qt in tables])

    a, labels = _load_all(0, transform)
    assert a.shape == (N_IMAGES, 3, 24, 32) and labels.shape == (N_IMAGES,)
    picks = []
    for i in range(N_IMAGES):
        matches = [torch.equal(a[i], c) for c in candidates[i]]
        assert any(matches), f"image {i} is neither table's Pillow round trip"
        picks.append(matches.index(True))
    assert set(picks) == {0, 1}, "both tables should be drawn over 16 images"

    b, _ = _load_all(0, transform)
    assert torch.equal(a, b), "same torch.manual_seed must give the same augmented data"
    c, _ = _load_all(1, transform)
    assert not torch.equal(a, c), "another seed should draw other tables"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transform_on_cuda_batch_keeps_device():
    x = torch.randint(0, 256, (4, 3, 24, 32), dtype=torch.uint8)
    t = DNNJPEG("standard", quality=(30, 60))
    for inp in (x, tv_tensors.Image(x[0]), x.float() / 255):
        torch.manual_seed(0)
        out = t(inp.to("cuda"))
        assert out.device == inp.to("cuda").device and out.dtype == inp.dtype and type(out) is type(inp)
        torch.manual_seed(0)
        assert torch.equal(out.cpu(), t(inp))
