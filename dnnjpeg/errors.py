"""Exception types shared across dnnjpeg."""

from __future__ import annotations

from .advice import Fix, Fixable
from .qtable import QTableError

__all__ = ["DnnjpegError", "Fix", "QTableError"]


class DnnjpegError(Fixable):
    """Base class for dnnjpeg errors that are not about a table's values.

    ``fix=`` (a :class:`~dnnjpeg.advice.Fix`) names the option that fixes the error, so each
    interface can word the advice itself (``weights=PATH`` in Python, ``--weights PATH`` on the
    command line).
    """
