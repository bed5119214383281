"""Benchmark every search method at the same budget: objective reached, evaluations per second, and
the chosen table's score on held-out classes.

The images (default: the first ``--limit`` of the dev data) are split into two class-disjoint halves.
Each method tunes on the first half with the same budget, objective and seed; its best table is then
scored on the second half by the same objective against standard JPEG's curve measured there (the
seed's methods are compared by held-out gains, and measurement-notes.md shows why tuning-set scores
alone mislead).  With ``--fidelity MIN:ETA`` the ``sorted`` search is run twice more, back to back,
on all images and with successive halving (same seed, hence the same candidates), to measure the
speed-up at equal final result.

Example (the configuration reported in docs/search.md)::

    python benchmarks/methods.py --data ../shared/data/imagenet-sample-dev --limit 200 --budget 40 \\
        --objective fitness --fidelity 25:2 --json /tmp/methods.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

#: The seed's cross-validated gains at equal CR (points of top-1; seed-results.md), for the ranking.
SEED_GAINS = {
    "sorted": (0.91, 0.57, 0.47, 1.16),
    "bandit": (0.73, 0.20, 0.29, 1.17),
    "bounded": (0.72, 0.34, -0.10, 0.66),
    "bayes": (0.55, 0.09, 0.17, 0.77),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder (e.g. ../shared/data/imagenet-sample-dev)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--limit", type=int, default=100, help="images used, split in two class-disjoint halves (default 100)")
    p.add_argument("--budget", type=int, default=20, help="evaluations per method (default 20)")
    p.add_argument("--objective", default="fitness", help="objective (default fitness, the seed's)")
    p.add_argument("--methods", default="sorted,bounded,bayes,bandit,deepn,nsga2")
    p.add_argument("--space", default="single")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the class-disjoint split")
    p.add_argument("--fidelity", default=None, metavar="MIN:ETA", help="also time sorted with successive halving")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write all numbers here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dnnjpeg.evaluation.curve import StandardCurve
    from dnnjpeg.evaluation.data import class_disjoint_split
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.search import CURVE_QUALITIES, parse_objective, tune

    if not (Path(args.data) / "labels.csv").is_file() and not Path(args.data).is_dir():
        print(f"no dataset at {args.data}", file=sys.stderr)
        return 2
    t_all = time.perf_counter()
    ev = Evaluator(args.model, args.data, limit=args.limit, device=args.device)
    split = class_disjoint_split(ev.dataset, 0.5, seed=args.split_seed)
    tune_ev, held_ev = ev.subset(split.train), ev.subset(split.test)
    print(f"{args.model} on {ev.data_name}: tune on {tune_ev.n} images, hold out {held_ev.n} (class-disjoint)",
          file=sys.stderr)
    t0 = time.perf_counter()
    tune_curve = StandardCurve.compute(tune_ev, CURVE_QUALITIES, keep_results=False)
    held_curve = StandardCurve.compute(held_ev, CURVE_QUALITIES, keep_results=False)
    curve_s = time.perf_counter() - t0
    objective = parse_objective(args.objective)
    held_obj = objective.bind(held_curve)
    rows: list[dict[str, Any]] = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        print(f"-- {name}", file=sys.stderr)
        res = tune(tune_ev, name, budget=args.budget, objective=objective, seed=args.seed, space=args.space,
                   curve=tune_curve)
        held = held_ev.evaluate(res.table)
        hs = held.summary()
        traj = res.best_so_far()
        eval_s = [t["seconds"] for t in res.trials if t["seconds"] is not None]
        rows.append({
            "method": name,
            "objective": res.value,
            "objective_at_half_budget": traj[max(0, len(traj) // 2 - 1)] if traj else None,
            "top1": res.metrics["top1"],
            "cr": res.metrics["cr"],
            "seconds": res.seconds,
            "evals_per_s": args.budget / res.seconds,
            "eval_seconds_mean": sum(eval_s) / len(eval_s),
            "ask_overhead_s": (res.seconds - sum(eval_s)) / args.budget,
            "held_objective": held_obj(hs),
            "held_top1": hs["top1"],
            "held_cr": hs["cr"],
            "held_std_top1_at_cr": held_curve.top1_at_cr(hs["cr"]),
            "table": res.table.to_dict(),
        })
        r = rows[-1]
        print(f"   objective {r['objective']:+.4f}  held-out {r['held_objective']:+.4f}  "
              f"{r['evals_per_s']:.3f} eval/s", file=sys.stderr)
    fidelity = None
    if args.fidelity:
        print("-- sorted, all images then successive halving", file=sys.stderr)
        full_res = tune(tune_ev, "sorted", budget=args.budget, objective=objective, seed=args.seed,
                        space=args.space, curve=tune_curve)
        full = {"objective": full_res.value, "seconds": full_res.seconds}
        fres = tune(tune_ev, "sorted", budget=args.budget, objective=objective, seed=args.seed, space=args.space,
                    curve=tune_curve, fidelity=args.fidelity)
        images = sum(t["metrics"]["n"] for t in fres.trials)
        fidelity = {
            "schedule": args.fidelity,
            "full_seconds": full["seconds"],
            "halving_seconds": fres.seconds,
            "speedup": full["seconds"] / fres.seconds,
            "images_evaluated": images,
            "images_full": args.budget * tune_ev.n,
            "pruned": fres.n_pruned,
            "full_objective": full["objective"],
            "halving_objective": fres.value,
            "same_result": abs(full["objective"] - fres.value) <= 1e-9 * max(1.0, abs(full["objective"])),
        }
    report = {
        "model": args.model, "data": ev.data_name, "limit": args.limit, "tune_images": tune_ev.n,
        "held_images": held_ev.n, "budget": args.budget, "objective": objective.spec, "space": args.space,
        "seed": args.seed, "split_seed": args.split_seed, "curve_seconds": curve_s, "methods": rows,
        "fidelity": fidelity, "machine": {"cpu": platform.processor() or platform.machine(),
                                           "cores": os.cpu_count(), "python": platform.python_version()},
        "total_seconds": time.perf_counter() - t_all,
    }
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables (methods, ranking vs the seed, fidelity)."""
    rows = report["methods"]
    lines = [
        (f"{report['model']}, {report['tune_images']} tuning / {report['held_images']} held-out images "
        f"(class-disjoint), budget {report['budget']}, objective `{report['objective']}`, space {report['space']}, "
        f"seed {report['seed']}"),
        "",
        ("| method | objective (tuning) | at half budget | top-1 | CR | eval/s | s/eval | ask overhead s "
         "| objective (held-out) | held-out top-1 | held-out CR | standard top-1 at that CR |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["objective"]):
        std = r["held_std_top1_at_cr"]
        lines.append(
            f"| {r['method']} | {r['objective']:+.4f} | {r['objective_at_half_budget']:+.4f} | {r['top1']:.3f} | "
            f"{r['cr']:.2f} | {r['evals_per_s']:.3f} | {r['eval_seconds_mean']:.2f} | {r['ask_overhead_s']:.2f} | "
            f"{r['held_objective']:+.4f} | {r['held_top1']:.3f} | "
            f"{r['held_cr']:.2f} | {'n/a' if math.isnan(std) else f'{std:.3f}'} |"
        )
    order_tune = [r["method"] for r in sorted(rows, key=lambda r: -r["objective"])]
    order_held = [r["method"] for r in sorted(rows, key=lambda r: -r["held_objective"])]
    seed_order = sorted(SEED_GAINS, key=lambda m: -sum(SEED_GAINS[m]) / len(SEED_GAINS[m]))
    lines += [
        "",
        f"Ranking on the tuning images: {' > '.join(order_tune)}",
        f"Ranking on held-out classes:  {' > '.join(order_held)}",
        f"Seed's ranking (mean cross-validated gain, ResNet-50): {' > '.join(seed_order)}",
    ]
    f = report.get("fidelity")
    if f:
        lines += [
            "",
            (f"Successive halving ({f['schedule']}) on `sorted`: {f['halving_seconds']:.1f} s vs {f['full_seconds']:.1f} s "
            f"(speed-up {f['speedup']:.2f}x), {f['images_evaluated']} of {f['images_full']} image evaluations, "
            f"{f['pruned']} pruned; best objective {f['halving_objective']:+.4f} vs {f['full_objective']:+.4f} "
            f"({'same' if f['same_result'] else 'different'} result)"),
        ]
    lines.append(f"\nTotal {report['total_seconds']:.0f} s on {report['machine']['cores']} cores ({report['machine']['cpu']}).")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
