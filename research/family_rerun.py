"""What rerunning ``dnnjpeg family`` on finished journals costs, with and without its kept evaluations.

A small family is tuned into a fresh workdir (the first run), then the same command is rerun three
times side by side: with the workdir as the first run left it (journals, each search's size-matched
result, and ``evaluations/``: what an interrupted or finished run resumes from), and with
``evaluations/`` removed (standard JPEG's curve, the held-out folds, the members and mozjpeg's curve
evaluated again, as every rerun did before dnnjpeg kept them; the searches' size matching is still read
from the journals). The median wall time of each is
printed with their ratio, and the family files are checked to be the same apart from their dates.

    python -m research.family_rerun --data ../shared/data/imagenet-sample-dev [--limit 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a labelled ImageNet folder (class-disjoint folds)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--limit", type=int, default=60, help="images (default 60)")
    p.add_argument("--qualities", default="40,75")
    p.add_argument("--budget", type=int, default=3)
    p.add_argument("--repeat", type=int, default=3, help="reruns of each kind, interleaved (default 3)")
    args = p.parse_args(argv)

    from dnnjpeg.cli import main as cli_main
    from dnnjpeg.testing import without_dates

    def dnnjpeg_main(argv: list[str]) -> int:
        with contextlib.redirect_stdout(io.StringIO()):  # the family summary: not this benchmark's output
            return cli_main(argv)

    with tempfile.TemporaryDirectory(prefix="dnnjpeg-rerun-") as tmp:
        out = Path(tmp) / "bench.json"
        work = out.with_suffix(".work")
        command = ["family", "--model", args.model, "--data", args.data, "--limit", str(args.limit),
                   "--name", "bench", "--qualities", args.qualities, "--methods", "sorted", "--budget",
                   str(args.budget), "--space", "separate+subsampling", "--out", str(out)]
        t0 = time.perf_counter()
        if dnnjpeg_main(command) != 0:
            return 1
        first = time.perf_counter() - t0
        reference = without_dates(json.loads(out.read_text()))
        kept = work / "evaluations"
        saved = Path(tmp) / "evaluations.saved"
        shutil.copytree(kept, saved)
        times: dict[str, list[float]] = {"kept evaluations": [], "journals only": []}
        for _ in range(args.repeat):
            for kind, took in times.items():
                shutil.rmtree(kept)
                if kind == "kept evaluations":
                    shutil.copytree(saved, kept)
                t0 = time.perf_counter()
                if dnnjpeg_main(command) != 0:
                    return 1
                took.append(time.perf_counter() - t0)
                if without_dates(json.loads(out.read_text())) != reference:
                    print(f"{kind}: the rerun wrote another family", file=sys.stderr)
                    return 1
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.model}, {args.limit} images, qualities {args.qualities}, budget {args.budget}; "
          f"first run {first:.1f} s")
    for kind, m in med.items():
        print(f"rerun, {kind:17s} median {m:6.1f} s  ({', '.join(f'{t:.1f}' for t in times[kind])})")
    print(f"journals only / kept evaluations: {med['journals only'] / med['kept evaluations']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
