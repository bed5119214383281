"""``dnnjpeg evaluate`` and ``dnnjpeg curve``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from dnnjpeg.cli import main
from dnnjpeg.testing import make_image_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "d", n=4)


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


def test_evaluate_standard_json(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "evaluate",
            "--model",
            "timm:test_resnet",
            "--no-pretrained",
            "--data",
            str(folder),
            "--standard",
            "50",
            "--json",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    d = _json(capsys)
    for key in ("top1", "top5", "agreement", "bytes_mean", "cr", "bpp", "n"):
        assert key in d
    assert d["n"] == 4 and d["quality"] == 50 and d["model"] == "timm:test_resnet"


def test_evaluate_table_family_member(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "evaluate",
            "--model",
            "torchvision:mobilenet_v3_small",
            "--no-pretrained",
            "--data",
            str(folder),
            "--table",
            "resnet50",
            "--quality",
            "50",
            "--limit",
            "2",
            "--json",
            "--per-image",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    d = _json(capsys)
    assert d["n"] == 2 and d["table"]["luma"][:3] == [17, 16, 17] and len(d["per_image"]["bytes"]) == 2


def test_evaluate_text_and_native(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "evaluate",
            "--model",
            "timm:test_resnet",
            "--no-pretrained",
            "--data",
            str(folder),
            "--standard",
            "30",
            "--protocol",
            "native",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "[native]" in out and "bpp" in out


def test_evaluate_errors(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", "nope", "--data", str(folder), "--standard", "50"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert (
        main(
            [
                "evaluate",
                "--model",
                "timm:test_resnet",
                "--data",
                str(folder),
                "--quality",
                "50",
                "--standard",
                "50",
                "--no-pretrained",
            ]
        )
        == 2
    )
    assert main(["evaluate", "--model", "timm:test_resnet", "--data", str(folder)]) == 2  # no table choice


def test_curve_writes_json_and_plot(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    rc = main(
        [
            "curve",
            "--model",
            "timm:test_resnet",
            "--no-pretrained",
            "--data",
            str(folder),
            "--out",
            str(out),
            "--plot",
            str(png),
            "--qualities",
            "10,50,90",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    d = json.loads(out.read_text())
    assert [p["quality"] for p in d["points"]] == [10, 50, 90] and "top1" in d["fitness"]
    assert png.stat().st_size > 1000
    assert "fitness(CR)" in capsys.readouterr().out


def test_parse_qualities() -> None:
    from dnnjpeg.cli.curve import parse_qualities

    assert parse_qualities("5:95:5")[:3] == [5, 10, 15] and parse_qualities("5:95:5")[-1] == 95
    assert parse_qualities("10,30") == [10, 30]
    with pytest.raises(ValueError):
        parse_qualities("0,50")


def test_evaluate_with_a_writer_labels_and_writes_the_table_so(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "--model", "torchvision:mobilenet_v3_small", "--no-pretrained", "--data", str(folder),
            "--limit", "2", "--device", "cpu", "--writer", "trellis"]
    assert main([*base, "--table", "resnet50"]) == 0
    assert "resnet50 written by trellis, n=2" in capsys.readouterr().out
    assert main([*base, "--table", "resnet50", "--json"]) == 0
    assert _json(capsys)["table"]["encoder"] == "mozjpeg403"  # the writer's description is recorded
    assert main([*base, "--standard", "50"]) == 0
    assert "standard q50, n=2" in capsys.readouterr().out  # the anchor stays libjpeg's
    assert main([*base[:-1], "bogus", "--standard", "50"]) == 2
    assert "unknown encoder 'bogus'" in capsys.readouterr().err
