"""How long does a ``fisher`` search take to design its first table, and which part costs what?

Times, side by side on the same luma blocks, the curves :class:`dnnjpeg.search.fisher.FisherSearch` designs
from: :func:`dnnjpeg.search.design.rdopt.rd_curves` with the run-blind proxy rate, the same with libjpeg's Huffman bits
(the first rate pass), and the Huffman bits alone (:func:`dnnjpeg.search.design.jpegbits.coefficient_bits`, all the
second pass recounts), each the best of ``--repeat`` runs, with ratios.  With ``--model``, also the whole
set-up of a search (Fisher statistics at the decoded images, coefficients, curves of luma and of chroma at
every subsampling, both passes): the time its first design takes.

Example (CPU, about a minute; run it alone, other jobs on the cores distort every figure):
    python benchmarks/rd_curves_speed.py --data ../shared/data/imagenet-sample-dev --model efficientnet_lite0
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit
from collections.abc import Callable

import numpy as np

from dnnjpeg import QTable


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=250, help="first N crops (default 250, fisher's max_images)")
    p.add_argument("--quality", type=int, default=30, help="reference table: standard JPEG at this quality")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--model", default=None, help="also time a fisher search's set-up with this model")
    args = p.parse_args(argv)

    from dnnjpeg.evaluation.data import load_dataset
    from dnnjpeg.search.design.fisher_weights import block_coefficients
    from dnnjpeg.search.design.jpegbits import coefficient_bits
    from dnnjpeg.search.design.rdopt import STEP_GRID, rd_curves

    crops = load_dataset(args.data).crops()[: args.limit]
    luma, _ = block_coefficients(crops, "4:2:0")
    reference = QTable.standard(args.quality).luma
    ones = np.ones(64)
    print(f"{len(crops)} crops of {args.data}: {len(luma)} luma blocks ({min(len(luma), 60_000)} for AC), "
          f"{len(STEP_GRID)} steps; {platform.node()} {platform.processor() or platform.machine()}")

    def best_of(fn: Callable[[], object]) -> float:
        return min(timeit.repeat(fn, number=1, repeat=args.repeat))

    proxy = best_of(lambda: rd_curves(luma, ones))
    huffman = best_of(lambda: rd_curves(luma, ones, reference=reference, component="luma"))
    bits = best_of(lambda: coefficient_bits(luma, reference, "luma", steps=STEP_GRID))
    print(f"rd_curves, proxy rate                      {proxy:6.2f} s")
    print(f"rd_curves, Huffman bits (first pass)       {huffman:6.2f} s   {huffman / proxy:5.2f}x the proxy's")
    print(f"Huffman bits alone (second pass recount)   {bits:6.2f} s   {bits / huffman:5.2f}x the first pass")
    if args.model:
        from dnnjpeg.evaluation.models import get
        from dnnjpeg.search import SearchContext
        from dnnjpeg.search.fisher import FisherSearch

        context = SearchContext(images=crops, classifier=get(args.model), quality=args.quality)
        search = FisherSearch("separate+subsampling", context=context, seed=0)
        for _ in range(3):  # standard JPEG at each subsampling, no design needed
            search.ask()
        setup = timeit.timeit(search.ask, number=1)  # once: the set-up happens on the first design only
        print(f"fisher set-up, {args.model}, 3 subsamplings   {setup:6.2f} s   (statistics, coefficients, curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
