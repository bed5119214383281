"""The encoder adapters: real libjpeg-turbo (Pillow) and real mozjpeg 4.0.3 (jpeglib)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.encoders import EncoderError, encoder_families, get_family, make_encoder, parse_encoder_list


@pytest.fixture(scope="module")
def crop(photo) -> np.ndarray:
    from dnnjpeg.evaluation.data import crop224

    return crop224(photo)


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_libjpeg_is_byte_identical_to_pillow_quality(crop, quality):
    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "JPEG", quality=quality)
    assert make_encoder("libjpeg", quality=quality).encode(crop) == buf.getvalue()


def test_optimized_huffman_is_smaller_with_the_same_pixels(crop):
    plain = make_encoder("libjpeg", quality=50).encode(crop)
    opt = make_encoder("libjpeg-opt", quality=50).encode(crop)
    assert len(opt) < len(plain)
    assert np.array_equal(np.asarray(decode(opt)), np.asarray(decode(plain)))


@pytest.mark.parametrize("name", sorted(encoder_families()))
def test_every_encoder_writes_a_jpeg_pillow_decodes(crop, name):
    for q in (20, 75):
        im = decode(make_encoder(name, quality=q).encode(crop))
        assert im.format == "JPEG" and im.size == (224, 224) and im.mode == "RGB"
        err = np.abs(np.asarray(im, dtype=float) - crop).mean()
        assert err < (12 if q == 20 else 6)


def test_mozjpeg_uses_its_tables_trellis_and_is_smaller(crop):
    moz = make_encoder("mozjpeg", quality=75).encode(crop)
    im = decode(moz)
    assert im.info.get("progressive") == 1
    assert list(im.quantization[0]) != list(dnnjpeg.QTable.standard(75).luma)  # mozjpeg's own default table
    std = decode(make_encoder("mozjpeg-std", quality=75).encode(crop))
    assert list(std.quantization[0]) == list(dnnjpeg.QTable.standard(75).luma)
    libjpeg = make_encoder("libjpeg", quality=75).encode(crop)
    assert len(make_encoder("mozjpeg-std", quality=75).encode(crop)) < len(libjpeg)


def test_mozjpeg_trellis_saves_bytes_and_writes_a_given_table(crop):
    from dnnjpeg.encoders import MozjpegEncoder

    table = dnnjpeg.load("resnet50")
    with_trellis = MozjpegEncoder(table=table).encode(crop)
    without = MozjpegEncoder(table=table, trellis=False).encode(crop)
    assert len(with_trellis) < len(without)
    im = decode(with_trellis)
    assert list(im.quantization[0]) == list(table.luma) and list(im.quantization[1]) == list(table.chroma)


@pytest.mark.parametrize(("subsampling", "pillow_code"), [("4:4:4", 0), ("4:2:2", 1), ("4:2:0", 2)])
def test_mozjpeg_writes_the_tables_subsampling(crop, subsampling, pillow_code):
    from PIL import JpegImagePlugin

    table = dnnjpeg.QTable.standard(60).replace(subsampling=subsampling)
    im = decode(make_encoder("mozjpeg", table=table).encode(crop))
    assert JpegImagePlugin.get_sampling(im) == pillow_code
    assert list(im.quantization[0]) == list(table.luma) and list(im.quantization[1]) == list(table.chroma)


def test_mozjpeg_is_thread_safe_and_deterministic(crop):
    enc = make_encoder("mozjpeg", quality=40)
    serial = enc.encode(crop)
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: enc.encode(crop), range(8))) == {serial}


def test_grayscale_input(crop):
    gray = crop[..., 0].copy()
    for name in ("libjpeg", "mozjpeg"):
        im = decode(make_encoder(name, quality=50).encode(gray))
        assert im.mode == "L" and im.size == (224, 224)


def test_bad_names_and_arguments_name_the_value():
    with pytest.raises(EncoderError, match="unknown encoder 'webp'; known: libjpeg, libjpeg-opt, mozjpeg"):
        get_family("webp")
    with pytest.raises(EncoderError, match="quality 0 must be an integer in 1..100"):
        make_encoder("mozjpeg", quality=0)
    with pytest.raises(EncoderError, match="exactly one of quality= and table="):
        make_encoder("libjpeg")
    with pytest.raises(EncoderError, match="names an encoder twice"):
        parse_encoder_list("mozjpeg,mozjpeg")
    with pytest.raises(EncoderError, match="unknown encoder 'moz'"):
        parse_encoder_list("moz,libjpeg-opt")
    with pytest.raises(EncoderError, match="uint8 HxWx3"):
        make_encoder("libjpeg", quality=50).encode(np.zeros((8, 8, 3), dtype=np.float32))
