"""CPU inference speed of a model alone, per batch size: glibc's default allocator, the tuned one
(:mod:`dnnjpeg.evaluation.runtime`), and the tuned one with batch norms folded (:mod:`dnnjpeg.evaluation.batchnorm`, what the
evaluator runs).

Each configuration runs in a fresh child process (the allocator is process-wide and remembers its
history), on the same crops, and reports ms/image (best of ``--repeats``), whether both allocators
give bit-identical logits, which batch sizes give bit-identical logits, and how far folding moves
the logits (max |difference|).  Figures in docs/evaluation.md.

    python benchmarks/cpu_inference.py [--limit 128] [--batch-sizes 1,4,8,12,16,64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("default", "tuned", "folded")  # allocator default / tuned / tuned + batch norms folded
DEV = Path(os.environ.get("DNNJPEG_DEV_DATA", ROOT.parent / "shared" / "data" / "imagenet-sample-dev"))


def child(args: argparse.Namespace) -> dict[str, object]:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from dnnjpeg.evaluation import models
    from dnnjpeg.evaluation.data import load_dataset
    from dnnjpeg.evaluation.runtime import allocator_settings, tune_allocator

    if args.allocator != "default":
        tune_allocator()
    clf = models.get(args.model, device="cpu")
    crops = np.stack(load_dataset(args.data, limit=args.limit).crops())
    out: dict[str, object] = {"allocator": allocator_settings(), "ms_per_image": {}, "logits_sha256": {}}
    plain = clf
    if args.allocator == "folded":
        clf = clf.fold_batchnorm()
        out["batchnorm_folded"] = clf.config.get("batchnorm_folded", 0)
    for bs in args.batch_sizes:
        clf(crops[:bs])  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            logits = [clf(crops[i : i + bs]).numpy() for i in range(0, len(crops), bs)]
            best = min(best, time.perf_counter() - t)
        out["ms_per_image"][bs] = 1000 * best / len(crops)
        out["logits_sha256"][bs] = hashlib.sha256(np.concatenate(logits).tobytes()).hexdigest()
    if clf is not plain:  # after the timing, so both models' memory is not in the way
        change = max(float((clf(crops[i : i + 8]) - plain(crops[i : i + 8])).abs().max()) for i in range(0, len(crops), 8))
        out["max_abs_logit_change"] = change
    out["torch_threads"] = torch.get_num_threads()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEV))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--limit", type=int, default=128)
    ap.add_argument("--batch-sizes", default="1,4,8,12,16,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--allocator", choices=CONFIGS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    if args.allocator:  # internal: one configuration, in this (fresh) process
        print(json.dumps(child(args)))
        return 0
    if not Path(args.data).is_dir():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    results = {}
    for config in CONFIGS:
        cmd = [sys.executable, __file__, "--allocator", config, "--data", args.data, "--model", args.model,
               "--limit", str(args.limit), "--batch-sizes", ",".join(map(str, args.batch_sizes)),
               "--repeats", str(args.repeats)]
        env = dict(os.environ, DNNJPEG_TUNE_MALLOC="0" if config == "default" else "1")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results[config] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{args.model}, {args.limit} crops, CPU, {results['tuned']['torch_threads']} torch threads")
    print(f"tuned allocator: {results['tuned']['allocator']}")
    folded = results["folded"]
    print(f"folded: {folded['batchnorm_folded']} batch norms; max |logit change| {folded['max_abs_logit_change']:.2e}")
    print(f"{'batch':>5}  {'default':>8}  {'tuned':>8}  {'folded':>8}  ms/image | {'tuned':>6}  {'folded':>6}"
          "  vs default | allocators give the same logits")
    for bs in args.batch_sizes:
        d, t, f = (results[c]["ms_per_image"][str(bs)] for c in CONFIGS)
        same = results["default"]["logits_sha256"][str(bs)] == results["tuned"]["logits_sha256"][str(bs)]
        print(f"{bs:>5}  {d:>8.2f}  {t:>8.2f}  {f:>8.2f}           | {d / t:>5.2f}x  {d / f:>5.2f}x"
              f"              | {same}")
    groups: dict[str, list[int]] = {}
    for bs in args.batch_sizes:
        groups.setdefault(results["tuned"]["logits_sha256"][str(bs)], []).append(bs)
    print("batch sizes giving bit-identical logits:", " | ".join(",".join(map(str, g)) for g in groups.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
