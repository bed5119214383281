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
image, copied unchanged) or ``failed`` (``reason`` says why).  ``out`` is omitted when it
equals ``path``.  Lines are written with a single ``write()`` per finished batch on an
``O_APPEND`` descriptor, after the batch's outputs have been renamed into place; a line
cut short by a crash is ignored when reading, and the next run starts on a fresh line.
When a path has several lines, the latest (``t``) wins.
"""

from __future__ import annotations

import fcntl
import json
import os
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

    Args:
        path: the manifest file.
        fsync: ``fsync`` the manifest at least every ``fsync_interval`` seconds and on close
            (crash safety against power loss; a killed process loses nothing either way).
    """

    def __init__(self, path: str, *, fsync: bool = False, fsync_interval: float = 2.0) -> None:
        self.path = path
        self._fsync = fsync
        self._interval = fsync_interval
        self._last_sync = time.monotonic()
        self._dirty = False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise DnnjpegError(f"{path}: cannot open manifest: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise DnnjpegError(f"{path}: another dnnjpeg recompress run is writing this manifest") from None
        size = os.fstat(self._fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    self._write(b"\n")  # the last line was cut short: start a fresh one

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._dirty = True

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
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def __enter__(self) -> ManifestWriter:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
