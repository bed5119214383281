"""The evaluator: compress a dataset with a table, classify it, and measure rate and accuracy.

Example::

    from dnnjpeg.evaluation.evaluate import Evaluator
    ev = Evaluator("efficientnet_lite0", "../shared/data/imagenet-sample-dev")
    ref = ev.evaluate()                       # uncompressed reference
    r = ev.evaluate(QTable.standard(50))      # or ev.evaluate_standard(50)
    r.top1, r.cr, r.bpp, r.ce.mean(), r.kl.mean()
    r_fold = r.subset(fold.test)              # aggregates on a subset, no re-evaluation
    ev.evaluate(table, indices=fold.train)    # or evaluate only some images

Per-image signals (numpy arrays aligned with ``Result.indices``, i.e. with the dataset order):

``correct``, ``correct5``
    top-1 / top-5 hit on the label (on the reference prediction when the data is unlabelled).
``agree``
    top-1 prediction equals the prediction on the uncompressed image.
``ce``
    cross-entropy (nats) of the softmax on the label (on the reference prediction when unlabelled).
``kl``
    KL(p_ref || p) in nats: divergence of the prediction from the uncompressed image's.
``bytes``, ``pixels``, ``bmp_bytes``
    JPEG size, pixel count of the compressed image, and the size of the same image as a
    24-bit BMP (the CR numerator; 150582 for a 224x224 crop).

Aggregates: ``top1 = mean(correct)``, ``top5``, ``agreement``, ``ce_mean``, ``kl_mean``,
``bytes_mean``, ``cr = mean(bmp_bytes) / mean(bytes)`` (150582 / mean JPEG bytes for crop224),
``bpp = 8 * sum(bytes) / sum(pixels)``.  For the uncompressed reference ``bytes`` is the BMP size
(so ``cr`` = 1 and ``bpp`` ~ 24).

Determinism: the same evaluator on the same images gives bit-identical results run to run
(fixed batch boundaries, fixed order, inference mode; the reference is cached in memory and on
disk under ``$DNNJPEG_CACHE_DIR/reference``).  Per-image values are computed in fixed-size batches
over the requested indices, so evaluating a subset can differ from the full run in the last float
bits (never in the decoded pixels or byte counts).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..encoders import get_family, make_encoder
from ..errors import DnnjpegError
from ..options import EncodeOptions
from ..qtable import QTable
from .codec import Codec, TableLike, as_qtable, is_encoder
from .data import PROTOCOLS, Dataset, _atomic_save_npy, bmp_size, cache_dir, load_dataset
from .models import get
from .runtime import tune_allocator

__all__ = ["EvaluationError", "Evaluator", "Reference", "Result", "resolve_device"]

#: Per-image array fields of :class:`Result`, in ``to_dict(per_image=True)`` order.
PER_IMAGE_FIELDS: tuple[str, ...] = (
    "indices",
    "correct",
    "correct5",
    "agree",
    "ce",
    "kl",
    "bytes",
    "pixels",
    "bmp_bytes",
)


#: Default inference batch on the CPU: with the allocator tuned (:mod:`dnnjpeg.evaluation.runtime`) Lite0 runs
#: about 5 ms/image at batch 8 against 12.6 at batch 64 (2 threads, this project's 2-core CI machine;
#: see docs/evaluation.md).
CPU_BATCH_SIZE = 8
#: Default inference batch on CUDA.
GPU_BATCH_SIZE = 64
#: crop224 images JPEG round-tripped at once (rounded up to whole batches; 19 MB of decoded crops).
#: Round-tripping each batch of 8 between model calls costs ~50% more than chunks of 128 (per-chunk
#: pool hand-offs, the model's threads still spinning, caches cooled by the model): 0.12 vs 0.08 s
#: for 256 crops on the 2-core CI machine (benchmarks/evaluate_throughput.py, docs/evaluation.md).
CODEC_CHUNK = 128


class EvaluationError(DnnjpegError, ValueError):
    """Bad evaluator arguments (protocol, indices, table)."""


@dataclass(eq=False)
class Result:
    """Rate and accuracy of one table on a set of images, with per-image arrays (picklable).

    Attributes (aggregates):
        top1, top5: accuracy as a fraction (agreement with the reference when unlabelled).
        agreement: fraction whose top-1 equals the uncompressed prediction.
        ce_mean, kl_mean: mean cross-entropy / KL divergence (nats).
        bytes_mean: mean JPEG bytes per image.
        cr: ``mean(bmp_bytes) / mean(bytes)`` (the seed's BMP-relative compression rate).
        bpp: ``8 * sum(bytes) / sum(pixels)``.
        n: number of images.
    Attributes (description):
        model, data, protocol: what was evaluated (names).
        table: ``QTable.to_dict()`` of the table, ``None`` for the uncompressed reference.
        quality: the standard quality when the table is a standard one, else ``None``.
        labelled: whether ``top1``/``ce`` use real labels.
        seconds: wall time of the evaluation.
    Attributes (per image, numpy, aligned with ``indices``): see the module docstring.

    Example:
        >>> r = Result(model="m", data="d", protocol="crop224", table=None, quality=None, labelled=True,
        ...            indices=np.arange(4), correct=np.array([1, 1, 0, 1], bool),
        ...            correct5=np.ones(4, bool), agree=np.array([1, 1, 0, 1], bool), ce=np.full(4, 0.5),
        ...            kl=np.zeros(4), bytes=np.full(4, 7529), pixels=np.full(4, 50176),
        ...            bmp_bytes=np.full(4, 150582))
        >>> r.top1, round(r.cr, 3), r.subset([3, 2]).top1
        (0.75, 20.0, 0.5)
    """

    model: str
    data: str
    protocol: str
    table: dict[str, Any] | None
    quality: int | None
    labelled: bool
    indices: np.ndarray
    correct: np.ndarray
    correct5: np.ndarray
    agree: np.ndarray
    ce: np.ndarray
    kl: np.ndarray
    bytes: np.ndarray
    pixels: np.ndarray
    bmp_bytes: np.ndarray
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    # -- aggregates (computed from the per-image arrays) ---------------------------------
    @property
    def n(self) -> int:
        return len(self.indices)

    @property
    def top1(self) -> float:
        return float(np.mean(self.correct)) if self.n else math.nan

    @property
    def top5(self) -> float:
        return float(np.mean(self.correct5)) if self.n else math.nan

    @property
    def agreement(self) -> float:
        return float(np.mean(self.agree)) if self.n else math.nan

    @property
    def ce_mean(self) -> float:
        return float(np.mean(self.ce)) if self.n else math.nan

    @property
    def kl_mean(self) -> float:
        return float(np.mean(self.kl)) if self.n else math.nan

    @property
    def bytes_mean(self) -> float:
        return float(np.mean(self.bytes)) if self.n else math.nan

    @property
    def cr(self) -> float:
        return float(np.mean(self.bmp_bytes) / np.mean(self.bytes)) if self.n else math.nan

    @property
    def bpp(self) -> float:
        return float(8.0 * np.sum(self.bytes) / np.sum(self.pixels)) if self.n else math.nan

    def subset(self, indices: Sequence[int] | np.ndarray) -> Result:
        """The result restricted to the given *dataset* indices (must be among ``self.indices``), in that order.

        A boolean mask of length ``n`` selects positions instead.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n,):
                raise EvaluationError(f"mask has shape {idx.shape}, expected ({self.n},)")
            pos = np.flatnonzero(idx)
        else:
            idx = idx.astype(np.int64).reshape(-1)
            lookup = {int(d): p for p, d in enumerate(self.indices)}
            try:
                pos = np.array([lookup[int(i)] for i in idx], dtype=np.int64)
            except KeyError as exc:
                raise EvaluationError(f"dataset index {exc.args[0]} was not evaluated in this result") from None
        changes = {name: getattr(self, name)[pos] for name in PER_IMAGE_FIELDS}
        return replace(self, **changes, extra=dict(self.extra))

    def summary(self) -> dict[str, Any]:
        """The aggregates: ``top1, top5, agreement, ce, kl, bytes_mean, cr, bpp, n``."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "agreement": self.agreement,
            "ce": self.ce_mean,
            "kl": self.kl_mean,
            "bytes_mean": self.bytes_mean,
            "cr": self.cr,
            "bpp": self.bpp,
            "n": self.n,
        }

    def to_dict(self, per_image: bool = False) -> dict[str, Any]:
        """JSON-able dict: the summary plus model, data, protocol, quality, table, labelled, seconds;
        with ``per_image`` also every per-image array as a list."""
        d: dict[str, Any] = {k: _finite_or_none(v) for k, v in self.summary().items()}
        d.update(
            model=self.model,
            data=self.data,
            protocol=self.protocol,
            quality=self.quality,
            labelled=self.labelled,
            seconds=round(float(self.seconds), 3),
            table=self.table,
        )
        if self.extra:
            d["extra"] = self.extra
        if per_image:
            d["per_image"] = {name: getattr(self, name).tolist() for name in PER_IMAGE_FIELDS}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Inverse of ``to_dict(per_image=True)``."""
        if "per_image" not in d:
            raise EvaluationError("Result.from_dict needs the per-image arrays (to_dict(per_image=True))")
        arrays = {name: np.asarray(d["per_image"][name], dtype=_DTYPES[name]) for name in PER_IMAGE_FIELDS}
        return cls(
            model=d["model"],
            data=d["data"],
            protocol=d["protocol"],
            table=d.get("table"),
            quality=d.get("quality"),
            labelled=bool(d.get("labelled", True)),
            seconds=float(d.get("seconds", 0.0)),
            extra=dict(d.get("extra", {})),
            **arrays,
        )

    def to_json(self, path: str | os.PathLike[str] | None = None, per_image: bool = False) -> str:
        text = json.dumps(self.to_dict(per_image=per_image), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def __repr__(self) -> str:
        q = f" q{self.quality}" if self.quality is not None else ""
        name = (self.table or {}).get("name", "uncompressed" if self.table is None else "table")
        return (
            f"<Result {self.model} on {self.data} [{self.protocol}] {name}{q}: n={self.n} "
            f"top1={self.top1:.4f} top5={self.top5:.4f} agree={self.agreement:.4f} "
            f"cr={self.cr:.2f} bpp={self.bpp:.3f}>"
        )


@dataclass(eq=False)
class Reference:
    """Predictions on the uncompressed images (cached): ``logits`` (N, C) float32, ``pred`` (N,) int64."""

    logits: np.ndarray
    pred: np.ndarray


def resolve_device(device: Any = None) -> Any:
    """``None`` -> ``cuda`` when available else ``cpu``; strings -> ``torch.device``."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _writer_of(options: EncodeOptions | None, writer: str | None) -> str | None:
    """The evaluator's writer (an encoder family name; ``None``: libjpeg) for ``options`` and ``writer``."""
    if options is None:
        return writer
    if not isinstance(options, EncodeOptions):
        raise EvaluationError(f"options must be a dnnjpeg.EncodeOptions, got {type(options).__name__}")
    unset = EncodeOptions()
    given = [f for f in ("table", "quality", "subsampling") if getattr(options, f) != getattr(unset, f)]
    if given:
        raise EvaluationError(
            f"Evaluator(options=...) sets how tables are written; its {', '.join(given)} must be left unset "
            "(evaluate() takes the tables)"
        )
    family = options.encoder_family()
    implied = None if family == "libjpeg" else family
    if writer is not None and writer != implied:
        raise EvaluationError(f"writer={writer!r} contradicts options (written by {family}); give one of them")
    return implied


class Evaluator:
    """Evaluates tables on one model, one dataset and one protocol.

    Args:
        model: a name for :func:`dnnjpeg.evaluation.models.get`, or a :class:`~dnnjpeg.evaluation.models.Classifier`.
        data: a dataset folder or a :class:`~dnnjpeg.evaluation.data.Dataset`.
        protocol: ``"crop224"`` (default) or ``"native"``.
        batch_size: inference batch size (default: 64 on CUDA, :data:`CPU_BATCH_SIZE` on the CPU,
            where small batches run about 2.5x faster per image for Lite0).
        workers: JPEG encode/decode pool size (default: usable cores).
        device: torch device (default CUDA when available, else CPU); a Classifier is moved there.
        backend: ``"thread"`` (default) or ``"process"`` for the codec pool.
        limit: keep only the first ``limit`` images of ``data``.
        cache: use the on-disk crop and reference caches (default True).
        progress: show tqdm progress bars.
        prefetch: compress the next chunk of images while the model runs on this one.  Default: on CUDA only
            (on the CPU the model already uses every core, and overlapping only adds contention).
        fold_batchnorm: run a copy of the model with its batch norms folded into the convolutions
            (:meth:`~dnnjpeg.evaluation.models.Classifier.fold_batchnorm`; default True): ~1.24x faster for
            EfficientNet-Lite on the CPU; logits move by ~1e-5 (not one of 15,000 top-1 predictions
            changed on the dev images, docs/evaluation.md).  ``False`` runs the model exactly as given.
        writer: an encoder family of :mod:`dnnjpeg.encoders` (e.g. ``"trellis"``) that writes every table
            this evaluator is given, in :meth:`evaluate` and :meth:`sizes`, instead of libjpeg; tables named
            ``"standard"`` (``QTable.standard(q)``, the anchor every comparison is made against) are still
            written by libjpeg.  Tuning with ``writer="trellis"`` finds tables for ``dnnjpeg recompress
            --trellis``.  Default ``None``: libjpeg writes everything.
        options: how the tables are written, as :class:`~dnnjpeg.EncodeOptions` (``writer``,
            ``optimize``, ``progressive``) instead of ``writer``: ``writer="trellis"`` is the
            ``"trellis"`` family, with ``progressive=True`` ``"mozjpeg"``; ``optimize=True`` with
            libjpeg is ``"libjpeg-opt"``.  The tables themselves come from :meth:`evaluate`, so
            ``table``, ``quality`` and ``subsampling`` must be left unset; the metadata policy does
            not apply (arrays carry none).

    Methods return :class:`Result`; all accept ``indices`` (dataset indices, any order; results
    come back in that order) so a search can work on subsets and folds.  Picklable (the model
    is rebuilt by name in the new process when it came from the registry; images reload from the
    crop cache).
    """

    def __init__(
        self,
        model: str | Any,
        data: str | os.PathLike[str] | Dataset,
        protocol: str = "crop224",
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        device: Any = None,
        backend: str = "thread",
        limit: int | None = None,
        cache: bool = True,
        progress: bool = False,
        prefetch: bool | None = None,
        fold_batchnorm: bool = True,
        writer: str | None = None,
        options: EncodeOptions | None = None,
    ) -> None:
        if writer is not None:
            get_family(writer)  # an unknown name raises EncoderError listing the known ones
        self.writer = _writer_of(options, writer)

        if protocol not in PROTOCOLS:
            raise EvaluationError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if batch_size is not None and batch_size < 1:
            raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
        self.protocol = protocol
        self.cache = bool(cache)
        self.progress = bool(progress)
        self.dataset: Dataset = load_dataset(data, limit=limit)
        self.classifier = get(model, device=device)
        if fold_batchnorm:
            self.classifier = self.classifier.fold_batchnorm()  # a checked copy; the caller's is untouched
        self.device = self.classifier.device
        self.prefetch = self.device.type == "cuda" if prefetch is None else bool(prefetch)
        if batch_size is None:
            batch_size = GPU_BATCH_SIZE if str(self.device).startswith("cuda") else CPU_BATCH_SIZE
        self.batch_size = int(batch_size)
        self.codec = Codec(workers, backend)
        labels = self.dataset.labels
        if self.dataset.labelled and labels.size and int(labels.max()) >= self.classifier.num_classes:
            raise EvaluationError(
                f"label {int(labels.max())} is out of range for {self.classifier.name} "
                f"({self.classifier.num_classes} classes)"
            )
        self._images: Any = None
        self._ref_logits: np.ndarray | None = None
        self._ref_have: np.ndarray | None = None
        self._ref_inputs: dict[int, np.ndarray] = {}

    # -- properties --------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of images."""
        return len(self.dataset)

    @property
    def model_name(self) -> str:
        return self.classifier.name

    @property
    def data_name(self) -> str:
        return self.dataset.name

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    @property
    def images(self) -> Any:
        """The protocol's input images (before JPEG): ``(N, 224, 224, 3)`` crops, or a list of originals."""
        if self._images is None:
            if self.protocol == "crop224":
                self._images = self.dataset.crops(cache=self.cache, workers=self.codec.workers, progress=self.progress)
            else:
                self._images = self.dataset.native_images(workers=self.codec.workers, progress=self.progress)
            self._pixels = np.array([im.shape[0] * im.shape[1] for im in self._image_list()], dtype=np.int64)
            self._bmp = np.array([bmp_size(im.shape[0], im.shape[1]) for im in self._image_list()], dtype=np.int64)
        return self._images

    def _image_list(self) -> Any:
        return self._images

    @property
    def pixels(self) -> np.ndarray:
        """Pixels per image (of the image that is JPEG-compressed)."""
        self.images  # noqa: B018 - loads
        return self._pixels

    @property
    def bmp_bytes(self) -> np.ndarray:
        """24-bit BMP size per image (the CR numerator)."""
        self.images  # noqa: B018
        return self._bmp

    # -- internals ---------------------------------------------------------------------
    def _indices(self, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if indices is None:
            return np.arange(self.n, dtype=np.int64)
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n,):
                raise EvaluationError(f"boolean mask has shape {idx.shape}, expected ({self.n},)")
            return np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size == 0:
            raise EvaluationError("no indices to evaluate")
        if idx.min() < 0 or idx.max() >= self.n:
            raise EvaluationError(f"indices must lie in 0..{self.n - 1}")
        return idx

    def _chunks(self, idx: np.ndarray) -> list[np.ndarray]:
        """Codec chunks: whole batches, at least :data:`CODEC_CHUNK` crops (one batch of originals for
        the native protocol, whose images can be of any size)."""
        per = 1 if self.protocol == "native" else max(1, -(-CODEC_CHUNK // self.batch_size))
        size = self.batch_size * per
        return [idx[i : i + size] for i in range(0, len(idx), size)]

    def _prepare(self, batch: np.ndarray, table: Any) -> tuple[np.ndarray, np.ndarray]:
        """Model-ready uint8 NHWC inputs and JPEG sizes for one chunk of indices."""
        images = self.images
        if self.protocol == "crop224":
            src = images[batch]
            if table is None:
                return src, self._bmp[batch]
            return self.codec.roundtrip_batch(src, table)  # type: ignore[return-value]
        src_list = [images[i] for i in batch]
        transform = self.classifier.transform
        if transform is None:
            raise EvaluationError(f"{self.classifier.name} has no transform for the native protocol")
        if table is None:
            missing = [int(i) for i in batch if int(i) not in self._ref_inputs]
            outs = self.codec.map(lambda i: transform(Image.fromarray(images[i])), missing)
            self._ref_inputs.update(zip(missing, outs))
            return np.stack([self._ref_inputs[int(i)] for i in batch]), self._bmp[batch]
        decoded, nbytes = self.codec.roundtrip_batch(src_list, table)
        outs = self.codec.map(lambda a: transform(Image.fromarray(a)), decoded)
        return np.stack(outs), nbytes

    def _run(self, idx: np.ndarray, table: Any, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """Logits (len(idx), C) float32 and JPEG bytes for ``idx``, pipelined."""
        if self.device.type == "cpu":
            tune_allocator()  # once per process; bit-identical results, ~1.8x faster CPU inference
        logits = np.empty((len(idx), self.classifier.num_classes), dtype=np.float32)
        nbytes = np.empty(len(idx), dtype=np.int64)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(idx), desc=desc, unit="img", leave=False)
        chunks = self._chunks(idx)
        pos = 0

        def infer(x: np.ndarray, nb: np.ndarray) -> None:
            nonlocal pos
            nbytes[pos : pos + len(x)] = nb
            for i in range(0, len(x), self.batch_size):  # batches start at multiples of batch_size
                m = min(self.batch_size, len(x) - i)
                logits[pos : pos + m] = self.classifier(x[i : i + m]).cpu().numpy()
                pos += m
                if bar is not None:
                    bar.update(m)

        try:
            if self.prefetch and len(chunks) > 1:
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dnnjpeg-prefetch") as ex:
                    fut = ex.submit(self._prepare, chunks[0], table)
                    for k in range(len(chunks)):
                        x, nb = fut.result()
                        if k + 1 < len(chunks):
                            fut = ex.submit(self._prepare, chunks[k + 1], table)
                        infer(x, nb)
            else:
                for c in chunks:
                    infer(*self._prepare(c, table))
        finally:
            if bar is not None:
                bar.close()
        return logits, nbytes

    def _reference_key(self) -> str | None:
        fp = self.classifier.fingerprint
        if not self.cache or fp is None:
            return None
        extra = ""
        if self.protocol == "native":
            t = self.classifier.transform
            extra = f"{getattr(t, 'resize', '?')}|{getattr(t, 'crop', '?')}|{getattr(t, 'interpolation', '?')}"
        h = hashlib.sha256(f"ref-v1|{fp}|{self.protocol}|{extra}|{self.dataset.fingerprint(self.protocol)}".encode())
        return h.hexdigest()[:40]

    def _reference_path(self) -> Path | None:
        key = self._reference_key()
        return None if key is None else cache_dir() / "reference" / f"{key}.npy"

    def reference(self, indices: Sequence[int] | np.ndarray | None = None) -> Reference:
        """Reference (uncompressed) logits and predictions for ``indices`` (default all), cached."""
        idx = self._indices(indices)
        if self._ref_logits is None:
            path = self._reference_path()
            loaded = None
            if path is not None and path.is_file():
                try:
                    loaded = np.load(path, allow_pickle=False)
                except (OSError, ValueError):
                    loaded = None
                if loaded is not None and loaded.shape != (self.n, self.classifier.num_classes):
                    loaded = None
            if loaded is not None:
                self._ref_logits = loaded.astype(np.float32, copy=False)
                self._ref_have = np.ones(self.n, dtype=bool)
            else:
                self._ref_logits = np.zeros((self.n, self.classifier.num_classes), dtype=np.float32)
                self._ref_have = np.zeros(self.n, dtype=bool)
        assert self._ref_have is not None
        missing = np.unique(idx[~self._ref_have[idx]])
        if missing.size:
            logits, _ = self._run(missing, None, "reference")
            self._ref_logits[missing] = logits
            self._ref_have[missing] = True
            path = self._reference_path()
            if path is not None and self._ref_have.all():
                _atomic_save_npy(path, self._ref_logits)
        ref = self._ref_logits[idx]
        return Reference(logits=ref, pred=ref.argmax(axis=1).astype(np.int64))

    def evaluate(self, table: TableLike = None, indices: Sequence[int] | np.ndarray | None = None) -> Result:
        """Evaluate ``table``: a QTable, a standard quality int, ``None`` (the uncompressed reference), or an
        encoder object (``encode(img) -> bytes``, ``to_dict()``, ``meta``; see :mod:`dnnjpeg.encoders`)."""
        t0 = time.perf_counter()
        qt = table if is_encoder(table) else self._written(as_qtable(table))  # encoders: see dnnjpeg.encoders
        idx = self._indices(indices)
        ref = self.reference(idx)
        if qt is None:
            logits, nbytes = ref.logits, self.bmp_bytes[idx]
        else:
            logits, nbytes = self._run(idx, qt, _describe_table(qt))
        metrics = _metrics(logits, ref.logits, self.labels[idx] if self.dataset.labelled else ref.pred)
        quality = None
        meta = getattr(qt, "meta", None) or {}
        if qt is not None and (is_encoder(qt) or meta.get("name") == "standard") and meta.get("quality") is not None:
            quality = int(meta["quality"])
        return Result(
            model=self.classifier.name,
            data=self.dataset.name,
            protocol=self.protocol,
            table=None if qt is None else qt.to_dict(),
            quality=quality,
            labelled=self.dataset.labelled,
            indices=idx.copy(),
            bytes=np.asarray(nbytes, dtype=np.int64),
            pixels=self.pixels[idx].copy(),
            bmp_bytes=self.bmp_bytes[idx].copy(),
            seconds=time.perf_counter() - t0,
            **metrics,
        )

    def writer_for(self, table: TableLike) -> str | None:
        """The encoder family that writes ``table`` here: ``writer``, or ``None`` (libjpeg) for standard tables,
        ``None`` (the uncompressed reference) and encoder objects (they write themselves)."""
        qt = None if is_encoder(table) else as_qtable(table)
        if self.writer is None or qt is None or qt.meta.get("name") == "standard":
            return None
        return self.writer

    def _written(self, qt: QTable | None) -> Any:
        """``qt`` as this evaluator writes it (see :meth:`writer_for`)."""
        writer = self.writer_for(qt)
        if writer is None:
            return qt

        return make_encoder(writer, table=qt)

    def evaluate_standard(self, quality: int, indices: Sequence[int] | np.ndarray | None = None) -> Result:
        """Evaluate libjpeg's standard tables at ``quality``."""
        return self.evaluate(QTable.standard(int(quality)), indices=indices)

    def evaluate_many(
        self, tables: Iterable[TableLike], indices: Sequence[int] | np.ndarray | None = None
    ) -> list[Result]:
        """Evaluate several tables in turn (each pipelined: JPEG of the next batch overlaps the model)."""
        return [self.evaluate(t, indices=indices) for t in tables]

    def sizes(self, table: TableLike, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """JPEG bytes per image without running the model (fast rate-only queries, e.g. size matching)."""
        qt = table if is_encoder(table) else self._written(as_qtable(table))
        idx = self._indices(indices)
        if qt is None:
            return self.bmp_bytes[idx].copy()
        images = self.images
        src = images[idx] if self.protocol == "crop224" else [images[i] for i in idx]
        return self.codec.sizes(src, qt)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Evaluator:
        """An evaluator on ``indices`` only (its indices are 0..len-1), sharing the model, images and caches."""
        idx = self._indices(indices)
        new = copy.copy(self)
        new.dataset = self.dataset.subset(idx)
        if self._images is not None:
            new._images = self._images[idx] if self.protocol == "crop224" else [self._images[i] for i in idx]
            new._pixels = self._pixels[idx]
            new._bmp = self._bmp[idx]
        else:
            new._images = None
        if self._ref_logits is not None and self._ref_have is not None:
            new._ref_logits = self._ref_logits[idx].copy()
            new._ref_have = self._ref_have[idx].copy()
        new._ref_inputs = {j: self._ref_inputs[int(i)] for j, i in enumerate(idx) if int(i) in self._ref_inputs}
        return new

    def close(self) -> None:
        """Shut the codec pool down (it restarts if the evaluator is used again)."""
        self.codec.close()

    def __enter__(self) -> Evaluator:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.cache and self.protocol == "crop224":
            state["_images"] = None  # reloads from the crop cache
        state["_ref_inputs"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"<Evaluator {self.classifier.name} on {self.dataset.name} [{self.protocol}] n={self.n} "
            f"device={self.device} batch={self.batch_size} workers={self.codec.workers}"
            + (f" writer={self.writer}>" if self.writer else ">")
        )


# -- helpers ------------------------------------------------------------------------------
_DTYPES: dict[str, Any] = {
    "indices": np.int64,
    "correct": bool,
    "correct5": bool,
    "agree": bool,
    "ce": np.float64,
    "kl": np.float64,
    "bytes": np.int64,
    "pixels": np.int64,
    "bmp_bytes": np.int64,
}


def _metrics(logits: np.ndarray, ref_logits: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image correct, correct5, agree, ce, kl (float64 arithmetic on float32 logits)."""
    z = logits.astype(np.float64)
    zr = ref_logits.astype(np.float64)
    logp = z - _logsumexp(z)
    logq = zr - _logsumexp(zr)
    n = len(z)
    rows = np.arange(n)
    pred = z.argmax(axis=1)
    ref_pred = zr.argmax(axis=1)
    k = min(5, z.shape[1])
    # target is in the top k when fewer than k logits beat it (ties count against it only if strictly greater)
    tz = z[rows, target]
    correct5 = (z > tz[:, None]).sum(axis=1) < k
    kl = np.sum(np.exp(logq) * (logq - logp), axis=1)
    return {
        "correct": pred == target,
        "correct5": correct5,
        "agree": pred == ref_pred,
        "ce": -logp[rows, target],
        "kl": np.maximum(kl, 0.0),
    }


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _describe_table(qt: Any) -> str:
    meta = getattr(qt, "meta", None) or {}
    q = meta.get("quality")
    name = meta.get("name", getattr(qt, "name", "table"))
    return f"{name} q{q}" if q is not None else str(name)


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
