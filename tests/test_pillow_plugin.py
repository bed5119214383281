"""Pillow integration: plain qtables=, the DNNJPEG format, metadata and modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import dnnjpeg
from dnnjpeg import QTable, QTableError

SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _quant(im: Image.Image) -> dict[int, list[int]]:
    return {k: list(v) for k, v in im.quantization.items()}


def test_plain_pillow_qtables_writes_tables_exactly(photo, tmp_path):
    qt = dnnjpeg.load("resnet50")
    out = tmp_path / "x.jpg"
    photo.save(out, qtables=qt)
    with Image.open(out) as back:
        assert _quant(back) == {0: list(qt.luma), 1: list(qt.chroma)}
        assert JpegImagePlugin.get_sampling(back) == 2


def test_pillow_rescales_when_quality_is_also_given(photo):
    """Why dnnjpeg never passes quality= with tables: Pillow >= 11.3 rescales them."""
    qt = dnnjpeg.load("resnet50")
    buf = io.BytesIO()
    photo.save(buf, "JPEG", qtables=qt, quality=90)
    assert _quant(_reopen(buf.getvalue()))[0] != list(qt.luma)


@pytest.fixture(scope="module", autouse=True)
def _registered():
    dnnjpeg.register()


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_dnnjpeg_format_by_name(photo, subsampling):
    buf = io.BytesIO()
    photo.save(buf, "DNNJPEG", table="resnet50", subsampling=subsampling)
    back = _reopen(buf.getvalue())
    assert back.format == "JPEG"
    qt = dnnjpeg.load("resnet50")
    assert _quant(back) == {0: list(qt.luma), 1: list(qt.chroma)}
    assert JpegImagePlugin.get_sampling(back) == SUBSAMPLING_CODES[subsampling]
    assert buf.getvalue()[:2] == b"\xff\xd8" and b"\xff\xc0" in buf.getvalue()  # baseline SOF0


def test_dnnjpeg_format_quality_selects_member_without_rescaling(photo, tmp_path):
    out = tmp_path / "q30.jpg"
    photo.save(out, "DNNJPEG", table="standard", quality=30)
    with Image.open(out) as back:
        assert _quant(back)[0] == list(QTable.standard(30).luma)
    with pytest.raises(QTableError, match="no member for quality 75"):
        photo.save(io.BytesIO(), "DNNJPEG", table="resnet50", quality=75)


def test_dnnjpeg_format_accepts_qtable_and_json_path(photo, tmp_path):
    qt = QTable(range(1, 65), [40] * 64, subsampling="4:4:4")
    buf = io.BytesIO()
    photo.save(buf, "DNNJPEG", table=qt)
    back = _reopen(buf.getvalue())
    assert _quant(back) == {0: list(range(1, 65)), 1: [40] * 64}
    assert JpegImagePlugin.get_sampling(back) == 0  # the table's own subsampling
    path = tmp_path / "t.json"
    qt.to_json(path)
    buf2 = io.BytesIO()
    photo.save(buf2, "DNNJPEG", table=str(path))
    assert buf2.getvalue() == buf.getvalue()


@pytest.mark.parametrize("option", ["qualty", "qtables", "keep_rgb"])
def test_unknown_options_raise(photo, option):
    with pytest.raises(ValueError, match=f"unknown option.*'{option}'"):
        photo.save(io.BytesIO(), "DNNJPEG", table="resnet50", **{option: 1})


def test_optimize_and_progressive_keep_tables(photo):
    plain, opt, prog = io.BytesIO(), io.BytesIO(), io.BytesIO()
    photo.save(plain, "DNNJPEG", table="resnet50")
    photo.save(opt, "DNNJPEG", table="resnet50", optimize=True)
    photo.save(prog, "DNNJPEG", table="resnet50", progressive=True)
    assert len(opt.getvalue()) < len(plain.getvalue())
    assert _reopen(prog.getvalue()).info.get("progressive") == 1
    for buf in (opt, prog):
        assert _quant(_reopen(buf.getvalue()))[0] == list(dnnjpeg.load("resnet50").luma)
        np.testing.assert_array_equal(np.asarray(_reopen(buf.getvalue())), np.asarray(_reopen(plain.getvalue())))


def _image_with_metadata() -> Image.Image:
    im = Image.new("RGB", (32, 24), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW
    exif[0x010F] = "dnnjpeg-test-camera"
    im.info["exif"] = exif.tobytes()
    im.info["icc_profile"] = b"\x00fake-icc-profile-bytes" * 4
    im.info["xmp"] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>dnnjpeg</x:xmpmeta>"
    im.info["comment"] = b"hello from the test"
    return im


def test_metadata_kept_by_default():
    im = _image_with_metadata()
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", table="resnet50")
    back = _reopen(buf.getvalue())
    assert back.getexif()[0x0112] == 6 and back.getexif()[0x010F] == "dnnjpeg-test-camera"
    assert back.info["icc_profile"] == im.info["icc_profile"]
    assert back.info["xmp"] == im.info["xmp"]
    assert back.info["comment"] == im.info["comment"]


def test_metadata_dropped_on_request():
    im = _image_with_metadata()
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", table="resnet50", keep_metadata=False)
    back = _reopen(buf.getvalue())
    assert 0x0112 not in back.getexif()
    for key in ("icc_profile", "xmp", "comment"):
        assert not back.info.get(key), key


def test_explicit_metadata_overrides_info():
    im = _image_with_metadata()
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", table="resnet50", comment=b"override", icc_profile=b"")
    back = _reopen(buf.getvalue())
    assert back.info["comment"] == b"override"
    assert not back.info.get("icc_profile")


def _mode_image(mode: str) -> Image.Image:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (16, 16), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.uniform(-20, 300, (16, 16)).astype(np.float32))
    if mode == "P":
        return rgb.convert("P")
    return rgb.convert(mode)


@pytest.mark.parametrize(
    ("mode", "written"),
    [
        ("L", "L"),
        ("RGB", "RGB"),
        ("CMYK", "CMYK"),
        ("1", "L"),
        ("P", "RGB"),
        ("RGBA", "RGB"),
        ("LA", "L"),
        ("I;16", "L"),
        ("I", "L"),
        ("F", "L"),
        ("YCbCr", "RGB"),
    ],
)
def test_modes_follow_the_documented_rule(mode, written):
    im = _mode_image(mode)
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", table="resnet50")
    back = _reopen(buf.getvalue())
    assert back.mode == written
    assert _quant(back)[0] == list(dnnjpeg.load("resnet50").luma)


def test_alpha_composited_on_white():
    im = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    out = dnnjpeg.to_jpeg_mode(im)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    half = dnnjpeg.to_jpeg_mode(Image.new("LA", (4, 4), (0, 128)))
    assert 120 <= half.getpixel((0, 0)) <= 135


def test_sixteen_bit_conversion_keeps_top_bits():
    arr = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    out = dnnjpeg.to_jpeg_mode(Image.fromarray(arr))
    assert list(np.asarray(out)[0]) == [0, 1, 255, 128]


def test_sixteen_bit_table_needs_allow_16bit(photo):
    with pytest.warns(dnnjpeg.SixteenBitTableWarning):
        qt = QTable([300] * 64, allow_16bit=True)
    with pytest.raises(QTableError, match="allow_16bit=True"):
        photo.save(io.BytesIO(), "DNNJPEG", table=qt)
    buf = io.BytesIO()
    photo.save(buf, "DNNJPEG", table=qt, allow_16bit=True)
    assert _quant(_reopen(buf.getvalue()))[0] == [300] * 64


def test_functional_save_and_encode(photo, tmp_path):
    data = dnnjpeg.encode(photo, "resnet50")
    dnnjpeg.save(photo, tmp_path / "f.jpg", "resnet50")
    assert (tmp_path / "f.jpg").read_bytes() == data
