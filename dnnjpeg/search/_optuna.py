"""Small helpers around Optuna shared by the methods and the study layer."""

from __future__ import annotations

import contextlib
import io
import pickle
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["dumps_without_locks", "quiet_optuna"]

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: int | None = None


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial INFO log lines inside the block (restores the level after)."""
    import optuna

    global _DEPTH, _SAVED
    with _LOCK:
        if _DEPTH == 0:
            _SAVED = optuna.logging.get_verbosity()
            if _SAVED < optuna.logging.WARNING:
                optuna.logging.set_verbosity(optuna.logging.WARNING)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _SAVED is not None:
                optuna.logging.set_verbosity(_SAVED)
                _SAVED = None


# -- pickling objects that hold locks -------------------------------------------------------------
# Optuna objects keep locks and thread-local caches that the standard pickler refuses
# ("cannot pickle '_thread.lock' object"); which ones changes between releases (optuna 5 added
# ``BaseGASampler._thread_lock``).  Rather than delete attributes by name, the pickler below writes
# every lock as a fresh, unlocked one of the same kind and every ``threading.local`` as a new empty
# instance of its class: a pickled object is never inside a critical section, and thread-locals
# only hold per-thread caches.  Everything else (the sampler's random state, the trials, the
# generation bookkeeping) is pickled as is, so the copy continues exactly where the original was.

_LOCK_TYPE = type(threading.Lock())
_RLOCK_TYPE = type(threading.RLock())


def _new_lock() -> Any:
    return threading.Lock()


def _new_rlock() -> Any:
    return threading.RLock()


def _new_local(cls: type) -> Any:
    return cls()


class _LockFreePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        tp = type(obj)
        if tp is _LOCK_TYPE:
            return _new_lock, ()
        if tp is _RLOCK_TYPE:
            return _new_rlock, ()
        if isinstance(obj, threading.local):
            return _new_local, (tp,)
        return NotImplemented


def dumps_without_locks(obj: Any) -> bytes:
    """Pickle ``obj`` (e.g. an ``optuna.Study``) with its locks and thread-locals written as new ones.

    Read it back with :func:`pickle.loads`.

    Example:
        >>> import pickle, threading
        >>> box = {"lock": threading.Lock(), "n": 3}
        >>> copy = pickle.loads(dumps_without_locks(box))
        >>> copy["n"], copy["lock"].acquire(blocking=False)
        (3, True)
    """
    buf = io.BytesIO()
    _LockFreePickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()
