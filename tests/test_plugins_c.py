"""plugins/c: the documented libjpeg example, built with each exported header, writes the tables exactly.

Needs ``gcc`` and libjpeg's development files (Debian ``libjpeg-dev``); skipped when either is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import dnnjpeg
from dnnjpeg.export import c_identifier, default_filename, exported_members, to_c_header

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "c"
SAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"]


@pytest.fixture(scope="module")
def gcc() -> str:
    exe = shutil.which("gcc")
    if exe is None:
        pytest.skip("gcc not installed")
    return exe


@pytest.fixture(scope="module")
def ppm(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("c") / "in.ppm"
    Image.fromarray(rng.integers(0, 256, (29, 51, 3), dtype=np.uint8), "RGB").save(path)
    return path


def _build(gcc: str, out: Path, include: Path, defines: list[str]) -> Path:
    exe = out / "example_encode"
    cmd = [gcc, *FLAGS, "-I", str(include), *defines, str(PLUGIN / "example_encode.c"), "-o", str(exe), "-ljpeg"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0 and "jpeglib.h" in done.stderr and "No such file" in done.stderr:
        pytest.skip("libjpeg development files not installed (Debian package libjpeg-dev)")
    assert done.returncode == 0, done.stderr
    return exe


def _check(exe: Path, ppm: Path, out: Path, qt: dnnjpeg.QTable) -> None:
    jpg = out / "out.jpg"
    subprocess.run([str(exe), str(ppm), str(jpg)], check=True, capture_output=True, text=True)
    with Image.open(jpg) as im:
        assert {k: list(v) for k, v in im.quantization.items()} == {0: list(qt.luma), 1: list(qt.chroma)}
        assert JpegImagePlugin.get_sampling(im) == SAMPLING[qt.subsampling]


def test_example_as_documented(gcc, ppm, tmp_path):
    """Built exactly as plugins/c/README.md says: the default table is resnet50 q50."""
    _check(_build(gcc, tmp_path, PLUGIN, []), ppm, tmp_path, dnnjpeg.load("resnet50"))


@pytest.mark.parametrize("member", exported_members(), ids=lambda m: f"{m[0]}-q{m[1]}")
def test_example_with_each_shipped_header(gcc, ppm, tmp_path, member):
    qt = dnnjpeg.load(member[0], member[1])
    header = f"tables/{default_filename(qt, 'c', member[0])}"
    assert (PLUGIN / header).is_file(), f"{header} missing; run `dnnjpeg export --all --out plugins`"
    ident = c_identifier(qt, member[0])
    defines = [
        f'-DDNNJPEG_HEADER="{header}"',
        f"-DDNNJPEG_LUMA={ident}_luma",
        f"-DDNNJPEG_CHROMA={ident}_chroma",
        f"-DDNNJPEG_H_SAMP={ident.upper()}_Y_H_SAMP_FACTOR",
        f"-DDNNJPEG_V_SAMP={ident.upper()}_Y_V_SAMP_FACTOR",
    ]
    _check(_build(gcc, tmp_path, PLUGIN, defines), ppm, tmp_path, qt)


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2"])
def test_example_with_distinct_tables_and_subsampling(gcc, ppm, tmp_path, subsampling):
    qt = dnnjpeg.QTable(list(range(1, 65)), [255 - i for i in range(64)], subsampling, meta={"name": "d", "quality": 1})
    (tmp_path / "d.h").write_text(to_c_header(qt))
    defines = [
        '-DDNNJPEG_HEADER="d.h"',
        "-DDNNJPEG_LUMA=dnnjpeg_d_q1_luma",
        "-DDNNJPEG_CHROMA=dnnjpeg_d_q1_chroma",
        "-DDNNJPEG_H_SAMP=DNNJPEG_D_Q1_Y_H_SAMP_FACTOR",
        "-DDNNJPEG_V_SAMP=DNNJPEG_D_Q1_Y_V_SAMP_FACTOR",
    ]
    _check(_build(gcc, tmp_path, tmp_path, defines), ppm, tmp_path, qt)
