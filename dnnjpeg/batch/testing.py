"""A generated sample tree with every kind of awkward input, for tests and demos.

    from dnnjpeg.batch.testing import make_sample_tree
    expected = make_sample_tree(tmp_path / "src", outside=tmp_path / "outside")

``expected`` maps each relative path to the status ``recompress`` should give it
(``ok``, ``kept``, ``copied``, ``failed``, ``skipped``).  Images are small (tens of
pixels) so a tree takes milliseconds to build and process.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, TiffImagePlugin

__all__ = ["BOMB_MAX_PIXELS", "NON_UTF8_NAME", "make_jpeg_tree", "make_sample_tree", "png_header_only", "smooth_rgb"]

#: A file name that is not valid UTF-8 (bytes 0xff 0xfe), as Python spells it on POSIX.
NON_UTF8_NAME = os.fsdecode(b"raw\xff\xfe name.jpg")
#: ``max_pixels`` under which ``bombs/big.png`` (200 x 200) counts as a bomb.
BOMB_MAX_PIXELS = 30_000

ICC = b"\x00\x00\x02\x0cfake-icc-profile-for-tests" + bytes(range(64))
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def smooth_rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like smooth RGB image (gradients plus a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [
            127 + 100 * np.sin(x / (7 + seed % 5) + seed),
            127 + 100 * np.cos(y / (9 + seed % 3)),
            127 + 60 * np.sin((x + y) / 11),
        ],
        axis=-1,
    )
    arr = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _jpeg(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels (a decompression bomb for Pillow when huge)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def make_jpeg_tree(root: Path, n: int, size: tuple[int, int] = (96, 72), classes: int = 4) -> list[str]:
    """``n`` JPEGs (quality 95) spread over ``classes`` folders; returns their relative paths."""
    rels = []
    for i in range(n):
        rel = f"class_{i % classes:02d}/img_{i:05d}.jpg"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_jpeg(smooth_rgb(*size, seed=i), quality=95))
        rels.append(rel)
    return rels


def make_sample_tree(root: Path, outside: Path | None = None) -> dict[str, str]:
    """Build the sample tree under ``root``; return ``{relative path: expected status}``.

    ``outside`` (a folder beside ``root``) receives the targets of the symlinks that point out of it.
    """
    root = Path(root)
    exp: dict[str, str] = {}

    def put(rel: str, data: bytes, status: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        exp[rel] = status

    # Plain JPEGs, odd names.
    put("cls_a/img 01.jpg", _jpeg(smooth_rgb(64, 48, 1), quality=95), "ok")
    put("cls_a/café_ü_雪.JPEG", _jpeg(smooth_rgb(48, 64, 2), quality=90), "ok")
    put("cls_a/we!rd #name (1)'$.jpeg", _jpeg(smooth_rgb(40, 40, 3), quality=92), "ok")
    put("cls_a/-starts-with-dash.jpg", _jpeg(smooth_rgb(33, 17, 4), quality=95), "ok")
    put("cls_a/.hidden.jpg", _jpeg(smooth_rgb(20, 20, 5), quality=95), "ok")
    put(f"cls_a/{NON_UTF8_NAME}", _jpeg(smooth_rgb(24, 24, 6), quality=95), "ok")
    put("cls_a/deep/er/nested.jpe", _jpeg(smooth_rgb(30, 30, 7), quality=95), "ok")

    # Modes and formats.
    rgb = smooth_rgb(50, 40, 8)
    put("modes/cmyk.jpg", _jpeg(rgb.convert("CMYK"), quality=95), "ok")
    put("modes/gray.jpg", _jpeg(rgb.convert("L"), quality=95), "ok")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    put("modes/rgba.png", buf.getvalue(), "ok")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    put("modes/palette_transparent.png", buf.getvalue(), "ok")
    buf = io.BytesIO()
    rgb.convert("L").save(buf, "PNG")
    put("modes/gray.png", buf.getvalue(), "ok")
    a16 = (np.linspace(0, 65535, 40 * 50).reshape(40, 50)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a16).save(buf, "PNG")
    put("modes/sixteen_bit.png", buf.getvalue(), "ok")
    buf = io.BytesIO()
    rgb.save(buf, "BMP")
    put("modes/picture.bmp", buf.getvalue(), "ok")
    buf = io.BytesIO()
    rgb.convert("1").save(buf, "BMP")
    put("modes/bilevel.BMP", buf.getvalue(), "ok")
    ti = TiffImagePlugin.ImageFileDirectory_v2()
    ti[274] = 6  # orientation
    ti[700] = XMP
    buf = io.BytesIO()
    rgb.save(buf, "TIFF", tiffinfo=ti, compression="tiff_lzw")
    put("modes/oriented.tif", buf.getvalue(), "ok")
    exif = Image.Exif()
    exif[0x0112] = 3
    buf = io.BytesIO()
    rgb.save(buf, "WEBP", lossless=True, exif=exif.tobytes())
    put("modes/lossless.webp", buf.getvalue(), "ok")
    frames = [smooth_rgb(20, 20, s) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    put("modes/multipage.tiff", buf.getvalue(), "kept")

    # Metadata.
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "dnnjpeg-test-camera"
    put(
        "meta/full.jpg",
        _jpeg(rgb, quality=95, exif=exif.tobytes(), icc_profile=ICC, xmp=XMP, comment=b"a comment"),
        "ok",
    )
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    buf = io.BytesIO()
    rgb.save(buf, "PNG", pnginfo=info, icc_profile=ICC, exif=exif.tobytes())
    put("meta/full.png", buf.getvalue(), "ok")

    # Bad inputs.
    good = _jpeg(smooth_rgb(64, 64, 9), quality=95)
    put("bad/truncated.jpg", good[: len(good) // 2], "failed")
    put("bad/empty.jpg", b"", "failed")
    put("bad/text.jpg", b"this is not an image\n", "failed")
    put("bad/garbage.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200), "failed")
    put("bad/gif_named.jpg", _gif(), "failed")
    put("bombs/header_bomb.png", png_header_only(20_000, 20_000), "failed")  # Pillow's own limit
    buf = io.BytesIO()
    smooth_rgb(200, 200, 10).save(buf, "PNG")
    put("bombs/big.png", buf.getvalue(), "ok")  # "failed" when max_pixels=BOMB_MAX_PIXELS

    # Other files.
    put("labels.csv", b"file,label\ncls_a/img 01.jpg,0\n", "copied")
    put("cls_a/README", b"notes\n", "copied")
    put("cls_a/photo.gif", _gif(), "copied")

    # Special entries.
    (root / "links").mkdir()
    os.symlink("../cls_a/img 01.jpg", root / "links" / "inside.jpg")
    exp["links/inside.jpg"] = "ok"
    os.symlink("../cls_a", root / "links" / "dir_inside")
    exp["links/dir_inside"] = "skipped"
    os.symlink("nowhere.jpg", root / "links" / "broken.jpg")
    exp["links/broken.jpg"] = "skipped"
    if outside is not None:
        outside = Path(outside)
        outside.mkdir(parents=True, exist_ok=True)
        (outside / "secret.jpg").write_bytes(_jpeg(smooth_rgb(16, 16, 11), quality=95))
        (outside / "secret.txt").write_text("do not read\n")
        os.symlink(outside / "secret.jpg", root / "links" / "outside.jpg")
        exp["links/outside.jpg"] = "skipped"
        os.symlink(outside, root / "links" / "outside_dir")
        exp["links/outside_dir"] = "skipped"
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "links" / "fifo.jpg")
        exp["links/fifo.jpg"] = "skipped"
    (root / "empty_dir").mkdir()
    return exp


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, "GIF")
    return buf.getvalue()
