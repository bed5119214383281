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
from . import register_command
from ._flags import add_encode_arguments, add_quality, add_table


@register_command(
    "compress",
    help="compress one image to a JPEG with a dnnjpeg table (baseline unless --progressive)",
    example=(
        "dnnjpeg compress photo.png photo.jpg --table efficientnet_lite0 --quality 50",
        "dnnjpeg compress photo.png photo.jpg --table efficientnet_lite0 --writer trellis --strip-metadata",
    ),
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="input image (any format Pillow reads)")
    parser.add_argument("output", type=Path, help="output JPEG path")
    add_table(parser)
    add_quality(parser)
    add_encode_arguments(parser)
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.set_defaults(handler=run)


def writer_note(table: str, quality: int | None, writer: str | None) -> str | None:
    """A line for stderr when ``table`` was tuned for another writer than ``writer`` (``--writer``; ``None``
    is libjpeg), e.g. a ``dnnjpeg family --writer trellis`` table written by libjpeg; else ``None``.
    Tables that cannot be resolved give ``None`` (the command's own error names them)."""
    try:
        tuned_for = tuned_writer(resolve_table(table, quality))
    except (OSError, ValueError):
        return None
    used = writer or "libjpeg"
    if tuned_for is None or tuned_for == used:
        return None
    hint = "; pass --writer trellis to write what it was tuned for" if tuned_for == "trellis" else ""
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
        writer=args.writer or "libjpeg", metadata="keep" if args.keep_metadata else "strip",
        allow_16bit=args.allow_16bit,
    )  # fmt: skip
    note = writer_note(args.table, args.quality, args.writer)
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
