"""How well do the two rate models of dnnjpeg.search.design.rdopt predict libjpeg's file sizes?

For standard JPEG at several qualities and for squared-error RD-OPT designs at several rate prices,
prints the real mean file size (Pillow/libjpeg, the evaluator's settings) next to the two models'
estimates: the run-blind proxy (``rd_curves`` without a reference) and libjpeg's Huffman bits with
each table's own zero runs (``rd_curves(..., reference=table)``, :mod:`dnnjpeg.search.design.jpegbits`).  A rate
model ranks tables of equal size correctly when its shortfall (real minus estimate) is the same for
all of them; the Huffman model's shortfall is the EOB codes and the headers, nearly constant.

Example (CPU, no model, about a minute):
    python -m research.rate_models --data ../shared/data/imagenet-sample-dev --limit 250
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

from dnnjpeg import QTable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=250, help="first N crops (default 250)")
    p.add_argument("--qualities", type=int, nargs="+", default=[20, 30, 50, 75, 90])
    p.add_argument("--lams", type=float, nargs="+", default=[10, 30, 100, 300])
    args = p.parse_args(argv)

    from dnnjpeg.evaluation.codec import Codec
    from dnnjpeg.evaluation.data import load_dataset
    from dnnjpeg.search.design.fisher_weights import block_coefficients
    from dnnjpeg.search.design.rdopt import rd_curves, rd_steps

    crops = load_dataset(args.data).crops()[: args.limit]
    n = len(crops)
    y, c = block_coefficients(crops, "4:2:0")
    proxy = rd_curves(y, np.ones(64)), rd_curves(c, np.ones(64))  # for the designs

    def bits(table: QTable, huffman: bool) -> float:
        """Estimated bits per image, with curves at exactly the table's steps."""
        total = 0.0
        for coef, steps, component in ((y, table.luma, "luma"), (c, table.chroma, "chroma")):
            curves = rd_curves(coef, np.ones(64), steps=np.unique(steps), reference=steps if huffman else None,
                               component=component)
            total += curves.totals(steps)[1]
        return total / 8 / n

    codec = Codec()
    print(f"{n} crops of {args.data}, 4:2:0; {platform.node()} {platform.processor() or platform.machine()}")
    print(f"{'table':14} {'real B':>8} {'proxy B':>8} {'short':>7} {'huffman B':>9} {'short':>7}")
    tables = [(f"standard q{q}", QTable.standard(q)) for q in args.qualities]
    tables += [(f"rd-opt lam {lam:g}", QTable(rd_steps(proxy[0], lam), rd_steps(proxy[1], lam), subsampling="4:2:0"))
               for lam in args.lams]
    for name, table in tables:
        real = float(codec.sizes(crops, table).mean())
        proxy_bytes, huffman_bytes = bits(table, False), bits(table, True)
        print(f"{name:14} {real:8.0f} {proxy_bytes:8.0f} {real - proxy_bytes:7.0f} {huffman_bytes:9.0f} "
              f"{real - huffman_bytes:7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
