"""Public names of a subpackage re-exported from its private modules on first use (PEP 562).

Keeps ``import dnnjpeg.evaluation`` free of torch until a name that needs it is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps a public name to its module (relative).

    Example:
        >>> getattr_, dir_ = lazy_exports("dnnjpeg.evaluation", {"load_dataset": ".data"})
        >>> getattr_("load_dataset").__name__
        'load_dataset'
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
