"""dnnjpeg end to end on photos that install with the project (scikit-image's sample photos).

Run:  python examples/demo.py [--out DIR] [--budget N] [--max-kl TAU]

Steps (each prints what it compares with what, in the unit it is measured in; nothing is downloaded):
1. list the shipped tables and their default members;
2. the main mode, the model in the loop: recompress a folder of photo tiles so that EfficientNet-Lite0
   still reads every tile like the original (``dnnjpeg recompress --model ... --max-kl ...``), read every
   output back with the model, and compare with one fixed standard JPEG quality for all tiles at the same
   model agreement and at the same mean KL divergence: bytes saved;
3. tune a table for Lite0 on tiles of half of the photos (``dnnjpeg tune``, seed's sorted random
   search, size-matched to standard q50, KL-based objective) and validate it on tiles of the *other*
   photos against standard JPEG at equal size (``dnnjpeg validate``), with its confidence interval;
4. recompress the photo folder with the tuned table (``dnnjpeg recompress --table``), rerun it to show
   that it resumes, and once more with ``--writer trellis`` (mozjpeg's trellis quantization, same table,
   still baseline): bytes against standard JPEG q50 of the same photos.

A few dozen tiles make every figure illustrative, not evidence: the measured figures on 500 ImageNet
photos, with their commands, are in docs/ratecontrol-results.md and docs/measurements.md.
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
from dnnjpeg.evaluation.models import get as get_model
from dnnjpeg.ratecontrol import evaluate_rungs, kl_divergence

#: RGB photographs whose files ship inside scikit-image's wheel (no download needed).
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel")
MODEL = "efficientnet_lite0"


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


def kb(nbytes: float) -> str:
    return f"{nbytes / 1000:.1f} kB"


def show_tables() -> None:
    print("== 1. shipped tables (name: default member; what it is)")
    for name, description in dnnjpeg.tables().items():
        family = dnnjpeg.load_family(name)
        default = family.default_quality
        print(f"  {name:<20} default q{default}  {description}" if default is not None else f"  {name:<20} {description}")


def read_back(clf, originals: list[Image.Image], outputs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The model on every original and its output: (top-1 kept per image, KL per image)."""
    def logits(images: list[Image.Image]) -> np.ndarray:
        return clf(np.stack([np.asarray(clf.transform(im)) for im in images])).cpu().numpy()

    ref = logits(originals)
    got = logits([Image.open(io.BytesIO(b)).convert("RGB") for b in outputs])
    return ref.argmax(1) == got.argmax(1), kl_divergence(ref, got)


def model_in_the_loop(out: Path, photos: dict[str, Image.Image], max_kl: float) -> None:
    src = out / "tiles"
    n = write_tiles(photos, src)
    files = sorted(src.glob("*.png"))
    print(f"== 2. model in the loop: {n} tiles (256x256 PNG) of {len(photos)} photos, read by {MODEL}")
    dst = out / "tiles-model"
    run(["recompress", str(src), str(dst), "--model", MODEL, "--max-kl", str(max_kl), "--report-json",
         str(out / "model-report.json"), "--no-progress"])
    originals = [Image.open(p).convert("RGB") for p in files]
    outputs = [(dst / p.name).read_bytes() for p in files]
    clf = get_model(MODEL, device="cpu")
    kept, kl = read_back(clf, originals, outputs)
    rc_bytes, rc_agree, rc_kl = np.mean([len(b) for b in outputs]), kept.mean(), kl.mean()
    print(f"  read back by {MODEL}: top-1 agreement with the original tile = {kept.sum()}/{n} ({rc_agree:.1%}), "
          f"mean KL {rc_kl:.4f} nats, mean file {kb(rc_bytes)}")

    table = evaluate_rungs(originals, "standard:10-95:5", [clf])
    agree = (table.top1[clf.name] == table.ref_top1[clf.name][:, None]).mean(0)
    mean_kl, mean_bytes = table.kl[clf.name].mean(0), table.nbytes.mean(0)
    print("  one standard JPEG quality for all tiles (the same model reads each back):")
    for what, ok in (("agreement", agree >= rc_agree - 1e-12), ("mean KL", mean_kl <= rc_kl)):
        if not ok.any():
            print(f"    at equal {what}: no fixed quality up to q95 reaches it")
            continue
        r = int(np.argmax(ok))
        saved = 1 - rc_bytes / mean_bytes[r]
        print(f"    at equal {what}: {table.labels[r]} is the smallest that reaches it ({agree[r]:.1%} agreement, "
              f"mean KL {mean_kl[r]:.4f}), mean file {kb(mean_bytes[r])} -> model in the loop saves {saved:.0%}")
    print(f"  ({n} tiles: illustrative only; each image's choice is in {out / 'model-report.json'}; measured "
          "on 500 ImageNet photos: docs/ratecontrol-results.md)")


