"""What ``dnnjpeg recompress --trellis`` saves in bytes and costs in time, measured side by side in one run.

    python benchmarks/recompress_trellis.py --data ../shared/data/imagenet-sample-dev \\
        [--table efficientnet_lite0] [--qualities 30,50,75] [--repeat 3] [--workers N] [--json OUT]

For each family member, the folder is recompressed three ways with the same table, each run the full
``dnnjpeg.recompress`` (walk, pool, reading, writing, manifest) into a fresh temporary folder:
``plain`` (libjpeg, default Huffman tables: what ``recompress`` writes without options),
``optimize`` (libjpeg, optimized Huffman tables: ``--optimize``) and ``trellis`` (mozjpeg's trellis
quantization, written as baseline with optimized Huffman tables: ``--trellis``). The runs are interleaved
``--repeat`` times; the median wall time of each is reported, with total output bytes and the ratios
against ``plain`` and ``optimize``. Every output of every variant is a baseline JPEG (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

VARIANTS = {"plain": {}, "optimize": {"optimize": True}, "trellis": {"trellis": True}}


def _output_bytes(folder: str) -> tuple[int, int]:
    """(total bytes, files) of the JPEG outputs under ``folder`` (the manifest left out); checks baseline."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".dnnjpeg"):
                continue
            path = Path(dirpath, name)
            with Image.open(path) as im:  # Pillow reads the frame header: progressive (SOF2) or not
                if im.format != "JPEG" or "progressive" in im.info:
                    raise SystemExit(f"{name}: not a baseline JPEG")
            total += path.stat().st_size
            files += 1
    return total, files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, type=Path, help="a folder of images (not modified)")
    p.add_argument("--table", default="efficientnet_lite0", help="family name or JSON path")
    p.add_argument("--qualities", default="30,50,75", help="family members to measure")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="recompress workers (default: one per core)")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)

    import dnnjpeg

    qualities = [int(q) for q in args.qualities.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dnnjpeg-trellis-bench-") as tmp:
        for quality in qualities:
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            sizes: dict[str, tuple[int, int]] = {}
            for _ in range(args.repeat):
                for variant, options in VARIANTS.items():
                    dst = os.path.join(tmp, variant)
                    t0 = time.perf_counter()
                    summary = dnnjpeg.recompress(
                        args.data, dst, args.table, quality, args.workers, images_only=True, **options
                    )
                    times[variant].append(time.perf_counter() - t0)
                    if summary.exit_code != 0:
                        raise SystemExit(f"{variant} q{quality}: some files failed:\n{summary.format()}")
                    sizes[variant] = _output_bytes(dst)
                    shutil.rmtree(dst)
            n = sizes["plain"][1]
            row = {"quality": quality, "files": n}
            for variant in VARIANTS:
                row[variant] = {"bytes": sizes[variant][0], "seconds": statistics.median(times[variant])}
            rows.append(row)
            plain, opt, tr = row["plain"], row["optimize"], row["trellis"]
            print(f"q{quality}: {n} files; bytes plain {plain['bytes']}, optimize {opt['bytes']}, "
                  f"trellis {tr['bytes']}: trellis/plain {tr['bytes'] / plain['bytes']:.3f}, "
                  f"trellis/optimize {tr['bytes'] / opt['bytes']:.3f}")
            print(f"      files/s plain {n / plain['seconds']:.1f}, optimize {n / opt['seconds']:.1f}, "
                  f"trellis {n / tr['seconds']:.1f}: time trellis/plain {tr['seconds'] / plain['seconds']:.2f}x, "
                  f"trellis/optimize {tr['seconds'] / opt['seconds']:.2f}x (median of {args.repeat})")
    if args.json is not None:
        args.json.write_text(json.dumps({"data": str(args.data), "table": args.table, "workers": args.workers,
                                         "cpus": os.cpu_count(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
