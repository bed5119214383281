"""``dnnjpeg crossval --model M --data DIR --methods A,B [--k 5] [--json] [--out DIR]``."""

from __future__ import annotations

import argparse
import json
import sys

from . import register_command
from .curve import parse_qualities
from .evaluate import add_common_arguments, make_evaluator
from .validate import add_statistics_arguments


@register_command("crossval", help="tune on k-1 class-disjoint folds, validate on the held-out fold, per method")
def configure(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--methods", required=True,
                        help="comma list: search methods of 'dnnjpeg tune', or fixed:TABLE[@Q] for a fixed "
                             "table (a control, e.g. fixed:resnet50 or fixed:standard@50)")
    parser.add_argument("--k", type=int, default=5, help="number of class-disjoint folds (default 5)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the class-to-fold assignment (default 0)")
    parser.add_argument("--budget", type=int, default=100, help="candidate evaluations per search (default 100)")
    parser.add_argument("--objective", default="fitness",
                        help="search objective, as for 'dnnjpeg tune' (default fitness; e.g. size-matched-kl:50)")
    parser.add_argument("--quality", type=int, default=None,
                        help="scale each tuned table to the size of standard JPEG at this quality on its "
                             "training folds (default: keep the search's best table as is)")
    parser.add_argument("--space", default="single",
                        help="search space as for 'dnnjpeg tune' (default single: one table for Y, Cb, Cr)")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of fold 0's search; fold i uses seed+i")
    parser.add_argument("--qualities", default="5:95:5",
                        help="standard qualities for the equal-CR comparison on each fold (default 5:95:5)")
    add_statistics_arguments(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="save each fold's table (METHOD-foldI.json) and crossval.json here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--progress", action="store_true", help="progress bars even when not on a terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..validation.crossval import crossval, format_table, parse_method

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError(f"--methods {args.methods!r} names no method")
    if len(set(methods)) != len(methods):
        raise ValueError(f"--methods {args.methods!r} names a method twice")
    for m in methods:
        parse_method(m)
    if args.k < 2:
        raise ValueError(f"--k must be >= 2, got {args.k}")
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    qualities = parse_qualities(args.qualities)
    log = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    ev = make_evaluator(args)
    try:
        cv = crossval(ev, methods, k=args.k, fold_seed=args.fold_seed, qualities=qualities,
                      budget=args.budget, objective=args.objective, target_quality=args.quality,
                      space=args.space,
                      search_seed=args.search_seed, resamples=args.resamples, confidence=args.confidence,
                      seed=args.seed, table_dir=args.out, log=log)
    finally:
        ev.close()
    d = cv.to_dict()
    if args.out:
        from pathlib import Path

        (Path(args.out) / "crossval.json").write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(d))
        return 0
    print(f"{cv.model} on {cv.data} [{cv.protocol}], n={cv.n}, {cv.k} class-disjoint folds (seed {cv.seed})")
    print("cells: top-1 gain over standard JPEG at equal CR on the held-out fold, in points "
          "(p = exact McNemar, t = paired t-test, both against the standard quality of nearest size)")
    print(format_table(cv))
    return 0