def tune_and_validate(out: Path, photos: dict[str, Image.Image], budget: int) -> Path:
    names = sorted(photos)
    tune_dir, test_dir = out / "tiles-tune", out / "tiles-test"
    tune_names, test_names = names[0::2], names[1::2]  # disjoint photos
    n_tune = write_tiles({n: photos[n] for n in tune_names}, tune_dir)
    n_test = write_tiles({n: photos[n] for n in test_names}, test_dir)
    print(f"== 3. tune a table on {n_tune} tiles of {', '.join(tune_names)}; validate it on {n_test} tiles of "
          f"{', '.join(test_names)}")
    table = out / "lite0-tuned.json"
    run(["tune", "--model", MODEL, "--data", str(tune_dir), "--method", "sorted",
         "--budget", str(budget), "--objective", "size-matched-kl:50", "--quality", "50",
         "--out", str(table), "--seed", "0"])
    report = json.loads(run(["validate", "--model", MODEL, "--data", str(test_dir),
                             "--table", str(table), "--qualities", "30,40,50,60,70", "--json"], capture=True))
    print(f"  tuned table: agreement with the uncompressed prediction {report['top1']:.3f} at compression ratio "
          f"{report['cr']:.2f}; standard JPEG at that ratio {report['standard_top1_at_cr']:.3f} (interpolated)")
    lo, hi = report["ci_low"], report["ci_high"]
    verdict = ("the interval includes zero: on these tiles the two cannot be told apart"
               if lo is None or hi is None or lo <= 0 <= hi else "the interval excludes zero (on few tiles: still weak)")
    ci = "n/a" if lo is None or hi is None else f"{lo:+.3f} to {hi:+.3f}"
    print(f"  difference at equal size {report['delta_top1']:+.3f} (95% CI {ci}): {verdict}")
    return table


def recompress_with_table(out: Path, photos: dict[str, Image.Image], table: Path) -> None:
    print("== 4. recompress the photo folder with the tuned table; resume; trellis quantization")
    src = out / "photos"
    src.mkdir(exist_ok=True)
    for name in sorted(photos):
        photos[name].save(src / f"{name}.png")
    dst, dst_trellis = out / "photos-dnn", out / "photos-dnn-trellis"
    run(["recompress", str(src), str(dst), "--table", str(table), "--no-progress"])
    run(["recompress", str(src), str(dst), "--table", str(table), "--no-progress"])
    run(["recompress", str(src), str(dst_trellis), "--table", str(table), "--writer", "trellis", "--no-progress"])
    standard = sum(len(dnnjpeg.encode(photos[n], "standard", quality=50)) for n in photos)
    plain = sum(p.stat().st_size for p in dst.glob("*.png"))
    trellis = sum(p.stat().st_size for p in dst_trellis.glob("*.png"))
    print(f"  bytes of the {len(photos)} photos: standard JPEG q50 {kb(standard)}; tuned table (size-matched to q50 on "
          f"the tuning tiles) {kb(plain)} ({plain / standard - 1:+.1%}); same table with trellis {kb(trellis)} "
          f"({trellis / plain - 1:+.1%} against the table without trellis)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--budget", type=int, default=12, help="tuning evaluations (default 12)")
    parser.add_argument("--max-kl", type=float, default=0.05, help="model-in-the-loop KL bound (default 0.05)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="dnnjpeg-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    photos = sample_photos()
    show_tables()
    model_in_the_loop(out, photos, args.max_kl)
    table = tune_and_validate(out, photos, args.budget)
    recompress_with_table(out, photos, table)
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
