"""``dnnjpeg validate --report``: real Lite0 on 16 dev images, real mozjpeg; the files and their contents."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from dnnjpeg.cli import main
from dnnjpeg.validation.report import PLOTS, write_report

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]


@pytest.fixture(scope="module")
def report(dev_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    code = main(["validate", "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", "16",
                 "--table", "resnet50", "--qualities", "20,40,60,80", "--compare-encoders", "mozjpeg",
                 "--resamples", "300", "--report", str(out)])
    assert code == 0
    return out


def test_report_folder_has_every_file(report):
    names = {p.name for p in report.iterdir()}
    assert names == {"report.md", "report.html", "validation.json", *PLOTS}
    for name in PLOTS:
        with Image.open(report / name) as im:
            assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 400


def test_report_json_holds_the_numbers_the_text_shows(report):
    d = json.loads((report / "validation.json").read_text())
    assert d["format"] == "dnnjpeg-validation" and d["table_name"] == "resnet50" and d["n"] == 16
    assert list(d["encoders"]) == ["mozjpeg"]
    moz = d["encoders"]["mozjpeg"]
    assert [p["quality"] for p in moz["points"]] == [20, 40, 60, 80]
    assert "encoder_top1_at_cr" in moz["table_vs_encoder"]
    md = (report / "report.md").read_text()
    assert f"{100 * d['top1']:.2f}%" in md and f"{d['cr']:.3f}" in md
    for name in PLOTS:
        assert f"]({name})" in md
    html = (report / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and all(f"src='{n}'" in html for n in PLOTS)
    assert "mozjpeg" in html and "McNemar" in html and "BD-rate at equal KL" in md
    assert d["command"].startswith("dnnjpeg validate --model efficientnet_lite0")


def test_report_rebuilds_from_the_saved_json(report, tmp_path):
    d = json.loads((report / "validation.json").read_text())
    write_report(d, tmp_path, command=d["command"])
    assert (tmp_path / "report.md").read_text() == (report / "report.md").read_text()
