"""Evaluation throughput: the evaluator against the model alone and against a naive seed-style loop.

Prints ratios measured in one run on the dev data (or a synthetic folder with --synthetic):

(a) ``evaluate(table)`` / model alone on the same already-decoded images (goal <= 1.10 on CPU);
(b) naive loop / ``evaluate(table)`` (goal >= 3): the seed's style, one image at a time through files
    on disk (BMP written, JPEG written with the table, file read back, decoded, torchvision
    ToTensor + Normalize, batch size 1), in two versions: ``naive`` encodes with Pillow in this
    process (a kind reading of the seed's code), ``naive_cjpeg`` runs the ``cjpeg`` program once
    per image as the seed did (its protocol: "JPEG-compressed with libjpeg cjpeg"; needs cjpeg,
    Debian's libjpeg-turbo-progs, else it is skipped);
plus the JPEG round trip alone with threads vs processes vs inline.

The evaluator runs the model with its batch norms folded (:mod:`dnnjpeg.evaluation.batchnorm`) and tunes glibc's
allocator before CPU inference (:mod:`dnnjpeg.evaluation.runtime`); both speed the model itself up, so the naive
loops run twice: in a fresh child process with the model as published and the default allocator
(``DNNJPEG_TUNE_MALLOC=0``; what the seed's script got, and the figure ratio (b) uses) and in this
process with the evaluator's folded model and tuned allocator (``*_same_runtime``: what batching and
the pipeline alone are worth).

Ratio (a) is the median over ``--repeats`` interleaved (model, evaluate) pairs, since a shared
machine's load drifts; times shown are the best of the repeats.  The reference
predictions and crops are computed (and cached) before timing: a search evaluates many tables
against one reference.

    python benchmarks/evaluate_throughput.py [--limit 128] [--device cpu|cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dnnjpeg.evaluation.codec import Codec, default_workers
from dnnjpeg.evaluation.evaluate import Evaluator
from dnnjpeg.qtable import QTable

DEV = Path(os.environ.get("DNNJPEG_DEV_DATA", ROOT.parent / "shared" / "data" / "imagenet-sample-dev"))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def naive_loop(ev: Evaluator, table: QTable, workdir: Path, cjpeg: str | None = None) -> float:
    """The seed's style: per image, BMP file -> JPEG file -> read -> decode -> transforms -> model(batch 1).

    With ``cjpeg`` (the program's path) the JPEG file is written by running it, as the seed did,
    with the exported table file and :func:`dnnjpeg.export.cjpeg_args` (tables written exactly)."""
    import subprocess

    import torch
    import torchvision.transforms as T
    from PIL import Image

    from dnnjpeg.export import cjpeg_args, to_cjpeg_text

    clf = ev.classifier
    mean, std = clf.config["mean"], clf.config["std"]
    to_input = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    correct = 0
    nbytes = 0
    tables_txt = workdir / "tables.txt"
    tables_txt.write_text(to_cjpeg_text(table))
    with torch.inference_mode():
        for i, crop in enumerate(ev.images):
            bmp = workdir / f"{i}.bmp"
            jpg = workdir / f"{i}.jpg"
            Image.fromarray(crop).save(bmp)
            if cjpeg:
                args = cjpeg_args(table, str(tables_txt), str(bmp), str(jpg))
                subprocess.run([cjpeg, *args[1:]], check=True)
            else:
                with Image.open(bmp) as im:
                    im.save(jpg, "JPEG", **table.save_options())
            nbytes += os.path.getsize(jpg)
            with Image.open(jpg) as im:
                x = to_input(im.convert("RGB")).unsqueeze(0).to(clf.device)
            pred = int(clf.module(x).argmax(1)[0])
            correct += pred == int(ev.labels[i])
    return correct / len(ev.images)


def naive_timings(ev: Evaluator, table: QTable) -> dict[str, float]:
    """Seconds and top-1 of the naive loops (Pillow in process; cjpeg per image when installed)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out["top1"] = naive_loop(ev, table, Path(tmp))
        out["s"] = time.perf_counter() - t
        exe = shutil.which("cjpeg")
        if exe:
            t = time.perf_counter()
            out["cjpeg_top1"] = naive_loop(ev, table, Path(tmp), cjpeg=exe)
            out["cjpeg_s"] = time.perf_counter() - t
    return out


def naive_in_child(args: argparse.Namespace) -> dict[str, float]:
    """:func:`naive_timings` in a fresh process with glibc's default allocator and the model as published
    (no folded batch norms), as the seed's script ran."""
    import subprocess

    cmd = [sys.executable, __file__, "--naive-child", "--data", args.data, "--model", args.model,
           "--limit", str(args.limit), "--quality", str(args.quality)]
    if args.device:
        cmd += ["--device", args.device]
    env = dict(os.environ, DNNJPEG_TUNE_MALLOC="0")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEV))
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--limit", type=int, default=128, help="images (default 128)")
    ap.add_argument("--quality", type=int, default=50, help="standard table used (default 50)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the evaluator's (64 on CUDA, 8 on CPU)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--naive-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import torch

    if not (Path(args.data) / "labels.csv").is_file():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    table = QTable.standard(args.quality)
    ev = Evaluator(args.model, args.data, limit=args.limit, batch_size=args.batch_size, device=args.device,
                   fold_batchnorm=not args.naive_child)
    if args.naive_child:  # internal: the naive loops only, in a process whose allocator is untouched
        ev.images  # noqa: B018 - crops from the cache before timing
        print(json.dumps(naive_timings(ev, table)))
        return 0
    args.batch_size = ev.batch_size
    n = ev.n
    crops = ev.images
    ev.reference()
    out: dict[str, object] = {
        "model": args.model,
        "n": n,
        "quality": args.quality,
        "device": str(ev.device),
        "torch_threads": torch.get_num_threads(),
        "codec_workers": ev.codec.workers,
        "cpus": default_workers(),
        "batch_size": args.batch_size,
    }
    if ev.device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(ev.device)

    # the decoded images a model-only run sees
    decoded, _ = ev.codec.roundtrip_batch(crops, table)

    def model_alone() -> None:
        for i in range(0, n, args.batch_size):
            ev.classifier(decoded[i : i + args.batch_size]).cpu()
        if ev.device.type == "cuda":
            torch.cuda.synchronize()

    def one_eval() -> None:
        ev.evaluate(table)

    default_prefetch = ev.prefetch  # on CUDA only

    def one_eval_other_prefetch() -> None:
        ev.prefetch = not default_prefetch
        try:
            ev.evaluate(table)
        finally:
            ev.prefetch = default_prefetch

    model_alone()  # warm-up
    one_eval()
    # interleaved pairs: a shared machine's load drifts, so compare neighbours and take the median
    pairs = []
    fns = [model_alone, one_eval, one_eval_other_prefetch]
    for rep in range(args.repeats):
        order = [(rep + j) % 3 for j in range(3)]  # rotate which runs first
        t = [0.0, 0.0, 0.0]
        for j in order:
            t[j] = best_of(fns[j], 1)
        pairs.append(tuple(t))
    t_model = min(p[0] for p in pairs)
    t_eval = min(p[1] for p in pairs)
    t_eval_other = min(p[2] for p in pairs)
    other = "with_prefetch" if not default_prefetch else "without_prefetch"
    out.update(
        prefetch=default_prefetch,
        model_alone_s=t_model,
        evaluate_s=t_eval,
        **{f"evaluate_{other}_s": t_eval_other},
        ratio_a_evaluate_over_model=float(np.median([p[1] / p[0] for p in pairs])),
        **{f"ratio_a_{other}": float(np.median([p[2] / p[0] for p in pairs]))},
        ratio_a_of_best_times=t_eval / t_model,
        images_per_s=n / t_eval,
    )

    # JPEG round trip alone: threads vs processes vs inline
    codec_times = {}
    for label, workers, backend in (
        ("inline", 1, "thread"),
        ("threads", default_workers(), "thread"),
        ("processes", default_workers(), "process"),
    ):
        with Codec(workers, backend) as codec:
            codec.roundtrip_batch(crops[:8], table)
            codec_times[label] = best_of(lambda c=codec: c.roundtrip_batch(crops, table), args.repeats)
    out["codec_roundtrip_s"] = codec_times

    if not args.skip_naive:
        from dnnjpeg.evaluation.runtime import allocator_settings

        out["allocator_tuned"] = bool(allocator_settings())
        child = naive_in_child(args)  # default allocator: the seed's situation
        same = naive_timings(ev, table)  # this process: the evaluator's folded model and tuned allocator
        out["evaluate_top1"] = ev.evaluate(table).top1
        for name, key in (("naive", ""), ("naive_cjpeg", "cjpeg_")):  # cjpeg: only where it is installed
            if f"{key}s" not in child:
                continue
            out.update({
                f"{name}_s": child[f"{key}s"],
                f"ratio_b_{name}_over_evaluate": child[f"{key}s"] / t_eval,
                f"{name}_same_runtime_s": same[f"{key}s"],
                f"ratio_b_{name}_same_runtime": same[f"{key}s"] / t_eval,
                f"{name}_top1": child[f"{key}top1"],
            })

    w = max(len(k) for k in out)
    for k, v in out.items():
        if isinstance(v, float):
            v = f"{v:.3f}"
        elif isinstance(v, dict):
            v = ", ".join(f"{a} {b:.3f}s" for a, b in v.items())
        print(f"{k:<{w}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    ev.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
