"""The real ``cjpeg`` writes the exported tables exactly with the documented command line.

Needs Debian's ``libjpeg-turbo-progs`` (installed by ``.ci/run``); skipped when ``cjpeg`` is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import dnnjpeg
from dnnjpeg._standard import quality_scale_factor, scale_table
from dnnjpeg.cli import main
from dnnjpeg.export import cjpeg_args, default_filename, exported_members, to_cjpeg_text

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "cjpeg"
SAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # PIL.JpegImagePlugin.get_sampling codes
DISTINCT = dnnjpeg.QTable(list(range(1, 65)), [255 - i for i in range(64)], meta={"name": "distinct"})


@pytest.fixture(scope="module")
def cjpeg() -> str:
    exe = shutil.which("cjpeg")
    if exe is None:
        pytest.skip("cjpeg not installed (Debian package libjpeg-turbo-progs; .ci/run installs it)")
    return exe


@pytest.fixture(scope="module")
def ppm(tmp_path_factory) -> Path:
    """A 45x37 colour image (odd size: partial MCUs) with gradients and noise, as PPM."""
    rng = np.random.default_rng(9)
    y, x = np.mgrid[0:37, 0:45]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1) + rng.integers(-30, 30, (37, 45, 3))
    path = tmp_path_factory.mktemp("cjpeg") / "in.ppm"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


def _run(cjpeg: str, args: list[str], cwd: Path) -> Path:
    assert args[0] == "cjpeg"
    subprocess.run([cjpeg, *args[1:]], cwd=cwd, check=True, capture_output=True, text=True)
    return cwd / args[args.index("-outfile") + 1]


def _tables(path: Path) -> tuple[dict[int, list[int]], int, str]:
    with Image.open(path) as im:
        return {k: list(v) for k, v in im.quantization.items()}, JpegImagePlugin.get_sampling(im), im.mode


@pytest.mark.parametrize("member", exported_members(), ids=lambda m: f"{m[0]}-q{m[1]}")
def test_shipped_file_is_written_exactly(cjpeg, ppm, tmp_path, member):
    qt = dnnjpeg.load(member[0], member[1])
    table_file = PLUGIN / "tables" / default_filename(qt, "cjpeg", member[0])
    assert table_file.is_file(), f"{table_file} missing; run `dnnjpeg export --all --out plugins`"
    out = _run(cjpeg, cjpeg_args(qt, str(table_file), str(ppm), "out.jpg"), tmp_path)
    quant, sampling, mode = _tables(out)
    assert quant == {0: list(qt.luma), 1: list(qt.chroma)}
    assert sampling == SAMPLING[qt.subsampling]
    assert mode == "RGB"


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_subsampling_and_distinct_tables(cjpeg, ppm, tmp_path, subsampling):
    qt = DISTINCT.replace(subsampling=subsampling)
    (tmp_path / "t.txt").write_text(to_cjpeg_text(qt))
    out = _run(cjpeg, cjpeg_args(qt, "t.txt", str(ppm), "out.jpg"), tmp_path)
    quant, sampling, _ = _tables(out)
    assert quant == {0: list(qt.luma), 1: list(qt.chroma)}
    assert sampling == SAMPLING[subsampling]


def test_cli_exported_file_works(cjpeg, ppm, tmp_path):
    assert main(["export", "standard", "--quality", "20", "--format", "cjpeg", "-o", str(tmp_path / "s.txt")]) == 0
    qt = dnnjpeg.load("standard", 20)
    out = _run(cjpeg, cjpeg_args(qt, "s.txt", str(ppm), "out.jpg"), tmp_path)
    assert _tables(out)[0] == {0: list(qt.luma), 1: list(qt.chroma)}


def _without(args: list[str], option: str) -> list[str]:
    i = args.index(option)
    return args[:i] + args[i + 2 :]


def test_no_quality_is_also_unscaled(cjpeg, ppm, tmp_path):
    """libjpeg-turbo's cjpeg (jpeg62 API) uses scale 100% without -quality; the docs still say pass 50."""
    (tmp_path / "t.txt").write_text(to_cjpeg_text(DISTINCT))
    args = _without(cjpeg_args(DISTINCT, "t.txt", str(ppm), "out.jpg"), "-quality")
    quant, _, _ = _tables(_run(cjpeg, args, tmp_path))
    assert quant == {0: list(DISTINCT.luma), 1: list(DISTINCT.chroma)}


@pytest.mark.parametrize("quality", [75, 90, 30])
def test_other_qualities_scale_the_tables(cjpeg, ppm, tmp_path, quality):
    """The documented rule: any quality but 50 rescales -qtables by libjpeg's scale factor."""
    (tmp_path / "t.txt").write_text(to_cjpeg_text(DISTINCT))
    args = cjpeg_args(DISTINCT, "t.txt", str(ppm), "out.jpg")
    args[args.index("-quality") + 1] = str(quality)
    quant, _, _ = _tables(_run(cjpeg, args, tmp_path))
    f = quality_scale_factor(quality)
    expected = {0: scale_table(DISTINCT.luma, f, False), 1: scale_table(DISTINCT.chroma, f, False)}
    assert quant == expected
    assert quant != {0: list(DISTINCT.luma), 1: list(DISTINCT.chroma)}


def test_greyscale_input_uses_table_0(cjpeg, tmp_path):
    pgm = tmp_path / "in.pgm"
    Image.fromarray((np.arange(40 * 24).reshape(24, 40) % 251).astype(np.uint8), "L").save(pgm)
    (tmp_path / "t.txt").write_text(to_cjpeg_text(DISTINCT))
    quant, _, mode = _tables(_run(cjpeg, cjpeg_args(DISTINCT, "t.txt", str(pgm), "out.jpg"), tmp_path))
    assert mode == "L"
    assert quant == {0: list(DISTINCT.luma)}


def test_readme_documents_the_tested_command():
    readme = (PLUGIN / "README.md").read_text()
    qt = dnnjpeg.load("resnet50")
    assert " ".join(cjpeg_args(qt, "plugins/cjpeg/tables/resnet50-q50.txt")) in readme
    for subsampling, sample in (("4:2:0", "2x2,1x1,1x1"), ("4:2:2", "2x1,1x1,1x1"), ("4:4:4", "1x1,1x1,1x1")):
        assert f"| {subsampling}" in readme and f"`{sample}`" in readme
        assert sample in " ".join(cjpeg_args(qt.replace(subsampling=subsampling), "t.txt"))
