"""Do a family's DNN-tuned tables still help when the encoder quantizes with trellis (mozjpeg)?

For a family tuned by ``dnnjpeg family``, its held-out curve (each fold's tables evaluated on the
classes its search never saw, pooled) is measured twice: written by libjpeg (as tuned) and by mozjpeg
4.0.3 (the same tables and subsampling, trellis quantization), both progressive (mozjpeg's default) and
rewritten losslessly as baseline (``family+trellis-baseline``: what ``dnnjpeg recompress --trellis``
writes; same pixels, so only the bytes differ). All are compared, paired
on the same images, with standard JPEG (libjpeg), mozjpeg with the standard tables (``mozjpeg-std``:
what trellis alone gives) and mozjpeg's defaults (``mozjpeg``), at equal top-1 and at equal KL, with
bootstrap intervals over the images. "family+trellis vs mozjpeg-std" is the tables' own gain on top
of trellis.

    python benchmarks/family_trellis.py --family efficientnet_lite0 --model efficientnet_lite0 \\
        --data ../shared/data/imagenet-sample-dev --no-fold-batchnorm --out trellis-lite0.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

QUALITIES = tuple(range(5, 100, 5))  # the curve `dnnjpeg family` measures standard JPEG and mozjpeg on


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", required=True, help="a shipped family's name or a family JSON file")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="the data the family was tuned on")
    p.add_argument("--qualities", default=",".join(map(str, QUALITIES)),
                   help="qualities of the standard, mozjpeg-std and mozjpeg curves")
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--no-fold-batchnorm", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write every figure as JSON")
    args = p.parse_args(argv)

    from dnnjpeg import QTable
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.validation.bd_bootstrap import format_interval
    from dnnjpeg.validation.family_compare import heldout_results
    from dnnjpeg.validation.validate import evaluate_encoder_curve, family_bd_interval

    qualities = [int(q) for q in args.qualities.split(",")]
    t0 = time.perf_counter()
    ev = Evaluator(args.model, args.data, fold_batchnorm=not args.no_fold_batchnorm)
    try:
        libjpeg, reproduced = heldout_results(args.family, ev)
        trellis, _ = heldout_results(args.family, ev, encoder="mozjpeg")
        trellis_baseline, _ = heldout_results(args.family, ev, encoder="trellis")
        curves = {  # quality -> Result, as `dnnjpeg family` keeps them
            "standard": {q: ev.evaluate(QTable.standard(q)) for q in qualities},
            "mozjpeg-std": evaluate_encoder_curve(ev, "mozjpeg-std", qualities),
            "mozjpeg": evaluate_encoder_curve(ev, "mozjpeg", qualities),
            "family": libjpeg,
            "family+trellis": trellis,
            "family+trellis-baseline": trellis_baseline,
        }
    finally:
        ev.close()
    print(f"{args.family} on {ev.data_name} ({ev.n} images, {args.model}); held-out top-1 as recorded: "
          f"{all(reproduced.values())}; {time.perf_counter() - t0:.0f} s")
    print("member   top-1 libjpeg  top-1 trellis   bytes libjpeg  bytes trellis  bytes baseline"
          "   KL libjpeg  KL trellis")
    for q in sorted(libjpeg):
        a, b, c = libjpeg[q], trellis[q], trellis_baseline[q]
        print(f"  q{q:<4} {a.top1:12.2%} {b.top1:14.2%} {a.bytes_mean:15.0f} {b.bytes_mean:14.0f} "
              f"{c.bytes_mean:15.0f} {a.kl_mean:12.4f} {b.kl_mean:11.4f}")
    pairs = [("family", "standard"), ("family+trellis", "standard"), ("mozjpeg-std", "standard"),
             ("mozjpeg", "standard"), ("family+trellis", "mozjpeg-std"), ("family+trellis", "mozjpeg"),
             ("family", "mozjpeg"), ("family+trellis-baseline", "standard"),
             ("family+trellis-baseline", "mozjpeg-std"), ("family+trellis-baseline", "mozjpeg"),
             ("family+trellis-baseline", "family")]
    rows = []
    for test, anchor in pairs:
        row = {"test": test, "anchor": anchor}
        for metric, label in (("top1", "equal top-1"), ("kl", "equal KL")):
            bd = family_bd_interval(curves[anchor], curves[test], resamples=args.resamples, metric=metric)
            row[metric] = bd
            value = "n/a" if bd is None or bd["bd_rate"] is None else f"{bd['bd_rate']:+.1f}%"
            print(f"BD-rate of {test} against {anchor}, {label}: {value}{format_interval(bd)}")
        rows.append(row)
    if args.out is not None:
        args.out.write_text(json.dumps({
            "family": args.family, "model": args.model, "data": ev.data_name, "n": ev.n, "qualities": qualities,
            "fold_batchnorm": not args.no_fold_batchnorm, "reproduced": reproduced, "bd": rows,
            "curves": {k: {q: r.summary() for q, r in v.items()} for k, v in curves.items()},
        }, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
