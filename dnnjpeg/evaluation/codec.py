"""Parallel JPEG encode/decode of uint8 arrays through Pillow (libjpeg-turbo).

A table is always written with ``QTable.save_options()`` (``qtables`` + ``subsampling``); ``quality``
is never passed next to ``qtables`` (Pillow >= 11.3 would rescale them).  A standard quality ``q``
is written as ``QTable.standard(q)``, byte-identical to Pillow's ``quality=q``.  Huffman tables are
libjpeg's defaults (no ``optimize``), baseline, no metadata: the seed's ``cjpeg`` setting.

Pillow releases the GIL inside libjpeg, so a thread pool scales across cores without pickling the
pixels; ``backend="process"`` is there for comparison (see docs/evaluation.md for measurements).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from ..qtable import QTable

__all__ = ["Codec", "TableLike", "as_qtable", "decode", "default_workers", "encode", "is_encoder", "roundtrip"]

#: ``QTable``, a standard quality ``int`` (1..100), ``None`` (no compression), or an *encoder*: any
#: object with ``encode(img: uint8 HWC array) -> bytes`` (a JPEG file), ``to_dict()`` and ``meta``
#: (see :class:`dnnjpeg.encoders.Encoder`), e.g. mozjpeg or optimized Huffman tables.
TableLike = Any


def default_workers() -> int:
    """Worker count: ``$DNNJPEG_WORKERS`` or the number of usable cores."""
    env = os.environ.get("DNNJPEG_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def is_encoder(obj: Any) -> bool:
    """True for encoder objects (they have ``encode``), as opposed to tables."""
    return not isinstance(obj, (QTable, tuple, list, int, np.integer, str, bytes)) and callable(
        getattr(obj, "encode", None)
    )


def as_qtable(table: TableLike) -> QTable | None:
    """``None`` stays ``None``; an ``int`` is ``QTable.standard(q)``; a QTable (or an encoder object)
    is returned as is."""
    if table is None or isinstance(table, QTable) or is_encoder(table):
        return table
    if isinstance(table, (int, np.integer)) and not isinstance(table, bool):
        return QTable.standard(int(table))
    if isinstance(table, (tuple, list)) and len(table) == 2:
        return QTable(table[0], table[1])
    raise TypeError(f"expected a QTable, a standard quality (int) or None, got {type(table).__name__}")


def _save_kwargs(table: TableLike) -> dict[str, Any]:
    if is_encoder(table):
        return {"encoder": table}
    qt = as_qtable(table)
    if qt is None:
        raise ValueError("no table given")
    if not qt.is_baseline:
        raise ValueError("table has steps above 255 (16-bit JPEG); the evaluator only writes baseline JPEG")
    return qt.save_options()


def _encode_kw(img: np.ndarray, kwargs: dict[str, Any]) -> bytes:
    if "encoder" in kwargs:
        return kwargs["encoder"].encode(np.ascontiguousarray(img))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def encode(img: np.ndarray, table: TableLike) -> bytes:
    """JPEG bytes of one uint8 HWC RGB (or HW gray) array with ``table``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> img = np.zeros((16, 16, 3), np.uint8)
        >>> buf = io.BytesIO(); Image.fromarray(img).save(buf, "JPEG", quality=50)
        >>> encode(img, 50) == buf.getvalue()
        True
    """
    return _encode_kw(img, _save_kwargs(table))


def decode(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to a uint8 HWC RGB array (HW for grayscale)."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return np.asarray(im)


def _roundtrip_kw(img: np.ndarray, kwargs: dict[str, Any]) -> tuple[np.ndarray, int]:
    data = _encode_kw(img, kwargs)
    return decode(data), len(data)


def roundtrip(img: np.ndarray, table: TableLike) -> tuple[np.ndarray, int]:
    """Encode then decode one image; returns ``(decoded, jpeg_bytes)``."""
    return _roundtrip_kw(img, _save_kwargs(table))


def _roundtrip_chunk(images: list[np.ndarray], kwargs: dict[str, Any]) -> list[tuple[np.ndarray, int]]:
    return [_roundtrip_kw(im, kwargs) for im in images]


def _encode_chunk(images: list[np.ndarray], kwargs: dict[str, Any]) -> list[bytes]:
    return [_encode_kw(im, kwargs) for im in images]


class Codec:
    """A pool that round-trips batches of images through JPEG in parallel.

    Args:
        workers: pool size (default :func:`default_workers`); ``1`` runs inline.
        backend: ``"thread"`` (default) or ``"process"``.

    Use as a context manager or call :meth:`close`.
    """

    #: Tasks per worker for one batch (contiguous chunks of images).
    _chunks_per_worker = 2

    def __init__(self, workers: int | None = None, backend: str = "thread") -> None:
        self.workers = default_workers() if workers is None else max(1, int(workers))
        if backend not in ("thread", "process"):
            raise ValueError(f"backend must be 'thread' or 'process', got {backend!r}")
        self.backend = backend
        self._pool: Any = None
        self._threads: Any = None

    def _get_pool(self) -> Any:
        if self._pool is None:
            if self.backend == "thread":
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dnnjpeg-codec")
            else:
                import multiprocessing as mp

                ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def _run(self, fn: Any, chunk_fn: Any, images: Sequence[np.ndarray], kwargs: dict[str, Any]) -> list[Any]:
        n = len(images)
        if self.workers == 1 or n <= 1:
            return [fn(im, kwargs) for im in images]
        pool = self._get_pool()
        # Contiguous chunks, a few per worker: one task per image costs about as much as a small
        # image's round trip (futures, GIL hand-offs; 256 crops in batches of 8 on 2 threads took
        # 0.12 s that way vs 0.07 s in halves, measured alone); for processes it amortises pickling.
        size = max(1, -(-n // (self.workers * self._chunks_per_worker)))
        chunks = [images[i : i + size] for i in range(0, n, size)]
        if self.backend == "process":
            chunks = [list(c) for c in chunks]
        out: list[Any] = []
        for part in pool.map(chunk_fn, chunks, [kwargs] * len(chunks)):
            out.extend(part)
        return out

    def roundtrip_batch(
        self, images: np.ndarray | Sequence[np.ndarray], table: TableLike
    ) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
        """Round-trip every image; returns ``(decoded, nbytes)``.

        ``decoded`` is a ``(N, H, W, 3)`` array when ``images`` is one array, else a list;
        ``nbytes`` is int64 ``(N,)``.  ``table=None`` returns the input unchanged with ``nbytes`` = 0.
        """
        n = len(images)
        if table is None:
            return images, np.zeros(n, dtype=np.int64)
        kwargs = _save_kwargs(table)
        pairs = self._run(_roundtrip_kw, _roundtrip_chunk, images, kwargs)
        nbytes = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=n)
        if isinstance(images, np.ndarray):
            out = np.empty_like(images)
            for i, (arr, _) in enumerate(pairs):
                out[i] = arr
            return out, nbytes
        return [p[0] for p in pairs], nbytes

    def encode_batch(self, images: np.ndarray | Sequence[np.ndarray], table: TableLike) -> list[bytes]:
        """JPEG bytes of every image."""
        return self._run(_encode_kw, _encode_chunk, images, _save_kwargs(table))

    def sizes(self, images: np.ndarray | Sequence[np.ndarray], table: TableLike) -> np.ndarray:
        """JPEG byte counts only (no decoding)."""
        return np.array([len(b) for b in self.encode_batch(images, table)], dtype=np.int64)

    def map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        """``[fn(x) for x in items]`` on a thread pool of ``workers`` threads (any backend), in order."""
        if self.workers == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        if self._threads is None:
            if self.backend == "thread":
                self._threads = self._get_pool()
            else:
                self._threads = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dnnjpeg-map")
        return list(self._threads.map(fn, items))

    def close(self) -> None:
        """Shut the pools down (they restart on next use)."""
        for attr in ("_pool", "_threads"):
            pool = getattr(self, attr)
            if pool is not None:
                pool.shutdown()
                setattr(self, attr, None)

    def __enter__(self) -> Codec:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"workers": self.workers, "backend": self.backend, "_pool": None, "_threads": None}
