"""Small helpers around Optuna shared by the methods and the study layer."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

__all__ = ["quiet_optuna"]

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
