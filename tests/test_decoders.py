"""Outputs are standard baseline JPEGs: Pillow, OpenCV and libjpeg-turbo's djpeg all decode them."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import dnnjpeg

TABLES = [("resnet50", None), ("standard", 30), ("standard", 90)]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, photo):
    folder = tmp_path_factory.mktemp("decoders")
    files = {}
    for name, quality in TABLES:
        for subsampling in ("4:2:0", "4:4:4"):
            path = folder / f"{name}-{quality}-{subsampling.replace(':', '')}.jpg"
            dnnjpeg.save(photo, path, name, quality=quality, subsampling=subsampling)
            files[(name, quality, subsampling)] = path
    return files


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_pillow_decodes(encoded, photo):
    ref = np.asarray(photo)
    for key, path in encoded.items():
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == photo.size
            assert _psnr(np.asarray(im.convert("RGB")), ref) > 24, key


def test_opencv_decodes_same_pixels(encoded):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (test extra) is the independent decoder")
    for key, path in encoded.items():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, f"OpenCV could not decode {path}"
        with Image.open(path) as im:
            pil = np.asarray(im.convert("RGB"))
        # Different libjpeg builds may differ by rounding in IDCT / upsampling only.
        assert _psnr(bgr[:, :, ::-1], pil) > 40, key


def test_djpeg_decodes_same_pixels(encoded, tmp_path):
    djpeg = shutil.which("djpeg")
    if djpeg is None:
        pytest.skip("djpeg not installed (Debian package libjpeg-turbo-progs; .ci/run installs it)")
    for key, path in encoded.items():
        ppm = tmp_path / (path.stem + ".ppm")
        subprocess.run([djpeg, "-outfile", str(ppm), str(path)], check=True, capture_output=True)
        with Image.open(ppm) as dec, Image.open(path) as im:
            assert _psnr(np.asarray(dec), np.asarray(im.convert("RGB"))) > 40, key
        # djpeg's verbose header dump shows the tables it read: the same as ours.
        verbose = subprocess.run([djpeg, "-verbose", "-verbose", "-outfile", "/dev/null", str(path)],
                                 check=True, capture_output=True, text=True).stderr
        assert "Define Quantization Table 0  precision 0" in verbose, key
        assert "Define Quantization Table 1  precision 0" in verbose, key
