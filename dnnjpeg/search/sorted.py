"""``sorted``: the seed's sorted random table generator (Li, De Sa & Sampson 2020).

One table: 64 values ``|N(0, 1)|``, divided by their maximum, sorted ascending and laid out in
zigzag order (low frequencies get the small steps), mapped linearly to ``[L, U]`` with
``L ~ randint(0, 35)`` and ``U ~ randint(50, 150)``, multiplied by ``uniform(0.5, 1.5)``,
rounded and clipped to 1..255.  The slides describe the same idea with uniform numbers: option
``variant="uniform"``.  For separate luma and chroma tables both are drawn this way with a shared
``L``, ``U`` and scale (as the seed's generator did for its three component tables); a variable
subsampling is drawn uniformly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._zigzag import from_zigzag
from ..qtable import QTable
from .base import SearchError, SearchMethod, register_method
from .space import SearchSpace

__all__ = ["VARIANTS", "SortedSearch", "sorted_table", "sorted_tables"]

#: Values the generator's ``variant`` option takes.
VARIANTS: tuple[str, ...] = ("normal", "uniform")


def sorted_tables(rng: np.random.Generator, count: int = 1, variant: str = "normal") -> np.ndarray:
    """``count`` sorted random tables sharing ``L``, ``U`` and scale, natural order, shape ``(count, 64)``.

    Example:
        >>> t = sorted_tables(np.random.default_rng(0), 2)
        >>> t.shape, bool(t.min() >= 1 and t.max() <= 255)
        ((2, 64), True)
        >>> from dnnjpeg._zigzag import to_zigzag
        >>> z = to_zigzag(list(t[0]))
        >>> z == sorted(z)  # steps grow along the zigzag
        True
    """
    if variant not in VARIANTS:
        raise SearchError(f"sorted generator variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant == "normal":
        x = np.abs(rng.standard_normal((count, 64)))
        x = x / x.max(axis=1, keepdims=True)
    else:
        x = rng.uniform(0.0, 1.0, (count, 64))
    x = np.sort(x, axis=1)
    low = int(rng.integers(0, 35))
    high = int(rng.integers(50, 150))
    t = np.clip(np.rint(x * (high - low) + low), low, high)
    scale = float(rng.uniform(0.5, 1.5))
    t = np.clip(np.rint(t * scale), 1, 255).astype(np.int64)
    return np.array([from_zigzag(list(row)) for row in t], dtype=np.int64)


def sorted_table(space: SearchSpace, rng: np.random.Generator, variant: str = "normal") -> QTable:
    """One sorted random table in ``space`` (the generator every method starts from).

    Example:
        >>> sorted_table(SearchSpace.parse("separate"), np.random.default_rng(1)).subsampling
        '4:2:0'
    """
    t = sorted_tables(rng, space.n_tables, variant)
    sub = space.random_subsampling(rng) if space.variable_subsampling else None
    return space.table(t.reshape(-1), sub)


@register_method("sorted")
class SortedSearch(SearchMethod):
    """Pure random search with the seed's sorted generator (ignores results).

    Options:
        variant: ``"normal"`` (the seed's code, default) or ``"uniform"`` (the slides).

    Example:
        >>> a = SortedSearch("single", seed=7); b = SortedSearch("single", seed=7)
        >>> [a.ask() for _ in range(3)] == [b.ask() for _ in range(3)]
        True
    """

    defaults: ClassVar[dict[str, Any]] = {"variant": "normal"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options["variant"] not in VARIANTS:
            raise SearchError(f"option variant must be one of {', '.join(VARIANTS)}, got {self.options['variant']!r}")

    def _ask(self) -> QTable:
        return sorted_table(self.space, self.rng, self.options["variant"])
