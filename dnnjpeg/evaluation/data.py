"""Datasets, the two evaluation protocols, the on-disk crop cache and class-disjoint splits.

Folders :func:`load_dataset` reads (checked in this order):

1. ``labels.csv`` with a header holding ``file`` and ``class_index`` (other columns ignored);
2. an ImageFolder: subfolders named by ImageNet wnids (``n01440764``; mapped to the standard
   ImageNet-1k index, sorted wnids) or by integers (the class index itself);
3. otherwise an *unlabelled* folder of images (``labels`` all ``-1``): the evaluator then scores
   top-1 *agreement* with the model's prediction on the uncompressed image.

Protocols (:data:`PROTOCOLS`):

``crop224`` (the seed's)
    Resize the shorter side to 256 (Pillow bicubic, antialiased; torchvision's size rule
    ``long = int(256 * long / short)``), centre-crop 224 (torchvision's offsets), keep as lossless
    uint8, then JPEG.  Every model gets this 224x224 crop (also Lite1/Lite2, whose native
    resolutions are 240/260).  CR = 150582 / mean JPEG bytes (150582 = the 24-bit BMP size).
``native``
    JPEG at the stored resolution (the original decoded to RGB), then the model's own
    preprocessing (:attr:`dnnjpeg.evaluation.models.Classifier.transform`: Lite1 gets 240, Lite2 260).
    Report bits per pixel.

Crops are cached in ``$DNNJPEG_CACHE_DIR`` (default ``~/.cache/dnnjpeg``) under
``crops/<protocol>-v1/``, one ``.npy`` per image keyed by the SHA-256 of the file's bytes, written
atomically.  Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import PIL
from PIL import Image

from ..errors import DnnjpegError
from .codec import default_workers

__all__ = [
    "BMP_BYTES_224",
    "IMAGE_EXTENSIONS",
    "PACK_FORMAT",
    "PACK_MANIFEST",
    "PROTOCOLS",
    "bmp_size",
    "cache_dir",
    "class_disjoint_folds",
    "class_disjoint_split",
    "crop224",
    "DataError",
    "Dataset",
    "Fold",
    "imagenet_wnids",
    "kfold",
    "load_dataset",
    "load_packed",
    "read_label_rows",
    "read_packed_crop",
    "resize_center_crop",
]

#: Name of the manifest file that marks a folder as a packed dataset.
PACK_MANIFEST = "dnnjpeg-pack.json"
#: Value of the manifest's ``format`` key.
PACK_FORMAT = "dnnjpeg-pack"

PROTOCOLS: tuple[str, ...] = ("crop224", "native")
#: Size of a 224x224 24-bit BMP: the seed's CR numerator.
BMP_BYTES_224 = 150582
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)


class DataError(DnnjpegError, ValueError):
    """A dataset folder, label file or split request is invalid."""


class Fold(NamedTuple):
    """One split: ``train`` and ``test`` index arrays (into the dataset), both sorted."""

    train: np.ndarray
    test: np.ndarray


@dataclass(eq=False)
class Dataset:
    """An ordered list of image files with labels.

    Attributes:
        root: the folder.
        files: absolute paths, in a deterministic order (``labels.csv`` order, else sorted).
        labels: int64 array, ImageNet class index per image; ``-1`` everywhere when unlabelled.
        labelled: whether labels are real.
        name: a short label for results (the folder name, plus ``[subset]`` for subsets).
        source_indices: for a subset, the indices in the parent dataset; else ``arange(n)``.
        packed: the files are ``crop224`` crops written by :func:`dnnjpeg.evaluation.pack.pack_dataset`
            (loaded as they are; content hashes and fingerprint are those of the source images).
    """

    root: Path
    files: list[Path]
    labels: np.ndarray
    labelled: bool = True
    name: str = ""
    source_indices: np.ndarray | None = None
    packed: bool = False
    _hashes: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """A dataset of ``files[indices]`` in the given order (content hashes carried over)."""
        idx = _check_indices(indices, len(self))
        base = self.source_indices if self.source_indices is not None else np.arange(len(self))
        return Dataset(
            root=self.root,
            files=[self.files[i] for i in idx],
            labels=self.labels[idx].copy(),
            labelled=self.labelled,
            name=self.name if self.name.endswith("]") else f"{self.name}[subset]",
            source_indices=base[idx].copy(),
            packed=self.packed,
            _hashes=None if self._hashes is None else [self._hashes[i] for i in idx],
        )

    def content_hashes(self, workers: int | None = None) -> list[str]:
        """SHA-256 (hex) of each file's bytes, computed once and memoized."""
        if self._hashes is None:
            self._hashes = list(_map(_sha256_file, self.files, workers))
        return self._hashes

    def fingerprint(self, protocol: str = "") -> str:
        """One hash of the ordered content hashes (and ``protocol``): a cache key for this image list."""
        h = hashlib.sha256(protocol.encode())
        for c in self.content_hashes():
            h.update(bytes.fromhex(c))
        return h.hexdigest()[:32]

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` decoded to RGB uint8 HWC at its stored resolution (the ``native`` protocol's input)."""
        return _load_rgb(self.files[i])

    def crops(
        self, protocol: str = "crop224", *, cache: bool = True, workers: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """The ``crop224`` crops of every image, ``(N, 224, 224, 3)`` uint8, from the cache when present."""
        if protocol != "crop224":
            raise DataError(f"crops() is for the crop224 protocol, not {protocol!r}")
        out = np.empty((len(self), 224, 224, 3), dtype=np.uint8)
        if self.packed:
            for i, arr in enumerate(_map(read_packed_crop, self.files, workers, progress=progress, desc="crops")):
                out[i] = arr
            return out
        hashes = self.content_hashes(workers) if cache else [None] * len(self)
        folder = cache_dir() / "crops" / _CROP_VERSION if cache else None

        def one(i: int) -> None:
            path = None if folder is None else folder / hashes[i][:2] / f"{hashes[i]}.npy"
            if path is not None:
                try:
                    arr = np.load(path, allow_pickle=False)
                    if arr.shape == (224, 224, 3) and arr.dtype == np.uint8:
                        out[i] = arr
                        return
                except (OSError, ValueError):
                    pass
            with Image.open(self.files[i]) as im:
                out[i] = crop224(im)
            if path is not None:
                _atomic_save_npy(path, out[i])

        for _ in _map(one, range(len(self)), workers, progress=progress, desc="crops"):
            pass
        return out

    def native_images(self, *, workers: int | None = None, progress: bool = False) -> list[np.ndarray]:
        """Every image at its stored resolution (RGB uint8 HWC), decoded in parallel."""
        if self.packed:
            raise DataError(f"{self.root}: a packed dataset holds crop224 crops only; the native protocol "
                            "needs the original images")
        return list(_map(_load_rgb, self.files, workers, progress=progress, desc="images"))

    def __repr__(self) -> str:
        kind = "labelled" if self.labelled else "unlabelled"
        return f"<Dataset {self.name!r} n={len(self)} {kind} root={str(self.root)!r}>"


def load_dataset(path: str | os.PathLike[str] | Dataset, *, limit: int | None = None) -> Dataset:
    """Read a dataset folder (see the module docstring); ``limit`` keeps the first ``limit`` images.

    Raises:
        DataError: missing folder, no images, bad ``labels.csv``, unknown wnid.
    """
    if isinstance(path, Dataset):
        ds = path
    else:
        root = Path(path).expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"{path}: not a folder")
        if (root / PACK_MANIFEST).is_file():
            ds = load_packed(root)
        else:
            ds = _read_folder(path, root)
    if limit is not None:
        if limit < 1:
            raise DataError(f"limit must be >= 1, got {limit}")
        if limit < len(ds):
            sub = ds.subset(np.arange(limit))
            sub.name = f"{ds.name}[:{limit}]"
            return sub
    return ds


def _read_folder(path: Any, root: Path) -> Dataset:
    """A labels.csv folder, an ImageFolder or an unlabelled folder (see the module docstring)."""
    if (root / "labels.csv").is_file():
        files, labels = _read_labels_csv(root)
        labelled = True
    else:
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        class_dirs = [d for d in subdirs if any(_is_image(f) for f in d.iterdir())]
        if class_dirs:
            files, labels = _read_image_folder(root, class_dirs)
            labelled = True
        else:
            files = sorted(p for p in root.iterdir() if _is_image(p))
            labels = [-1] * len(files)
            labelled = False
    if not files:
        raise DataError(f"{path}: no images found")
    return Dataset(
        root=root,
        files=files,
        labels=np.asarray(labels, dtype=np.int64),
        labelled=labelled,
        name=root.name,
        source_indices=np.arange(len(files)),
    )


def resize_center_crop(img: Any, resize: int, crop: int, interpolation: str = "bicubic") -> np.ndarray:
    """Shorter side to ``resize`` (torchvision's size rule), centre crop ``crop`` -> uint8 HWC RGB.

    Pillow's resampling (antialiased, as torchvision's ``Resize`` on PIL images).  Accepts a PIL image
    (any mode) or a uint8 HWC/HW array.
    """
    im = Image.fromarray(img) if isinstance(img, np.ndarray) else img
    if im.mode != "RGB":
        im = im.convert("RGB")
    w, h = im.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), _RESAMPLE[interpolation])
    if nw < crop or nh < crop:
        raise DataError(f"image of {nw}x{nh} after resizing is smaller than the {crop}x{crop} crop")
    top = round((nh - crop) / 2.0)
    left = round((nw - crop) / 2.0)
    return np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8).copy()


def crop224(img: Any) -> np.ndarray:
    """The seed's crop: shorter side to 256 (bicubic, antialiased), centre-crop 224 -> uint8 (224, 224, 3).

    Accepts a PIL image (any mode; converted to RGB) or a uint8 HWC array.

    Example:
        >>> from PIL import Image
        >>> crop224(Image.new("L", (500, 375), 128)).shape
        (224, 224, 3)
    """
    return resize_center_crop(img, 256, 224, "bicubic")


def bmp_size(height: int, width: int) -> int:
    """Bytes of a 24-bit BMP of that size (54-byte header, rows padded to 4 bytes): 150582 for 224x224.

    Example:
        >>> bmp_size(224, 224), bmp_size(375, 500)
        (150582, 562554)
    """
    return 54 + height * ((width * 3 + 3) // 4 * 4)


def cache_dir() -> Path:
    """``$DNNJPEG_CACHE_DIR`` or ``~/.cache/dnnjpeg`` (created on first use)."""
    env = os.environ.get("DNNJPEG_CACHE_DIR")
    d = Path(env).expanduser() if env else Path.home() / ".cache" / "dnnjpeg"
    d.mkdir(parents=True, exist_ok=True)
    return d


@functools.lru_cache(maxsize=1)
def _wnid_list() -> tuple[str, ...]:
    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        raise DataError("mapping ImageNet wnids to class indices needs the timm package (its synset list)")
    path = Path(spec.origin).parent / "data" / "_info" / "imagenet_synsets.txt"
    wnids = path.read_text().split()
    if len(wnids) != 1000:
        raise DataError(f"{path}: expected 1000 wnids, found {len(wnids)}")
    return tuple(sorted(wnids))


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in standard index order (sorted)."""
    return list(_wnid_list())


def kfold(n: int, k: int, seed: int = 0) -> list[Fold]:
    """Plain k-fold over ``n`` items, shuffled with ``seed``; every item is in exactly one test fold.

    Example:
        >>> [len(f.test) for f in kfold(10, 3)]
        [4, 3, 3]
    """
    if not 2 <= k <= n:
        raise DataError(f"k-fold needs 2 <= k <= n (k={k}, n={n})")
    perm = np.random.default_rng(seed).permutation(n)
    return _folds_from_groups([np.sort(part) for part in np.array_split(perm, k)], n)


def class_disjoint_folds(data: Dataset | Sequence[int] | np.ndarray, k: int = 5, seed: int = 0) -> list[Fold]:
    """k folds whose test sets share no class with their training sets.

    Classes (from ``data.labels`` or a label array) are shuffled with ``seed`` and dealt into ``k``
    groups of near-equal image counts; fold ``i`` tests on group ``i``.  Unlabelled images
    (label ``-1``) are treated as one class each.  Deterministic for a given ``seed``.

    Example:
        >>> labels = [0, 0, 1, 1, 2, 2, 3, 3]
        >>> folds = class_disjoint_folds(labels, k=2, seed=0)
        >>> [sorted({labels[i] for i in f.test}) for f in folds]
        [[1, 2], [0, 3]]
    """
    groups = _group_ids(data)
    classes = np.unique(groups)
    if not 2 <= k <= len(classes):
        raise DataError(f"class-disjoint k-fold needs 2 <= k <= number of classes (k={k}, classes={len(classes)})")
    order = np.random.default_rng(seed).permutation(classes)
    counts = {c: int(n) for c, n in zip(*np.unique(groups, return_counts=True))}
    sizes = [0] * k
    members: list[list[int]] = [[] for _ in range(k)]
    for c in order:
        j = int(np.argmin(sizes))  # the smallest group so far; ties go to the lowest index
        members[j].append(int(c))
        sizes[j] += counts[int(c)]
    tests = [np.flatnonzero(np.isin(groups, m)) for m in members]
    return _folds_from_groups(tests, len(groups))


def class_disjoint_split(data: Dataset | Sequence[int] | np.ndarray, test_fraction: float = 0.5, seed: int = 0) -> Fold:
    """One class-disjoint split with about ``test_fraction`` of the images in ``test``."""
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups = _group_ids(data)
    classes = np.unique(groups)
    if len(classes) < 2:
        raise DataError("a class-disjoint split needs at least 2 classes")
    order = np.random.default_rng(seed).permutation(classes)
    target = test_fraction * len(groups)
    chosen: list[int] = []
    count = 0
    for c in order:
        if count >= target or len(chosen) == len(classes) - 1:
            break
        chosen.append(int(c))
        count += int(np.sum(groups == c))
    test = np.flatnonzero(np.isin(groups, chosen))
    train = np.setdiff1d(np.arange(len(groups)), test)
    return Fold(train=train, test=test)


# -- helpers ------------------------------------------------------------------------------
_CROP_VERSION = f"crop224-v1-pil{PIL.__version__.split('.')[0]}"
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image: {exc}") from None


def read_label_rows(path: Path, *, allow_unlabelled: bool = False) -> list[tuple[str, int, int]]:
    """``(file, class_index, line)`` for every row of a ``labels.csv``; header and values checked.

    Args:
        path: the ``labels.csv`` file.
        allow_unlabelled: accept ``-1`` (no label), as a pack of an unlabelled folder writes.

    Raises:
        DataError: unreadable file, missing columns, or a class index that is not a non-negative int.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "file" not in fields or "class_index" not in fields:
                raise DataError(f"{path}: header must have 'file' and 'class_index' columns, has {fields}")
            rows: list[tuple[str, int, int]] = []
            for line, row in enumerate(reader, start=2):
                name = (row.get("file") or "").strip()
                try:
                    label = int((row.get("class_index") or "").strip())
                except ValueError:
                    raise DataError(
                        f"{path}:{line}: class_index {row.get('class_index')!r} is not an integer"
                    ) from None
                if label < 0 and not (allow_unlabelled and label == -1):
                    raise DataError(f"{path}:{line}: class_index {label} is negative")
                rows.append((name, label, line))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    return rows


def _read_labels_csv(root: Path) -> tuple[list[Path], list[int]]:
    path = root / "labels.csv"
    files: list[Path] = []
    labels: list[int] = []
    for name, label, line in read_label_rows(path):
        fp = (root / name).resolve()
        if not name or not fp.is_file():
            raise DataError(f"{path}:{line}: image file {name!r} not found")
        files.append(fp)
        labels.append(label)
    return files, labels


def _read_image_folder(root: Path, class_dirs: list[Path]) -> tuple[list[Path], list[int]]:
    names = [d.name for d in class_dirs]
    if all(n.isdigit() for n in names):
        index = {n: int(n) for n in names}
    elif all(_WNID.fullmatch(n) for n in names):
        lookup = {w: i for i, w in enumerate(_wnid_list())}
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise DataError(f"{root}: subfolders {unknown[:5]} are not ImageNet-1k wnids")
        index = {n: lookup[n] for n in names}
    else:
        bad = [n for n in names if not (n.isdigit() or _WNID.fullmatch(n))]
        raise DataError(
            f"{root}: ImageFolder subfolders must all be ImageNet wnids (n01440764) or all integers; got {bad[:5]}"
        )
    files: list[Path] = []
    labels: list[int] = []
    for d in class_dirs:
        for f in sorted(d.iterdir()):
            if _is_image(f):
                files.append(f.resolve())
                labels.append(index[d.name])
    return files, labels


_WNID = re.compile(r"n\d{8}")


def _check_indices(indices: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise DataError(f"boolean mask has shape {idx.shape}, expected ({n},)")
        return np.flatnonzero(idx)
    idx = idx.astype(np.int64, copy=False).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"indices must lie in 0..{n - 1}")
    return idx


def _group_ids(data: Dataset | Sequence[int] | np.ndarray) -> np.ndarray:
    labels = np.asarray(data.labels if isinstance(data, Dataset) else data, dtype=np.int64).reshape(-1)
    out = labels.copy()
    unl = np.flatnonzero(labels < 0)
    if unl.size:
        out[unl] = (labels.max(initial=0) + 1) + np.arange(unl.size)
    return out


def _folds_from_groups(tests: list[np.ndarray], n: int) -> list[Fold]:
    everything = np.arange(n)
    return [Fold(train=np.setdiff1d(everything, t), test=np.sort(t).astype(np.int64)) for t in tests]


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _map(fn: Any, items: Any, workers: int | None = None, *, progress: bool = False, desc: str = "") -> Any:
    """``map`` over a thread pool (Pillow and hashlib release the GIL), in order, with optional tqdm."""
    items = list(items)

    w = default_workers() if workers is None else max(1, int(workers))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="img", leave=False)
    try:
        if w == 1 or len(items) <= 1:
            for x in items:
                yield fn(x)
                if bar is not None:
                    bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=w) as pool:
                for r in pool.map(fn, items):
                    yield r
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# The reading side of packed datasets (written by dnnjpeg.evaluation.pack).


def load_packed(root: str | os.PathLike[str]) -> Dataset:
    """The :class:`~dnnjpeg.evaluation.data.Dataset` of a folder written by :func:`pack_dataset`.

    Raises:
        DataError: a bad manifest, or labels that disagree with it (the message names the file).
    """
    root = Path(root).resolve()
    path = root / PACK_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the pack manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
        raise DataError(f"{path}: 'format' must be {PACK_FORMAT!r}")
    if manifest.get("protocol") != "crop224":
        raise DataError(f"{path}: protocol {manifest.get('protocol')!r} is not supported (only crop224)")
    entries = manifest.get("files")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: 'files' must be a non-empty list")
    labels = {name: label for name, label, _ in read_label_rows(root / "labels.csv", allow_unlabelled=True)}
    files, hashes, y = [], [], []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not isinstance(e.get("sha256"), str):
            raise DataError(f"{path}: files[{k}] needs 'file' and 'sha256' strings")
        name = e["file"]
        if "/" in name or "\\" in name or name.startswith("."):
            raise DataError(f"{path}: files[{k}]: bad file name {name!r}")
        if name not in labels:
            raise DataError(f"{root / 'labels.csv'}: no row for {name!r}")
        files.append(root / name)
        hashes.append(e["sha256"])
        y.append(labels[name])
    return Dataset(
        root=root, files=files, labels=np.asarray(y, dtype=np.int64), labelled=bool(manifest.get("labelled", True)),
        name=str(manifest.get("name") or root.name), source_indices=np.arange(len(files)), packed=True,
        _hashes=hashes,
    )


def read_packed_crop(path: Path) -> np.ndarray:
    """One stored crop as ``(224, 224, 3)`` uint8; a clear error naming the file otherwise."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read packed crop: {exc}") from None
    if arr.shape != (224, 224, 3):
        raise DataError(f"{path}: packed crop has shape {arr.shape}, expected (224, 224, 3)")
    return arr.copy()
