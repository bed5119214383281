"""Batch recompression of dataset folders: ``dnnjpeg.recompress(src, dst, table)``.

Modules: :mod:`.plan` (walking SRC, path safety, extension rule, sharding),
:mod:`.worker` (one file -> one manifest record), :mod:`.manifest` (JSONL manifest,
resume), :mod:`.runner` (local process pool and Dask backends, progress, summary).
See ``docs/recompress.md``.
"""

from __future__ import annotations

from .runner import DiskFull, Summary, default_workers, recompress

__all__ = ["DiskFull", "Summary", "default_workers", "recompress"]
