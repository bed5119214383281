"""``dnnjpeg compress IN OUT --table NAME|FILE``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PIL import Image

from ..errors import DnnjpegError
from ..families import resolve_table, tuned_writer
from ..options import EncodeOptions
from ..pillow_plugin import save
from ..qtable import SUBSAMPLINGS
from . import register_command


@register_command(
    "compress", help="compress one image to a JPEG with a dnnjpeg table (baseline unless --progressive)"
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input image (any format Pillow reads)")
    parser.add_argument("output", type=Path, help="output JPEG path")
    parser.add_argument("--table", required=True, help="table family name or JSON path")
    parser.add_argument("--quality", type=int, default=None, help="family member (default: the family default)")
    parser.add_argument("--subsampling", choices=SUBSAMPLINGS, default=None, help="override the table's subsampling")
    parser.add_argument("--optimize", action="store_true", help="optimized Huffman tables")
    parser.add_argument("--progressive", action="store_true", help="progressive JPEG (default: baseline)")
    parser.add_argument(
        "--trellis",
        action="store_true",
        help="mozjpeg's trellis quantization: same table, fewer bytes (baseline unless --progressive)",
    )
    add_allow_16bit_argument(parser)
    parser.add_argument("--strip", action="store_true", help="drop EXIF, ICC profile, XMP and comments")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.set_defaults(handler=run)


def add_allow_16bit_argument(parser: argparse.ArgumentParser) -> None:
    """``--allow-16bit``: accept and write tables with steps above 255 (``allow_16bit=True``)."""
    parser.add_argument(
        "--allow-16bit",
        action="store_true",
        help="accept a table with steps above 255: a 16-bit (extended, non-baseline) JPEG table, which many "
        "decoders reject",
    )


def writer_note(table: str, quality: int | None, trellis: bool) -> str | None:
    """A line for stderr when ``table`` was tuned for another writer than the one this command uses
    (e.g. a ``dnnjpeg family --writer trellis`` table written without ``--trellis``); else ``None``.
    Tables that cannot be resolved give ``None`` (the command's own error names them)."""
    try:
        tuned_for = tuned_writer(resolve_table(table, quality))
    except (OSError, ValueError):
        return None
    if tuned_for is None or (tuned_for == "trellis" and trellis):
        return None
    used = "trellis" if trellis else "libjpeg"
    hint = "; pass --trellis to write what it was tuned for" if tuned_for == "trellis" else ""
    return (f"note: table {table!r} was tuned to be written by the {tuned_for} encoder; this writes it with "
            f"{used} (valid JPEG, but not the size and accuracy it was tuned for){hint}")


def run(args: argparse.Namespace) -> int:
    src: Path = args.input
    dst: Path = args.output
    if not args.force and dst.exists():
        raise DnnjpegError(f"{dst}: already exists (pass --force to overwrite)")
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise DnnjpegError(f"{dst}: output is the input file; refusing to overwrite it")
    # A table problem names the table (and is found before the image is read); image problems name the image.
    options = EncodeOptions(
        args.table, args.quality, subsampling=args.subsampling, optimize=args.optimize, progressive=args.progressive,
        writer="trellis" if args.trellis else "libjpeg", metadata="strip" if args.strip else "keep",
        allow_16bit=args.allow_16bit,
    )  # fmt: skip
    note = writer_note(args.table, args.quality, args.trellis)
    if note:
        print(note, file=sys.stderr)
    try:
        with Image.open(src) as im:
            im.load()
            tmp = dst.with_name(f".{dst.name}.dnnjpeg-tmp")
            try:
                save(im, tmp, options=options)
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DnnjpegError(f"{src}: {exc}") from None
    before = src.stat().st_size
    after = dst.stat().st_size
    print(f"{src} -> {dst}: {before} -> {after} bytes")
    return 0
