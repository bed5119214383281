"""How well does the differentiable rate proxy predict libjpeg's file size?

Encodes N crop224 crops with 40 tables (standard qualities, the seed's sorted random tables,
and standard tables with rescaled chroma), computes the proxy for several settings of the
nonzero cost ``alpha`` and softness ``tau``, and prints the correlation with the real mean size
and the coefficient of variation of bytes/proxy (lower is better: a constant ratio means the
proxy can stand in for the size).

    python -m research.rate_proxy_fit --data ../shared/data/imagenet-sample-dev --limit 100
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dnnjpeg import QTable
from dnnjpeg._zigzag import from_zigzag
from dnnjpeg.evaluation.data import load_dataset
from research.diffjpeg import _encode_planes, block_dct, steps_from_qtable
from research.gradient_tune import mean_jpeg_bytes


def sorted_random(rng: np.random.Generator) -> np.ndarray:
    """The seed's sorted random generator (seed-results.md)."""
    v = np.sort(np.abs(rng.normal(size=64)))
    v /= v.max()
    lo, hi = rng.integers(0, 35), rng.integers(50, 150)
    t = (lo + v * (hi - lo)) * rng.uniform(0.5, 1.5)
    return np.clip(np.rint(from_zigzag(list(t))), 1, 255).astype(int)


def tables(rng: np.random.Generator, n: int = 40) -> list[QTable]:
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(QTable.standard(int(rng.integers(10, 95))))
        elif kind == 1:
            out.append(QTable(sorted_random(rng), sorted_random(rng)))
        elif kind == 2:
            out.append(QTable(sorted_random(rng), QTable.standard(int(rng.integers(10, 95))).chroma))
        else:
            s = QTable.standard(int(rng.integers(20, 90)))
            out.append(QTable(s.luma, np.clip(np.rint(np.array(s.chroma) * rng.uniform(0.3, 3)), 1, 255).astype(int)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    crops = load_dataset(args.data, limit=args.limit).crops()
    x = torch.tensor(crops).permute(0, 3, 1, 2).float()
    luma, chroma, _ = _encode_planes(x, "4:2:0")
    coef = (block_dct(luma), block_dct(chroma.reshape(-1, *chroma.shape[-2:])))
    tbls = tables(np.random.default_rng(args.seed))
    real = np.array([mean_jpeg_bytes(crops, t) for t in tbls])

    def proxy(t: QTable, alpha: float | None, tau: float) -> float:
        total = 0.0
        for c, st in zip(coef, steps_from_qtable(t)):
            r = c.abs() / st
            if alpha is None:  # plain log2(1 + |c|/q)
                bits = torch.log2(1 + r)
            else:
                nz = torch.sigmoid((r - 0.5) / tau) if tau > 0 else (r >= 0.5).float()
                bits = nz * (alpha + torch.log2(1 + r))
            total += float(bits.sum())
        return total / len(crops) / 8

    print(f"{len(crops)} crops, {len(tbls)} tables, real mean bytes {real.min():.0f}..{real.max():.0f}")
    print(f"{'proxy':<28} {'corr':>8} {'ratio CV':>9}")
    settings = [(None, 0.0)] + [(a, t) for a in (0, 2, 3, 4, 6) for t in (0.0, 0.1, 0.3)]
    for alpha, tau in settings:
        p = np.array([proxy(t, alpha, tau) for t in tbls])
        ratio = real / p
        label = "log2(1+r)" if alpha is None else f"nonzero*({alpha}+log2(1+r)) tau={tau}"
        print(f"{label:<28} {np.corrcoef(p, real)[0, 1]:8.4f} {ratio.std() / ratio.mean():9.4f}")


if __name__ == "__main__":
    main()
