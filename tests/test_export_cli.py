"""``dnnjpeg export``: single tables to stdout or a file, and ``--all`` / ``--check``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dnnjpeg
from dnnjpeg.cli import main
from dnnjpeg.export import export_text, render_all, to_c_header, to_cjpeg_text, to_imagemagick_xml


@pytest.mark.parametrize("fmt", ["cjpeg", "imagemagick", "json", "c"])
def test_export_to_stdout(capsys, fmt):
    assert main(["export", "resnet50", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert out == export_text(dnnjpeg.load("resnet50"), fmt, "resnet50")


def test_export_member_quality(capsys):
    assert main(["export", "standard", "--quality", "30", "--format", "cjpeg"]) == 0
    assert capsys.readouterr().out == to_cjpeg_text(dnnjpeg.load("standard", 30), "standard")


def test_export_to_file_and_overwrite_rules(tmp_path: Path, capsys):
    dst = tmp_path / "rn.xml"
    assert main(["export", "resnet50", "--format", "imagemagick", "-o", str(dst)]) == 0
    qt = dnnjpeg.load("resnet50")
    assert dst.read_text() == to_imagemagick_xml(qt, "resnet50", "rn.xml")
    assert "-define jpeg:q-table=rn.xml" in dst.read_text()  # the comment names the real file
    assert str(dst) in capsys.readouterr().out

    assert main(["export", "standard", "--format", "imagemagick", "-o", str(dst)]) == 2
    err = capsys.readouterr().err
    assert str(dst) in err and "--force" in err
    assert dst.read_text() == to_imagemagick_xml(qt, "resnet50", "rn.xml")  # untouched

    assert main(["export", "standard", "--format", "c", "-o", str(dst), "--force"]) == 0
    assert dst.read_text() == to_c_header(dnnjpeg.load("standard"), "standard")
    assert [p.name for p in tmp_path.iterdir()] == ["rn.xml"]  # no temp file left behind


def test_export_from_json_path(tmp_path: Path, capsys):
    src = tmp_path / "mine.json"
    dnnjpeg.QTable(list(range(1, 65)), [9] * 64, subsampling="4:4:4").to_json(src)
    assert main(["export", str(src), "--format", "cjpeg"]) == 0
    out = capsys.readouterr().out
    assert "mine, subsampling 4:4:4" in out
    assert "-sample 1x1,1x1,1x1" in out


def test_export_errors(tmp_path: Path, capsys):
    assert main(["export", "no-such-table", "--format", "c"]) == 2
    assert "no-such-table" in capsys.readouterr().err

    assert main(["export", "resnet50", "--quality", "77", "--format", "c"]) == 2
    assert "77" in capsys.readouterr().err

    assert main(["export", "resnet50", "--format", "png"]) == 2
    assert "png" in capsys.readouterr().err

    assert main(["export", "resnet50"]) == 2
    assert "--format" in capsys.readouterr().err

    assert main(["export", "--format", "c"]) == 2
    assert "NAME" in capsys.readouterr().err

    missing = tmp_path / "no" / "such" / "dir" / "t.h"
    assert main(["export", "resnet50", "--format", "c", "-o", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err

    assert main(["export", "resnet50", "--format", "c", "-o", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err

    assert main(["export", "resnet50", "--all"]) == 2
    assert "--all" in capsys.readouterr().err
    assert main(["export", "resnet50", "--format", "c", "--check"]) == 2
    assert "--check" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_export_unwritable_folder(tmp_path: Path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["export", "resnet50", "--format", "c", "-o", str(ro / "t.h")]) == 2
        assert str(ro / "t.h") in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_all_and_check(tmp_path: Path, capsys):
    out = tmp_path / "plugins"
    assert main(["export", "--all", "--out", str(out), "--check"]) == 1
    assert "missing" in capsys.readouterr().err

    assert main(["export", "--all", "--out", str(out)]) == 0
    capsys.readouterr()
    expected = render_all()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(expected)
    assert main(["export", "--all", "--out", str(out), "--check"]) == 0
    assert "current" in capsys.readouterr().out

    # a hand edit is caught and named, and --all repairs it
    edited = out / "cjpeg" / "tables" / "resnet50-q50.txt"
    edited.write_text(edited.read_text().replace(" 17 ", " 18 ", 1))
    assert main(["export", "--all", "--out", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert str(edited) in err and f"dnnjpeg export --all --out {out}" in err
    assert main(["export", "--all", "--out", str(out)]) == 0
    assert edited.read_text() == expected["cjpeg/tables/resnet50-q50.txt"]

    # a generated file for a table that is gone is reported, then removed; other files are left alone
    orphan = out / "c" / "tables" / "gone-q1.h"
    orphan.write_text(expected["c/tables/resnet50-q50.h"])
    mine = out / "c" / "tables" / "handwritten.h"
    mine.write_text("/* mine */\n")
    capsys.readouterr()
    assert main(["export", "--all", "--out", str(out), "--check"]) == 1
    assert str(orphan) in capsys.readouterr().err
    assert main(["export", "--all", "--out", str(out)]) == 0
    assert not orphan.exists() and mine.exists()
