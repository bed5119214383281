"""``dnnjpeg recompress SRC DST --table T``: recompress a dataset folder (see docs/recompress.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..qtable import SUBSAMPLINGS
from . import register_command
from .compress import add_allow_16bit_argument


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive integer")
    return value


@register_command(
    "recompress",
    help="recompress a dataset folder into another one (parallel, resumable, never touches SRC)",
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Exit status: 0 every file finished, 1 some file failed (listed in the summary and --report), "
        "2 usage error or disk full, 130 interrupted.  Rerun the same command to resume; see docs/recompress.md."
    )
    parser.add_argument("src", type=Path, metavar="SRC", help="folder to read (never modified without --in-place)")
    parser.add_argument("dst", type=Path, nargs="?", metavar="DST", help="folder to write; must not overlap SRC")
    parser.add_argument("--table", required=True, help="table family name or JSON path")
    parser.add_argument("--quality", type=int, default=None, help="family member (default: the family default)")
    parser.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: one per core; 0: no subprocess)"
    )
    parser.add_argument("--report", type=Path, default=None, metavar="FILE.json", help="write a JSON report here")
    parser.add_argument("--images-only", action="store_true", help="do not copy non-image files to DST")
    parser.add_argument("--in-place", action="store_true", help="replace images inside SRC (atomically); give no DST")
    parser.add_argument("--strip", action="store_true", help="drop EXIF (except its orientation), ICC profile, XMP and comments")
    parser.add_argument(
        "--keep-smaller", action="store_true", help="keep a JPEG's original bytes when re-encoding would not shrink it"
    )
    parser.add_argument("--retry-failed", action="store_true", help="redo files an earlier run recorded as failed")
    parser.add_argument(
        "--restart", action="store_true", help="redo files DST holds with other settings instead of refusing"
    )
    parser.add_argument(
        "--extension",
        choices=("keep", "replace", "append"),
        default="keep",
        help="name of a re-encoded PNG/BMP/TIFF/WebP: keep (a.png, default), replace (a.jpg), append (a.png.jpg)",
    )
    parser.add_argument(
        "--follow-symlinks", action="store_true", help="follow every symlink, also those pointing out of SRC"
    )
    parser.add_argument("--subsampling", choices=SUBSAMPLINGS, default=None, help="override the table's subsampling")
    parser.add_argument("--optimize", action="store_true", help="optimized Huffman tables")
    parser.add_argument("--progressive", action="store_true", help="progressive JPEG (default: baseline)")
    parser.add_argument(
        "--trellis",
        action="store_true",
        help="mozjpeg's trellis quantization with the same table: smaller files (slower; baseline unless "
        "--progressive)",
    )
    add_allow_16bit_argument(parser)
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=None,
        help="fail images with more pixels (default: Pillow's decompression-bomb limit)",
    )
    parser.add_argument(
        "--scheduler", default=None, metavar="ADDRESS", help="run on this Dask scheduler (e.g. tcp://10.0.0.1:8786)"
    )
    parser.add_argument(
        "--shard", default=None, metavar="I/N", help="process only shard I of N (0-based), e.g. $SLURM_ARRAY_TASK_ID/8"
    )
    fs = parser.add_mutually_exclusive_group()
    fs.add_argument("--fsync", dest="fsync", action="store_true", default=None, help="fsync outputs (default in place)")
    fs.add_argument("--no-fsync", dest="fsync", action="store_false", help="never fsync")
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, help="files per task (default: up to 32 locally, smaller towards the end of the run; 8 on Dask)"
    )
    pg = parser.add_mutually_exclusive_group()
    pg.add_argument("--progress", dest="progress", action="store_true", default=None, help="progress bar on stderr")
    pg.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar (default if not a tty)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..batch import recompress
    from .compress import writer_note

    note = writer_note(args.table, args.quality, args.trellis)
    if note:
        print(note, file=sys.stderr)
    try:
        summary = recompress(
            args.src,
            args.dst,
            args.table,
            args.quality,
            args.workers,
            report=args.report,
            images_only=args.images_only,
            in_place=args.in_place,
            strip=args.strip,
            keep_smaller=args.keep_smaller,
            retry_failed=args.retry_failed,
            restart=args.restart,
            extension=args.extension,
            follow_symlinks=args.follow_symlinks,
            subsampling=args.subsampling,
            optimize=args.optimize,
            progressive=args.progressive,
            trellis=args.trellis,
            allow_16bit=args.allow_16bit,
            max_pixels=args.max_pixels,
            scheduler=args.scheduler,
            shard=args.shard,
            fsync=args.fsync,
            batch_size=args.batch_size,
            progress=sys.stderr.isatty() if args.progress is None else args.progress,
        )
    except KeyboardInterrupt:
        print("dnnjpeg recompress: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary.format())
    if args.report is not None:
        print(f"report: {args.report}")
    return summary.exit_code
