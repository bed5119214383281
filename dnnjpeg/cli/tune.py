"""``dnnjpeg tune --model M --data DIR --method NAME --budget N --out TABLE.json``: search a table."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import DnnjpegError
from ..search import available_methods, tune
from ..search.objectives import parse_objective
from ..search.runner import tune as search_tune
from ..search.space import SearchSpace
from ..search.storage import parse_storage
from . import register_command
from ._flags import (
    PROTOCOL,
    TUNE_CURVE,
    add_evaluator_arguments,
    add_objective,
    add_out,
    add_progress,
    add_project,
    add_quality,
    add_seed,
    add_space,
    add_workers,
    default_of,
    parse_qualities,
    progress_wanted,
)
from .evaluate import make_evaluator

METHODS_HELP = "sorted, bounded, bayes, bandit, deepn, fisher, fisher-each, nsga2, shaped (see docs/search.md)"


@register_command(
    "tune",
    help="search a quantization table for a model (resumable; several workers may share a study)",
    example=(
        "dnnjpeg tune --model efficientnet_lite0 --data val/ --method sorted --budget 100 --out lite0.json",
        "dnnjpeg tune --model efficientnet_lite0 --data val/ --method fisher --quality 50 --project --budget 30 "
        "--workers 2 --out mine.json",
    ),
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser, old_workers=False, jpeg_threads_help="JPEG threads per worker process "
                            "(default: the usable cores)")
    parser.add_argument("--method", required=True, help=METHODS_HELP)
    parser.add_argument("--budget", type=int, required=True,
                        help="total evaluations in the study; rerunning with a larger budget adds the difference")
    add_out(parser, required=True, help="write the best table (QTable JSON with provenance) here")
    add_objective(parser, default=default_of(search_tune, "objective"))
    add_space(parser, default=default_of(search_tune, "space"))
    parser.add_argument("--storage", default=None,
                        help="journal file path (default: OUT with suffix .journal) or an RDB URL "
                        "(postgresql://user:pw@host/db, sqlite:///file.db)")
    parser.add_argument("--study", default=None, help="study name (default METHOD-OBJECTIVE-SPACE-seedS)")
    add_seed(parser)
    add_workers(parser, default=default_of(search_tune, "workers"), help="this many on this machine, each "
                "with its own evaluator, sharing the study (default: %(default)s)")
    add_quality(parser, "scale the result to the size of standard JPEG at this quality (size-matched output)")
    add_project(parser, default=default_of(search_tune, "project"),
                on="scale every candidate to the size of standard JPEG at --quality before evaluating it (the "
                "search explores table shapes only; see docs/search.md)")
    parser.add_argument("--curve", default=None, help="standard curve JSON from `dnnjpeg curve` (same model and images)")
    parser.add_argument("--curve-qualities", default=TUNE_CURVE, metavar="LIST",
                        help="standard qualities measured for the objective's curve (default: %(default)s)")
    parser.add_argument("--fidelity", default=None, metavar="MIN[:ETA]",
                        help="successive halving: evaluate on MIN images first, prune the worse, ETA times more "
                        "images per rung (default ETA 3)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option (repeatable; VALUE is JSON when it parses, else a string)")
    parser.add_argument("--pareto", default=None,
                        help="write the accuracy-size Pareto front here (default for nsga2: OUT with .pareto.json)")
    add_progress(parser)
    parser.set_defaults(handler=run)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["k=1.5", "variant=uniform"]`` -> ``{"k": 1.5, "variant": "uniform"}``."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise DnnjpegError(f"--option {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def default_journal(out: str) -> Path:
    """The journal next to the output table: ``x.json`` -> ``x.journal``."""
    p = Path(out)
    return p.with_suffix(".journal") if p.suffix else p.with_name(p.name + ".journal")


def _command(args: argparse.Namespace, storage: str) -> str:
    parts = ["dnnjpeg", "tune", "--model", args.model, "--data", args.data, "--method", args.method,
             "--budget", str(args.budget), "--objective", args.objective, "--space", args.space,
             "--seed", str(args.seed), "--storage", parse_storage(storage).display]
    workers = args.workers if args.workers != default_of(search_tune, "workers") else None
    for flag, value in (("--study", args.study), ("--workers", workers),
                        ("--quality", args.quality), ("--curve", args.curve), ("--fidelity", args.fidelity),
                        ("--protocol", args.protocol if args.protocol != PROTOCOL else None), ("--limit", args.limit),
                        ("--writer", args.writer), ("--weights", args.weights),
                        ("--curve-qualities", args.curve_qualities if args.curve_qualities != TUNE_CURVE else None)):
        if value is not None:
            parts += [flag, str(value)]
    if args.project:
        parts.append("--project")
    if args.no_fold_batchnorm:
        parts.append("--no-fold-batchnorm")
    for item in args.option:
        parts += ["--option", item]
    parts += ["--out", args.out]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    if args.method not in available_methods():
        raise DnnjpegError(f"unknown --method {args.method!r}; available: {', '.join(available_methods())}")
    parse_objective(args.objective)
    SearchSpace.parse(args.space)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DnnjpegError(f"--out {out}: folder {out.parent} does not exist")
    if args.project and args.quality is None:
        raise DnnjpegError("--project needs --quality (the standard quality whose size every candidate gets)")
    storage = args.storage or str(default_journal(args.out))
    options = parse_options(args.option)
    qualities = parse_qualities(args.curve_qualities)
    progress = progress_wanted(args)
    evaluator = make_evaluator(args, progress=False)
    labelled = evaluator.dataset.labelled
    with evaluator:
        result = tune(
            evaluator, args.method, budget=args.budget, objective=args.objective, seed=args.seed, storage=storage,
            study_name=args.study, space=args.space, workers=args.workers, quality=args.quality, curve=args.curve,
            curve_qualities=qualities, fidelity=args.fidelity, options=options, progress=progress,
            command=_command(args, storage), project=args.project,
        )
    result.table.to_json(out)
    pareto_path = args.pareto or (str(out.with_suffix(".pareto.json")) if args.method == "nsga2" else None)
    if pareto_path:
        Path(pareto_path).write_text(json.dumps(pareto_document(result), indent=2) + "\n", encoding="utf-8")
    m = result.metrics
    print(
        f"best: trial {result.trial} of {result.n_complete} complete ({result.n_pruned} pruned) in study "
        f"{result.study_name!r} [{result.storage}]"
    )
    # on an unlabelled folder top-1 is agreement with the uncompressed prediction: say so, as validate does
    hit = "top1" if labelled else "agreement"
    print(f"  objective {args.objective} = {result.value:+.5f}   {hit} {m['top1']:.4f}   CR {m['cr']:.3f}   "
          f"bpp {m['bpp']:.4f}   ce {m['ce']:.4f}   kl {m['kl']:.5f}")
    print(f"wrote {out}" + (f" and {pareto_path} ({len(result.pareto)} tables)" if pareto_path else ""), file=sys.stderr)
    return 0


def pareto_document(result: Any) -> dict[str, Any]:
    """The Pareto front as JSON: ``{"format": "dnnjpeg-pareto", "members": [QTable dicts]}``."""
    return {
        "format": "dnnjpeg-pareto",
        "version": 1,
        "study": result.study_name,
        "storage": result.storage,
        "objective": result.config.get("objective"),
        "axes": ["signal (higher is better)", "bytes_mean (lower is better)"],
        "members": [t.to_dict() for t in result.pareto],
    }
