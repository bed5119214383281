"""The JSONL manifest in DST: one line per finished file, appended atomically, read back to resume.

File: ``DST/.dnnjpeg-recompress.jsonl`` (``.dnnjpeg-recompress.shard-I-of-N.jsonl`` for
``--shard I/N``, so array jobs on many machines never write the same file).  Resuming
reads every ``.dnnjpeg-recompress*.jsonl`` in DST, so an unsharded rerun sees the
work of all shards.

Lines are JSON objects.  ``{"type": "run", ...}`` opens each run (settings, time, host);
``{"type": "file", ...}`` records one file::

    {"type": "file", "path": "n01/a.png", "out": "n01/a.jpg", "status": "ok",
     "src_size": 123, "src_mtime_ns": ..., "src_sha256": "...",
     "dst_size": 45, "dst_sha256": "...", "format": "PNG", "mode": "RGBA",
     "reason": null, "cfg": "<settings fingerprint>", "t": 1767000000.1}

``status`` is ``ok`` (re-encoded), ``kept`` (original bytes kept), ``copied`` (not an
image, copied unchanged) or ``failed`` (``reason`` says why).  With the model in the loop
(``rate_control``) an image's record adds its choice: ``rung``, ``kl`` and ``top1_kept`` (per
model), ``held``, ``evaluations`` and ``kept_original``.  ``out`` is omitted when it
equals ``path``.  Lines are written with a single ``write()`` per finished batch on an
``O_APPEND`` descriptor, after the batch's outputs have been renamed into place; a line
cut short by a crash is ignored when reading, and the next run starts on a fresh line.
When a path has several lines, the latest (``t``) wins.

The lock (``flock``) belongs to the run's process alone: a process forked while a
:class:`ManifestWriter` is open (a local pool worker) closes its inherited copy of the
descriptor as it starts (``os.register_at_fork``), so it never keeps the lock after its
run dies.

Disk full: the writer keeps :attr:`ManifestWriter.reserve` bytes allocated past the end
of the file (``fallocate(FALLOC_FL_KEEP_SIZE)`` on Linux, where the file system supports
it), so the lines of the files finished when the disk fills still fit.  A write that
fails anyway is cut back to the last complete line.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from ..errors import DnnjpegError
from .plan import MANIFEST_PREFIX

__all__ = ["DONE_STATUSES", "Entry", "ManifestWriter", "load", "load_records", "manifest_name"]

MANIFEST_VERSION = 1
# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
DONE_STATUSES = frozenset({"ok", "kept", "copied"})


class Entry(NamedTuple):
    """What resume needs to know about one recorded file (compact: millions may be held)."""

    status: str
    src_size: int
    src_mtime_ns: int
    dst_size: int | None
    out: str | None
    cfg: str
    t: float
    reason: str | None


def manifest_name(shard: tuple[int, int] | None = None) -> str:
    if shard is None or shard[1] == 1:
        return f"{MANIFEST_PREFIX}.jsonl"
    return f"{MANIFEST_PREFIX}.shard-{shard[0]}-of-{shard[1]}.jsonl"


def manifest_files(dst_root: str) -> list[str]:
    try:
        names = os.listdir(dst_root)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(dst_root, n) for n in names if n.startswith(MANIFEST_PREFIX) and n.endswith(".jsonl"))


def load(dst_root: str) -> tuple[dict[str, Entry], int]:
    """Read every manifest in ``dst_root``: ``({path: latest Entry}, number of unreadable lines)``."""
    entries: dict[str, Entry] = {}
    bad = 0
    for path in manifest_files(dst_root):
        with open(path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    bad += 1  # a line cut short by a crash
                    continue
                if not isinstance(rec, dict) or rec.get("type") != "file" or not isinstance(rec.get("path"), str):
                    continue
                try:
                    entry = Entry(
                        str(rec["status"]),
                        int(rec["src_size"]),
                        int(rec["src_mtime_ns"]),
                        None if rec.get("dst_size") is None else int(rec["dst_size"]),
                        rec.get("out"),
                        str(rec.get("cfg", "")),
                        float(rec.get("t", 0.0)),
                        rec.get("reason"),
                    )
                except (KeyError, TypeError, ValueError):
                    bad += 1
                    continue
                old = entries.get(rec["path"])
                if old is None or entry.t >= old.t:
                    entries[rec["path"]] = entry
    return entries, bad


_FALLOC_FL_KEEP_SIZE = 1  # <linux/falloc.h>


def _fallocate_keep_size(fd: int, offset: int, length: int) -> bool:
    """Allocate ``length`` bytes from ``offset`` without changing the file's size; False if not possible."""
    global _fallocate
    if _fallocate is None:
        if not sys.platform.startswith("linux"):
            return False
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = getattr(libc, "fallocate64", None)
            if fn is None and ctypes.sizeof(ctypes.c_long) == 8:  # off_t is 64-bit: the same call
                fn = libc.fallocate
        except (OSError, AttributeError):
            fn = None
        if fn is None:
            _fallocate = False
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        fn.restype = ctypes.c_int
        _fallocate = fn
    if _fallocate is False:
        return False
    return bool(_fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) == 0)  # ENOSPC, EOPNOTSUPP...: no reserve


