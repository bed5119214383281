"""The real ImageMagick writes the exported tables exactly with the documented command line.

Needs Debian's ``imagemagick`` (installed by ``.ci/run``); skipped when neither ``magick`` nor
``convert`` is ImageMagick.
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
from dnnjpeg.export import default_filename, exported_members, imagemagick_args, to_imagemagick_xml

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "imagemagick"
SAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}  # PIL.JpegImagePlugin.get_sampling codes
DISTINCT = dnnjpeg.QTable(list(range(1, 65)), [255 - i for i in range(64)], meta={"name": "distinct"})


def _imagemagick() -> tuple[str, str] | None:
    """(path, program name) of ImageMagick 7's ``magick`` or ImageMagick 6's ``convert``."""
    for program in ("magick", "convert"):
        exe = shutil.which(program)
        if exe is None:
            continue
        done = subprocess.run([exe, "-version"], check=False, capture_output=True, text=True)
        if done.returncode == 0 and "ImageMagick" in done.stdout:
            return exe, program
    return None


@pytest.fixture(scope="module")
def magick() -> tuple[str, str]:
    found = _imagemagick()
    if found is None:
        pytest.skip("ImageMagick not installed (Debian package imagemagick; .ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    """A 45x37 colour image (odd size: partial MCUs) with gradients and noise, as PNG."""
    rng = np.random.default_rng(9)
    y, x = np.mgrid[0:37, 0:45]
    rgb = np.stack([x * 5, y * 6, (x + y) * 3], axis=-1) + rng.integers(-30, 30, (37, 45, 3))
    path = tmp_path_factory.mktemp("imagemagick") / "in.png"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


def _run(magick: tuple[str, str], args: list[str], cwd: Path, check: bool = True) -> Path:
    exe, program = magick
    assert args[0] == program
    subprocess.run([exe, *args[1:]], cwd=cwd, check=check, capture_output=True, text=True)
    return cwd / args[-1]


def _args(magick, qt, table_file, infile) -> list[str]:
    return imagemagick_args(qt, table_file, str(infile), "out.jpg", program=magick[1])


def _tables(path: Path) -> tuple[dict[int, list[int]], int, str]:
    with Image.open(path) as im:
        return {k: list(v) for k, v in im.quantization.items()}, JpegImagePlugin.get_sampling(im), im.mode


def _exact(qt) -> dict[int, list[int]]:
    return {0: list(qt.luma), 1: list(qt.chroma)}


def _scaled(qt, quality: int) -> dict[int, list[int]]:
    f = quality_scale_factor(quality)  # ImageMagick calls jpeg_add_quant_table(..., force_baseline=0)
    return {0: scale_table(qt.luma, f, False), 1: scale_table(qt.chroma, f, False)}


@pytest.mark.parametrize("member", exported_members(), ids=lambda m: f"{m[0]}-q{m[1]}")
def test_shipped_file_is_written_exactly(magick, png, tmp_path, member):
    qt = dnnjpeg.load(member[0], member[1])
    table_file = PLUGIN / "tables" / default_filename(qt, "imagemagick", member[0])
    assert table_file.is_file(), f"{table_file} missing; run `dnnjpeg export --all --out plugins`"
    quant, sampling, mode = _tables(_run(magick, _args(magick, qt, str(table_file), png), tmp_path))
    assert quant == _exact(qt)
    assert sampling == SAMPLING[qt.subsampling]
    assert mode == "RGB"


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_subsampling_and_distinct_tables(magick, png, tmp_path, subsampling):
    qt = DISTINCT.replace(subsampling=subsampling)
    (tmp_path / "t.xml").write_text(to_imagemagick_xml(qt))
    quant, sampling, _ = _tables(_run(magick, _args(magick, qt, "t.xml", png), tmp_path))
    assert quant == _exact(qt)
    assert sampling == SAMPLING[subsampling]


def test_cli_exported_file_works(magick, png, tmp_path):
    assert (
        main(["export", "standard", "--quality", "20", "--format", "imagemagick", "-o", str(tmp_path / "s.xml")]) == 0
    )
    qt = dnnjpeg.load("standard", 20)
    assert _tables(_run(magick, _args(magick, qt, "s.xml", png), tmp_path))[0] == _exact(qt)


@pytest.mark.parametrize("quality", [75, 90, 30])
def test_other_qualities_scale_the_tables(magick, png, tmp_path, quality):
    (tmp_path / "t.xml").write_text(to_imagemagick_xml(DISTINCT))
    args = _args(magick, DISTINCT, "t.xml", png)
    args[args.index("-quality") + 1] = str(quality)
    quant, _, _ = _tables(_run(magick, args, tmp_path))
    assert quant == _scaled(DISTINCT, quality)
    assert quant != _exact(DISTINCT)


def test_missing_quality_scales_by_92_for_png_input(magick, png, tmp_path):
    (tmp_path / "t.xml").write_text(to_imagemagick_xml(DISTINCT))
    args = _args(magick, DISTINCT, "t.xml", png)
    i = args.index("-quality")
    quant, _, _ = _tables(_run(magick, args[:i] + args[i + 2 :], tmp_path))
    assert quant == _scaled(DISTINCT, 92)


def test_missing_quality_uses_the_jpeg_inputs_quality(magick, png, tmp_path):
    """For a JPEG input, ImageMagick reuses the quality it estimates: not 50, so the table is scaled."""
    src = tmp_path / "src.jpg"
    Image.open(png).save(src, quality=80)
    (tmp_path / "t.xml").write_text(to_imagemagick_xml(DISTINCT))
    args = _args(magick, DISTINCT, "t.xml", src)
    i = args.index("-quality")
    quant, _, _ = _tables(_run(magick, args[:i] + args[i + 2 :], tmp_path))
    assert quant == _scaled(DISTINCT, 80)
    # with -quality 50 the same JPEG input gets the exact tables
    assert _tables(_run(magick, args, tmp_path))[0] == _exact(DISTINCT)


def test_grey_colour_image_keeps_both_tables_with_truecolor(magick, tmp_path):
    grey = np.repeat((np.arange(40 * 24).reshape(24, 40, 1) % 251).astype(np.uint8), 3, axis=2)
    Image.fromarray(grey, "RGB").save(tmp_path / "grey.png")
    (tmp_path / "t.xml").write_text(to_imagemagick_xml(DISTINCT))
    args = _args(magick, DISTINCT, "t.xml", "grey.png")
    quant, sampling, mode = _tables(_run(magick, args, tmp_path))
    assert (mode, quant, sampling) == ("RGB", _exact(DISTINCT), SAMPLING["4:2:0"])
    i = args.index("-type")
    quant, _, mode = _tables(_run(magick, args[:i] + args[i + 2 :], tmp_path))
    assert (mode, quant) == ("L", {0: list(DISTINCT.luma)})  # the documented caveat


def test_missing_table_file_fails_loudly(magick, png, tmp_path):
    args = _args(magick, DISTINCT, "no-such-table.xml", png)
    exe, _ = magick
    done = subprocess.run([exe, *args[1:]], check=False, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert "no-such-table.xml" in done.stderr


def test_readme_documents_the_tested_command():
    readme = (PLUGIN / "README.md").read_text()
    qt = dnnjpeg.load("resnet50")
    assert " ".join(imagemagick_args(qt, "plugins/imagemagick/tables/resnet50-q50.xml")) in readme
    assert "-quality 50" in readme and "magick" in readme
