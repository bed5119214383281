"""The differentiable JPEG simulation agrees with real libjpeg and carries gradients."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from dnnjpeg import QTable, load
from research.diffjpeg import DiffJPEG, block_dct, block_idct, jpeg_simulate, rate_proxy, steps_from_qtable


@pytest.fixture(scope="module")
def crops(photo) -> np.ndarray:
    """Four 224x224 crops of a real photo (plus a flat and a gradient image for edge cases)."""
    arr = np.asarray(photo)
    tiles = [arr[y : y + 224, x : x + 224] for y in (0, 288) for x in (0, 288)]
    return np.stack(tiles)


def _libjpeg(arr: np.ndarray, table: QTable) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **table.save_options())
    size = buf.tell()
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float64), size


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)))


@pytest.mark.parametrize(
    "table",
    [QTable.standard(10), QTable.standard(50), QTable.standard(90), load("resnet50"),
     QTable.standard(50, "4:4:4"), QTable.standard(50, "4:2:2")],
    ids=["q10", "q50", "q90", "resnet50", "q50-444", "q50-422"],
)
def test_simulation_matches_libjpeg_pixels(crops, table):
    x = torch.tensor(crops).permute(0, 3, 1, 2).float()
    sim = jpeg_simulate(x, *steps_from_qtable(table), subsampling=table.subsampling).permute(0, 2, 3, 1).numpy()
    for i, arr in enumerate(crops):
        real, _ = _libjpeg(arr, table)
        error_vs_real = _psnr(sim[i], real)
        compression_error = _psnr(real, arr.astype(np.float64))
        # The simulation is far closer to libjpeg's output than libjpeg's output is to the input.
        assert error_vs_real > 36, (i, error_vs_real)
        assert error_vs_real > compression_error + 6, (i, error_vs_real, compression_error)


def test_odd_sizes_are_padded_and_cropped_back():
    x = torch.rand(2, 3, 37, 53) * 255
    y = jpeg_simulate(x, *steps_from_qtable(QTable.standard(80)))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 255


def test_dct_round_trip_is_exact():
    plane = torch.rand(3, 16, 24, dtype=torch.float64) * 255 - 128
    np.testing.assert_allclose(block_idct(block_dct(plane)).numpy(), plane.numpy(), atol=1e-9)
    flat = torch.full((1, 8, 8), 10.0, dtype=torch.float64)
    assert float(block_dct(flat)[0, 0, 0, 0, 0]) == pytest.approx(80.0)  # JPEG DC = 8 x mean


def test_rate_proxy_tracks_real_file_size(crops):
    x = torch.tensor(crops).permute(0, 3, 1, 2).float()
    proxies, sizes = [], []
    for q in (10, 30, 50, 75, 90):
        table = QTable.standard(q)
        proxies.extend(rate_proxy(x, *steps_from_qtable(table)).tolist())
        sizes.extend(_libjpeg(arr, table)[1] for arr in crops)
    assert np.corrcoef(proxies, sizes)[0, 1] > 0.95


def test_gradients_reach_every_step(crops):
    module = DiffJPEG(QTable.standard(50))
    x = torch.tensor(crops[:2]).permute(0, 3, 1, 2).float()
    (module(x) - x).pow(2).mean().backward()
    assert module.log_luma.grad is not None and module.log_chroma.grad is not None
    assert float(module.log_luma.grad.abs().sum()) > 0 and float(module.log_chroma.grad.abs().sum()) > 0
    # Coarser steps -> more distortion: the gradient of the error w.r.t. the DC step is positive.
    assert float(module.log_luma.grad[0, 0]) > 0


def test_module_round_trips_its_table():
    table = load("resnet50")
    assert DiffJPEG(table).to_qtable() == table
    assert DiffJPEG(table, learnable=False).to_qtable(scale=2.0).luma[0] == 34
    with pytest.raises(KeyError):
        DiffJPEG(table, subsampling="4:1:1")