_fallocate: Any = None

#: Descriptors of the open writers of this process (fd -> writer): a forked child closes them.
_OPEN: dict[int, ManifestWriter] = {}
#: Held while a writer opens or closes its descriptor, and across every fork.
_OPEN_LOCK = threading.Lock()


def _drop_inherited() -> None:
    """In a forked child: close the copies of the writers' descriptors.

    ``flock`` locks belong to the open file description, which ``fork`` shares with the
    child: a child holding the copy keeps the lock until it exits, even after the parent
    died (``O_CLOEXEC`` only helps across ``exec``).  The child's writer objects are
    disabled (a write raises ``EBADF``): only the run's process writes its manifest.
    """
    for fd, writer in list(_OPEN.items()):
        writer._fd = -1
        try:
            os.close(fd)
        except OSError:
            pass
    _OPEN.clear()
    _OPEN_LOCK.release()  # taken by the forking thread before the fork


if hasattr(os, "register_at_fork"):  # every os.fork(), so every forked pool worker
    os.register_at_fork(before=_OPEN_LOCK.acquire, after_in_parent=_OPEN_LOCK.release, after_in_child=_drop_inherited)


def load_records(dst_root: str, paths: set[str]) -> dict[str, dict[str, Any]]:
    """The latest (``t``) whole record of each of ``paths`` in every manifest of ``dst_root`` (as
    :func:`load` picks them); e.g. the rate-control fields of files an earlier run chose for."""
    out: dict[str, dict[str, Any]] = {}
    if not paths:
        return out
    for path in manifest_files(dst_root):
        with open(path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(rec, dict) or rec.get("type") != "file" or rec.get("path") not in paths:
                    continue
                old = out.get(rec["path"])
                try:
                    if old is None or float(rec.get("t", 0.0)) >= float(old.get("t", 0.0)):
                        out[rec["path"]] = rec
                except (TypeError, ValueError):
                    continue
    return out


class ManifestWriter:
    """Appends records to one manifest file, holding an exclusive lock on it.

    At least half of :attr:`reserve` bytes stay allocated past the end of the file
    whenever the disk has room (best effort), for the lines written once it is full.

    Args:
        path: the manifest file.
        fsync: ``fsync`` the manifest at least every ``fsync_interval`` seconds and on close
            (crash safety against power loss; a killed process loses nothing either way).
    """

    #: Bytes kept allocated past the end of the manifest (about 300 lines).
    reserve = 128 << 10

    def __init__(self, path: str, *, fsync: bool = False, fsync_interval: float = 2.0) -> None:
        self.path = path
        self._reserved_to = 0  # the file's space is allocated up to here
        self._fsync = fsync
        self._interval = fsync_interval
        self._last_sync = time.monotonic()
        self._dirty = False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        with _OPEN_LOCK:  # no fork (from another thread) between opening and registering
            try:
                self._fd = os.open(path, flags, 0o644)
            except OSError as exc:
                raise DnnjpegError(f"{path}: cannot open manifest: {exc.strerror or exc}") from None
            _OPEN[self._fd] = self
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._release()
            raise DnnjpegError(f"{path}: another dnnjpeg recompress run is writing this manifest") from None
        try:
            size = os.fstat(self._fd).st_size
            if size:
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        self._write(b"\n")  # the last line was cut short: start a fresh one
            self._keep_reserve(os.fstat(self._fd).st_size)
        except BaseException:
            self._release()
            raise

    def _forget(self) -> None:
        """Before closing: a fork after the close must not close a new file that reuses the number."""
        with _OPEN_LOCK:
            _OPEN.pop(self._fd, None)

    def _write(self, data: bytes) -> None:
        """Append ``data``; on an error (``ENOSPC``...) cut the file back to where it was, then raise."""
        start = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            if len(view) < len(data):  # part of it went in: no half line is left behind
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass  # the reader ignores a cut line anyway
            raise
        finally:
            self._dirty = True
        self._keep_reserve(start + len(data))

    def _keep_reserve(self, size: int) -> None:
        if self._reserved_to - size < self.reserve // 2 and _fallocate_keep_size(self._fd, size, self.reserve):
            self._reserved_to = size + self.reserve

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line (``ensure_ascii``: any file name round-trips)."""
        self.extend((record,))

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        """Write records as lines, all with one ``write()`` (the records of one finished batch)."""
        data = "".join([_ENCODER.encode(r) + "\n" for r in records]).encode("ascii")
        if not data:
            return
        self._write(data)
        if self._fsync and time.monotonic() - self._last_sync >= self._interval:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            if self._dirty:
                os.fsync(self._fd)
        finally:
            self._release()

    def _release(self) -> None:
        self._forget()
        os.close(self._fd)  # also releases the lock
        self._fd = -1

    def __enter__(self) -> ManifestWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except OSError:
            pass  # the error on its way out says more than a failed fsync
