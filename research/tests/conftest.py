"""Fixtures for the research tests (the product's tests have their own in tests/conftest.py)."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (scikit-image's 'astronaut', 512x512 RGB) that ships with the test extras."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return Image.fromarray(skimage_data.astronaut())
