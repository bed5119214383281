"""Fixtures for the research tests (the product's tests have their own in tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

# ``research`` is not installed: reach it from the checkout, after site-packages, so that ``dnnjpeg`` stays the
# installed copy when CI installs it (tests/test_packaging.py checks that).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (scikit-image's 'astronaut', 512x512 RGB) that ships with the test extras."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return Image.fromarray(skimage_data.astronaut())
