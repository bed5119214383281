"""Throughput of ``dnnjpeg.recompress`` against a plain in-memory Pillow loop, in one run.

    python benchmarks/recompress_throughput.py [--data DIR] [--table resnet50] [--repeat 3] [--json OUT]

Baseline: every file's bytes are read into memory first; then one process loops over
them: ``Image.open(BytesIO(b))`` + ``load()`` + ``save(BytesIO(), "JPEG", qtables=...,
subsampling=...)`` (plain Pillow, no dnnjpeg code, no file I/O, no hashing, no manifest).

Ours: ``dnnjpeg.recompress(data, fresh_tmp_dst, table, workers=default)``: the full run
(walk, process pool start-up, reading and writing files, SHA-256 of both, manifest).

Both are repeated ``--repeat`` times, interleaved, and the median wall time of each is
reported as files/s and MB/s of source JPEG read, with the ratio ours / baseline.
The issue's goal: ratio >= 1.8 on 2 cores.  The source files are read once before timing
so both sides start from the page cache.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

import dnnjpeg
from dnnjpeg.batch import default_workers

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "imagenet-sample-dev"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def baseline(blobs: list[bytes], qtables: list[list[int]], subsampling: str) -> tuple[float, float]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    for b in blobs:
        with Image.open(io.BytesIO(b)) as im:
            im.load()
            out = io.BytesIO()
            im.save(out, "JPEG", qtables=qtables, subsampling=subsampling)
    return time.perf_counter() - t0, cpu_seconds() - c0


def ours(src: Path, dst_parent: Path, table: dnnjpeg.QTable, workers: int | None) -> tuple[float, float, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="dnnjpeg-bench-", dir=dst_parent))
    try:
        c0, t0 = cpu_seconds(), time.perf_counter()
        summary = dnnjpeg.recompress(src, tmp / "out", table, workers=workers)
        return time.perf_counter() - t0, cpu_seconds() - c0, summary
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--table", default="resnet50")
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="recompress workers (default: one per core)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--tmp", type=Path, default=None, help="where to write outputs (default: the system temp folder)")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"skip: {args.data} not found (the dev images live in ../shared/data)", file=sys.stderr)
        return 0
    files = sorted(p for p in args.data.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        print(f"skip: no JPEG files under {args.data}", file=sys.stderr)
        return 0
    qt = dnnjpeg.load(args.table, args.quality)
    blobs = [p.read_bytes() for p in files]
    nbytes = sum(map(len, blobs))
    # recompress walks the whole folder: give it exactly these files.
    stage = Path(tempfile.mkdtemp(prefix="dnnjpeg-bench-src-"))
    try:
        src = stage / "src"
        src.mkdir()
        for p in files:
            dest = src / p.relative_to(args.data)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(p, dest)
            except OSError:
                shutil.copy2(p, dest)
        workers = args.workers if args.workers is not None else default_workers()
        base_t: list[float] = []
        our_t: list[float] = []
        base_c: list[float] = []
        our_c: list[float] = []
        summary = None
        qtables = [list(qt.luma), list(qt.chroma)]
        baseline(blobs[:20], qtables, qt.subsampling)  # warm-up
        for _ in range(args.repeat):
            t, c = baseline(blobs, qtables, qt.subsampling)
            base_t.append(t)
            base_c.append(c)
            t, c, summary = ours(src, args.tmp or stage, qt, args.workers)
            our_t.append(t)
            our_c.append(c)
        assert summary is not None
        if summary.failed:
            print(f"warning: {summary.failed} files failed", file=sys.stderr)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    tb, to = statistics.median(base_t), statistics.median(our_t)
    cb, co = statistics.median(base_c), statistics.median(our_c)
    n = len(files)
    ratio = tb / to
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {
        "files": n,
        "megabytes": round(nbytes / 1e6, 2),
        "table": args.table,
        "cores": default_workers(),
        "workers": workers,
        "repeat": args.repeat,
        "baseline_seconds": [round(t, 3) for t in base_t],
        "recompress_seconds": [round(t, 3) for t in our_t],
        "baseline_files_per_s": round(n / tb, 1),
        "baseline_mb_per_s": round(nbytes / 1e6 / tb, 2),
        "recompress_files_per_s": round(n / to, 1),
        "recompress_mb_per_s": round(nbytes / 1e6 / to, 2),
        "ratio": round(ratio, 3),
        "ratio_per_worker": round(ratio / workers, 3) if workers else None,
        "baseline_cpu_seconds": [round(c, 3) for c in base_c],
        "recompress_cpu_seconds": [round(c, 3) for c in our_c],
        "cpu_overhead": round(co / cb - 1, 3),
        "loadavg_1min_after": round(load, 2),
        "pillow": Image.__version__,
    }
    print(f"{n} files, {nbytes / 1e6:.1f} MB, table {args.table}, {default_workers()} cores, {workers} workers")
    print(f"baseline (1 process, in memory): {n / tb:7.1f} files/s {nbytes / 1e6 / tb:6.2f} MB/s  (median of {base_t})")
    print(f"dnnjpeg recompress             : {n / to:7.1f} files/s {nbytes / 1e6 / to:6.2f} MB/s  (median of {our_t})")
    print(f"ratio {ratio:.2f}x on {workers} workers ({ratio / max(workers, 1):.2f} per worker); load avg {load:.2f}")
    print(
        f"CPU seconds (user+sys, all processes): baseline {cb:.2f}, recompress {co:.2f}: "
        f"overhead {100 * (co / cb - 1):+.1f}% (independent of other load on the machine)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
