"""``dnnjpeg family --model M --data DIR --name NAME --out FILE.json``: tune, cross-validate, ship."""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from pathlib import Path

from ..errors import DnnjpegError
from ..evaluation.evaluate import Evaluator
from ..search.family import FamilyTuneOptions, tune_family
from ..validation.bd_bootstrap import format_interval as interval
from . import register_command
from ._flags import (
    FAMILY_QUALITIES,
    PROTOCOL,
    add_compare_encoders,
    add_evaluator_arguments,
    add_fold_seed,
    add_out,
    add_progress,
    add_project,
    add_qualities,
    add_seed,
    add_space,
    default_of,
    parse_qualities,
    progress_wanted,
)
from .evaluate import make_evaluator

#: The library's default of a setting, which the matching flag shows.
_library = functools.partial(default_of, FamilyTuneOptions)


@register_command(
    "family",
    help="tune a size-matched table family, choose the method by class-disjoint cross-validation, and write it "
    "with provenance and held-out metrics",
    example="dnnjpeg family --model efficientnet_lite0 --data val/ --name mine --methods sorted,fisher --budget 30 "
    "--out mine.json",
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser)
    parser.add_argument("--name", required=True, help="family name (the file name in tables/ without .json)")
    add_out(parser, required=True, help="write the family JSON here")
    parser.add_argument("--workdir", default=None,
                        help="journals of every search (default: OUT with suffix .work); reruns resume from it")
    add_qualities(parser, default=FAMILY_QUALITIES,
                  help="the members: standard qualities they are size-matched to (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(_library("methods")),
                        help="comma list of search methods; class-disjoint cross-validation picks one "
                        "(default: %(default)s)")
    parser.add_argument("--k", type=int, default=_library("k"), help="class-disjoint folds (default: %(default)s)")
    add_fold_seed(parser, default=_library("fold_seed"))
    parser.add_argument("--budget", type=int, default=_library("budget"),
                        help="evaluations per search (default: %(default)s)")
    parser.add_argument("--signal", default=_library("signal"),
                        help="objective signal: kl (low noise), ce, top1, top5, agreement (default: %(default)s)")
    add_seed(parser, default=_library("seed"),
             help="search seed (default: %(default)s; fold i searches with seed + i, the final searches with seed + k)")
    add_space(parser, default=_library("space"))
    add_project(parser, default=_library("project"),
                on="scale every candidate to the member's size before evaluating it")
    parser.add_argument("--choose-by", choices=("top1", "kl"), default=_library("choose_by"),
                        help="how cross-validation picks the method: top1 (mean held-out top-1 gain at equal CR) or "
                        "kl (lowest held-out BD-rate at equal KL, the low-noise per-image signal) "
                        "(default: %(default)s)")
    parser.add_argument("--stage", choices=("all", "cv", "final"), default=_library("stage"),
                        help="all: everything, then write OUT; cv or final: only that stage's searches "
                        "(default: %(default)s)")
    add_compare_encoders(parser, default=",".join(_library("compare_encoders")),
                         help="other encoders measured for the BD-rate comparison (comma list; 'none' for none; "
                         "default: %(default)s)")
    parser.add_argument("--backend", choices=("thread", "process"), default=default_of(Evaluator.__init__, "backend"),
                        help="JPEG codec pool (process is faster on many-core GPU machines; default: %(default)s)")
    add_progress(parser)
    parser.set_defaults(handler=run)


