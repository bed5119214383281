"""Where studies live, and which worker owns which *stream* of a study.

Storages (``dnnjpeg tune --storage``):

* a file path: Optuna's journal file (``JournalStorage`` + ``JournalFileBackend``), the default,
  written next to the output table; writes are serialised with an ``flock`` lock (in the folder
  ``<journal>.locks``) that the operating system releases when a process dies, so a killed run
  never leaves a stale lock;
* an RDB URL: ``postgresql://user:password@host:port/db`` (several workers on several machines),
  ``sqlite:///path.db``;
* ``None`` (Python API only): in memory, nothing persists.

Each worker process owns one *stream* (0, 1, 2, ...): a sequence of proposals of its own search
method, seeded from the study's seed and the stream number.  Ownership is a lock held for the
worker's lifetime (an ``flock`` on ``<journal or sqlite file>.locks/<study>.<stream>``, or a
PostgreSQL session advisory lock), released by the OS or the server when the process dies.
That is how a restarted worker knows that a ``RUNNING`` trial of its stream is dead, and how
workers tell dead streams from live ones.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import SearchError

__all__ = ["FlockLock", "StorageSpec", "StreamLock", "claim_stream", "open_storage", "parse_storage", "probe_stream"]


@dataclass(frozen=True)
class StorageSpec:
    """A parsed ``--storage`` value.

    Attributes:
        kind: ``"memory"``, ``"journal"`` or ``"rdb"``.
        target: the journal path or the RDB URL (empty for memory).
    """

    kind: str
    target: str = ""

    @property
    def display(self) -> str:
        """The target with any password masked (safe for logs and provenance)."""
        if self.kind == "memory":
            return ":memory:"
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.target)

    @property
    def engine_url(self) -> str:
        """The URL handed to SQLAlchemy: a bare ``postgresql://`` names the installed driver
        (psycopg2, the ``postgres`` extra, else psycopg 3; SQLAlchemy 2.1 would assume psycopg 3)."""
        if self.kind == "rdb" and self.target.startswith("postgresql://"):
            import importlib.util

            for module, driver in (("psycopg2", "psycopg2"), ("psycopg", "psycopg")):
                if importlib.util.find_spec(module) is not None:
                    return f"postgresql+{driver}://" + self.target[len("postgresql://"):]
            raise SearchError("postgresql:// storage needs a driver: pip install psycopg2-binary (dnnjpeg[postgres])")
        return self.target

    @property
    def dialect(self) -> str:
        return self.target.split(":", 1)[0].split("+", 1)[0] if self.kind == "rdb" else self.kind

    def lock_dir(self) -> Path | None:
        """Folder of the stream lock files (journal and sqlite storages)."""
        if self.kind == "journal":
            return Path(self.target + ".locks")
        if self.kind == "rdb" and self.dialect == "sqlite":
            path = self.target.split(":///", 1)[1] if ":///" in self.target else ""
            if not path or path == ":memory:":
                raise SearchError("an in-memory sqlite URL cannot be shared by workers; give a file (sqlite:///study.db)")
            return Path(path + ".locks")
        return None


def parse_storage(storage: str | os.PathLike[str] | None) -> StorageSpec:
    """``None`` -> memory; a URL with ``://`` -> RDB; anything else -> a journal file path.

    Example:
        >>> parse_storage("runs/t.journal").kind, parse_storage("sqlite:///x.db").kind
        ('journal', 'rdb')
        >>> parse_storage("postgresql://me:secret@db:5432/s").display
        'postgresql://me:***@db:5432/s'
    """
    if storage is None:
        return StorageSpec("memory")
    if isinstance(storage, StorageSpec):
        return storage
    s = os.fspath(storage)
    if not s:
        raise SearchError("storage must be a journal file path or an RDB URL, got an empty string")
    if "://" in s:
        dialect = s.split(":", 1)[0].split("+", 1)[0]
        if dialect not in ("postgresql", "postgres", "sqlite"):
            raise SearchError(f"storage URL {StorageSpec('rdb', s).display!r}: unsupported scheme {dialect!r} (postgresql://, sqlite:///)")
        if dialect == "postgres":
            s = "postgresql" + s[len("postgres"):]
        return StorageSpec("rdb", s)
    return StorageSpec("journal", str(Path(s)))


class FlockLock:
    """An exclusive ``flock`` on ``path`` (an Optuna journal-file lock); the OS drops it if the process dies."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        fcntl = _fcntl()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                _fcntl().flock(fd, _fcntl().LOCK_UN)
            finally:
                os.close(fd)


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise SearchError("file locks need fcntl (Linux, macOS); on this system use a postgresql:// storage") from None
    return fcntl


