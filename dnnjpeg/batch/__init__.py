"""Batch recompression of dataset folders: ``dnnjpeg.recompress(src, dst, table)``.

Modules: :mod:`.plan` (walking SRC, path safety, extension rule, sharding),
:mod:`.worker` (one file -> one manifest record), :mod:`.manifest` (JSONL manifest,
resume), :mod:`.runner` (local process pool and Dask backends, progress, summary),
:mod:`.choices` (the model in the loop: ``recompress(..., rate_control=RateControl(...))``).
See ``docs/recompress.md``.
"""

from __future__ import annotations

from .choices import RateControlTotals
from .runner import DiskFull, RecompressOptions, Summary, default_workers, recompress

__all__ = ["DiskFull", "RateControlTotals", "RecompressOptions", "Summary", "default_workers", "recompress"]
