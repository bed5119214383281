"""``dnnjpeg crossval --model M --data DIR --methods A,B [--k 5] [--json] [--out DIR]``."""

from __future__ import annotations

import argparse
import functools
import json
import sys

from ..validation.crossval import crossval, format_table, parse_method
from . import register_command
from ._flags import (
    add_bootstrap_arguments,
    add_evaluator_arguments,
    add_fold_seed,
    add_json,
    add_objective,
    add_out,
    add_progress,
    add_qualities,
    add_quality,
    add_space,
    default_of,
    parse_qualities,
)
from .evaluate import make_evaluator

#: The library's default of a setting, which the matching flag shows.
_library = functools.partial(default_of, crossval)


@register_command(
    "crossval",
    help="tune on k-1 class-disjoint folds, validate on the held-out fold, per method",
    example="dnnjpeg crossval --model efficientnet_lite0 --data val/ --methods sorted,fixed:resnet50 --k 5 --out cv/",
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser)
    parser.add_argument("--methods", required=True,
                        help="comma list: search methods of 'dnnjpeg tune', or fixed:TABLE[@Q] for a fixed "
                             "table (a control, e.g. fixed:resnet50 or fixed:standard@50)")
    parser.add_argument("--k", type=int, default=_library("k"),
                        help="number of class-disjoint folds (default: %(default)s)")
    add_fold_seed(parser, default=_library("fold_seed"))
    parser.add_argument("--budget", type=int, default=_library("budget"),
                        help="candidate evaluations per search (default: %(default)s)")
    add_objective(parser, default=_library("objective"))
    add_quality(parser, "scale each tuned table to the size of standard JPEG at this quality on its training folds "
                "(default: keep the search's best table as is)")
    add_space(parser, default=_library("space"))
    # --seed meant the bootstrap seed here; it keeps that meaning (deprecated) for one release, so the same
    # command gives the same results, and becomes the search seed (as in tune and family) in the next one.
    parser.add_argument("--search-seed", type=int, default=_library("search_seed"), metavar="N",
                        help="search seed of fold 0; fold i searches with seed + i (default: %(default)s; "
                        "spelled --seed from the next release, as in tune and family)")
    add_qualities(parser, help="standard qualities for the equal-CR comparison on each fold (default: %(default)s)")
    add_bootstrap_arguments(parser, resamples=_library("resamples"), seed=_library("seed"))
    add_out(parser, required=False, metavar="DIR",
            help="save each fold's table (METHOD-foldI.json) and crossval.json here")
    add_json(parser)
    add_progress(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
                      seed=args.bootstrap_seed, table_dir=args.out, log=log)
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
