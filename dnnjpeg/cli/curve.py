"""``dnnjpeg curve --model M --data DIR --out curve.json [--plot curve.png]``."""

from __future__ import annotations

import argparse
import sys

from ..evaluation.curve import StandardCurve
from . import register_command
from ._flags import add_evaluator_arguments, add_out, add_progress, add_qualities, parse_qualities
from .evaluate import make_evaluator


@register_command(
    "curve",
    help="standard JPEG's rate-accuracy curve and the fitted fitness parabola",
    example="dnnjpeg curve --model efficientnet_lite0 --data val/ --out curve.json --plot curve.png",
)
def configure(parser: argparse.ArgumentParser) -> None:
    add_evaluator_arguments(parser)
    add_out(parser, required=True, help="write the curve JSON here")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="also save accuracy vs CR with the parabola as a PNG")
    add_qualities(parser, help="standard qualities: START:STOP:STEP (inclusive) or a comma list (default: %(default)s)")
    add_progress(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    qualities = parse_qualities(args.qualities)
    args.json = False
    with make_evaluator(args) as ev:
        curve = StandardCurve.compute(ev, qualities, progress=ev.progress)
    curve.to_json(args.out)
    if args.plot:
        curve.plot(args.plot)
    fit = curve.fitness()
    ref = curve.reference.get("top1")
    print(
        f"{curve.model} on {curve.data} [{curve.protocol}], n={curve.points[0].n}"
        + (f", uncompressed top1 {ref:.4f}" if ref is not None else "")
    )
    print(f"{'q':>4} {'top1':>7} {'top5':>7} {'agree':>7} {'cr':>8} {'bpp':>7}")
    for p in curve.points:
        print(f"{p.quality:>4} {p.top1:>7.4f} {p.top5:>7.4f} {p.agreement:>7.4f} {p.cr:>8.3f} {p.bpp:>7.4f}")
    print(
        f"fitness(CR) = {fit.a:.6e}*CR^2 + {fit.b:.6e}*CR + {fit.c:.6f}  (fitted on q{curve.fit_qualities[0]}.."
        f"q{curve.fit_qualities[1]})"
    )
    print(f"wrote {args.out}" + (f" and {args.plot}" if args.plot else ""), file=sys.stderr)
    return 0
