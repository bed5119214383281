"""Shared pytest fixtures: the dev data set and small generated images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEV_DATA_ENV = "DNNJPEG_DEV_DATA"


def dev_data_dir() -> Path:
    """``$DNNJPEG_DEV_DATA`` or ``../shared/data/imagenet-sample-dev`` beside the checkout."""
    env = os.environ.get(DEV_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-dev"


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """The 500-image ImageNet dev folder; skips the test when it is absent."""
    path = dev_data_dir()
    if not (path / "labels.csv").is_file():
        pytest.skip(f"dev data not found at {path} (set {DEV_DATA_ENV} to the imagenet-sample-dev folder)")
    return path


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (scikit-image's 'astronaut', 512x512 RGB) that ships with the test extras."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture()
def noise_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")
