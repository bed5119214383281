"""``dnnjpeg pack DATA OUT [--limit N]``: a dataset's crop224 crops as a folder to carry elsewhere."""

from __future__ import annotations

import argparse

from ..evaluation.data import load_dataset
from ..evaluation.pack import pack_dataset
from . import register_command
from ._flags import add_limit, add_progress, progress_wanted


@register_command("pack", help="write a dataset's crop224 crops losslessly (with labels and source hashes) "
                               "to carry to a GPU machine",
                  example="dnnjpeg pack val/ val-packed/ --limit 500")
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset folder (labels.csv, ImageFolder or unlabelled)")
    parser.add_argument("out", help="new (or empty) folder to write")
    add_limit(parser, "pack only the first N images")
    add_progress(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = pack_dataset(args.data, args.out, limit=args.limit, progress=progress_wanted(args))
    ds = load_dataset(out)
    size = sum(f.stat().st_size for f in ds.files)
    print(f"packed {len(ds)} crops of {ds.name} into {out} ({size / 1e6:.1f} MB); "
          f"fingerprint {ds.fingerprint('crop224')}")
    return 0
