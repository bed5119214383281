"""Packed datasets: a dataset's ``crop224`` crops as lossless files, to carry to another machine.

A tuning job on a GPU machine (or a cluster node) needs the same 224x224 crops the study was
started with, bit for bit.  Recomputing them there is not enough: the source photos may not be
there, and Pillow's resampling differs between major versions.  :func:`pack_dataset` writes

* one lossless WebP per image (``00000.webp``, ...; about 70 KB each, half of a raw crop),
* ``labels.csv`` (``file,class_index``),
* ``dnnjpeg-pack.json``: format, protocol, the source dataset's name, whether it is labelled,
  and the SHA-256 of every *source* file,

and :func:`dnnjpeg.evaluation.data.load_dataset` recognises the folder: its :class:`~dnnjpeg.evaluation.data.Dataset`
returns the stored crops unchanged, and its name, content hashes and fingerprint are the
source's, so evaluations, caches and resumable studies (``dnnjpeg tune``, ``dnnjpeg family``)
on the pack are the same as on the source: a journal started on one machine continues on the
other.  Only the ``crop224`` protocol works on a pack.

CLI: ``dnnjpeg pack DATA OUT [--limit N]``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from PIL import Image

from .data import PACK_FORMAT, PACK_MANIFEST, DataError, Dataset, load_dataset, load_packed, read_packed_crop

__all__ = ["PACK_FORMAT", "PACK_MANIFEST", "load_packed", "pack_dataset", "read_packed_crop"]



def pack_dataset(
    data: str | os.PathLike[str] | Dataset,
    out: str | os.PathLike[str],
    *,
    limit: int | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Write ``data``'s ``crop224`` crops, labels and source hashes to the new folder ``out``.

    Args:
        data: a dataset folder or :class:`~dnnjpeg.evaluation.data.Dataset`.
        out: a folder that does not exist yet or is empty (nothing is overwritten).
        limit: pack only the first ``limit`` images.
        workers: threads for decoding and hashing (default: usable cores).
        progress: show progress bars.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> src = Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.full((300, 260, 3), 90, np.uint8)).save(src / "a.png")
        >>> packed = pack_dataset(src, src.parent / (src.name + "-pack"))
        >>> load_dataset(packed).crops().shape
        (1, 224, 224, 3)
    """
    ds = load_dataset(data, limit=limit)
    if ds.packed:
        raise DataError(f"{ds.root}: already a packed dataset")
    dst = Path(out)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise DataError(f"{dst}: exists and is not an empty folder (pack never overwrites)")
    crops = ds.crops(workers=workers, progress=progress)
    hashes = ds.content_hashes(workers)
    dst.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(ds))))
    names = [f"{i:0{width}d}.webp" for i in range(len(ds))]
    for name, arr in zip(names, crops):
        Image.fromarray(arr).save(dst / name, "WEBP", lossless=True, quality=100, method=4)
    with open(dst / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "class_index"])
        for name, label in zip(names, ds.labels):
            w.writerow([name, int(label)])
    manifest = {
        "format": PACK_FORMAT,
        "version": 1,
        "protocol": "crop224",
        "name": ds.name,
        "labelled": bool(ds.labelled),
        "source": str(ds.root),
        "files": [{"file": n, "source": str(p.relative_to(ds.root)) if p.is_relative_to(ds.root) else p.name,
                   "sha256": h} for n, p, h in zip(names, ds.files, hashes)],
    }
    (dst / PACK_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return dst
