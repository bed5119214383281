"""dnnjpeg.export: each format's text holds exactly the table, and the C header is valid C."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import dnnjpeg
from dnnjpeg.errors import DnnjpegError
from dnnjpeg.export import (
    FORMATS,
    GENERATED_MARKER,
    cjpeg_args,
    default_filename,
    export_text,
    imagemagick_args,
    to_c_header,
    to_cjpeg_text,
    to_imagemagick_xml,
    to_json,
)

# Distinct luma and chroma steps (1..64 and 255..192), so a swapped or repeated table shows.
DISTINCT = dnnjpeg.QTable(
    list(range(1, 65)), [255 - i for i in range(64)], subsampling="4:2:2", meta={"name": "odd name/1", "quality": 7}
)
TABLES = [DISTINCT, dnnjpeg.load("resnet50"), dnnjpeg.load("standard", 75), dnnjpeg.load("standard", 10)]


def _cjpeg_numbers(text: str) -> list[int]:
    """Numbers as cjpeg's read_quant_tables reads them: '#' starts a comment to end of line."""
    return [int(tok) for line in text.splitlines() for tok in line.split("#", 1)[0].split()]


@pytest.mark.parametrize("qt", TABLES, ids=lambda t: repr(t))
def test_cjpeg_text_holds_luma_then_chroma(qt):
    text = to_cjpeg_text(qt)
    assert _cjpeg_numbers(text) == list(qt.luma) + list(qt.chroma)
    assert GENERATED_MARKER in text
    assert " ".join(cjpeg_args(qt, default_filename(qt, "cjpeg"))) in text


@pytest.mark.parametrize("qt", TABLES, ids=lambda t: repr(t))
def test_imagemagick_xml_slots(qt):
    text = to_imagemagick_xml(qt)
    root = ET.fromstring(text)
    assert root.tag == "quantization-tables"
    tables = {t.get("slot"): t for t in root.iter("table")}
    assert sorted(tables) == ["0", "1"]
    for slot, alias, expected in (("0", "luma", qt.luma), ("1", "chroma", qt.chroma)):
        levels = tables[slot].find("levels")
        assert tables[slot].get("alias") == alias
        assert (levels.get("width"), levels.get("height"), levels.get("divisor")) == ("8", "8", "1")
        assert [int(v) for v in levels.text.replace(",", " ").split()] == list(expected)
        assert tables[slot].find("description").text
    assert " ".join(imagemagick_args(qt, default_filename(qt, "imagemagick"))) in text
    # XML comments may not contain "--"
    for comment in re.findall(r"<!--(.*?)-->", text, flags=re.DOTALL):
        assert "--" not in comment


def test_json_round_trip():
    for qt in TABLES:
        back = dnnjpeg.QTable.from_json(to_json(qt))
        assert back == qt and back.subsampling == qt.subsampling


def test_c_header_names_and_sampling():
    text = to_c_header(DISTINCT)
    assert "static const unsigned short dnnjpeg_odd_name_1_q7_luma[64]" in text
    assert "#define DNNJPEG_ODD_NAME_1_Q7_Y_H_SAMP_FACTOR 2" in text  # 4:2:2
    assert "#define DNNJPEG_ODD_NAME_1_Q7_Y_V_SAMP_FACTOR 1" in text
    assert "natural (row-major) order" in text


_PRINTER = """
#include <stdio.h>
#include "{header}"
static void dump(const char *name, const unsigned short *t)
{{
    int i;
    printf("%s", name);
    for (i = 0; i < 64; i++) printf(" %u", (unsigned)t[i]);
    printf("\\n");
}}
int main(void)
{{
    dump("luma", {ident}_luma);
    dump("chroma", {ident}_chroma);
    dump("luma_zigzag", {ident}_luma_zigzag);
    dump("chroma_zigzag", {ident}_chroma_zigzag);
    printf("samp %d %d\\n", {macro}_Y_H_SAMP_FACTOR, {macro}_Y_V_SAMP_FACTOR);
    return 0;
}}
"""


@pytest.mark.parametrize(
    "qt, ident",
    [(DISTINCT, "dnnjpeg_odd_name_1_q7"), (dnnjpeg.load("resnet50"), "dnnjpeg_resnet50_q50")],
    ids=["distinct", "resnet50"],
)
def test_c_header_compiles_and_holds_tables(tmp_path: Path, qt, ident):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed (Debian package gcc)")
    header = tmp_path / "table.h"
    header.write_text(to_c_header(qt))
    src = tmp_path / "main.c"
    # include twice: the include guard must make that harmless
    src.write_text('#include "table.h"\n' + _PRINTER.format(header="table.h", ident=ident, macro=ident.upper()))
    exe = tmp_path / "dump"
    flags = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"]
    subprocess.run([gcc, *flags, str(src), "-o", str(exe)], check=True, capture_output=True, text=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in out}
    zy, zc = qt.zigzag()
    assert rows["luma"] == list(qt.luma)
    assert rows["chroma"] == list(qt.chroma)
    assert rows["luma_zigzag"] == zy
    assert rows["chroma_zigzag"] == zc
    expected_samp = {"4:2:0": [2, 2], "4:2:2": [2, 1], "4:4:4": [1, 1]}[qt.subsampling]
    assert rows["samp"] == expected_samp


def test_export_text_dispatch_and_errors():
    qt = dnnjpeg.load("resnet50")
    assert export_text(qt, "cjpeg") == to_cjpeg_text(qt)
    assert export_text(qt, "imagemagick") == to_imagemagick_xml(qt)
    assert export_text(qt, "c") == to_c_header(qt)
    assert export_text(qt, "json") == to_json(qt)
    assert set(FORMATS) == {"cjpeg", "imagemagick", "json", "c"}
    with pytest.raises(DnnjpegError, match="'png'"):
        export_text(qt, "png")
    with pytest.raises(DnnjpegError, match="QTable"):
        export_text([[1] * 64, [1] * 64], "cjpeg")


def test_default_filename():
    assert default_filename(dnnjpeg.load("resnet50"), "cjpeg") == "resnet50-q50.txt"
    assert default_filename(DISTINCT, "c") == "odd_name_1-q7.h"
    assert default_filename(dnnjpeg.QTable([3] * 64), "json") == "table.json"
