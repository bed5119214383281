"""dnnjpeg end to end on photos that install with the project (scikit-image's sample photos).

Run:  python examples/demo.py [--out DIR] [--budget N]

Steps (each prints what it measured; nothing is downloaded):
1. list the shipped tables;
2. compress the photos with standard JPEG q50 and with the seed's ``resnet50`` table;
3. tune a table for EfficientNet-Lite0 on tiles of half of the photos (``dnnjpeg tune``,
   seed's sorted random search, size-matched to standard q50, KL-based objective);
4. validate it on tiles of the *other* photos against standard JPEG (``dnnjpeg validate``);
5. recompress the photo folder with the tuned table (``dnnjpeg recompress``), then rerun it to
   show that it resumes, and once more with ``--trellis`` (mozjpeg's trellis quantization, same
   table, still baseline) to show the bytes it saves.

With a few dozen tiles the statistics are illustrative, not evidence: the point is the workflow.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from PIL import Image

import dnnjpeg
from dnnjpeg.cli import main as cli

#: RGB photographs whose files ship inside scikit-image's wheel (no download needed).
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel")


def sample_photos() -> dict[str, Image.Image]:
    """The RGB photographs bundled in scikit-image's wheel (those present in this version)."""
    from skimage import data

    photos = {}
    for name in SAMPLES:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        arr = np.asarray(loader())
        if arr.ndim == 3 and arr.shape[2] == 3 and min(arr.shape[:2]) >= 256:
            photos[name] = Image.fromarray(arr.astype(np.uint8))
    return photos


def write_tiles(photos: dict[str, Image.Image], folder: Path, size: int = 256) -> int:
    """Cut each photo into non-overlapping ``size`` tiles saved losslessly (PNG)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, im in photos.items():
        w, h = im.size
        for y in range(0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                im.crop((x, y, x + size, y + size)).save(folder / f"{name}_{y}_{x}.png")
                count += 1
    return count


def run(argv: list[str], capture: bool = False) -> str:
    """Run a ``dnnjpeg`` command in-process, as the CLI would."""
    print(f"  $ dnnjpeg {' '.join(argv)}")
    buf = io.StringIO()
    if capture:
        with redirect_stdout(buf):
            code = cli(argv)
    else:
        code = cli(argv)
    if code != 0:
        raise SystemExit(f"dnnjpeg {argv[0]} exited with {code}")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--budget", type=int, default=12, help="tuning evaluations (default 12)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="dnnjpeg-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    photos = sample_photos()
    names = sorted(photos)

    print("== 1. shipped tables")
    for name, description in dnnjpeg.tables().items():
        print(f"  {name:<12} {description}")

    print("== 2. standard q50 vs the seed's resnet50 table")
    dnnjpeg.register()
    total_std = total_dnn = 0
    for name in names:
        im = photos[name]
        std = dnnjpeg.encode(im, "standard", quality=50)
        dnn = dnnjpeg.encode(im, "resnet50")
        total_std, total_dnn = total_std + len(std), total_dnn + len(dnn)
        print(f"  {name:<22} {im.size[0]:>4}x{im.size[1]:<4} q50 {len(std):>7} B   resnet50 {len(dnn):>7} B")
    print(f"  total: standard q50 {total_std} B, resnet50 {total_dnn} B ({total_dnn / total_std:.3f}x)")

    tune_dir, test_dir = out / "tiles-tune", out / "tiles-test"
    tune_names, test_names = names[0::2], names[1::2]  # disjoint photos
    n_tune = write_tiles({n: photos[n] for n in tune_names}, tune_dir)
    n_test = write_tiles({n: photos[n] for n in test_names}, test_dir)
    print(f"== 3. tune on {n_tune} tiles of {', '.join(tune_names)}")
    table = out / "lite0-tuned.json"
    run(["tune", "--model", "efficientnet_lite0", "--data", str(tune_dir), "--method", "sorted",
         "--budget", str(args.budget), "--objective", "size-matched-kl:50", "--quality", "50",
         "--out", str(table), "--seed", "0"])
    tuned = dnnjpeg.load(table)
    print(tuned)

    print(f"== 4. validate on {n_test} tiles of the other photos ({', '.join(test_names)})")
    report = json.loads(run(["validate", "--model", "efficientnet_lite0", "--data", str(test_dir),
                             "--table", str(table), "--qualities", "30,40,50,60,70", "--json"], capture=True))
    print(f"  tuned: agreement {report['top1']:.3f} at CR {report['cr']:.2f}; standard at that CR "
          f"{report['standard_top1_at_cr']:.3f}; difference {report['delta_top1']:+.3f} (p = {report['p_value']:.2f})")

    print("== 5. recompress the photo folder with the tuned table")
    src = out / "photos"
    src.mkdir(exist_ok=True)
    for name in names:
        photos[name].save(src / f"{name}.png")
    dst = out / "photos-dnn"
    run(["recompress", str(src), str(dst), "--table", str(table), "--no-progress"])
    run(["recompress", str(src), str(dst), "--table", str(table), "--no-progress"])
    dst_trellis = out / "photos-dnn-trellis"
    run(["recompress", str(src), str(dst_trellis), "--table", str(table), "--trellis", "--no-progress"])
    plain_bytes = sum(p.stat().st_size for p in dst.glob("*.png"))
    trellis_bytes = sum(p.stat().st_size for p in dst_trellis.glob("*.png"))
    print(f"  same table, trellis quantization: {trellis_bytes} bytes instead of {plain_bytes} "
          f"({trellis_bytes / plain_bytes - 1:+.1%})")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
