"""Exception types shared across dnnjpeg."""

from __future__ import annotations

from .qtable import QTableError

__all__ = ["DnnjpegError", "QTableError"]


class DnnjpegError(Exception):
    """Base class for dnnjpeg errors that are not about a table's values."""
