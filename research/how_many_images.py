"""How many held-out images would it take to tell whether a tuned family meets a goal?

A family tuned by ``dnnjpeg family`` records its cross-validated figures on the images it was tuned
on (a few hundred, for the shipped ones). Each is one draw: this script re-measures the members on
the classes their searches held out, then resamples those images, at their own number and at larger
ones, to say how wide the BD-rate's interval would be and how often "every member ahead of standard
JPEG at its size" and "BD-rate at or below the target" would come out, *if* the images measured
stand for the population they were drawn from (:func:`dnnjpeg.validation.bd_bootstrap.bootstrap_members_ahead`)::

    python -m research.how_many_images --family efficientnet_lite0 --model efficientnet_lite0 \\
        --data ../shared/data/imagenet-sample-dev --no-fold-batchnorm --workdir outlook-lite0

``--workdir`` keeps the evaluations (a rerun reads them). The larger sizes are projections from these
images, not measurements: they assume the family's true figures are the ones measured here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dnnjpeg import QTable
from dnnjpeg.cli.evaluate import add_common_arguments, make_evaluator
from dnnjpeg.errors import DnnjpegError
from dnnjpeg.evaluation.store import EvaluationStore
from dnnjpeg.validation.bd_bootstrap import BD_RESAMPLES, BDInterval, bootstrap_bd, bootstrap_members_ahead
from dnnjpeg.validation.family_compare import heldout_results, read_family


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="how_many_images.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, help="shipped family name or family JSON file")
    add_common_arguments(parser)
    parser.add_argument("--sizes", default="1000,2000,5000,10000",
                        help="numbers of held-out images to project to, besides the measured number "
                             "(default 1000,2000,5000,10000)")
    parser.add_argument("--target", type=float, default=-15.0,
                        help="BD-rate goal at equal top-1, in percent (default -15)")
    parser.add_argument("--resamples", type=int, default=BD_RESAMPLES, help="bootstrap draws per size")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--workdir", default=None, help="keep the evaluations here (a rerun reads them)")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if any(s < 1 for s in args.sizes) or args.resamples < 1:
        parser.error("--sizes and --resamples must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        family = read_family(args.family)
        ev = make_evaluator(args)
        try:
            source = EvaluationStore(args.workdir, ev) if args.workdir else ev
            held, _ = heldout_results(family, source)
            curve_qs = [int(p["quality"]) for p in family.get("metrics", {}).get("standard_curve", [])]
            standard = {q: source.evaluate(QTable.standard(q)) for q in sorted(set(curve_qs) | set(held))}
        finally:
            ev.close()
    except DnnjpegError as exc:  # not a tuned family, other data than the family's, an unreadable file
        print(f"how_many_images.py: {exc}", file=sys.stderr)
        return 2
    n = next(iter(held.values())).n
    print(f"{family['name']} on {args.data} ({n} held-out images, model {args.model}); each size "
          f"{args.resamples} resamples; sizes above {n} are projections from these images")
    print(f"{'images':>7} {'BD top-1, 95% CI':>22} {'BD KL, 95% CI':>22} {'all ahead':>10} "
          f"{f'BD<={args.target:g}%':>10} {'both':>6}")
    anchor, test = [standard[q] for q in sorted(standard)], [held[q] for q in sorted(held)]
    for size in [n, *[s for s in args.sizes if s != n]]:
        draws = {"resamples": args.resamples, "seed": args.seed, "sample_size": size}
        top1 = bootstrap_bd(anchor, test, **draws)
        kl = bootstrap_bd(anchor, test, metric="kl", **draws)
        ahead = bootstrap_members_ahead(standard, held, bd_target=args.target, **draws)
        print(f"{size:>7} {_ci(top1):>22} {_ci(kl):>22} {_share(ahead.prob_every_ahead):>10} "
              f"{_share(ahead.prob_bd_at_or_below_target):>10} {_share(ahead.prob_goal):>6}")
    return 0


def _ci(iv: BDInterval) -> str:
    return f"{iv.bd_rate:+.1f}% ({iv.ci_low:+.1f}..{iv.ci_high:+.1f})"


def _share(p: float | None) -> str:
    return "n/a" if p is None else f"{100 * p:.0f}%"


if __name__ == "__main__":
    sys.exit(main())
