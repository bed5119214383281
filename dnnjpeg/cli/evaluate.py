"""``dnnjpeg evaluate --model M --data DIR (--table T [--quality Q] | --standard Q | --uncompressed)``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..evaluation.evaluate import Evaluator
from ..evaluation.models import get
from ..families import resolve_table
from ..qtable import QTable, QTableError
from . import register_command
from ._flags import add_evaluator_arguments, add_json, add_progress, add_quality, progress_wanted

if TYPE_CHECKING:
    from ..evaluation.evaluate import Evaluator
    from ..qtable import QTable

#: The name of :func:`~dnnjpeg.cli._flags.add_evaluator_arguments` before the shared flags moved there.
add_common_arguments = add_evaluator_arguments


def require_baseline(table: QTable, name: str) -> QTable:
    """``table`` (given as ``--table name``), refused before the model loads when the evaluator cannot write it."""

    if not table.is_baseline:
        raise QTableError(f"table {name!r} has steps above 255 (16-bit JPEG); the evaluator writes baseline JPEG only")
    return table


def make_evaluator(args: argparse.Namespace, **overrides: Any) -> Evaluator:
    """The :class:`~dnnjpeg.evaluation.evaluate.Evaluator` a command's model and data options describe.

    ``overrides`` replace the keyword arguments taken from ``args`` (e.g. ``workers`` where a command
    names its JPEG threads differently, ``backend``, ``progress``).  Progress: ``--progress``/``--no-progress``,
    else when stderr is a terminal and the command does not print JSON.
    """

    model = get(args.model, device=args.device, pretrained=False if args.no_pretrained else None,
                weights=getattr(args, "weights", None))
    options: dict[str, Any] = {
        "protocol": args.protocol,
        "batch_size": args.batch_size,
        "workers": getattr(args, "jpeg_threads", None),
        "limit": args.limit,
        "cache": not args.no_cache,
        "fold_batchnorm": not args.no_fold_batchnorm,
        "writer": getattr(args, "writer", None),
        "progress": progress_wanted(args, sys.stderr.isatty() and not getattr(args, "json", False)),
    }
    options.update(overrides)
    return Evaluator(model, args.data, **options)


@register_command(
    "evaluate",
    help="measure a table's accuracy and compression rate on a dataset",
    example="dnnjpeg evaluate --model efficientnet_lite0 --data val/ --table efficientnet_lite0 --quality 50",
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", metavar="NAME", help="table family name or JSON path")
    which.add_argument("--standard", type=int, metavar="Q", help="libjpeg standard tables at quality Q")
    which.add_argument("--uncompressed", action="store_true", help="no JPEG: the reference accuracy")
    add_quality(parser, "family member for --table (default: the family default)")
    add_json(parser)
    parser.add_argument("--per-image", action="store_true", help="with --json: include per-image arrays")
    add_progress(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.quality is not None and args.table is None:
        raise ValueError("--quality selects a member of --table; use --standard Q for standard JPEG")
    if args.table is not None:
        table = require_baseline(resolve_table(args.table, args.quality), args.table)
    elif args.standard is not None:
        table = QTable.standard(args.standard)
    else:
        table = None
    with make_evaluator(args) as ev:
        result = ev.evaluate(table)
        writer = ev.writer_for(table)
    if args.json:
        print(json.dumps(result.to_dict(per_image=args.per_image)))
        return 0
    s = result.summary()
    label = (
        "uncompressed"
        if table is None
        else (
            f"standard q{args.standard}"
            if args.standard is not None
            else f"{args.table}" + (f" q{args.quality}" if args.quality is not None else "")
        )
    )
    if writer is not None:
        label += f" written by {writer}"
    print(f"{result.model} on {result.data} [{result.protocol}], {label}, n={s['n']}")
    print(f"  top1 {s['top1']:.4f}  top5 {s['top5']:.4f}  agreement {s['agreement']:.4f}")
    print(f"  ce {s['ce']:.4f}  kl {s['kl']:.4f}")
    print(f"  bytes_mean {s['bytes_mean']:.1f}  cr {s['cr']:.3f}  bpp {s['bpp']:.4f}  ({result.seconds:.1f} s)")
    return 0
