"""``dnnjpeg curve --model M --data DIR --out curve.json [--plot curve.png]``."""

from __future__ import annotations

import argparse
import sys

from . import register_command
from .evaluate import add_common_arguments, make_evaluator


@register_command("curve", help="standard JPEG's rate-accuracy curve and the fitted fitness parabola")
def configure(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--out", required=True, help="write the curve JSON here")
    parser.add_argument("--plot", default=None, help="also save accuracy vs CR with the parabola as a PNG")
    parser.add_argument(
        "--qualities", default="5:95:5", help="START:STOP:STEP (inclusive) or a comma list (default 5:95:5)"
    )
    parser.add_argument("--progress", action="store_true", help="progress bars even when not on a terminal")
    parser.set_defaults(handler=run)


def parse_qualities(text: str) -> list[int]:
    """``"5:95:5"`` -> 5, 10, ..., 95; ``"10,50,90"`` -> [10, 50, 90]."""
    text = text.strip()
    if ":" in text:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError(f"--qualities {text!r}: expected START:STOP[:STEP]")
        start, stop, step = parts[0], parts[1], parts[2] if len(parts) == 3 else 5
        qs = list(range(start, stop + 1, step))
    else:
        qs = [int(p) for p in text.split(",") if p.strip()]
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise ValueError(f"--qualities {text!r}: qualities must be integers in 1..100")
    return qs


def run(args: argparse.Namespace) -> int:
    from ..evaluation.curve import StandardCurve

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
