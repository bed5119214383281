"""``dnnjpeg family --model M --data DIR --name NAME --out FILE.json``: tune, cross-validate, ship."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..errors import DnnjpegError
from . import register_command
from .evaluate import add_common_arguments, make_evaluator

DEFAULT_QUALITIES = "30,40,50,60,75,90"


@register_command("family", help="tune a size-matched table family, choose the method by class-disjoint "
                                 "cross-validation, and write it with provenance and held-out metrics")
def configure(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--name", required=True, help="family name (the file name in tables/ without .json)")
    parser.add_argument("--out", required=True, help="write the family JSON here")
    parser.add_argument("--workdir", default=None,
                        help="journals of every search (default: OUT with suffix .work); reruns resume from it")
    parser.add_argument("--qualities", default=DEFAULT_QUALITIES,
                        help=f"standard qualities the members are size-matched to (default {DEFAULT_QUALITIES})")
    parser.add_argument("--methods", default="sorted",
                        help="comma list of search methods; class-disjoint cross-validation picks one (default sorted)")
    parser.add_argument("--k", type=int, default=2, help="class-disjoint folds (default 2)")
    parser.add_argument("--fold-seed", type=int, default=0, help="seed of the class-to-fold assignment (default 0)")
    parser.add_argument("--budget", type=int, default=60, help="evaluations per search (default 60)")
    parser.add_argument("--signal", default="kl",
                        help="objective signal: kl (default, low noise), ce, top1, top5, agreement")
    parser.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument("--space", default="single", help="search space (default single: one table for Y, Cb, Cr)")
    parser.add_argument("--no-project", action="store_true",
                        help="do not scale candidates to the member's size before evaluating them")
    parser.add_argument("--choose-by", choices=("top1", "kl"), default="top1",
                        help="how cross-validation picks the method: top1 (default; mean held-out top-1 gain at equal "
                             "CR) or kl (lowest held-out BD-rate at equal KL, the low-noise per-image signal)")
    parser.add_argument("--stage", choices=("all", "cv", "final"), default="all",
                        help="all (default): everything, then write OUT; cv or final: only that stage's searches")
    parser.add_argument("--encoders", default="mozjpeg",
                        help="other encoders measured for the BD-rate comparison (comma list; 'none' for none)")
    parser.add_argument("--backend", choices=("thread", "process"), default="thread",
                        help="JPEG codec pool (process is faster on many-core GPU machines)")
    parser.add_argument("--progress", action="store_true", help="progress lines even when not on a terminal")
    parser.set_defaults(handler=run)


def _command(args: argparse.Namespace) -> str:
    parts = ["dnnjpeg", "family", "--model", args.model, "--data", args.data, "--name", args.name,
             "--qualities", args.qualities, "--methods", args.methods, "--k", str(args.k),
             "--fold-seed", str(args.fold_seed), "--budget", str(args.budget), "--signal", args.signal,
             "--seed", str(args.seed), "--space", args.space]
    if args.choose_by != "top1":
        parts += ["--choose-by", args.choose_by]
    if args.no_project:
        parts.append("--no-project")
    if args.no_fold_batchnorm:
        parts.append("--no-fold-batchnorm")
    if args.writer is not None:
        parts += ["--writer", args.writer]
    if args.weights is not None:
        parts += ["--weights", args.weights]
    if args.protocol != "crop224":
        parts += ["--protocol", args.protocol]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    parts += ["--out", args.out]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from ..family_tune import tune_family
    from .curve import parse_qualities

    qualities = parse_qualities(args.qualities)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    encoders = [] if args.encoders.strip().lower() == "none" else [e.strip() for e in args.encoders.split(",") if e.strip()]
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DnnjpegError(f"--out {out}: folder {out.parent} does not exist")
    workdir = Path(args.workdir) if args.workdir else out.with_suffix(".work")
    ev = make_evaluator(args, backend=args.backend, progress=False)
    verbose = args.progress or sys.stderr.isatty()
    with ev:
        result = tune_family(
            ev, args.name, workdir=workdir, qualities=qualities, methods=methods, k=args.k, fold_seed=args.fold_seed,
            budget=args.budget, signal=args.signal, seed=args.seed, space=args.space, project=not args.no_project,
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

    from ..bd_bootstrap import format_interval as interval

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
    resample of the images says so (:func:`~dnnjpeg.bd_bootstrap.bootstrap_members_ahead`)."""
    each = ", ".join(f"q{q} {100 * p:.0f}%" for q, p in zip(ahead["qualities"], ahead["prob_ahead"]))
    behind = [f"q{q}" for q, ok in zip(ahead["qualities"], ahead["ahead"]) if not ok]
    state = "every member ahead" if not behind else f"behind or level: {', '.join(behind)}"
    return (f"held-out {ahead['metric']} against standard JPEG of the same size: {state}; every member ahead in "
            f"{100 * ahead['prob_every_ahead']:.0f}% of {ahead['resamples']} resamples (each: {each})")