class _JournalFlock(FlockLock):
    """The lock object ``JournalFileBackend`` calls: blocking ``acquire()`` and ``release()``."""

    def acquire(self, blocking: bool = True) -> bool:
        return super().acquire(True)


def open_storage(spec: StorageSpec) -> Any:
    """An Optuna storage object for ``spec`` (the caller keeps it: a memory storage is not shared)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if spec.kind == "memory":
        return optuna.storages.InMemoryStorage()
    if spec.kind == "journal":
        path = Path(spec.target)
        if path.parent and not path.parent.is_dir():
            raise SearchError(f"storage {path}: folder {path.parent} does not exist")
        if path.is_dir():
            raise SearchError(f"storage {path} is a folder; give a journal file path")
        locks = spec.lock_dir()
        assert locks is not None
        locks.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=_JournalFlock(locks / "journal.lock")))
    kwargs: dict[str, Any] = {}
    if spec.dialect == "sqlite":
        kwargs = {"connect_args": {"timeout": 120}}
    elif spec.dialect == "postgresql":
        kwargs = {"pool_pre_ping": True}
    url = spec.engine_url
    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # noqa: BLE001 - any driver or server error becomes one clear message
            # workers starting together on a fresh database race to create Optuna's tables: retry
            if type(exc).__name__ == "IntegrityError" and attempt < 5:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise SearchError(f"cannot open storage {spec.display}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    raise AssertionError("unreachable")


class StreamLock:
    """Ownership of one stream of a study; :meth:`release` (or process death) frees it."""

    def __init__(self, stream: int, release: Any = None) -> None:
        self.stream = stream
        self._release = release

    def release(self) -> None:
        if self._release is not None:
            fn, self._release = self._release, None
            fn()

    def __enter__(self) -> StreamLock:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pg_key(study_name: str, stream: int) -> int:
    h = hashlib.sha256(f"dnnjpeg|{study_name}|{stream}".encode()).digest()
    return int.from_bytes(h[:8], "big", signed=True)


class _PgSession:
    """One PostgreSQL connection (autocommit) holding advisory locks."""

    def __init__(self, url: str) -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._text = sqlalchemy.text

    def try_lock(self, key: int) -> bool:
        return bool(self.conn.execute(self._text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

    def unlock(self, key: int) -> None:
        self.conn.execute(self._text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.engine.dispose()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]


def _file_lock(spec: StorageSpec, study_name: str, stream: int) -> FlockLock:
    folder = spec.lock_dir()
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True)
    return FlockLock(folder / f"{_safe(study_name)}.{stream}")


def claim_stream(spec: StorageSpec, study_name: str, first: int = 0, limit: int = 4096) -> StreamLock:
    """Take the lowest free stream number ``>= first`` of ``study_name``; held until released."""
    if spec.kind == "memory":
        return StreamLock(first)
    if spec.kind == "rdb" and spec.dialect == "postgresql":
        session = _PgSession(spec.engine_url)
        for stream in range(first, first + limit):
            key = _pg_key(study_name, stream)
            if session.try_lock(key):
                return StreamLock(stream, session.close)
        session.close()
    elif spec.lock_dir() is not None:
        for stream in range(first, first + limit):
            lock = _file_lock(spec, study_name, stream)
            if lock.acquire(blocking=False):
                return StreamLock(stream, lock.release)
    else:
        raise SearchError(f"storage {spec.display}: workers can share a study on postgresql://, sqlite:/// or a journal file only")
    raise SearchError(f"study {study_name!r}: no free stream among {limit} (too many workers?)")


def probe_stream(spec: StorageSpec, study_name: str, stream: int, session: Any = None) -> StreamLock | None:
    """If nobody owns ``stream``, take it and return the lock (the stream's worker is dead); else ``None``."""
    if spec.kind == "memory":
        return None
    if spec.kind == "rdb" and spec.dialect == "postgresql":
        own = session is None
        sess = session or _PgSession(spec.engine_url)
        key = _pg_key(study_name, stream)
        if sess.try_lock(key):
            def release() -> None:
                sess.unlock(key)
                if own:
                    sess.close()

            return StreamLock(stream, release)
        if own:
            sess.close()
        return None
    lock = _file_lock(spec, study_name, stream)
    return StreamLock(stream, lock.release) if lock.acquire(blocking=False) else None
