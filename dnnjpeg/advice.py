"""Errors whose advice names the option that fixes them, in the words of the interface in use.

An error that an option fixes (a 16-bit table: ``allow_16bit``; weights that cannot be
downloaded: ``weights``) carries a :class:`Fix` naming the Python keyword argument.
``str(error)`` words the advice for the Python API (``pass allow_16bit=True ...``); the
command line words it with the flag of the command that failed (``pass --allow-16bit ...``),
found as the option whose ``dest`` is that keyword, and leaves it out when the command has
no such flag (see ``dnnjpeg.cli.main``).

Example:
    >>> from dnnjpeg.qtable import QTableError
    >>> err = QTableError("t.json: luma table[0] = 300 exceeds 255", fix=Fix("allow_16bit", "allow_16bit=True"))
    >>> str(err)
    't.json: luma table[0] = 300 exceeds 255; pass allow_16bit=True'
    >>> err.message("--allow-16bit")
    't.json: luma table[0] = 300 exceeds 255; pass --allow-16bit'
    >>> err.message(None)
    't.json: luma table[0] = 300 exceeds 255'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fix", "Fixable"]


@dataclass(frozen=True)
class Fix:
    """Advice ``pass OPTION [rest]`` for an error.

    Attributes:
        option: the Python keyword argument that fixes the error; on the command line, the
            option whose ``dest`` it is (``allow_16bit`` -> ``--allow-16bit``).
        python: how Python code passes it (``"allow_16bit=True"``, ``"weights=PATH"``).
        rest: words after the option (``"for 16-bit tables (many decoders reject them)"``).
    """

    option: str
    python: str
    rest: str = ""

    def advice(self, spelled: str) -> str:
        """``"pass SPELLED rest"``."""
        return f"pass {spelled}" + (f" {self.rest}" if self.rest else "")


class Fixable(Exception):
    """Base of dnnjpeg's errors: an optional ``fix=`` :class:`Fix` appended to the message.

    ``str(error)`` is the problem followed by the Python wording of the fix;
    :meth:`message` words it otherwise.  ``error.problem`` is the message without advice.
    """

    fix: Fix | None = None

    def __init__(self, *args: Any, fix: Fix | None = None) -> None:
        super().__init__(*args)
        self.fix = fix

    @property
    def problem(self) -> str:
        """What went wrong, without the advice."""
        return super().__str__()

    def message(self, spelled: str | None) -> str:
        """The problem, then the fix with its option written as ``spelled`` (``None``: no advice)."""
        if self.fix is None or spelled is None:
            return self.problem
        return f"{self.problem}; {self.fix.advice(spelled)}"

    def prefixed(self, prefix: str) -> Fixable:
        """The same error (class and fix) with ``prefix: `` before the problem."""
        return type(self)(f"{prefix}: {self.problem}", fix=self.fix)

    def __str__(self) -> str:
        return self.message(self.fix.python if self.fix is not None else None)
