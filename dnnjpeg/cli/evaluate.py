"""``dnnjpeg evaluate --model M --data DIR (--table T [--quality Q] | --standard Q | --uncompressed)``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from . import register_command

if TYPE_CHECKING:
    from ..evaluation.evaluate import Evaluator
    from ..qtable import QTable


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``evaluate`` and ``curve``."""
    parser.add_argument("--model", required=True, help="efficientnet_lite0|1|2, torchvision:NAME or timm:NAME")
    parser.add_argument("--data", required=True, help="dataset folder (labels.csv, ImageFolder or unlabelled)")
    parser.add_argument(
        "--protocol",
        choices=("crop224", "native"),
        default="crop224",
        help="crop224: the seed's Resize(256)+CenterCrop(224) then JPEG (default); "
        "native: JPEG at stored resolution, then the model's preprocessing",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--batch-size", type=int, default=None, help="inference batch size (default: 64 on CUDA, 8 on CPU)")
    parser.add_argument("--workers", type=int, default=None, help="JPEG threads (default: usable cores)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: CUDA when available)")
    parser.add_argument(
        "--no-pretrained",
        action="store_true",
        help="torchvision:/timm: models with random weights (tests; no download)",
    )
    add_weights_argument(parser)
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk caches")
    add_writer_argument(parser)
    add_fold_argument(parser)


def add_weights_argument(parser: argparse.ArgumentParser) -> None:
    """``--weights PATH``: a torchvision:/timm: model's weights from a file (``dnnjpeg.evaluation.models.get(weights=...)``)."""
    parser.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="torchvision:/timm: models: load the weights from this file (a state dict or checkpoint saved with "
        "torch.save) instead of downloading them",
    )


def add_writer_argument(parser: argparse.ArgumentParser) -> None:
    """``--writer ENCODER``: who writes the tables (see ``Evaluator(writer=...)``)."""
    parser.add_argument(
        "--writer",
        default=None,
        metavar="ENCODER",
        help="write every table with this encoder of dnnjpeg.encoders instead of libjpeg (e.g. trellis: what "
        "recompress --trellis writes); standard JPEG stays libjpeg's",
    )


def add_fold_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-fold-batchnorm``: the model exactly as given (see ``Evaluator(fold_batchnorm=...)``)."""
    parser.add_argument(
        "--no-fold-batchnorm",
        action="store_true",
        help="run the model exactly as given, without folding its batch norms into the convolutions "
        "(slower; bit-identical to results and journals made before dnnjpeg folded them)",
    )


def require_baseline(table: QTable, name: str) -> QTable:
    """``table`` (given as ``--table name``), refused before the model loads when the evaluator cannot write it."""
    from ..qtable import QTableError

    if not table.is_baseline:
        raise QTableError(f"table {name!r} has steps above 255 (16-bit JPEG); the evaluator writes baseline JPEG only")
    return table


def make_evaluator(args: argparse.Namespace, **overrides: Any) -> Evaluator:
    """The :class:`~dnnjpeg.evaluation.evaluate.Evaluator` a command's model and data options describe.

    ``overrides`` replace the keyword arguments taken from ``args`` (e.g. ``workers`` where a command
    names its JPEG threads differently, ``backend``, ``progress``).
    """
    from ..evaluation.evaluate import Evaluator
    from ..evaluation.models import get

    model = get(args.model, device=args.device, pretrained=False if args.no_pretrained else None,
                weights=getattr(args, "weights", None))
    options: dict[str, Any] = {
        "protocol": args.protocol,
        "batch_size": args.batch_size,
        "workers": getattr(args, "workers", None),
        "limit": args.limit,
        "cache": not args.no_cache,
        "fold_batchnorm": not args.no_fold_batchnorm,
        "writer": getattr(args, "writer", None),
        "progress": sys.stderr.isatty() and not getattr(args, "json", False) or getattr(args, "progress", False),
    }
    options.update(overrides)
    return Evaluator(model, args.data, **options)


@register_command("evaluate", help="measure a table's accuracy and compression rate on a dataset")
def configure(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", help="table family name or JSON path")
    which.add_argument("--standard", type=int, metavar="Q", help="libjpeg standard tables at quality Q")
    which.add_argument("--uncompressed", action="store_true", help="no JPEG: the reference accuracy")
    parser.add_argument("--quality", type=int, default=None, help="family member for --table")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--per-image", action="store_true", help="with --json: include per-image arrays")
    parser.add_argument("--progress", action="store_true", help="progress bars even when not on a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..families import resolve_table
    from ..qtable import QTable

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
