"""dnnjpeg end-to-end demo on photos that install with the project (scikit-image's samples).

Run:  python examples/demo.py [--out DIR]

Steps (each prints what it measured):
1. list the shipped tables;
2. compress the sample photos with standard JPEG q50 and with the seed's `resnet50` table,
   and compare file sizes and the tables read back from the files.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import dnnjpeg

SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle_left")


def sample_photos() -> dict[str, Image.Image]:
    """The RGB photographs bundled in scikit-image's wheel."""
    from skimage import data

    photos = {}
    for name in SAMPLES:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        arr = np.asarray(loader())
        if arr.ndim == 3 and arr.shape[2] == 3:
            photos[name] = Image.fromarray(arr.astype(np.uint8))
    return photos


def step_tables() -> None:
    print("== 1. shipped tables")
    for name, description in dnnjpeg.tables().items():
        print(f"  {name:<12} {description}")


def step_compress(photos: dict[str, Image.Image], out: Path) -> None:
    print("== 2. standard q50 vs the seed's resnet50 table (same size class)")
    dnnjpeg.register()
    total_std = total_dnn = 0
    for name, im in photos.items():
        std = io.BytesIO()
        im.save(std, "DNNJPEG", table="standard", quality=50)
        path = out / f"{name}.jpg"
        im.save(path, "DNNJPEG", table="resnet50")
        with Image.open(path) as back:
            assert list(back.quantization[0]) == list(dnnjpeg.load("resnet50").luma)
        total_std += len(std.getvalue())
        total_dnn += path.stat().st_size
        print(f"  {name:<22} {im.size[0]}x{im.size[1]}  q50 {len(std.getvalue()):>8} B   resnet50 {path.stat().st_size:>8} B")
    print(f"  total: standard q50 {total_std} B, resnet50 {total_dnn} B ({total_dnn / total_std:.3f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="dnnjpeg-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    photos = sample_photos()
    step_tables()
    step_compress(photos, out)
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
