"""Process-level tuning for CPU inference: glibc's allocator thresholds.

PyTorch's CPU allocator is plain ``malloc``.  With glibc's defaults, the activation buffers of a
convnet batch (a few MB each) are handed back to the kernel after every batch (the heap top is
trimmed once more than twice the dynamic mmap threshold is free, and buffers above the threshold
are ``mmap``-ed and ``munmap``-ed), so every batch page-faults its memory in again.  On this
project's 2-core CI machine that doubled the time of a Lite0 batch, and made it erratic (0.7 to
1.7 s for the same 128 crops, depending on the allocator's history).

:func:`tune_allocator` fixes both thresholds with ``mallopt`` so freed activations stay in the
heap: bit-identical results, 1.7-2.8x faster Lite0 inference on that machine at batch 4-64 (see
docs/evaluation.md and ``benchmarks/evaluate_throughput.py``).  The cost is memory: up to
``trim_threshold`` bytes of free heap are kept instead of returned to the system.

:class:`dnnjpeg.evaluation.evaluate.Evaluator` calls it before its first CPU inference; set
``DNNJPEG_TUNE_MALLOC=0`` to leave the allocator alone.  It does nothing (and returns ``False``)
where the C library is not glibc (macOS, Windows, musl).

Example::

    >>> import dnnjpeg.evaluation.runtime
    >>> isinstance(dnnjpeg.evaluation.runtime.tune_allocator(), bool)
    True
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

__all__ = ["ENV_VAR", "allocator_settings", "tune_allocator"]

#: Environment variable: ``0`` / ``false`` / ``no`` / ``off`` disables :func:`tune_allocator`.
ENV_VAR = "DNNJPEG_TUNE_MALLOC"

#: glibc ``mallopt`` parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The largest mmap threshold every 64-bit glibc accepts (HEAP_MAX_SIZE / 2).
_GLIBC_SAFE_MMAP_MAX = 32 << 20

#: What this process applied: ``{"mmap_threshold": ..., "trim_threshold": ...}``, or empty.
_applied: dict[str, int] = {}


def _enabled() -> bool:
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def _on_glibc() -> bool:
    # platform.libc_ver() reads the interpreter's binary: ask once per process
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def tune_allocator(mmap_threshold: int = 128 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Keep freed buffers below ``mmap_threshold`` bytes in the heap, trim only above ``trim_threshold``.

    Process-wide and idempotent: the first successful call wins; later calls return ``True``
    without changing anything.

    Args:
        mmap_threshold: allocations at least this large are served by ``mmap`` (default 128 MiB:
            Lite0's largest activation at batch 8 is 38.5 MB).  A glibc that refuses it (older ones
            cap it at 32 MiB) gets 32 MiB.
        trim_threshold: free memory at the top of the heap beyond this is returned to the system.

    Returns:
        ``True`` when the thresholds are in effect in this process, ``False`` when disabled by
        ``DNNJPEG_TUNE_MALLOC=0``, not on glibc, or refused by ``mallopt``.

    Raises:
        ValueError: a threshold is not a positive int, or ``trim_threshold < mmap_threshold``.
    """
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int (bytes), got {value!r}")
    if trim_threshold < mmap_threshold:
        raise ValueError(f"trim_threshold ({trim_threshold}) must be >= mmap_threshold ({mmap_threshold})")
    if _applied:
        return True
    if not _enabled() or not _on_glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt takes an int: clamp to INT_MAX
    mmap_v, trim_v = min(mmap_threshold, 2**31 - 1), min(trim_threshold, 2**31 - 1)
    if mallopt(_M_MMAP_THRESHOLD, mmap_v) != 1:
        mmap_v = min(mmap_v, _GLIBC_SAFE_MMAP_MAX)
        if mallopt(_M_MMAP_THRESHOLD, mmap_v) != 1:
            return False
    if mallopt(_M_TRIM_THRESHOLD, trim_v) != 1:
        return False
    _applied.update(mmap_threshold=mmap_v, trim_threshold=trim_v)
    return True


def allocator_settings() -> dict[str, int]:
    """The thresholds :func:`tune_allocator` applied in this process (empty when it did not)."""
    return dict(_applied)
