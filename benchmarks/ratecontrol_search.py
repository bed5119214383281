"""How many model evaluations the rate-control search spends per image, and what it loses against exhaustive.

    python benchmarks/ratecontrol_search.py --data ../shared/data/imagenet-sample-dev \\
        [--ladders standard,mozjpeg] [--taus 0.02,0.05,0.1,0.2] [--model efficientnet_lite0] [--limit N] \\
        [--real-tau 0.05] [--batch-size 16] [--cache DIR] [--json OUT]

For each ladder:

1. *exhaustive*: :func:`dnnjpeg.ratecontrol.evaluate_rungs` runs every image at every rung (native protocol:
   encode at the stored size, decode, the model's own resize/crop) and gives, per criterion, the smallest
   holding rung of each image (the top rung when none holds); timed (images/s).  With ``--cache`` the
   table is stored and reread.
2. *simulated searches*: each strategy of :mod:`dnnjpeg.ratecontrol._policy` (``bisect``, ``gallop``,
   ``predict``) replayed on that table by the search code itself (:func:`dnnjpeg.ratecontrol._simulate.simulate`,
   same window as ``choose``) for every ``--taus`` value, alone and with ``keep_top1``: mean forward passes
   per image (reference included), the search's alone, how often the chosen rung differs from the
   exhaustive one, and the total bytes against exhaustive's.  ``+src`` rows pass each file's own size as
   the source (what ``recompress`` does: rungs not smaller than the original are never evaluated).
3. *real search*: :func:`dnnjpeg.ratecontrol.choose` on the images at ``--real-tau`` (default strategy),
   timed (images/s), with its mean evaluations and how often it agrees with the replay (they can differ
   only where a KL lies within float noise of the threshold).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dnnjpeg.evaluation.data import load_dataset
from dnnjpeg.ratecontrol import Criterion, RateControl, RungTable, choose, evaluate_rungs, load_classifiers
from dnnjpeg.ratecontrol._policy import STRATEGIES
from dnnjpeg.ratecontrol._simulate import simulate


def _load(data: Path, limit: int | None) -> tuple[list[Image.Image], list[int]]:
    ds = load_dataset(data, limit=limit)
    imgs = []
    for f in ds.files:
        with Image.open(f) as im:
            imgs.append(im.convert("RGB"))
    return imgs, [f.stat().st_size for f in ds.files]


def _table(images: list[Image.Image], ladder: str, clfs: list[Any], batch: int,
           cache: Path | None) -> tuple[RungTable, float]:
    path = None if cache is None else cache / f"rungs-{ladder.replace(':', '_')}-{clfs[0].name}-{len(images)}.npz"
    if path is not None and path.is_file():
        z = np.load(path)
        m = clfs[0].name
        t = RungTable(tuple(z["labels"].tolist()), z["nbytes"], {m: z["kl"]}, {m: z["top1"]}, {m: z["ref_top1"]},
                      {m: z["topk"]}, {m: z["ref_topk"]}, ref_logits={m: z["ref_logits"]})
        return t, float(z["seconds"])
    t0 = time.perf_counter()
    t = evaluate_rungs(images, ladder, clfs, batch_size=batch)
    sec = time.perf_counter() - t0
    if path is not None:
        m = clfs[0].name
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, labels=np.array(t.labels), nbytes=t.nbytes, kl=t.kl[m], top1=t.top1[m], ref_top1=t.ref_top1[m],
                 topk=t.topk[m], ref_topk=t.ref_topk[m], ref_logits=t.ref_logits[m], seconds=sec)
    return t, sec


def _exhaustive_bytes(t: RungTable, crit: Criterion, src: np.ndarray | None) -> np.ndarray:
    held = t.held(crit)
    if src is not None:
        held &= t.nbytes < src[:, None]
    size = np.where(held, t.nbytes, np.iinfo(np.int64).max).min(axis=1)
    fallback = t.nbytes[:, -1] if src is None else np.minimum(t.nbytes[:, -1], src)
    return np.where(held.any(axis=1), size, fallback)


def _search_bytes(t: RungTable, states: list[Any], src: np.ndarray | None) -> np.ndarray:
    out = np.empty(len(states), dtype=np.int64)
    for i, s in enumerate(states):
        held = [r for r in s.tried if s.outcomes[r].held]
        if held:
            out[i] = min(t.nbytes[i, r] for r in held)
        else:
            out[i] = t.nbytes[i, -1] if src is None else min(t.nbytes[i, -1], src[i])
    return out


def _row(t: RungTable, crit: Criterion, strategy: str, window: int, src: np.ndarray | None) -> dict[str, Any]:
    states = simulate(t, crit, strategy=strategy, window=window, sources_nbytes=None if src is None else src.tolist())
    got, want = _search_bytes(t, states, src), _exhaustive_bytes(t, crit, src)
    return {
        "strategy": strategy + ("+src" if src is not None else ""), "max_kl": crit.max_kl,
        "keep_top1": crit.keep_top1,
        "evals": float(np.mean([s.passes + s.ref_passes for s in states])),
        "search_evals": float(np.mean([s.passes for s in states])),
        "max_evals": int(max(s.passes + s.ref_passes for s in states)),
        "differs": float(np.mean(got != want)), "bytes_vs_exhaustive": float(got.sum() / want.sum() - 1),
        "exhaustive_evals": 1 + t.nbytes.shape[1],
    }


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'strategy':<14}{'max_kl':>7}{'top1':>6}{'evals/img':>10}{'search':>8}{'max':>5}"
          f"{'differs':>9}{'bytes vs exh':>14}")
    for r in rows:
        print(f"{r['strategy']:<14}{r['max_kl']:>7.3g}{'yes' if r['keep_top1'] else 'no':>6}{r['evals']:>10.2f}"
              f"{r['search_evals']:>8.2f}{r['max_evals']:>5}{100 * r['differs']:>8.1f}%"
              f"{100 * r['bytes_vs_exhaustive']:>+13.2f}%")


def _real(images: list[Image.Image], ladder: str, tau: float, clfs: list[Any], batch: int,
          t: RungTable) -> dict[str, Any]:
    rc = RateControl(models=tuple(c.name for c in clfs), criterion=Criterion(tau), ladder=ladder, batch_size=batch)
    t0 = time.perf_counter()
    choices = choose(images, rc, classifiers=clfs)
    sec = time.perf_counter() - t0
    replay = simulate(t, rc.criterion, window=batch)
    same = np.mean([c.index == (s.hi if s.hi < s.n else s.n - 1) for c, s in zip(choices, replay)])
    return {"max_kl": tau, "seconds": sec, "images_per_s": len(images) / sec,
            "evals": float(np.mean([c.evaluations for c in choices])),
            "same_as_replay": float(same), "bytes": int(sum(c.nbytes for c in choices))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--ladders", default="standard,mozjpeg")
    p.add_argument("--ladder", action="append", default=[], metavar="SPEC",
                   help="one more ladder (repeatable), for specs with commas: --ladder trellis:5-24,25-95:5")
    p.add_argument("--taus", default="0.02,0.05,0.1,0.2")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--real-tau", type=float, default=0.05, help="run choose() for real at this max_kl (0: skip)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cache", type=Path, default=None, help="store/reread the exhaustive tables here")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    images, src_sizes = _load(args.data, args.limit)
    src = np.array(src_sizes, dtype=np.int64)
    clfs = load_classifiers(RateControl(models=(args.model,)))
    taus = [float(x) for x in args.taus.split(",")]
    report: dict[str, Any] = {"n": len(images), "model": args.model, "ladders": {}}
    for ladder in [*filter(None, args.ladders.split(",")), *args.ladder]:
        t, sec = _table(images, ladder, clfs, args.batch_size, args.cache)
        print(f"\n== {ladder}: {len(images)} images, {len(t.labels)} rungs; exhaustive: {1 + len(t.labels)} evals/img, "
              f"{len(images) / sec:.2f} images/s ({sec:.0f} s)")
        rows = [_row(t, Criterion(tau, keep_top1=k), s, args.batch_size, None)
                for tau in taus for k in (False, True) for s in STRATEGIES]
        rows += [_row(t, Criterion(tau), "predict", args.batch_size, src) for tau in taus]
        _print_rows(rows)
        entry: dict[str, Any] = {"exhaustive_seconds": sec, "exhaustive_images_per_s": len(images) / sec, "rows": rows}
        if args.real_tau > 0:
            real = _real(images, ladder, args.real_tau, clfs, args.batch_size, t)
            print(f"real choose() at max_kl={args.real_tau}: {real['evals']:.2f} evals/img, "
                  f"{real['images_per_s']:.2f} images/s ({real['seconds']:.0f} s; exhaustive {len(images) / sec:.2f}); "
                  f"same rung as the replay for {100 * real['same_as_replay']:.1f}%")
            entry["real"] = real
        report["ladders"][ladder] = entry
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
