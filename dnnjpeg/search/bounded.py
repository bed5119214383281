"""``bounded``: random search inside per-coefficient bounds taken from the best tables so far.

The seed's bounded random search: bounds ``[min - k*std, max + k*std]`` (``k = 0.5``) over good
tables (and their transposes), then each step drawn uniformly inside its bounds.  The seed took
its good tables from an earlier sorted search; here the method starts with ``n_startup`` sorted
random tables and recomputes the bounds before every proposal from the ``n_best`` best tables
told so far, so the box follows the search.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..qtable import QTable
from .base import SearchError, SearchMethod, register_method, top_tables
from .sorted import sorted_table
from .space import Box

__all__ = ["BoundedSearch", "default_startup", "good_subsampling"]


def default_startup(budget: int | None, cap: int = 50) -> int:
    """Random start-up proposals before a model-based phase: a third of the budget, 4..``cap``.

    Example:
        >>> default_startup(20), default_startup(600), default_startup(None)
        (6, 50, 20)
    """
    if budget is None:
        return 20
    return max(4, min(cap, budget // 3))


@register_method("bounded")
class BoundedSearch(SearchMethod):
    """Uniform random steps inside ``best tables +- k std`` bounds.

    Options:
        k: bound margin in standard deviations (default 0.5, the seed's).
        n_startup: sorted random proposals first (default :func:`default_startup`).
        n_best: how many of the best tables define the bounds (default 8).
        transpose: count each good table transposed as well (default True, as the seed).

    Example:
        >>> m = BoundedSearch("single", seed=0, n_startup=2)
        >>> for v in (0.1, 0.2):
        ...     m.tell(m.ask(), v)
        >>> t = m.ask()
        >>> m.box.contains(m.space.values(t))
        True
    """

    schedules_by_budget = True  # n_startup defaults from the budget
    defaults: ClassVar[dict[str, Any]] = {"k": 0.5, "n_startup": None, "n_best": 8, "transpose": True}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o["n_startup"] is None:
            o["n_startup"] = default_startup(self.budget)
        if float(o["k"]) < 0:
            raise SearchError(f"option k must be >= 0, got {o['k']!r}")
        if int(o["n_best"]) < 1 or int(o["n_startup"]) < 1:
            raise SearchError(f"options n_best and n_startup must be >= 1, got {o['n_best']!r}, {o['n_startup']!r}")
        self.box: Box | None = None

    def _ask(self) -> QTable:
        scored = self.scored()
        if self.n_asked < int(self.options["n_startup"]) or len(scored) < 2:
            return sorted_table(self.space, self.rng)
        good = top_tables(self, scored, int(self.options["n_best"]))
        self.box = Box.around(good, float(self.options["k"]), transpose=bool(self.options["transpose"]))
        return self.space.table(self.box.sample(self.rng), good_subsampling(self, scored))


def good_subsampling(method: SearchMethod, scored: list[tuple[QTable, float]], n_best: int = 8) -> str | None:
    """For a variable subsampling: that of a random one of the best tables (a random one 10% of the time)."""
    space = method.space
    if not space.variable_subsampling:
        return None
    if method.rng.random() < 0.1:
        return space.random_subsampling(method.rng)
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][1], i))[:n_best]
    return scored[order[int(method.rng.integers(len(order)))]][0].subsampling
