"""``dnnjpeg recompress SRC DST --table T``: recompress a dataset folder (see docs/recompress.md).

``dnnjpeg recompress SRC DST --model NAME --max-kl TAU``: the model in the loop chooses each image's
encoding from a ladder instead (docs/recompress.md, "Model in the loop").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..batch import RecompressOptions, recompress
from ..batch.choices import plot_path
from ..errors import DnnjpegError
from ..options import EncodeOptions
from ..ratecontrol import DEFAULT_LADDER, Criterion, RateControl
from . import register_command
from ._flags import (
    MODEL_HELP,
    add_deprecated,
    add_device,
    add_encode_arguments,
    add_model,
    add_progress,
    add_quality,
    add_table,
    add_workers,
    default_of,
    progress_wanted,
)
from .compress import writer_note


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a positive integer")
    return value


@register_command(
    "recompress",
    help="recompress a dataset folder into another one (parallel, resumable, never touches SRC)",
    example=(
        "dnnjpeg recompress train/ train-dnn/ --table efficientnet_lite0 --quality 50",
        "dnnjpeg recompress train/ train-dnn/ --model efficientnet_lite0 --max-kl 0.05 --keep-top1 "
        "--report-json run.json  # also draws run.png: chosen rungs, bytes saved",
    ),
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (parser.epilog or "") + (
        "\n\nExit status: 0 every file finished, 1 some file failed (listed in the summary and --report-json),\n"
        "2 usage error or disk full, 130 interrupted.  Rerun the same command to resume; see docs/recompress.md."
    )
    parser.add_argument("src", type=Path, metavar="SRC", help="folder to read (never modified without --in-place)")
    parser.add_argument("dst", type=Path, nargs="?", metavar="DST", help="folder to write; must not overlap SRC")
    add_table(parser, required=False, help="table family name or JSON path (required unless --model)")
    add_quality(parser)
    add_workers(parser, default=default_of(RecompressOptions, "workers"),
                help="this many on this machine (default: one per core; 0: none, all in this process)")
    parser.add_argument(
        "--report-json",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="write a JSON report here; with --model also FILE.png beside it (chosen rungs, bytes saved)",
    )
    add_deprecated(parser, "--report", use="--report-json", dest="report_json", type=Path, metavar="FILE.json")
    parser.add_argument("--images-only", action="store_true", help="do not copy non-image files to DST")
    parser.add_argument("--in-place", action="store_true", help="replace images inside SRC (atomically); give no DST")
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
        default=default_of(RecompressOptions, "extension"),
        help="name of a re-encoded PNG/BMP/TIFF/WebP: keep (a.png), replace (a.jpg), append (a.png.jpg) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--follow-symlinks", action="store_true", help="follow every symlink, also those pointing out of SRC"
    )
    add_encode_arguments(parser, strip_help="drop EXIF (except its orientation), ICC profile, XMP and comments")
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
        "--batch-size", type=_positive_int, default=None, help="files per task (default: up to 32 locally, smaller "
        "towards the end of the run; 8 on Dask; with --model 32 in one process and on Dask)"
    )
    mg = parser.add_argument_group(
        "model in the loop",
        "Instead of --table: per image, the smallest rung of a ladder of encodings that every --model\n"
        "still reads like the source (KL of the softmax at most --max-kl).  A JPEG keeps its own bytes\n"
        "when no smaller rung holds; an image where no rung holds gets the top rung.",
    )
    add_model(mg, repeatable=True, help=f"{MODEL_HELP}; repeat for several (every one must hold)")
    mg.add_argument("--max-kl", type=float, default=None, metavar="TAU", help="largest KL divergence allowed (nats)")
    mg.add_argument("--keep-top1", action="store_true", help="also keep every model's top-1 class")
    mg.add_argument("--top-k", type=int, default=None, metavar="K", help="also keep every model's set of top-K classes")
    mg.add_argument(
        "--ladder",
        default=None,
        metavar="SPEC",
        help=f"candidate encodings, lowest quality first (default: {DEFAULT_LADDER}): trellis, standard, mozjpeg, jpegli, "
        "each with optional qualities (standard:20-90:5, trellis:30,50,70), or family:NAME",
    )
    mg.add_argument(
        "--min-quality", type=int, default=None, metavar="Q", help="never choose a rung below this quality"
    )
    add_device(mg)
    add_progress(parser)
    parser.set_defaults(handler=run)


#: Options of the model in the loop, as the CLI spells them.
_MODEL_OPTIONS = (
    ("max_kl", "--max-kl"),
    ("keep_top1", "--keep-top1"),
    ("top_k", "--top-k"),
    ("ladder", "--ladder"),
    ("min_quality", "--min-quality"),
    ("device", "--device"),
)
#: Table-path encoding options and what to use with --model instead.
_ENCODING_OPTIONS = (
    ("writer", "--writer", "use --ladder trellis (trellis quantization) or another --ladder"),
    ("progressive", "--progressive", "use --ladder mozjpeg (progressive)"),
    ("optimize", "--optimize", "use --ladder trellis or --ladder mozjpeg (optimized Huffman tables)"),
    ("subsampling", "--subsampling", "the ladder's rungs write 4:2:0"),
)
#: RateControl's option names -> the flags (its ValueErrors name the option first).
_FLAG_OF = {"max_kl": "--max-kl", "top_k": "--top-k", "min_quality": "--min-quality", "ladder": "--ladder",
            "models": "--model", "device": "--device"}  # fmt: skip


def rate_control_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~dnnjpeg.ratecontrol.RateControl` of ``--model ...`` (``None`` without ``--model``);
    ``DnnjpegError`` in the CLI's words for options that do not go together or are out of range."""
    given = [flag for dest, flag in _MODEL_OPTIONS if getattr(args, dest) not in (None, False)]
    if not args.model:
        if given:
            raise DnnjpegError(f"{given[0]} needs --model (the model in the loop); with --table it does not apply")
        if args.table is None:
            raise DnnjpegError("give --table NAME, or --model NAME --max-kl TAU for the model in the loop")
        return None
    if args.table is not None or args.quality is not None:
        flag = "--table" if args.table is not None else "--quality"
        raise DnnjpegError(f"{flag} cannot be used with --model: the ladder replaces the table (--ladder SPEC, "
                           "default standard)")
    for dest, flag, instead in _ENCODING_OPTIONS:
        if getattr(args, dest) not in (None, False):
            raise DnnjpegError(f"{flag} cannot be used with --model: the ladder decides how images are encoded; "
                               f"{instead}")
    if args.max_kl is None:
        raise DnnjpegError("--model needs --max-kl TAU (the largest KL divergence allowed, in nats, e.g. 0.05)")
    if args.device is not None:
        import torch

        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError):
            raise DnnjpegError(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
        if device.type == "cuda" and not args.scheduler and not torch.cuda.is_available():
            raise DnnjpegError(f"--device {args.device}: torch sees no CUDA device on this machine")

    try:
        return RateControl(
            models=tuple(args.model),
            criterion=Criterion(args.max_kl, keep_top1=args.keep_top1, top_k=args.top_k),
            ladder=args.ladder or DEFAULT_LADDER,
            min_quality=args.min_quality,
            device=args.device,
        )
    except ValueError as exc:
        text = str(exc)
        for name, flag in _FLAG_OF.items():
            if text.startswith(name):
                text = flag + text[len(name) :]
                break
        raise DnnjpegError(text) from None


def run(args: argparse.Namespace) -> int:
    rate_control = rate_control_from_args(args)
    note = None if rate_control is not None else writer_note(args.table, args.quality, args.writer)
    if note:
        print(note, file=sys.stderr)
    try:
        options = EncodeOptions(
            "standard" if args.table is None else args.table, args.quality, subsampling=args.subsampling,
            optimize=args.optimize, progressive=args.progressive, writer=args.writer or "libjpeg",
            metadata="keep" if args.keep_metadata else "orientation", allow_16bit=args.allow_16bit,
        )  # fmt: skip
        summary = recompress(
            args.src,
            args.dst,
            workers=args.workers,
            options=options,
            report=args.report_json,
            images_only=args.images_only,
            in_place=args.in_place,
            keep_smaller=args.keep_smaller,
            retry_failed=args.retry_failed,
            restart=args.restart,
            extension=args.extension,
            follow_symlinks=args.follow_symlinks,
            max_pixels=args.max_pixels,
            scheduler=args.scheduler,
            shard=args.shard,
            fsync=args.fsync,
            batch_size=args.batch_size,
            progress=progress_wanted(args),
            rate_control=rate_control,
        )
    except KeyboardInterrupt:
        print("dnnjpeg recompress: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(summary.format())
    if args.report_json is not None:
        print(f"report: {args.report_json}")
        if rate_control is not None:
            print(f"plot: {plot_path(args.report_json)}")
    return summary.exit_code
