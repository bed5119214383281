"""``dnnjpeg tables`` and ``dnnjpeg compress``, called as ``main(argv)``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.cli import main


def test_tables_lists_families(capsys):
    assert main(["tables"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "standard" in out and "q1..q100" in out


def test_tables_show_prints_grid_and_provenance(capsys):
    assert main(["tables", "show", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "17   16   17   20" in out and "2003.02874" in out


def test_tables_show_json_is_loadable(capsys, tmp_path):
    assert main(["tables", "show", "standard", "--quality", "40", "--json"]) == 0
    path = tmp_path / "q40.json"
    path.write_text(capsys.readouterr().out)
    assert dnnjpeg.load(path) == dnnjpeg.QTable.standard(40)


def test_tables_show_errors(capsys):
    assert main(["tables", "show", "nope"]) == 2
    assert "unknown table 'nope'; available:" in capsys.readouterr().err
    assert main(["tables", "show", "resnet50", "--quality", "90"]) == 2
    assert "available qualities: 50" in capsys.readouterr().err


def test_compress_writes_the_table(photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    photo.save(src)
    dst = tmp_path / "out.jpg"
    assert main(["compress", str(src), str(dst), "--table", "resnet50", "--subsampling", "4:4:4"]) == 0
    assert "bytes" in capsys.readouterr().out
    with Image.open(dst) as im:
        assert list(im.quantization[0]) == list(dnnjpeg.load("resnet50").luma)


def test_compress_with_json_table_and_quality(photo, tmp_path):
    src = tmp_path / "in.png"
    photo.save(src)
    table = tmp_path / "t.json"
    dnnjpeg.QTable([12] * 64).to_json(table)
    assert main(["compress", str(src), str(tmp_path / "a.jpg"), "--table", str(table)]) == 0
    assert main(["compress", str(src), str(tmp_path / "b.jpg"), "--table", "standard", "--quality", "20"]) == 0
    with Image.open(tmp_path / "a.jpg") as a, Image.open(tmp_path / "b.jpg") as b:
        assert list(a.quantization[0]) == [12] * 64
        assert list(b.quantization[0]) == list(dnnjpeg.QTable.standard(20).luma)


def test_compress_refuses_to_overwrite(photo, tmp_path, capsys):
    src = tmp_path / "in.png"
    photo.save(src)
    dst = tmp_path / "out.jpg"
    dst.write_bytes(b"precious")
    assert main(["compress", str(src), str(dst), "--table", "resnet50"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert dst.read_bytes() == b"precious"
    assert main(["compress", str(src), str(src), "--table", "resnet50", "--force"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_compress_reports_broken_input(tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert main(["compress", str(broken), str(tmp_path / "o.jpg"), "--table", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err
    assert not (tmp_path / "o.jpg").exists()


def test_usage_errors_exit_2(capsys):
    assert main(["compress"]) == 2
    assert main([]) == 2


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "dnnjpeg", "tables", "show", "resnet50", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["luma"][:3] == [17, 16, 17]


@pytest.mark.parametrize("argv", [["--version"], ["tables", "--help"]])
def test_version_and_help(argv, capsys):
    assert main(argv) == 0
