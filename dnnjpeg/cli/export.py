"""``dnnjpeg export NAME --format F [-o/--out FILE]`` and ``dnnjpeg export --all [--out DIR] [--check]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import DnnjpegError
from ..export import FORMATS, REGENERATE_COMMAND, check_exported, export_all, export_text
from ..families import load
from . import register_command
from ._flags import add_allow_16bit, add_out, add_quality

#: Where ``--all`` writes without ``--out``: the plugins folder of a checkout.
ALL_DIR = "plugins"


@register_command(
    "export",
    help="export a table for cjpeg/mozjpeg, ImageMagick, C or JSON",
    example=(
        "dnnjpeg export resnet50 --format imagemagick --out resnet50-q50.xml",
        "dnnjpeg export --all --out plugins --check",
    ),
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="table family name or JSON path")
    add_quality(parser)
    parser.add_argument("--format", choices=FORMATS, help="output format (required with NAME)")
    add_out(parser, required=False, metavar="PATH", old=("--output",),
            help=f"with NAME: the output file (default: standard output); with --all: the folder (default: {ALL_DIR})")
    parser.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    parser.add_argument(
        "--all",
        action="store_true",
        help=f"write the files of every shipped table into OUT/<tool>/tables/ ({REGENERATE_COMMAND})",
    )
    parser.add_argument("--check", action="store_true", help="with --all: write nothing, exit 1 if OUT is stale")
    add_allow_16bit(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.all:
        if args.name is not None or args.format or args.quality is not None:
            raise DnnjpegError("--all exports every table; do not give NAME, --format or --quality with it")
        return _run_all(Path(args.out or ALL_DIR), args.check)
    if args.check:
        raise DnnjpegError("--check only applies to --all")
    if args.name is None:
        raise DnnjpegError("give a table NAME (or --all)")
    if args.format is None:
        raise DnnjpegError(f"--format is required: one of {', '.join(FORMATS)}")
    qt = load(args.name, args.quality, allow_16bit=args.allow_16bit)
    label = str(qt.meta.get("name") or Path(args.name).stem)
    dst = None if args.out is None or args.out == "-" else Path(args.out)
    if dst is None:
        sys.stdout.write(export_text(qt, args.format, label))
        return 0
    text = export_text(qt, args.format, label, dst.name)
    if dst.exists() and not args.force:
        raise DnnjpegError(f"{dst}: already exists (pass --force to overwrite)")
    if dst.is_dir():
        raise DnnjpegError(f"{dst}: is a folder, expected a file name")
    tmp = dst.with_name(f".{dst.name}.dnnjpeg-tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dst)
    except OSError as exc:
        raise DnnjpegError(f"{dst}: cannot write: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{dst}: {args.format} tables for {label}" + (f" q{qt.meta['quality']}" if "quality" in qt.meta else ""))
    return 0


def _run_all(out: Path, check: bool) -> int:
    if check:
        problems = check_exported(out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"{out}: {len(problems)} stale file(s); run `dnnjpeg export --all --out {out}`", file=sys.stderr)
            return 1
        print(f"{out}: exported tables are current")
        return 0
    written = export_all(out)
    print(f"{out}: {len(written)} files current")
    return 0
