"""Errors that say what to do in the interface in use, and the small output fixes of issue #28.

Table problems name the table (not the input image); a table with steps above 255 is advised
``--allow-16bit`` on the command line and ``allow_16bit=True`` in Python; recompress tells a
file it cannot decode from one it cannot write; sizes and family listings read well.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.advice import Fix
from dnnjpeg.batch.runner import human_size
from dnnjpeg.cli import main
from dnnjpeg.families import load_family, tables
from dnnjpeg.qtable import QTableError


def _table_file(path: Path, **changes: object) -> Path:
    """``dnnjpeg tables show standard --quality 40 --json``, edited (luma[i] = v for ``luma_i=v``)."""
    d = dnnjpeg.QTable.standard(40).to_dict()
    for key, value in changes.items():
        if key.startswith("luma_"):
            d["luma"][int(key[5:])] = value
        else:
            d[key] = value
    path.write_text(json.dumps(d))
    return path


@pytest.fixture()
def files(tmp_path: Path, noise_image: Image.Image) -> dict[str, Path]:
    noise_image.save(tmp_path / "astro.png")
    src = tmp_path / "src"
    src.mkdir()
    noise_image.save(src / "a.png")
    return {
        "image": tmp_path / "astro.png",
        "src": src,
        "big": _table_file(tmp_path / "big.json", luma_0=300),  # 300 without the file's allow_16bit
        "big16": _table_file(tmp_path / "big16.json", luma_0=300, allow_16bit=True),
        "zero": _table_file(tmp_path / "zero.json", luma_5=0),
    }


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


# -- 16-bit tables: each interface names its own option ------------------------------------------
def test_python_api_names_the_keyword_and_accepts_it(files: dict[str, Path]) -> None:
    with pytest.raises(QTableError) as info:
        dnnjpeg.load(files["big"])
    assert str(info.value) == (
        f"{files['big']}: luma table[0] (row 0, column 0) = 300 exceeds 255, the largest baseline JPEG step; "
        "pass allow_16bit=True for 16-bit tables (many decoders reject them)"
    )
    assert info.value.fix.option == "allow_16bit"
    with pytest.warns(dnnjpeg.SixteenBitTableWarning):
        assert dnnjpeg.load(files["big"], allow_16bit=True).luma[0] == 300
    with pytest.warns(dnnjpeg.SixteenBitTableWarning), pytest.raises(QTableError) as info:
        dnnjpeg.encode(Image.new("RGB", (8, 8)), files["big16"])
    assert str(info.value) == (f"table {str(files['big16'])!r} has steps above 255 (16-bit, non-baseline JPEG); "
                               "pass allow_16bit=True to write it (many decoders reject it)")


def test_an_error_with_a_fix_pickles_and_prefixes() -> None:
    err = QTableError("luma table[0] = 300 exceeds 255", fix=Fix("allow_16bit", "allow_16bit=True", "to try"))
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == "luma table[0] = 300 exceeds 255; pass allow_16bit=True to try" and back.fix == err.fix
    assert str(err.prefixed("t.json")) == "t.json: luma table[0] = 300 exceeds 255; pass allow_16bit=True to try"
    assert err.message("--allow-16bit") == "luma table[0] = 300 exceeds 255; pass --allow-16bit to try"
    assert str(dnnjpeg.DnnjpegError("plain")) == "plain"


def test_compress_advises_its_own_flag_and_takes_it(files: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.jpg"
    assert main(["compress", str(files["image"]), str(out), "--table", str(files["big"])]) == 2
    err = _err(capsys)
    assert err == (
        f"dnnjpeg compress: error: {files['big']}: luma table[0] (row 0, column 0) = 300 exceeds 255, the largest "
        "baseline JPEG step; pass --allow-16bit for 16-bit tables (many decoders reject them)\n"
    )
    assert main(["compress", str(files["image"]), str(out), "--table", str(files["big16"])]) == 2
    assert _err(capsys) == (
        f"dnnjpeg compress: error: table {str(files['big16'])!r} has steps above 255 (16-bit, non-baseline JPEG); "
        "pass --allow-16bit to write it (many decoders reject it)\n"
    )
    for table in ("big", "big16"):
        assert main(["compress", str(files["image"]), str(out), "--table", str(files[table]), "--allow-16bit",
                     "--force"]) == 0
        with Image.open(out) as im:
            assert im.quantization[0][0] == 300
    assert "SixteenBitTableWarning" not in _err(capsys)  # the flag is the user's informed choice
    assert main(["compress", str(files["image"]), str(out), "--table", str(files["big"]), "--allow-16bit",
                 "--force", "--writer", "trellis"]) == 2
    assert "trellis quantization writes baseline tables only" in _err(capsys)


def test_recompress_export_and_tables_show_take_the_flag(files: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    big = str(files["big"])
    runs = {
        "recompress": ["recompress", str(files["src"]), str(tmp_path / "dst"), "--table", big, "--workers", "0"],
        "export": ["export", big, "--format", "cjpeg"],
        "tables": ["tables", "show", big],
    }
    for command, argv in runs.items():
        assert main(argv) == 2, command
        assert _err(capsys).endswith("; pass --allow-16bit for 16-bit tables (many decoders reject them)\n"), command
        assert main([*argv, "--allow-16bit"]) == 0, command
        assert "300" in capsys.readouterr().out or command == "recompress"
    with Image.open(tmp_path / "dst" / "a.png") as im:
        assert im.format == "JPEG" and im.quantization[0][0] == 300


def test_evaluate_has_no_such_flag_so_gives_no_such_advice(files: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model", "efficientnet_lite0", "--data", str(tmp_path)]  # the table fails before either is used
    assert main(["evaluate", *common, "--table", str(files["big"])]) == 2
    assert _err(capsys) == (f"dnnjpeg evaluate: error: {files['big']}: luma table[0] (row 0, column 0) = 300 "
                            "exceeds 255, the largest baseline JPEG step\n")
    for command in ("evaluate", "validate"):
        assert main([command, *common, "--table", str(files["big16"])]) == 2
        assert _err(capsys) == (f"dnnjpeg {command}: error: table {str(files['big16'])!r} has steps above 255 "
                                "(16-bit JPEG); the evaluator writes baseline JPEG only\n")


# -- table problems name the table, not the input image ------------------------------------------
@pytest.mark.parametrize("command", ["compress", "recompress", "evaluate", "validate", "export"])
def test_table_errors_name_the_table_not_the_image(command: str, files: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def argv(table: str) -> list[str]:
        return {
            "compress": ["compress", str(files["image"]), str(tmp_path / "o.jpg"), "--table", table],
            "recompress": ["recompress", str(files["src"]), str(tmp_path / "dst"), "--table", table],
            "evaluate": ["evaluate", "--model", "efficientnet_lite0", "--data", str(files["src"]), "--table", table],
            "validate": ["validate", "--model", "efficientnet_lite0", "--data", str(files["src"]), "--table", table],
            "export": ["export", table, "--format", "json"],
        }[command]

    assert main(argv("vit_b16")) == 2
    assert _err(capsys).startswith(f"dnnjpeg {command}: error: unknown table 'vit_b16'; available: ")
    assert main(argv(str(files["zero"]))) == 2
    assert _err(capsys) == (f"dnnjpeg {command}: error: {files['zero']}: luma table[5] (row 0, column 5) = 0 "
                            "is below 1 (a quantization step must be >= 1)\n")
    assert not (tmp_path / "o.jpg").exists() and not (tmp_path / "dst").exists()


# -- recompress: a file it cannot decode is not a write failure ---------------------------------
def test_recompress_reports_an_undecodable_header_as_a_read_failure(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (8, 8), "red").save(src / "bad.bmp")
    data = bytearray((src / "bad.bmp").read_bytes())
    data[28:30] = struct.pack("<H", 30000)  # bits per pixel
    (src / "bad.bmp").write_bytes(bytes(data))
    assert main(["recompress", str(src), str(tmp_path / "dst"), "--table", "standard", "--workers", "0"]) == 1
    out = capsys.readouterr().out
    assert "  bad.bmp: cannot decode input: Unsupported BMP pixel depth (30000)\n" in out
    assert "cannot write output" not in out


# -- point 5: small things -----------------------------------------------------------------------
def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 23_456, 999_949, 999_950, 1_500_000, 2_000_000_000)] == [
        "0 B", "999 B", "1.0 kB", "23.5 kB", "999.9 kB", "1.0 MB", "1.5 MB", "2.0 GB"]


def test_recompress_summary_shows_small_sizes_in_kb(tmp_path: Path, photo: Image.Image,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    photo.resize((128, 128)).save(src / "a.png")
    assert main(["recompress", str(src), str(tmp_path / "dst"), "--table", "resnet50", "--workers", "0"]) == 0
    images = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("images: "))
    before, after = (human_size(p.stat().st_size) for p in (src / "a.png", tmp_path / "dst" / "a.png"))
    assert images.startswith(f"images: {before} -> {after} (ratio ") and "kB" in images and "0.0 MB" not in images


def test_tables_lists_each_family_once_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["family", "members", "default", "description"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(tables())
    for name, line in rows.items():
        family = load_family(name)
        assert line.split()[2] == f"q{family.default_quality}"
        assert line.split(maxsplit=3)[3] == family.description
        assert not family.description.lower().startswith(name), line  # the name is printed once, not twice


def test_tables_show_states_the_default_member(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tables", "show", "standard"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "standard (quality 75)",
        "family standard: members q1..q100; default member q75 (this one; --quality Q shows another)",
    ]
    assert main(["tables", "show", "efficientnet_lite0", "--quality", "30"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "family efficientnet_lite0: members q30, q40, q50, q60, q75, q90; default member q50")


@pytest.mark.parametrize("command", ["compress", "recompress"])
def test_help_says_baseline_unless_progressive(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "progressive JPEG (default: baseline)" in text
    assert "baseline unless --progressive" in text and "still baseline" not in text
    assert "--allow-16bit" in text
