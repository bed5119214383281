"""Time per 224x224 image: ``DNNJPEG("resnet50")`` vs ``torchvision.transforms.v2.JPEG(quality=50)``.

Both run in the same process on the same images, interleaved round by round; the figure is
the median over rounds of the mean time per image.  Inputs: CHW ``uint8`` tensors one by
one, a ``[32, 3, 224, 224]`` batch, and PIL RGB images.  A stage breakdown shows where the
DNNJPEG time goes (tensor -> PIL, libjpeg encode, libjpeg decode, PIL -> tensor) next to
torchvision's ``encode_jpeg``/``decode_jpeg``.

Images: the dev set (resize 256 + centre crop 224) when found, else smooth synthetic images.

    python benchmarks/transform_throughput.py [--images 64] [--rounds 7] [--threads 1] [--data DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.io import decode_jpeg, encode_jpeg
from torchvision.transforms import v2

import dnnjpeg
from dnnjpeg.transforms import DNNJPEG
from dnnjpeg.transforms.functional import _decode_into, _pil_from_chw, jpeg_options

DEV_DATA = Path(
    os.environ.get("DNNJPEG_DEV_DATA", Path(__file__).resolve().parents[2] / "shared/data/imagenet-sample-dev")
)


def load_images(data: Path, n: int) -> tuple[list[torch.Tensor], str]:
    files = sorted(data.glob("*.JPEG")) if data.is_dir() else []
    crop = v2.Compose([v2.Resize(256, interpolation=v2.InterpolationMode.BICUBIC), v2.CenterCrop(224)])
    if files:
        out = []
        for f in files[:n]:
            im = crop(Image.open(f).convert("RGB"))
            out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous())
        return out, f"{len(out)} dev images from {data} (resize 256, centre crop 224)"
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        low = torch.rand((1, 3, 14, 14), generator=g) * 255
        smooth = torch.nn.functional.interpolate(low, size=(224, 224), mode="bicubic", align_corners=False)[0]
        noisy = smooth + torch.randn((3, 224, 224), generator=g) * 8
        out.append(noisy.round().clamp(0, 255).to(torch.uint8).contiguous())
    return out, f"{n} synthetic smooth 224x224 images (dev data not found at {data})"


def per_image_us(fn: Callable[[Any], Any], items: list[Any], images_per_item: int = 1) -> float:
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return (time.perf_counter() - t0) / (len(items) * images_per_item) * 1e6


def interleaved(cases: dict[str, tuple[Callable[[Any], Any], list[Any], int]], rounds: int) -> dict[str, float]:
    for fn, items, _ in cases.values():  # warm-up
        fn(items[0])
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, (fn, items, k) in cases.items():
            times[name].append(per_image_us(fn, items, k))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (DataLoader workers use 1)")
    ap.add_argument("--data", type=Path, default=DEV_DATA)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    imgs, what = load_images(args.data, args.images)
    pils = [Image.fromarray(x.permute(1, 2, 0).numpy().copy()) for x in imgs]
    batches = [torch.stack(imgs[i : i + 32]) for i in range(0, len(imgs) - 31, 32)] or [torch.stack(imgs)]
    bsz = batches[0].shape[0]
    ours, theirs = DNNJPEG("resnet50"), v2.JPEG(quality=50)

    print(f"images: {what}")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"Pillow {PIL.__version__}, dnnjpeg {dnnjpeg.__version__}; torch threads {torch.get_num_threads()}; "
        f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()}"
    )
    opts = jpeg_options("resnet50")
    sizes_ours = [len(_encode(_pil_from_chw(x.numpy()), opts)) for x in imgs]
    sizes_tv = [encode_jpeg(x, quality=50).numel() for x in imgs]
    print(
        f"mean JPEG bytes: resnet50 table {statistics.mean(sizes_ours):.0f}, "
        f"standard q50 (torchvision) {statistics.mean(sizes_tv):.0f}"
    )

    res = interleaved(
        {
            "tensor CHW  DNNJPEG": (ours, imgs, 1),
            "tensor CHW  v2.JPEG": (theirs, imgs, 1),
            f"batch N={bsz:<3d}DNNJPEG": (ours, batches, bsz),
            f"batch N={bsz:<3d}v2.JPEG": (theirs, batches, bsz),
            "PIL RGB     DNNJPEG": (ours, pils, 1),
            "PIL RGB     v2.JPEG": (theirs, pils, 1),
        },
        args.rounds,
    )
    print(f"\nper-image time, median of {args.rounds} interleaved rounds over {len(imgs)} images:")
    names = list(res)
    for a, b in zip(names[::2], names[1::2]):
        print(f"  {a}: {res[a]:7.1f} us   {b}: {res[b]:7.1f} us   ratio {res[a] / res[b]:.3f}")

    enc = [_encode(_pil_from_chw(x.numpy()), opts) for x in imgs]
    decoded = [_decode(b) for b in enc]
    tv_enc = [encode_jpeg(x, quality=50) for x in imgs]
    stages = interleaved(
        {
            "DNNJPEG tensor -> PIL (Image.merge)": (lambda x: _pil_from_chw(x.numpy()), imgs, 1),
            "DNNJPEG Pillow encode": (lambda im: _encode(im, opts), pils, 1),
            "DNNJPEG Pillow decode": (_decode, enc, 1),
            "DNNJPEG PIL -> tensor (RGB;L rows)": (_to_tensor, decoded, 1),
            "v2.JPEG encode_jpeg": (lambda x: encode_jpeg(x, quality=50), imgs, 1),
            "v2.JPEG decode_jpeg": (decode_jpeg, tv_enc, 1),
        },
        args.rounds,
    )
    print("\nstage breakdown (per image):")
    for name, us in stages.items():
        print(f"  {name:38s} {us:7.1f} us")


def _encode(im: Image.Image, opts: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **opts)
    return buf.getvalue()


def _decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=("JPEG",))
    im.load()
    return im


def _to_tensor(im: Image.Image) -> torch.Tensor:
    out = torch.empty((3, im.height, im.width), dtype=torch.uint8)
    _decode_into(im, out.numpy())
    return out


if __name__ == "__main__":
    main()
