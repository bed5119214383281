"""``dnnjpeg validate --model M --data DIR --table T [--quality Q] [--json] [--report DIR]``."""

from __future__ import annotations

import argparse
import functools
import json
import shlex
import sys
from typing import Any

from ..encoders import parse_encoder_list
from ..validation.bd_bootstrap import format_interval
from ..validation.report import format_p, format_pct, write_report
from ..validation.report import format_pp as pp
from ..validation.validate import resolve_family, validate
from . import register_command
from ._flags import (
    add_bootstrap_arguments,
    add_compare_encoders,
    add_evaluator_arguments,
    add_json,
    add_progress,
    add_qualities,
    add_quality,
    add_table,
    default_of,
    parse_qualities,
)
from .evaluate import make_evaluator, require_baseline

#: Encoders compared when ``--report`` is given without ``--compare-encoders``.
REPORT_ENCODERS = "mozjpeg,libjpeg-opt"


#: The library's default of a setting, which the matching flag shows.
_library = functools.partial(default_of, validate)


@register_command(
    "validate",
    help="compare a table with standard JPEG (and other encoders) at equal size, with paired tests and bootstrap "
    "intervals",
    example="dnnjpeg validate --model efficientnet_lite0 --data heldout/ --table efficientnet_lite0 --report report/",
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser)
    add_table(parser, help="table family name or JSON path (table or family)")
    add_quality(parser)
    add_qualities(parser, help="standard qualities swept, START:STOP:STEP or a comma list (default: %(default)s); "
                  "also the encoders' sweep and the family members used for BD-rate")
    add_compare_encoders(parser, default=None,
                         help="other encoders to compare at equal bytes, comma list of mozjpeg, mozjpeg-std, "
                         f"libjpeg-opt, libjpeg, or 'none' (default: none; with --report: {REPORT_ENCODERS})")
    add_bootstrap_arguments(parser, resamples=_library("resamples"), seed=_library("seed"))
    add_json(parser, "print one JSON object (keys in docs/validation.md)")
    parser.add_argument("--report", metavar="DIR", default=None,
                        help="write report.md, report.html, PNG plots and validation.json into DIR")
    add_progress(parser)
    parser.set_defaults(handler=run)


def _command_line(args: argparse.Namespace) -> str:
    parts = ["dnnjpeg", "validate", "--model", args.model, "--data", str(args.data), "--table", args.table]
    for opt in ("quality", "weights", "protocol", "limit", "qualities", "compare_encoders", "resamples",
                "bootstrap_seed", "confidence"):
        val = getattr(args, opt)
        if val is not None:
            parts += [f"--{opt.replace('_', '-')}", str(val)]
    if args.json:
        parts.append("--json")
    if args.report:
        parts += ["--report", args.report]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        raise ValueError(f"--resamples must be >= 1, got {args.resamples}")
    if not 0.0 < args.confidence < 1.0:
        raise ValueError(f"--confidence must be in (0, 1), got {args.confidence}")
    qualities = parse_qualities(args.qualities)
    if args.compare_encoders is None:
        args.compare_encoders = REPORT_ENCODERS if args.report else "none"
    encoders = parse_encoder_list(args.compare_encoders)
    # a bad table name, quality or a 16-bit table fails before the model loads
    require_baseline(resolve_family(args.table, args.quality)[0], args.table)
    ev = make_evaluator(args)
    try:
        v = validate(ev, args.table, args.quality, qualities=qualities, encoders=encoders,
                     resamples=args.resamples, confidence=args.confidence, seed=args.bootstrap_seed)
    finally:
        ev.close()
    d = v.to_dict()
    d["command"] = _command_line(args)
    if args.report:
        written = write_report(d, args.report, command=d["command"])
        print(f"wrote {len(written)} files to {args.report}", file=sys.stderr)
    if args.json:
        print(json.dumps(d))
        return 0
    print_summary(d)
    return 0


def print_summary(d: dict[str, Any]) -> None:
    """The human-readable form of the validation JSON."""

    lvl = round(100 * d["ci_level"])
    print(f"{d['table_name']} on {d['data']} [{d['protocol']}], {d['model']}, n={d['n']}")
    print(f"  table     top1 {format_pct(d['top1'])}  CR {d['cr']:.3f}  ({d['bytes_mean']:.0f} bytes, "
          f"{d['bpp']:.3f} bpp)")
    print(f"  standard  top1 {format_pct(d['standard_top1_at_cr'])} at the same CR (linear between qualities)")
    print(f"  delta     {pp(d['delta_top1'])}  {lvl}% CI [{pp(d['ci_low'])}, {pp(d['ci_high'])}] "
          f"({d['resamples']} paired bootstrap resamples, seed {d['seed']})")
    print(f"  vs q{d['nearest_quality']} (nearest size, CR {d['nearest_cr']:.3f}, top1 {format_pct(d['nearest_top1'])}): "
          f"paired {pp(d['paired_delta_top1'])}, McNemar p={format_p(d['p_value'])} "
          f"(b={d['mcnemar_b']}, c={d['mcnemar_c']}), t-test p={format_p(d['p_value_ttest'])}")
    bd = "n/a (fewer than 2 family members at the swept qualities)" if d["bd_rate"] is None else f"{d['bd_rate']:+.2f}%"
    rd = "n/a" if d["rate_delta_at_top1"] is None else f"{d['rate_delta_at_top1']:+.2f}%"

    print(f"  BD-rate of the family vs standard: {bd}{format_interval(d.get('bd_interval'))}; "
          f"bytes vs standard at equal top-1: {rd}")
    kl = d.get("kl_bd_interval")
    if kl is not None and kl.get("bd_rate") is not None:
        print(f"  BD-rate at equal KL from the uncompressed prediction: {kl['bd_rate']:+.2f}%{format_interval(kl)}")
    if d.get("reference_top1") is not None:
        print(f"  uncompressed top1 {format_pct(d['reference_top1'])}")
    for name, enc in d.get("encoders", {}).items():
        tv = enc["table_vs_encoder"]
        bde = "n/a" if enc["bd_rate"] is None else f"{enc['bd_rate']:+.2f}%"
        print(f"  {name}: BD-rate vs standard {bde}; top1 at the table's CR {format_pct(tv['encoder_top1_at_cr'])}; "
              f"table minus {name} {pp(tv['delta_top1'])} [{pp(tv['ci_low'])}, {pp(tv['ci_high'])}], "
              f"McNemar p={format_p(tv['p_value'])} vs q{tv['nearest_quality']}")
