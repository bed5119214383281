"""The machinery shared by the search and the exhaustive table: model inputs, batched model calls.

A *candidate* is one image encoded by one rung.  Under the ``native`` protocol its model input is
``classifier.transform(decode(rung.encode(image)))`` (what a DataLoader does with the file); the
reference input is ``classifier.transform(image)``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from ..evaluation.codec import default_workers
from ..evaluation.models import Classifier, get
from ..evaluation.runtime import tune_allocator
from ._ladder import Rung, pixels
from ._options import RateControl

__all__ = ["Engine", "decode_image", "load_classifiers"]


def load_classifiers(rc: RateControl) -> list[Any]:
    """``rc.models`` as :class:`~dnnjpeg.evaluation.models.Classifier` objects on ``rc.device`` (CUDA when available),
    batch norms folded (:meth:`~dnnjpeg.evaluation.models.Classifier.fold_batchnorm`).  Load once, pass to
    :func:`~dnnjpeg.ratecontrol.choose` as ``classifiers=`` for every call."""

    out = []
    for m in rc.models:
        clf = get(m, device=rc.device)
        out.append(clf if isinstance(m, Classifier) else clf.fold_batchnorm())
    return out


def decode_image(data: bytes) -> Image.Image:
    """Decode JPEG bytes to a loaded PIL image (RGB or L)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im if im.mode in ("RGB", "L") else im.convert("RGB")


class Engine:
    """Model inputs and logits for candidates, batched; a thread pool does the codec work.

    Args:
        classifiers: the models (each with a ``transform`` for the native protocol).
        batch_size: images per model call.
        workers: codec threads (default: usable cores).
    """

    def __init__(self, classifiers: Sequence[Any], batch_size: int, workers: int | None = None) -> None:
        self.classifiers = list(classifiers)
        self.batch_size = int(batch_size)
        self.workers = default_workers() if workers is None else int(workers)
        self._pool: ThreadPoolExecutor | None = None
        for c in self.classifiers:
            if c.transform is None:
                raise ValueError(f"model {c.name} has no transform (its own resize/crop) for the native protocol")
        if any(getattr(c.device, "type", str(c.device)) == "cpu" for c in self.classifiers):
            tune_allocator()

    def map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` on the codec threads, in order."""
        if self.workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="dnnjpeg-ratecontrol")
        return list(self._pool.map(fn, items))

    def reference_inputs(self, img: Image.Image) -> list[np.ndarray]:
        """One model input per classifier: its transform of the (decoded) source image."""
        im = img if img.mode in ("RGB", "L") else Image.fromarray(pixels(img))
        return [np.asarray(c.transform(im)) for c in self.classifiers]

    def candidate(self, img: Image.Image | np.ndarray, rung: Rung) -> tuple[bytes, list[np.ndarray]]:
        """``(jpeg_bytes, one model input per classifier)`` for ``img`` written by ``rung``."""
        data = rung.encode(img)
        decoded = decode_image(data)
        return data, [np.asarray(c.transform(decoded)) for c in self.classifiers]

    def logits(self, model: int, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Logits ``(len(inputs), C)`` float32 of classifier ``model``, in batches of ``batch_size``."""
        clf = self.classifiers[model]
        out = []
        for i in range(0, len(inputs), self.batch_size):
            out.append(clf(np.stack(inputs[i : i + self.batch_size])).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, clf.num_classes), np.float32)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
