"""``dnnjpeg compare-families A B --model M --data DIR [--json]``: two tuned families on their held-out classes."""

from __future__ import annotations

import argparse
import json
import sys

from ..validation.bd_bootstrap import BD_RESAMPLES, format_interval
from ..validation.family_compare import compare_families
from ..validation.report import format_p, format_pct
from . import register_command
from ._flags import add_bootstrap_arguments, add_evaluator_arguments, add_json, add_progress, default_of
from .evaluate import make_evaluator


@register_command(
    "compare-families",
    help="compare two tuned families on the classes their cross-validation held out (paired)",
    example="dnnjpeg compare-families efficientnet_lite0 mine.json --model efficientnet_lite0 --data val/",
)
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="reference family: shipped name or family JSON file")
    parser.add_argument("b", help="candidate family: shipped name or family JSON file")
    add_evaluator_arguments(parser)
    add_bootstrap_arguments(parser, resamples=BD_RESAMPLES, confidence=False, seed=default_of(compare_families, "seed"))
    add_json(parser)
    add_progress(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        print(f"dnnjpeg compare-families: --resamples must be >= 1, got {args.resamples}", file=sys.stderr)
        return 2
    ev = make_evaluator(args)
    try:
        cmp = compare_families(args.a, args.b, ev, resamples=args.resamples, seed=args.bootstrap_seed)
    finally:
        ev.close()
    d = cmp.to_dict()
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    print(f"b = {cmp.b}\nagainst a = {cmp.a}\non the classes each member's search held out ({cmp.n} images, "
          f"model {ev.model_name})")
    print(f"{'q':>4} {'a top1':>8} {'b top1':>8} {'b - a':>8} {'p':>7} {'bytes b/a':>10} {'KL b/a':>8}")
    for m in cmp.members:
        print(f"{m['quality']:>4} {format_pct(m['a_top1']):>8} {format_pct(m['b_top1']):>8} "
              f"{100 * m['delta_top1']:>+8.2f} {format_p(m['p_value']):>7} {m['bytes_ratio']:>10.4f} "
              f"{m['b_kl'] / m['a_kl'] if m['a_kl'] else float('nan'):>8.4f}")
    for label, interval in (("BD-rate of b against a", cmp.bd), ("BD-rate at equal KL", cmp.bd_kl)):
        if interval is None:
            print(f"{label}: n/a (fewer than 2 members)")
        else:
            bd = interval["bd_rate"]
            shown = "n/a (no shared range)" if bd is None else f"{bd:+.1f}%"
            print(f"{label}: {shown}{format_interval(interval)}")
    for name, ok in cmp.reproduced.items():
        w = cmp.writers.get(name, {})
        if w.get("tuned_for") != w.get("written_by"):
            print(f"note: {name}: written by {w['written_by']} here; its recorded held-out figures were measured "
                  f"written by {w['tuned_for']}, so they are not re-checked", file=sys.stderr)
        elif not ok:
            print(f"note: {name}: re-measured held-out top-1 differs from the file's (another model build or "
                  "machine?); the comparison uses the re-measured figures", file=sys.stderr)
    return 0