def _command(args: argparse.Namespace) -> str:
    parts = ["dnnjpeg", "family", "--model", args.model, "--data", args.data, "--name", args.name,
             "--qualities", args.qualities, "--methods", args.methods, "--k", str(args.k),
             "--fold-seed", str(args.fold_seed), "--budget", str(args.budget), "--signal", args.signal,
             "--seed", str(args.seed), "--space", args.space]
    if args.choose_by != _library("choose_by"):
        parts += ["--choose-by", args.choose_by]
    if args.project != _library("project"):
        parts.append("--project" if args.project else "--no-project")
    if args.no_fold_batchnorm:
        parts.append("--no-fold-batchnorm")
    if args.writer is not None:
        parts += ["--writer", args.writer]
    if args.weights is not None:
        parts += ["--weights", args.weights]
    if args.protocol != PROTOCOL:
        parts += ["--protocol", args.protocol]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    parts += ["--out", args.out]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    qualities = parse_qualities(args.qualities)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    compare = args.compare_encoders
    encoders = [] if compare.strip().lower() == "none" else [e.strip() for e in compare.split(",") if e.strip()]
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DnnjpegError(f"--out {out}: folder {out.parent} does not exist")
    workdir = Path(args.workdir) if args.workdir else out.with_suffix(".work")
    ev = make_evaluator(args, backend=args.backend, progress=False)
    verbose = progress_wanted(args)
    with ev:
        result = tune_family(
            ev, args.name, workdir=workdir, qualities=qualities, methods=methods, k=args.k, fold_seed=args.fold_seed,
            budget=args.budget, signal=args.signal, seed=args.seed, space=args.space, project=args.project,
            stage=args.stage, compare_encoders=encoders, choose_by=args.choose_by, command=_command(args),
            log=(lambda m: print(m, file=sys.stderr, flush=True)) if verbose else None,
        )
    if result.record is None:
        print(f"stage {args.stage} done; journals in {workdir}")
        return 0
    family = result.to_dict()
    out.write_text(json.dumps(family, indent=2) + "\n", encoding="utf-8")
    print(format_summary(family))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def format_summary(family: dict) -> str:
    """The members' held-out figures, one line each, and the family's BD-rates."""
    lines = [(f"{family['name']}: method {family['provenance']['method']} "
             f"(chosen by {family['provenance']['k']}-fold class-disjoint cross-validation"
             f"{', BD-rate at equal KL' if family['provenance'].get('chosen_by') == 'kl' else ''})"),
             (f"{'q':>4} {'heldout top1':>12} {'std top1':>9} {'gain':>7} {'p':>7} {'CR':>7} {'std CR':>7} "
             f"{'gain@CR':>8}")]
    for m in family["members"]:
        c = m["metrics"]["crossval"]
        gain_cr = c["gain_top1_at_equal_cr"]
        lines.append(f"{m['quality']:>4} {c['heldout_top1']:>12.4f} {c['standard_top1']:>9.4f} "
                     f"{100 * c['gain_top1_vs_size_matched_standard']:>+7.2f} {c['p_value']:>7.3g} "
                     f"{c['heldout_cr']:>7.2f} {c['standard_cr']:>7.2f} "
                     + (f"{100 * gain_cr:>+8.2f}" if gain_cr is not None else f"{'n/a':>8}"))
    fm = family["metrics"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.1f}%"


    lines.append(f"BD-rate vs standard JPEG: cross-validated {pct(fm['crossval_bd_rate_vs_standard'])}"
                 f"{interval(fm.get('crossval_bd_interval_vs_standard'))}, "
                 f"on the tuning images {pct(fm['tuning_bd_rate_vs_standard'])}")
    ahead = fm.get("crossval_members_ahead")
    if ahead is not None:
        lines.append(format_members_ahead(ahead))
    kl = fm.get("crossval_kl_bd_interval_vs_standard")
    if kl is not None:
        lines.append(f"BD-rate at equal KL (held out): {pct(kl['bd_rate'])}{interval(kl)}")
    for enc, e in fm["encoders"].items():
        enc_kl = e.get("family_heldout_kl_bd_interval_vs_encoder")
        lines.append(f"{enc}: BD-rate vs standard {pct(e['bd_rate_vs_standard'])}; family (held out) vs {enc} "
                     f"{pct(e['family_heldout_bd_rate_vs_encoder'])}"
                     f"{interval(e.get('family_heldout_bd_interval_vs_encoder'))}"
                     + ("" if enc_kl is None else f", at equal KL {pct(enc_kl['bd_rate'])}{interval(enc_kl)}"))
    return "\n".join(lines)


def format_members_ahead(ahead: dict) -> str:
    """One line: are all members ahead of standard JPEG at their quality (held out), and how often a
    resample of the images says so (:func:`~dnnjpeg.validation.bd_bootstrap.bootstrap_members_ahead`)."""
    each = ", ".join(f"q{q} {100 * p:.0f}%" for q, p in zip(ahead["qualities"], ahead["prob_ahead"]))
    behind = [f"q{q}" for q, ok in zip(ahead["qualities"], ahead["ahead"]) if not ok]
    state = "every member ahead" if not behind else f"behind or level: {', '.join(behind)}"
    return (f"held-out {ahead['metric']} against standard JPEG of the same size: {state}; every member ahead in "
            f"{100 * ahead['prob_every_ahead']:.0f}% of {ahead['resamples']} resamples (each: {each})")
