"""Gradient search with the real Lite0 weights, on a few crops of a real photo (small and fast)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dnnjpeg import QTable
from research.gradient_tune import GradientTuneConfig, gradient_tune, match_size, mean_jpeg_bytes


@pytest.fixture(scope="module")
def crops(photo) -> np.ndarray:
    arr = np.asarray(photo)
    return np.stack([arr[y : y + 224, x : x + 224] for y in (0, 144, 288) for x in (0, 288)])


@pytest.fixture(scope="module")
def lite0():
    from dnnjpeg.evaluation.models import get

    return get("efficientnet_lite0", device="cpu")


def test_match_size_lands_just_under_the_target(crops):
    base = np.array(QTable.standard(50).luma, dtype=float)
    target = mean_jpeg_bytes(crops, QTable.standard(60))
    _, scale, size = match_size(base, base, crops, target)
    assert size <= target
    assert scale < 1  # finer than q50 to be as large as q60
    bigger = QTable(np.clip(np.rint(base * scale * 0.97), 1, 255).astype(int))
    assert mean_jpeg_bytes(crops, bigger) > size  # finer steps give larger files


@pytest.mark.slow  # real Lite0 weights
def test_gradient_tune_returns_a_size_matched_table(lite0, crops):
    cfg = GradientTuneConfig(steps=3, batch_size=2, seed=1)
    res = gradient_tune(lite0, crops, 40, config=cfg)
    assert isinstance(res.table, QTable) and res.table.is_baseline
    assert res.bytes_mean <= res.target_bytes_mean
    assert res.target_bytes_mean == pytest.approx(mean_jpeg_bytes(crops, QTable.standard(40)))
    assert len(res.history) == 3 and all(h["rate"] > 0 for h in res.history)
    prov = res.table.meta["provenance"]
    assert prov["method"] == "gradient" and prov["quality"] == 40 and prov["config"]["steps"] == 3
    # Same seed, same result.
    again = gradient_tune(lite0, crops, 40, config=cfg)
    assert again.table == res.table


@pytest.mark.slow  # real Lite0 weights
def test_single_table_space_uses_one_table(lite0, crops):
    res = gradient_tune(lite0, crops[:2], 50, config=GradientTuneConfig(steps=1, batch_size=2, separate_chroma=False))
    assert res.table.luma == res.table.chroma


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"steps": 0}, "steps"), ({"lr": 0}, "lr"), ({"subsampling": "4:1:1"}, "subsampling"), ({"loss": "mse"}, "loss")],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientTuneConfig(**kwargs)


@pytest.mark.slow  # real Lite0 weights
def test_bad_inputs(lite0, crops):
    with pytest.raises(ValueError, match="uint8"):
        gradient_tune(lite0, crops.astype(np.float32), 50)
    with pytest.raises(ValueError, match="needs labels"):
        gradient_tune(lite0, crops, 50, config=GradientTuneConfig(loss="ce"))
    with pytest.raises(ValueError, match="quality"):
        gradient_tune(lite0, crops, 0)
