"""QTable: validation, zigzag, libjpeg quality scaling, JSON and pickling."""

from __future__ import annotations

import io
import json
import math
import pickle

import numpy as np
import pytest
from PIL import Image

from dnnjpeg import QTable, QTableError, SixteenBitTableWarning, from_zigzag, to_zigzag
from dnnjpeg._zigzag import ZIGZAG


def test_zigzag_is_the_jpeg_order():
    # First entries of the JPEG zigzag scan (T.81 Figure A.6), natural indices.
    assert ZIGZAG[:10] == (0, 1, 8, 16, 9, 2, 3, 10, 17, 24)
    assert ZIGZAG[-3:] == (55, 62, 63)
    assert sorted(ZIGZAG) == list(range(64))
    values = list(range(100, 164))
    assert from_zigzag(to_zigzag(values)) == values


@pytest.mark.parametrize("quality", range(1, 101))
def test_standard_matches_pillow_both_components(quality):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 30, 200)).save(buf, "JPEG", quality=quality)
    written = Image.open(io.BytesIO(buf.getvalue())).quantization
    expected = QTable.standard(quality)
    assert list(written[0]) == list(expected.luma)
    assert list(written[1]) == list(expected.chroma)


@pytest.mark.parametrize("quality", [0, 101, 50.5, "50", True])
def test_standard_rejects_bad_quality(quality):
    with pytest.raises(QTableError, match="quality"):
        QTable.standard(quality)


def test_accepts_flat_nested_and_numpy():
    flat = list(range(1, 65))
    a = QTable(flat)
    b = QTable([flat[i : i + 8] for i in range(0, 64, 8)])
    c = QTable(np.arange(1, 65, dtype=np.int64).reshape(8, 8), np.full(64, 3.0))
    assert a == b
    assert c.luma == a.luma and set(c.chroma) == {3}
    assert a.chroma == a.luma  # one table for all components
    assert a.as_array().shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1] * 63, r"expected 64 values or an 8x8 array, got shape \(63,\)"),
        ([[1] * 8] * 7, r"shape \(7, 8\)"),
        ([1] * 63 + [2.5], r"luma table\[63\] \(row 7, column 7\) = 2.5 is not an integer"),
        ([1] * 10 + [math.nan] + [1] * 53, r"luma table\[10\] .* is NaN"),
        ([0] + [1] * 63, r"luma table\[0\] .* = 0 is below 1"),
        ([-4] + [1] * 63, r"= -4 is below 1"),
        ([256] + [1] * 63, r"= 256 exceeds 255.*allow_16bit"),
        (["7"] + [1] * 63, r"'7' is not an integer"),
        ([True] + [1] * 63, r"True is not an integer"),
        ("16" * 64, r"expected 64 integers"),
        (42, r"expected 64 integers"),
    ],
)
def test_validation_names_the_problem(values, message):
    with pytest.raises(QTableError, match=message):
        QTable(values)


def test_chroma_errors_name_the_chroma_table():
    with pytest.raises(QTableError, match=r"chroma table\[5\]"):
        QTable([1] * 64, [1] * 5 + [300] + [1] * 58)


def test_sixteen_bit_needs_opt_in_and_warns():
    with pytest.raises(QTableError, match="exceeds 255"):
        QTable([300] * 64)
    with pytest.warns(SixteenBitTableWarning, match="many decoders"):
        qt = QTable([300] * 64, allow_16bit=True)
    assert not qt.is_baseline
    with pytest.raises(QTableError, match="exceeds 32767"):
        QTable([40000] * 64, allow_16bit=True)


def test_subsampling_validated():
    assert QTable([2] * 64, subsampling="4:4:4").subsampling == "4:4:4"
    with pytest.raises(QTableError, match="subsampling '4:1:1'"):
        QTable([2] * 64, subsampling="4:1:1")


def test_json_round_trip_keeps_everything(tmp_path):
    qt = QTable(
        range(1, 65),
        [9] * 64,
        subsampling="4:2:2",
        meta={"name": "x", "quality": 40, "provenance": {"method": "sorted"}, "metrics": {"top1": 0.8}},
    )
    path = tmp_path / "t.json"
    qt.to_json(path)
    data = json.loads(path.read_text())
    assert data["format"] == "dnnjpeg-qtable"
    assert data["luma"] == list(range(1, 65)) and data["chroma"] == [9] * 64
    assert data["subsampling"] == "4:2:2" and data["provenance"] == {"method": "sorted"}
    back = QTable.from_json(path)
    assert back == qt
    assert dict(back.meta) == dict(qt.meta)


def test_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"luma": [1, 2]}')
    with pytest.raises(QTableError, match=r"bad\.json: luma table: expected 64"):
        QTable.from_json(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(QTableError, match=r"broken\.json: not valid JSON"):
        QTable.from_json(broken)
    with pytest.raises(QTableError, match=r"missing\.json: cannot read"):
        QTable.from_json(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else", "luma": []}')
    with pytest.raises(QTableError, match="'format' is 'something-else'"):
        QTable.from_json(other)


def test_meta_is_read_only_and_json_only():
    qt = QTable([5] * 64, meta={"provenance": {"a": 1}})
    with pytest.raises(TypeError):
        qt.meta["x"] = 1  # type: ignore[index]
    with pytest.raises(QTableError, match="cannot be stored as JSON"):
        QTable([5] * 64, meta={"bad": object()})


def test_pickle_round_trip():
    qt = QTable(range(1, 65), subsampling="4:4:4", meta={"name": "p"})
    back = pickle.loads(pickle.dumps(qt))
    assert back == qt and back.subsampling == "4:4:4" and back.meta["name"] == "p"
    assert isinstance(back, QTable)


def test_equality_includes_subsampling_and_hash():
    a = QTable([3] * 64, subsampling="4:2:0")
    b = QTable([3] * 64, subsampling="4:4:4")
    assert a != b
    assert len({a, b, QTable([3] * 64)}) == 2


def test_from_zigzag_and_pillow():
    natural = list(range(1, 65))
    qt = QTable.from_zigzag(to_zigzag(natural))
    assert list(qt.luma) == natural
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", qtables=qt)
    assert QTable.from_pillow(Image.open(buf).quantization) == qt


def test_replace():
    qt = QTable.standard(50)
    other = qt.replace(subsampling="4:4:4")
    assert other.luma == qt.luma and other.subsampling == "4:4:4"
    with pytest.raises(TypeError, match="unknown fields: bogus"):
        qt.replace(bogus=1)
