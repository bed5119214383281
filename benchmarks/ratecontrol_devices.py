"""Do two torch devices pick the same rungs?  :func:`dnnjpeg.ratecontrol.choose` on the same photos on each.

    python benchmarks/ratecontrol_devices.py [--data DIR] [--limit 200] [--devices cpu,cuda,cuda-notf32]
        [--max-kl 0.05] [--ladder standard] [--model efficientnet_lite0] [--json OUT]

Each device runs the same call: the same images in the same order, each source's bytes passed as
``sources`` (as ``recompress`` does), a fresh search model of KL, batches of 32.  A GPU's logits differ
from the CPU's in the last bits (other kernels, other summation orders; by default cuDNN convolutions in
TF32, which rounds their inputs to 10 bits), so a KL near ``max_kl`` can land on the other side of it
and the search then goes elsewhere: the figure is the agreement rate, not equality.  ``cuda-notf32``
is CUDA with TF32 off for convolutions and matrix products.

Printed against the first device: the share of images given the same answer (rung, or the original
kept), the share that probed the same rungs in the same order, mean evaluations per image on each, and
for the images given the same rung the KL differences there; the images that differ (up to 10).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if importlib.util.find_spec("dnnjpeg") is None:  # a checkout, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ratecontrol_search import _load  # noqa: E402
from recompress_throughput import DEFAULT_DATA  # noqa: E402

from dnnjpeg.evaluation.data import load_dataset  # noqa: E402
from dnnjpeg.ratecontrol import Criterion, RateControl, choose, load_classifiers  # noqa: E402


def run(device: str, images: list[Any], sources: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """``choose`` on ``device`` (``cuda-notf32``: CUDA without TF32): its choices, timed."""
    import torch

    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    dev = device.removesuffix("-notf32")
    rc = RateControl(models=(args.model,), criterion=Criterion(args.max_kl), ladder=args.ladder, device=dev)
    clfs = load_classifiers(rc)
    try:
        if device.endswith("-notf32"):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        choose(images[:2], rc, classifiers=clfs, sources=sources[:2])  # warm-up
        t0 = time.perf_counter()
        choices = choose(images, rc, classifiers=clfs, sources=sources)
        seconds = time.perf_counter() - t0
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"device": device, "seconds": seconds, "images_per_s": len(images) / seconds, "choices": choices,
            "evaluations": float(np.mean([c.evaluations for c in choices]))}


def compare(a: dict[str, Any], b: dict[str, Any], names: list[str], model: str) -> dict[str, Any]:
    """How often ``b`` gave ``a``'s answer and probed ``a``'s rungs; the KL differences on shared answers."""
    same, same_path, dkl, differ = [], [], [], []
    for name, ca, cb in zip(names, a["choices"], b["choices"]):
        ans_a = "original" if ca.kept_original else ca.rung
        ans_b = "original" if cb.kept_original else cb.rung
        same.append(ans_a == ans_b)
        same_path.append(list(ca.tried) == list(cb.tried))
        ka, kb = ca.kl.get(model), cb.kl.get(model)
        if ans_a == ans_b and ka is not None and kb is not None and not ca.kept_original:
            dkl.append(abs(ka - kb))
        if ans_a != ans_b:
            differ.append({"file": name, a["device"]: ans_a, b["device"]: ans_b,
                           f"kl_{a['device']}": ka, f"kl_{b['device']}": kb})
    d = np.array(dkl) if dkl else np.zeros(1)
    return {"device": b["device"], "against": a["device"], "same_answer": float(np.mean(same)),
            "same_probes": float(np.mean(same_path)), "kl_abs_diff_median": float(np.median(d)),
            "kl_abs_diff_max": float(d.max()), "differ": differ}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--devices", default="cpu,cuda,cuda-notf32")
    p.add_argument("--max-kl", type=float, default=0.05)
    p.add_argument("--ladder", default="standard")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    devices = args.devices.split(",")
    files = load_dataset(args.data, limit=args.limit).files
    images, _ = _load(args.data, args.limit)
    sources = [f.read_bytes() for f in files]
    names = [f.name for f in files]
    runs = [run(d, images, sources, args) for d in devices]
    print(f"{len(images)} photos, {args.model}, max KL {args.max_kl:g}, ladder {args.ladder}; choose() on each device")
    for r in runs:
        print(f"  {r['device']:12s} {r['evaluations']:.2f} evaluations/image, {r['images_per_s']:.1f} images/s")
    result: dict[str, Any] = {"images": len(images), "model": args.model, "max_kl": args.max_kl,
                              "ladder": args.ladder, "runs": [{k: v for k, v in r.items() if k != "choices"}
                                                              for r in runs], "comparisons": []}
    for r in runs[1:]:
        c = compare(runs[0], r, names, args.model)
        result["comparisons"].append(c)
        print(f"{c['device']} against {c['against']}: same answer for {c['same_answer']:.1%} of the images, same "
              f"probes for {c['same_probes']:.1%}; |KL difference| on the same rung: median "
              f"{c['kl_abs_diff_median']:.2e}, max {c['kl_abs_diff_max']:.2e}")
        for x in c["differ"][:10]:
            print("   ", json.dumps(x))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
