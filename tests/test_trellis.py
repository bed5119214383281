"""Trellis quantization (real mozjpeg 4.0.3 via jpeglib) written as baseline: encoder, Pillow option, recompress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

import dnnjpeg
from dnnjpeg import QTable, QTableError
from dnnjpeg._jpegmarkers import JpegStructureError, metadata_segments, replace_metadata
from dnnjpeg.cli import main
from dnnjpeg.encoders import MozjpegEncoder


def _reopen(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _is_baseline(data: bytes) -> bool:
    """Pillow parsed a sequential frame (no ``progressive`` flag) with steps up to 255."""
    im = _reopen(data)
    return im.format == "JPEG" and "progressive" not in im.info and max(max(t) for t in im.quantization.values()) <= 255


def _coded_part(data: bytes) -> bytes:
    """Everything after the leading metadata segments (tables, frame, scans)."""
    return data[2 + sum(map(len, metadata_segments(data))) :]


@pytest.fixture(scope="module")
def rgb(photo) -> np.ndarray:
    return np.asarray(photo)


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:0"])
def test_baseline_rewrite_keeps_mozjpegs_pixels_and_is_baseline(rgb, subsampling):
    table = QTable.from_dict({**dnnjpeg.load("efficientnet_lite0").to_dict(), "subsampling": subsampling})
    progressive = MozjpegEncoder(table=table).encode(rgb)
    baseline = MozjpegEncoder(table=table, progressive=False).encode(rgb)
    assert not _is_baseline(progressive) and _is_baseline(baseline)
    a, b = _reopen(progressive), _reopen(baseline)
    assert "progressive" not in b.info
    assert np.array_equal(np.asarray(a), np.asarray(b))  # the same trellis-quantized coefficients
    assert b.quantization == {0: list(table.luma), 1: list(table.chroma)}
    assert JpegImagePlugin.get_sampling(b) == {"4:4:4": 0, "4:2:0": 2}[subsampling]
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is the independent decoder")
    other = cv2.imdecode(np.frombuffer(baseline, np.uint8), cv2.IMREAD_COLOR)
    assert other.shape == rgb.shape


def test_trellis_option_is_smaller_than_libjpeg_with_the_same_table(photo):
    plain = dnnjpeg.encode(photo, "efficientnet_lite0", optimize=True)
    trellis = dnnjpeg.encode(photo, "efficientnet_lite0", trellis=True)
    assert len(trellis) < 0.95 * len(plain)
    assert _is_baseline(trellis)
    assert _reopen(trellis).quantization == _reopen(plain).quantization
    progressive = dnnjpeg.encode(photo, "efficientnet_lite0", trellis=True, progressive=True)
    assert not _is_baseline(progressive)
    assert np.array_equal(np.asarray(_reopen(progressive)), np.asarray(_reopen(trellis)))


def _with_metadata(im: Image.Image, icc_size: int = 200) -> Image.Image:
    im = im.copy()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "dnnjpeg-test-camera"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    im.info.update(
        exif=exif.tobytes(),
        icc_profile=icc + bytes(max(0, icc_size - len(icc))),
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>dnnjpeg</x:xmpmeta>",
        comment=b"kept by trellis",
        dpi=(300, 300),
    )
    return im


@pytest.mark.parametrize("icc_size", [200, 150_000])  # 150 kB: Pillow splits the profile over three APP2 segments
def test_trellis_keeps_metadata_like_pillow(photo, icc_size):
    im = _with_metadata(photo.resize((64, 48)), icc_size)
    dnnjpeg.register()
    buf = io.BytesIO()
    im.save(buf, "DNNJPEG", table="efficientnet_lite0", trellis=True)
    back = _reopen(buf.getvalue())
    assert back.getexif()[0x0112] == 6 and back.getexif()[0x010F] == "dnnjpeg-test-camera"
    for key in ("icc_profile", "xmp", "comment"):
        assert back.info[key] == im.info[key], key
    assert back.info["dpi"] == (300, 300)
    stripped = _reopen(dnnjpeg.encode(im, "efficientnet_lite0", trellis=True, keep_metadata=False))
    assert 0x0112 not in stripped.getexif()
    for key in ("icc_profile", "xmp", "comment"):
        assert not stripped.info.get(key), key


def test_trellis_save_to_a_path_and_gray(photo, tmp_path):
    out = tmp_path / "gray.jpg"
    dnnjpeg.save(photo.convert("LA"), out, "efficientnet_lite0", trellis=True)
    with Image.open(out) as back:
        assert back.mode == "L" and back.size == photo.size
        assert back.quantization[0] == list(dnnjpeg.load("efficientnet_lite0").luma)


def test_trellis_refuses_what_it_cannot_write(photo):
    with pytest.raises(ValueError, match="CMYK"):
        dnnjpeg.encode(photo.convert("CMYK"), "efficientnet_lite0", trellis=True)
    with pytest.warns(dnnjpeg.SixteenBitTableWarning):
        wide = QTable([300] * 64, [300] * 64, allow_16bit=True)
    with pytest.raises(QTableError, match="has steps above 255.*trellis quantization writes baseline tables only"):
        dnnjpeg.encode(photo, wide, trellis=True, allow_16bit=True)


def test_replace_metadata_keeps_the_coded_image_byte_for_byte(photo):
    coded = dnnjpeg.encode(photo.resize((32, 32)), "standard", comment=b"old")
    meta = io.BytesIO()
    Image.new("RGB", (8, 8)).save(meta, "JPEG", comment=b"new")
    out = replace_metadata(coded, meta.getvalue())
    assert _coded_part(out) == _coded_part(coded)
    assert _reopen(out).info["comment"] == b"new"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"GIF89a", "no SOI"), (b"\xff\xd8\xff\xe1\x40\x00Exif", "runs past the end"), (b"\xff\xd8\x00\x00\x00\x00", "byte 2")],
)
def test_replace_metadata_names_the_broken_structure(data, message):
    with pytest.raises(JpegStructureError, match=message):
        replace_metadata(data, b"\xff\xd8\xff\xd9")


def test_recompress_trellis_writes_smaller_baseline_files(photo, tmp_path: Path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    tagged = _with_metadata(photo)
    tagged.save(src / "photo.jpg", quality=95, exif=tagged.info["exif"], comment=tagged.info["comment"])
    photo.convert("CMYK").save(src / "cmyk.jpg", quality=95)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    assert main(["recompress", str(src), str(tmp_path / "plain"), "--table", "efficientnet_lite0", "--workers", "0"]) == 1
    capsys.readouterr()
    code = main(["recompress", str(src), str(tmp_path / "trellis"), "--table", "efficientnet_lite0", "--writer",
                 "trellis", "--workers", "0", "--report-json", str(tmp_path / "report.json")])
    assert code == 1  # the broken file fails; the others are written
    out = capsys.readouterr().out
    assert "warnings (1):\n  cmyk.jpg: CMYK image written without trellis quantization" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["warnings"] == [{"path": "cmyk.jpg", "warning": "CMYK image written without trellis quantization"}]
    plain, trellis = (tmp_path / "plain" / "photo.jpg").read_bytes(), (tmp_path / "trellis" / "photo.jpg").read_bytes()
    assert len(trellis) < 0.95 * len(plain) and _is_baseline(trellis)
    back = _reopen(trellis)
    assert back.info["comment"] == b"kept by trellis" and back.getexif()[0x0112] == 6
    records = {
        r["path"]: r
        for r in map(json.loads, (tmp_path / "trellis" / ".dnnjpeg-recompress.jsonl").read_text().splitlines())
        if r["type"] == "file"
    }
    assert records["cmyk.jpg"]["status"] == "ok"
    assert "without trellis" in records["cmyk.jpg"]["warning"]
    assert _reopen((tmp_path / "trellis" / "cmyk.jpg").read_bytes()).mode == "CMYK"
    assert records["broken.jpg"]["status"] == "failed"


def test_recompress_refuses_to_mix_trellis_and_plain_outputs(photo, tmp_path: Path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    photo.save(src / "a.jpg", quality=90)
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--workers", "0"]) == 0
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--writer", "trellis", "--workers", "0"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--writer", "trellis", "--workers", "0",
                 "--restart"]) == 0
    assert _is_baseline((dst / "a.jpg").read_bytes())


def test_compress_cli_trellis(photo, tmp_path: Path, capsys):
    photo.save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), str(tmp_path / "plain.jpg"), "--table", "efficientnet_lite0",
                 "--optimize"]) == 0
    assert main(["compress", str(tmp_path / "in.png"), str(tmp_path / "t.jpg"), "--table", "efficientnet_lite0",
                 "--writer", "trellis"]) == 0
    trellis = (tmp_path / "t.jpg").read_bytes()
    assert len(trellis) < (tmp_path / "plain.jpg").stat().st_size and _is_baseline(trellis)
    photo.convert("CMYK").save(tmp_path / "cmyk.tif")
    capsys.readouterr()
    assert main(["compress", str(tmp_path / "cmyk.tif"), str(tmp_path / "c.jpg"), "--table", "standard",
                 "--writer", "trellis"]) == 2
    err = capsys.readouterr().err
    assert "cmyk.tif" in err and "CMYK" in err
    assert not (tmp_path / "c.jpg").exists()


def test_transform_trellis_gives_the_pixels_of_a_trellis_file(photo):
    import torch

    from dnnjpeg.transforms import DNNJPEG
    from dnnjpeg.transforms.functional import dnnjpeg as dnnjpeg_fn

    expected = np.asarray(_reopen(dnnjpeg.encode(photo, "efficientnet_lite0", trellis=True)))
    assert np.array_equal(np.asarray(dnnjpeg_fn(photo, "efficientnet_lite0", trellis=True)), expected)
    assert not np.array_equal(np.asarray(dnnjpeg_fn(photo, "efficientnet_lite0")), expected)
    chw = torch.from_numpy(np.array(photo)).permute(2, 0, 1).contiguous()
    out = DNNJPEG("efficientnet_lite0", trellis=True)(torch.stack([chw, chw]))
    assert out.shape == (2, *chw.shape)
    assert np.array_equal(out[1].permute(1, 2, 0).numpy(), expected)
    gray = DNNJPEG("efficientnet_lite0", trellis=True)(chw[:1].float() / 255)
    assert gray.shape == (1, *chw.shape[1:]) and gray.dtype == torch.float32
    with pytest.raises(ValueError, match="CMYK"):
        DNNJPEG("efficientnet_lite0", trellis=True)(photo.convert("CMYK"))
    with pytest.raises(ValueError, match="trellis"):
        DNNJPEG("efficientnet_lite0", trellis="yes")
    assert "trellis=True" in repr(DNNJPEG("efficientnet_lite0", trellis=True))


def test_without_jpeglib_every_entry_point_says_how_to_install_it(photo, tmp_path: Path, monkeypatch, capsys):
    import sys

    from dnnjpeg.encoders import EncoderError
    from dnnjpeg.transforms import DNNJPEG

    monkeypatch.setitem(sys.modules, "jpeglib", None)  # what `import jpeglib` meets where it is not installed
    hint = r"pip install 'dnnjpeg\[trellis\]'"
    with pytest.raises(EncoderError, match=hint):
        dnnjpeg.encode(photo, "efficientnet_lite0", trellis=True)
    with pytest.raises(EncoderError, match=hint):
        DNNJPEG("efficientnet_lite0", trellis=True)
    src = tmp_path / "src"
    src.mkdir()
    photo.save(src / "a.png")
    assert main(["recompress", str(src), str(tmp_path / "dst"), "--table", "standard", "--writer", "trellis"]) == 2
    assert "dnnjpeg[trellis]" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()  # refused before anything was written
    assert dnnjpeg.encode(photo, "efficientnet_lite0")  # libjpeg needs no jpeglib
