"""How good is the uncorrected Fisher RD-OPT design?  Held-out KL at equal bytes, class-disjoint folds.

For each fold (tune on one half of the classes, measure on the other) and each quality q, the
table is designed on the tuning half by :mod:`dnnjpeg.search.design.rdopt` with four kinds of weights -- the
model's Fisher information at the original images (``fisher``), the same at the images as standard
JPEG q decodes them (``fisher-decoded``: what ``FisherSearch`` uses by default), the first averaged
per frequency (``fisher-freq``: no per-block information) and ones (``mse``: classic RD-OPT for
squared error) -- and each of three rate models (``--rates``): libjpeg's Huffman bits with standard
JPEG q's zero runs (``huffman``), the same in a second pass with the zero runs of the design that
spends standard q's modeled bits (``huffman2``, what ``FisherSearch`` does by default), or the
run-blind proxy (``proxy``), with the rate price ``lam`` bisected so the table's real libjpeg size
on the tuning half matches standard JPEG q.
On the held-out half it reports bytes, KL, top-1, and the *saving at equal KL*: the table's bytes
over the bytes standard JPEG needs for the same held-out KL (log-bytes interpolation of its curve
at qualities 5..95), minus one.  Negative is better.  ``--check`` also prints, on the tuning half,
the Fisher-predicted KL (diagonal, 1/2 sum F e^2) next to the real KL of standard tables and the
designs: the quadratic model's blind spots.

Example (CPU, about 8 minutes per fold for four qualities):
    python -m research.fisher_design --data ../shared/data/imagenet-sample-dev --fold 0 --qualities 30 50 75 90
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dnnjpeg import QTable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--fold-seed", type=int, default=0)
    p.add_argument("--qualities", type=int, nargs="+", default=[30, 50, 75])
    p.add_argument("--weights", nargs="+", default=["fisher", "fisher-decoded"],
                   choices=["fisher", "fisher-decoded", "fisher-freq", "mse"])
    p.add_argument("--rates", nargs="+", default=["proxy", "huffman", "huffman2"],
                   choices=["proxy", "huffman", "huffman2"])
    p.add_argument("--check", action="store_true", help="also print predicted vs real KL on the tuning half")
    p.add_argument("--out", type=Path, help="write the measurements as JSON")
    args = p.parse_args(argv)

    from dnnjpeg.evaluation.codec import Codec
    from dnnjpeg.evaluation.data import class_disjoint_folds, load_dataset
    from dnnjpeg.evaluation.models import get
    from dnnjpeg.search.design.fisher_weights import fisher_statistics
    from dnnjpeg.search.design.rdopt import rd_curves, rd_steps, rd_steps_for_rate

    t0 = time.perf_counter()
    ds = load_dataset(args.data)
    crops, labels = ds.crops(), ds.labels
    fold = class_disjoint_folds(labels, k=args.folds, seed=args.fold_seed)[args.fold]
    train, test = np.asarray(fold.train), np.asarray(fold.test)
    clf = get(args.model)
    codec = Codec()
    print(f"{clf.name} on {clf.device}; fold {args.fold}: tune on {len(train)}, measure on {len(test)} images "
          f"of {ds.root}", flush=True)

    st = fisher_statistics(clf, crops[train], ("4:2:0",))["4:2:0"]
    print(f"statistics: {time.perf_counter() - t0:.0f} s", flush=True)

    decoded_stats: dict[int, Any] = {}

    def weights(name: str, q: int) -> tuple[Any, Any]:
        if name == "fisher":
            return st.luma_weights, st.chroma_weights
        if name == "fisher-decoded":
            if q not in decoded_stats:
                decoded, _ = codec.roundtrip_batch(crops[train], QTable.standard(q))
                decoded_stats[q] = fisher_statistics(clf, decoded, ("4:2:0",))["4:2:0"]
            return decoded_stats[q].luma_weights, decoded_stats[q].chroma_weights
        if name == "fisher-freq":
            return st.luma_weights.mean(0), st.chroma_weights.mean(0)
        return np.ones(64), np.ones(64)

    def designer(wy: Any, wc: Any, rate: str, q: int) -> Any:
        def curves(ref_y: Any, ref_c: Any) -> tuple[Any, Any]:
            return (rd_curves(st.luma_coefficients, wy, reference=ref_y, component="luma"),
                    rd_curves(st.chroma_coefficients, wc, reference=ref_c, component="chroma"))

        std = QTable.standard(q)
        ly, lc = curves(std.luma, std.chroma) if rate != "proxy" else curves(None, None)
        if rate == "huffman2":  # as FisherSearch's second pass: runs of the design spending standard q's modeled bits
            ly, lc = curves(*rd_steps_for_rate([ly, lc], ly.totals(std.luma)[1] + lc.totals(std.chroma)[1]))
        return lambda lam: QTable(rd_steps(ly, lam), rd_steps(lc, lam), subsampling="4:2:0")

    def mean_bytes(table: QTable, idx: np.ndarray) -> float:
        return float(codec.sizes(crops[idx], table).mean())

    def matched(design: Any, target: float) -> tuple[QTable, float]:
        """The design whose tuning-half size is the largest not above ``target`` (bisection on log lam)."""
        lo, hi = math.log(1e-12), math.log(1e6)
        best: tuple[QTable, float] | None = None
        for _ in range(50):
            mid = (lo + hi) / 2
            t = design(math.exp(mid))
            b = mean_bytes(t, train)
            if b <= target:
                best, hi = (t, b), mid
            else:
                lo = mid
            if best is not None and best[1] > 0.998 * target:
                break
        assert best is not None
        return best

    def judge(table: QTable, idx: np.ndarray, ref: Any) -> dict[str, float]:
        decoded, nbytes = codec.roundtrip_batch(crops[idx], table)
        logp = _logp(clf, decoded)
        kl = (ref.exp() * (ref - logp)).sum(1).numpy()
        top1 = (logp.argmax(1).numpy() == labels[idx]).mean()
        return {"bytes": float(nbytes.mean()), "kl": float(kl.mean()), "top1": float(top1)}

    ref_test, ref_train = _logp(clf, crops[test]), _logp(clf, crops[train])
    standard = {q: judge(QTable.standard(q), test, ref_test) for q in range(5, 100, 5)}
    sb = np.log([standard[q]["bytes"] for q in sorted(standard)])
    sk = np.array([standard[q]["kl"] for q in sorted(standard)])

    def saving(r: dict[str, float]) -> float:
        return r["bytes"] / math.exp(float(np.interp(-r["kl"], -sk, sb))) - 1

    report: dict[str, Any] = {"command": " ".join(["python", "-m", "research.fisher_design", *(argv or sys.argv[1:])]),
                              "model": clf.name, "device": str(clf.device), "data": str(ds.root),
                              "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
                              "fold": args.fold, "rows": []}
    print(f"{'q':>3} {'weights/rate':22} {'bytes':>7} {'std bytes':>9} {'KL':>7} {'std KL':>7} {'top1':>6} {'std':>6} "
          f"{'saving at equal KL':>19}")
    for q in args.qualities:
        target = mean_bytes(QTable.standard(q), train)
        for name, rate in [(w, r) for w in args.weights for r in args.rates]:
            table, _ = matched(designer(*weights(name, q), rate, q), target)
            r = judge(table, test, ref_test)
            s = standard[q]
            print(f"{q:>3} {name + '/' + rate:22} {r['bytes']:7.0f} {s['bytes']:9.0f} {r['kl']:7.4f} {s['kl']:7.4f} "
                  f"{r['top1']:6.3f} {s['top1']:6.3f} {100 * saving(r):+18.1f}%", flush=True)
            row = {"quality": q, "weights": name, "rate": rate, "table": table.to_dict(), **r, "saving_at_equal_kl": saving(r)}
            if args.check:
                real = judge(table, train, ref_train)["kl"]
                std_real = judge(QTable.standard(q), train, ref_train)["kl"]
                row.update(train_kl=real, train_kl_predicted=_predicted(st, table), standard_train_kl=std_real,
                           standard_train_kl_predicted=_predicted(st, QTable.standard(q)))
                print(f"    tuning half: real KL {real:.4f} (standard {std_real:.4f}), predicted "
                      f"{row['train_kl_predicted']:.4f} (standard {row['standard_train_kl_predicted']:.4f})")
            report["rows"].append(row)
    report["seconds"] = time.perf_counter() - t0
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(f"done in {report['seconds']:.0f} s")
    return 0


def _logp(clf: Any, images: np.ndarray) -> Any:
    import torch

    with torch.no_grad():
        return torch.cat([clf(images[i : i + 64]).float().log_softmax(1).cpu() for i in range(0, len(images), 64)])


def _predicted(st: Any, table: QTable) -> float:
    """Diagonal second-order KL: 1/2 sum over coefficients of weight x squared quantization error, per image."""
    total = 0.0
    for w, c, steps in ((st.luma_weights, st.luma_coefficients, table.luma),
                        (st.chroma_weights, st.chroma_coefficients, table.chroma)):
        q = np.asarray(steps, dtype=np.float64)
        total += float((w * (c - q * np.round(c / q)) ** 2).sum())
    return total / 2 / st.n_images


if __name__ == "__main__":
    sys.exit(main())
