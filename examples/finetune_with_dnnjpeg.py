"""Fine-tune EfficientNet-Lite0 with DNNJPEG as augmentation; compare held-out accuracy before and after.

The seed work's "retraining" direction: instead of (or besides) tuning the table for the
network, tune the network for the table.  This script does a short, CPU-sized version.

Split.  The dev set has one image per class, so held-out *images* are held-out *classes*:
a class-disjoint split (``dnnjpeg.evaluation.data.class_disjoint_split``, seed 0) puts 250 images in
training and 250 in evaluation.  No evaluation image, and no evaluation class, is ever used
for training.

Objective.  Label-free self-distillation: a frozen copy of the original model sees a random
crop uncompressed; the model being tuned sees the same crop after ``DNNJPEG`` (the table to
deploy, with probability ``--p``) and is trained to match it (KL divergence of the softmax).
Labels of the 250 training classes are not used: training on them would push the 1000-way
head towards those classes and away from the held-out ones.  What can carry over to unseen
classes is robustness to the compression's artifacts, which is what this measures.

Evaluation.  The 250 held-out images under the crop224 protocol (shorter side 256 bicubic,
centre crop 224), uncompressed and round-tripped through JPEG with ``--eval-table`` and with
standard JPEG at ``--eval-standard-quality``: top-1 against the true labels, the paired
change (images fixed / broken, exact McNemar p), and the mean cross-entropy on the label
with a 95% CI of its paired change.  250 images give top-1 a standard error near 2 points:
read the paired figures, not the top-1 alone.

    python examples/finetune_with_dnnjpeg.py [--steps 200] [--data DIR] [--batch-size 16]

Runs on the CPU (a GPU is used when present).  Cost: one forward and backward pass of Lite0
per training crop, plus three forward passes per held-out image before and after.  On the
2-core machine it was written on, shared with other jobs, the default 200 steps took 33
minutes of wall time (15 CPU-minutes); pass a smaller ``--steps`` for a quicker look.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import dnnjpeg
import dnnjpeg.evaluation.models
from dnnjpeg.evaluation.data import class_disjoint_split, load_dataset
from dnnjpeg.transforms import DNNJPEG
from dnnjpeg.transforms.functional import dnnjpeg as jpeg_roundtrip

DEV_DATA = Path(
    os.environ.get("DNNJPEG_DEV_DATA", Path(__file__).resolve().parents[2] / "shared/data/imagenet-sample-dev")
)


class PairedCrops(Dataset):
    """Random crops of the training images: ``(clean uint8 CHW, compressed uint8 CHW)``."""

    def __init__(self, images: list[Image.Image], compress: DNNJPEG) -> None:
        self.images = images
        self.geometry = v2.Compose(
            [v2.RandomResizedCrop(224, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()]
        )
        self.compress = compress

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean = self.geometry(self.images[i])
        return clean, self.compress(clean)


def shorter_side_256(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = 256 / min(w, h)
        return im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.Resampling.BICUBIC)


@torch.inference_mode()
def predict(model: torch.nn.Module, preprocess, crops: torch.Tensor, batch: int = 50) -> torch.Tensor:
    model.eval()
    out = [model(preprocess(crops[i : i + batch]).contiguous(memory_format=torch.channels_last)).float()
           for i in range(0, len(crops), batch)]
    return torch.cat(out).cpu()


def evaluate(model, preprocess, conditions: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, dict]:
    res = {}
    for name, crops in conditions.items():
        logits = predict(model, preprocess, crops)
        res[name] = {
            "correct": (logits.argmax(1) == labels).numpy(),
            "ce": F.cross_entropy(logits, labels, reduction="none").numpy(),
        }
    return res


def mcnemar_p(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar test (binomial on the discordant pairs)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def report(before: dict, after: dict) -> None:
    print(f"{'held-out condition':34s} {'top-1 before':>12s} {'top-1 after':>12s} {'fixed':>6s} {'broken':>6s} "
          f"{'McNemar p':>9s}   {'CE before':>9s} {'CE after':>9s} {'dCE [95% CI]':>22s}")
    for name, b in before.items():
        a = after[name]
        fixed = int(np.sum(~b["correct"] & a["correct"]))
        broken = int(np.sum(b["correct"] & ~a["correct"]))
        d = a["ce"] - b["ce"]
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        print(f"{name:34s} {100 * b['correct'].mean():11.1f}% {100 * a['correct'].mean():11.1f}% "
              f"{fixed:6d} {broken:6d} {mcnemar_p(fixed, broken):9.3f}   {b['ce'].mean():9.4f} {a['ce'].mean():9.4f} "
              f"{d.mean():+8.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]")


def main() -> int:
    ap = argparse.ArgumentParser(description="Fine-tune Lite0 with DNNJPEG augmentation (see the module docstring).")
    ap.add_argument("--data", type=Path, default=DEV_DATA, help="dev set folder with labels.csv")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-5, help="AdamW learning rate (linear decay to 0)")
    ap.add_argument("--p", type=float, default=0.8, help="probability a training crop is compressed")
    ap.add_argument("--train-table", default="resnet50", help="DNNJPEG table for training crops")
    ap.add_argument("--eval-table", default="resnet50", help="table the held-out images are compressed with")
    ap.add_argument("--eval-standard-quality", type=int, default=50, help="also evaluate standard JPEG at this quality")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if not (args.data / "labels.csv").is_file():
        print(f"dev data not found at {args.data} (pass --data or set DNNJPEG_DEV_DATA); nothing to do")
        return 2
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    ds = load_dataset(args.data)
    split = class_disjoint_split(ds, 0.5, seed=args.seed)
    train, held = ds.subset(split.train), ds.subset(split.test)
    print(f"data: {ds.root} ({len(ds)} images, one per class); class-disjoint split seed {args.seed}: "
          f"{len(train)} train / {len(held)} held-out images")

    eval_qt = dnnjpeg.resolve_table(args.eval_table)
    clean = torch.from_numpy(held.crops("crop224", cache=False)).permute(0, 3, 1, 2).contiguous()
    conditions = {
        "uncompressed": clean,
        f"DNNJPEG table {args.eval_table!r}": jpeg_roundtrip(clean, eval_qt),
        f"standard JPEG q{args.eval_standard_quality}": jpeg_roundtrip(clean, "standard", args.eval_standard_quality),
    }
    labels = torch.from_numpy(held.labels)

    clf = dnnjpeg.evaluation.models.get("efficientnet_lite0", device=device)
    student = clf.module.to(memory_format=torch.channels_last)
    teacher = copy.deepcopy(student).eval().requires_grad_(False)
    before = evaluate(student, clf.preprocess, conditions, labels)
    print(f"model: {clf.name} ({clf.config.get('weights')}), device {device}; baseline evaluated "
          f"({time.perf_counter() - t_start:.0f} s so far)")

    augment = DNNJPEG(args.train_table, p=args.p)
    loader = DataLoader(
        PairedCrops([shorter_side_256(f) for f in train.files], augment),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
    )
    print(f"training: {args.steps} steps, batch {args.batch_size}, AdamW lr {args.lr:g} (linear decay), "
          f"augmentation {augment}, BatchNorm statistics and dropout frozen (eval mode)")
    student.eval().requires_grad_(True)
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / args.steps)
    step, t_train, running = 0, time.perf_counter(), []
    while step < args.steps:
        for x_clean, x_comp in loader:
            with torch.no_grad():
                target = teacher(clf.preprocess(x_clean).contiguous(memory_format=torch.channels_last)).log_softmax(1)
            out = student(clf.preprocess(x_comp).contiguous(memory_format=torch.channels_last)).log_softmax(1)
            loss = F.kl_div(out, target, log_target=True, reduction="batchmean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running.append(loss.item())
            step += 1
            if step % 25 == 0 or step == args.steps:
                print(f"  step {step:4d}  KL(teacher clean || model compressed) {np.mean(running[-25:]):.4f}  "
                      f"({(time.perf_counter() - t_train) / step:.2f} s/step)", flush=True)
            if step == args.steps:
                break

    after = evaluate(student, clf.preprocess, conditions, labels)
    print(f"\nheld-out: {len(held)} images of {len(held)} classes never trained on (crop224 protocol)")
    report(before, after)
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
