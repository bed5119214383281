"""Keyword arguments onto a frozen options dataclass (the shared rule of :func:`~dnnjpeg.search.tune`,
:func:`~dnnjpeg.validation.crossval.crossval` and :func:`~dnnjpeg.validation.validate.validate`).

An entry point takes its settings either as one options object (``options=``) or, as before
the object existed, as keyword arguments named like its fields.  Both at once is allowed when
they agree; a keyword that contradicts the object is a ``ValueError``.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Opts:
    ...     budget: int = 20
    >>> from_keywords(Opts, None, {"budget": 5}, "option")
    Opts(budget=5)
    >>> from_keywords(Opts, Opts(5), {"budget": 6}, "option")
    Traceback (most recent call last):
    ...
    ValueError: budget=6 contradicts options.budget=5; give the setting in one place
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["from_keywords", "same"]

T = TypeVar("T")


def from_keywords(cls: type[T], options: T | None, keywords: Mapping[str, Any], what: str, *,
                  label: str = "options") -> T:
    """``options`` (default ``cls()``) with ``keywords`` (field names of ``cls``) applied; ``label`` names the
    options argument in the error messages.

    Raises:
        TypeError: a keyword that is no field of ``cls`` (``unknown {what} 'x'; known: ...``), or
            ``options`` of another type.
        ValueError: a keyword that contradicts ``options``; a bad value (``cls.__post_init__``).
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise TypeError(f"unknown {what} {unknown[0]!r}; known: {', '.join(sorted(names))}")
    if options is None:
        return cls(**keywords)
    if not isinstance(options, cls):
        raise TypeError(f"{label} must be a {cls.__name__}, got {type(options).__name__}")
    if not keywords:
        return options
    merged = dataclasses.replace(options, **keywords)  # type: ignore[type-var]  # keywords normalised as fields are
    for key in keywords:
        if not same(getattr(merged, key), getattr(options, key)):
            raise ValueError(
                f"{key}={keywords[key]!r} contradicts {label}.{key}={getattr(options, key)!r}; "
                "give the setting in one place"
            )
    return options


def same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same setting (arrays and other values without a plain ``==``: only if identical)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd values: not the same
        return False
