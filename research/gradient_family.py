"""Tune a gradient-search table family, cross-validated on class-disjoint folds.

For each fold (tune on k-1 folds, test on the held-out one, classes disjoint) and each target
quality q, :func:`research.gradient_tune.gradient_tune` tunes a table size-matched to standard
JPEG q on the tuning images; the held-out images are then compressed with real libjpeg (Pillow)
with the tuned table and with standard JPEG at every quality 5..95, and classified.  With
``--ship`` it also tunes each member on all images and writes a family JSON.

Everything measured is written to ``--out/gradient_cv.json`` with per-image arrays, so every
statistic (paired tests, bootstrap CIs, BD-rate) can be recomputed from it.

Examples:
    # on this machine (CPU, hours): the dev data as it lies
    python -m research.gradient_family --data ../shared/data/imagenet-sample-dev --out out/gradient
    # pack lossless crops + labels to carry to a GPU machine (about 38 MB)
    python -m research.gradient_family --data ../shared/data/imagenet-sample-dev --pack .device/crops
    python -m research.gradient_family --crops .device/crops --out $OUT --ship
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dnnjpeg import QTable, __version__
from dnnjpeg.families import Family
from research.gradient_tune import GradientTuneConfig, gradient_tune

QUALITIES = (30, 40, 50, 60, 75, 90)
CURVE_QUALITIES = tuple(range(5, 100, 5))


def load_crops(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.crops:
        folder = Path(args.crops)
        with open(folder / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        crops = np.stack([np.asarray(Image.open(folder / r["file"]).convert("RGB")) for r in rows])
        labels = np.array([int(r["class_index"]) for r in rows])
        return crops, labels, (folder / "SOURCE").read_text().strip() if (folder / "SOURCE").exists() else str(folder)
    from dnnjpeg.evaluation.data import load_dataset

    ds = load_dataset(args.data, limit=args.limit)
    return ds.crops(progress=True), ds.labels, f"{ds.root} (fingerprint {ds.fingerprint('crop224')})"


def pack(crops: np.ndarray, labels: np.ndarray, source: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class_index"])
        for i, (arr, lab) in enumerate(zip(crops, labels)):
            name = f"{i:04d}.webp"
            Image.fromarray(arr).save(out / name, "WEBP", lossless=True, quality=100)
            w.writerow([name, int(lab)])
    (out / "SOURCE").write_text(source + "\n")
    print(f"packed {len(crops)} lossless crops into {out}")


class Judge:
    """Real libjpeg round trips + classifier on a fixed set of images."""

    def __init__(self, classifier: Any, crops: np.ndarray, labels: np.ndarray, workers: int) -> None:

        from dnnjpeg.evaluation.codec import Codec

        self.clf, self.crops, self.labels = classifier, crops, labels
        self.codec = Codec(workers)
        self.ref_logp = self._logp(crops)

    def _logp(self, images: np.ndarray) -> Any:
        import torch

        out = [self.clf(images[i : i + 128]).float().log_softmax(1).cpu() for i in range(0, len(images), 128)]
        return torch.cat(out)

    def __call__(self, table: QTable) -> dict[str, list[float]]:
        decoded, sizes = self.codec.roundtrip_batch(self.crops, table)
        logp = self._logp(decoded)
        kl = (self.ref_logp.exp() * (self.ref_logp - logp)).sum(1).numpy()
        ce = (-logp[np.arange(len(logp)), self.labels]).numpy()
        correct = (logp.argmax(1).numpy() == self.labels).astype(int)
        return {"correct": correct.tolist(), "kl": kl.round(6).tolist(), "ce": ce.round(6).tolist(),
                "bytes": sizes.tolist()}


def summarize(r: dict[str, list[float]]) -> dict[str, float]:
    b = np.mean(r["bytes"])
    return {"top1": float(np.mean(r["correct"])), "kl": float(np.mean(r["kl"])), "ce": float(np.mean(r["ce"])),
            "bytes_mean": float(b), "cr": 150582.0 / float(b)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="dataset folder (labels.csv); crop224 protocol")
    src.add_argument("--crops", help="folder of lossless 224x224 crops + labels.csv (from --pack)")
    p.add_argument("--pack", type=Path, help="only write lossless crops + labels.csv to this folder")
    p.add_argument("--out", type=Path, default=Path("out/gradient"))
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--qualities", type=int, nargs="+", default=list(QUALITIES))
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--loss", choices=("kl", "ce"), default="kl")
    p.add_argument("--single-table", action="store_true", help="one table for all components (the seed's space)")
    p.add_argument("--subsampling", default="4:2:0")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--ship", action="store_true", help="also tune every member on all images and write family.json")
    p.add_argument("--name", default="efficientnet_lite0", help="family name for --ship")
    args = p.parse_args(argv)

    crops, labels, source = load_crops(args)
    if args.pack:
        pack(crops, labels, source, args.pack)
        return 0
    import torch

    from dnnjpeg.evaluation.data import class_disjoint_folds
    from dnnjpeg.evaluation.models import get

    torch.manual_seed(args.seed)
    clf = get(args.model)
    device = str(clf.device)
    print(f"model {clf.name} on {device}; {len(crops)} images from {source}", flush=True)
    cfg = GradientTuneConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, loss=args.loss,
                             separate_chroma=not args.single_table, subsampling=args.subsampling, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "data": source, "model": clf.name, "device": device,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "torch": torch.__version__, "dnnjpeg": __version__,
        "qualities": args.qualities, "folds": [],
    }
    report["config"] = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    folds = class_disjoint_folds(labels, k=args.folds, seed=args.seed)
    t_start = time.perf_counter()
    for f, fold in enumerate(folds):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        judge = Judge(clf, crops[test], labels[test], args.workers)
        entry: dict[str, Any] = {"fold": f, "train": train.tolist(), "test": test.tolist(), "standard": {}, "tuned": {}}
        for q in sorted(set(CURVE_QUALITIES) | set(args.qualities)):
            entry["standard"][str(q)] = judge(QTable.standard(q, subsampling=args.subsampling))
        for q in args.qualities:
            t0 = time.perf_counter()
            res = gradient_tune(clf, crops[train], q, labels=labels[train], config=cfg)
            r = judge(res.table)
            r.update(table=res.table.to_dict(), seconds=time.perf_counter() - t0,
                     tune_bytes=res.bytes_mean, tune_target_bytes=res.target_bytes_mean)
            entry["tuned"][str(q)] = r
            s, t = summarize(entry["standard"][str(q)]), summarize(r)
            print(f"fold {f} q{q}: standard top1 {s['top1']:.4f} kl {s['kl']:.4f} CR {s['cr']:.2f} | "
                  f"tuned top1 {t['top1']:.4f} kl {t['kl']:.4f} CR {t['cr']:.2f} ({r['seconds']:.0f} s)", flush=True)
        report["folds"].append(entry)
        (args.out / "gradient_cv.json").write_text(json.dumps(report))
    if args.ship:
        members = {}
        for q in args.qualities:
            res = gradient_tune(clf, crops, q, labels=labels, config=cfg)
            prov = dict(res.table.meta["provenance"])
            prov.update(command=report["command"], data=source, device=device, dnnjpeg=__version__,
                        date=datetime.now(timezone.utc).date().isoformat())
            members[q] = res.table.replace(meta={"quality": q, "provenance": prov,
                                                  "metrics": {"tuning_bytes_mean": res.bytes_mean,
                                                              "standard_bytes_mean": res.target_bytes_mean}})
            print(f"ship q{q}: bytes {res.bytes_mean:.1f} (standard {res.target_bytes_mean:.1f})", flush=True)
        fam = Family(args.name, f"{clf.name} tables (gradient search)", members, 50 if 50 in members else args.qualities[0],
                     {"method": "gradient", "command": report["command"], "data": source})
        (args.out / "family.json").write_text(json.dumps(fam.to_dict(), indent=1))
    report["seconds"] = time.perf_counter() - t_start
    (args.out / "gradient_cv.json").write_text(json.dumps(report))
    print(f"done in {report['seconds']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
