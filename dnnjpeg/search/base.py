"""The search-method interface (ask for tables, tell results) and the method registry.

Every method is a :class:`SearchMethod` subclass registered with :func:`register_method`::

    @register_method("mine")
    class Mine(SearchMethod):
        def _ask(self) -> QTable: ...

A method knows nothing about images, models or storage: it proposes :class:`~dnnjpeg.QTable`
objects with :meth:`~SearchMethod.ask` and learns from :meth:`~SearchMethod.tell`, which takes the
table and its value (a float, higher is better; a tuple for multi-objective methods; ``None``
for an evaluation that was pruned or failed).  ``tell`` also accepts tables the method did not
propose (results of other workers sharing a study).  Methods are deterministic for a given seed
and sequence of tells, and picklable at any point, so a run can be resumed by *replaying* its
history (:meth:`~SearchMethod.replay`).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import DnnjpegError
from ..qtable import QTable
from .space import SearchSpace

__all__ = [
    "SearchContext",
    "SearchError",
    "SearchMethod",
    "Value",
    "available_methods",
    "derive_seed",
    "make_method",
    "method_class",
    "register_method",
]

#: What ``tell`` takes: a float (single objective), a tuple (multi-objective) or ``None`` (no value).
Value = float | tuple[float, ...] | None

_REGISTRY: dict[str, type[SearchMethod]] = {}


class SearchError(DnnjpegError):
    """Bad search arguments: unknown method or objective, wrong value shape, incompatible study."""


@dataclass(frozen=True)
class SearchContext:
    """Data some methods need besides the search space.

    Attributes:
        images: the images that will be compressed (``(N, H, W, 3)`` uint8 array or a list of
            arrays): DeepN-JPEG derives its table from their DCT statistics.
        classifier: the :class:`~dnnjpeg.evaluation.models.Classifier` being tuned for (``fisher`` differentiates
            it; the runner passes the evaluator's).
        quality: the standard JPEG quality every candidate will be size-matched to, when the search
            is projected (``tune(..., project=True)``); ``fisher`` designs around that size.
    """

    images: Any = None
    classifier: Any = None
    quality: int | None = None


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (numpy ``SeedSequence``).

    Example:
        >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
        True
    """
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *[int(k) for k in keys]]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & 0x7FFFFFFFFFFFFFFF)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise SearchError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


class SearchMethod(ABC):
    """Base class of search methods: ``ask() -> QTable``, ``tell(table, value)``.

    Args:
        space: a :class:`SearchSpace` or its string form (``"single"``, ``"separate"``, ...).
        seed: seed of every random choice the method makes.
        budget: total number of evaluations planned (methods may schedule phases with it);
            ``None`` when unknown.
        context: data some methods need (:class:`SearchContext`).
        **options: method-specific settings (see each method).  Unknown options raise.

    Class attributes:
        name: registry name.
        directions: optimisation direction per objective (``("maximize",)`` for scalar methods).
        needs_images: whether ``context.images`` is required.
        stochastic: whether proposals depend on the seed.
        schedules_by_budget: whether proposals depend on ``budget`` (phases, cooling, population
            size).  Where not, a study resumed with a larger budget proposes exactly what a fresh run
            at that budget proposes, so a budget-30 journal extended to 100 is a budget-100 search.

    Example:
        >>> from dnnjpeg.search import make_method  # the package registers every method
        >>> m = make_method("sorted", "single", seed=3)
        >>> t = m.ask()
        >>> m.tell(t, 0.5)
        >>> m.best[1], m.n_told
        (0.5, 1)
    """

    name: ClassVar[str] = ""
    directions: ClassVar[tuple[str, ...]] = ("maximize",)
    needs_images: ClassVar[bool] = False
    #: False for deterministic methods, whose proposals do not depend on the seed.
    stochastic: ClassVar[bool] = True
    #: True where the proposals depend on ``budget``; see the class docstring.
    schedules_by_budget: ClassVar[bool] = False
    #: option name -> default; subclasses extend it.
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        space: SearchSpace | str = "single",
        seed: int = 0,
        budget: int | None = None,
        context: SearchContext | None = None,
        **options: Any,
    ) -> None:
        self.space = SearchSpace.parse(space)
        self.seed = _check_seed(seed)
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1):
            raise SearchError(f"budget must be a positive integer or None, got {budget!r}")
        self.budget = None if budget is None else int(budget)
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise SearchError(f"method {self.name!r} got unknown option(s) {', '.join(unknown)}; known: {known}")
        self.options: dict[str, Any] = {**self.defaults, **options}
        self.context = context or SearchContext()
        if self.needs_images and self.context.images is None:
            raise SearchError(f"method {self.name!r} needs the images (SearchContext(images=...))")
        self.rng = np.random.default_rng(self.seed)
        self.history: list[tuple[QTable, Value]] = []
        self.n_asked = 0

    # -- the interface -----------------------------------------------------------------------
    @property
    def n_objectives(self) -> int:
        return len(self.directions)

    def ask(self) -> QTable:
        """Propose the next table to evaluate (always a baseline table in ``self.space``)."""
        table = self._ask()
        self.space.check(table, f"method {self.name!r} proposal")
        self.n_asked += 1
        return table

    def tell(self, table: QTable, value: Value) -> None:
        """Report ``table``'s value (higher is better per ``directions``; ``None`` = no value).

        ``table`` need not come from this method's :meth:`ask` (e.g. another worker's result).
        """
        self.space.check(table, "told table")
        v = self._check_value(value)
        self.history.append((table, v))
        self._tell(table, v)

    def replay(self, table: QTable, value: Value) -> None:
        """Re-apply an evaluation this method proposed in an earlier run with the same seed.

        The default asks (advancing the random state exactly as the first run did) and tells the
        recorded table; methods whose proposals depend only on the history override it to skip
        the (expensive) ask.  If the proposal differs from the recorded table (the first run had
        another budget, so another schedule), the recorded result is credited to the proposal.
        """
        asked = self.ask()
        if asked != table:
            self._rebind(asked, table)
        self.tell(table, value)

    def close(self) -> None:
        """Release resources (threads) the method holds; the method must not be used afterwards."""

    @property
    def n_told(self) -> int:
        return len(self.history)

    @property
    def best(self) -> tuple[QTable | None, float | None]:
        """``(table, value)`` with the highest scalar value told so far (first objective for
        multi-objective methods, respecting its direction)."""
        best_t: QTable | None = None
        best_v: float | None = None
        sign = 1.0 if self.directions[0] == "maximize" else -1.0
        for t, v in self.history:
            if v is None:
                continue
            x = v[0] if isinstance(v, tuple) else v
            if best_v is None or sign * x > sign * best_v:
                best_t, best_v = t, x
        return best_t, best_v

    # -- for subclasses ----------------------------------------------------------------------
    @abstractmethod
    def _ask(self) -> QTable:
        """The next proposal."""

    def _rebind(self, asked: QTable, table: QTable) -> None:
        """During a replay, ``table`` is told in place of the proposal ``asked``: move any
        bookkeeping kept for ``asked`` to ``table``."""

    def _tell(self, table: QTable, value: Value) -> None:
        """Learn from one result (already appended to ``self.history``)."""

    def scored(self) -> list[tuple[QTable, float]]:
        """History entries with a scalar value (first objective), in tell order."""
        out = []
        for t, v in self.history:
            if v is None:
                continue
            out.append((t, float(v[0] if isinstance(v, tuple) else v)))
        return out

    def _check_value(self, value: Value) -> Value:
        if value is None:
            return None
        if self.n_objectives == 1:
            if isinstance(value, (tuple, list, np.ndarray)):
                if len(value) != 1:
                    raise SearchError(f"method {self.name!r} is single-objective; got {len(value)} values")
                value = value[0]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
                raise SearchError(f"value must be a finite number or None, got {value!r}")
            return float(value)
        if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != self.n_objectives:
            raise SearchError(f"method {self.name!r} needs {self.n_objectives} values per table, got {value!r}")
        out = tuple(float(x) for x in value)
        if not all(np.isfinite(out)):
            raise SearchError(f"values must be finite, got {value!r}")
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} space={self.space} seed={self.seed} asked={self.n_asked} told={self.n_told}>"


def register_method(name: str) -> Callable[[type[SearchMethod]], type[SearchMethod]]:
    """Class decorator registering a :class:`SearchMethod` under ``name``."""

    def deco(cls: type[SearchMethod]) -> type[SearchMethod]:
        if name in _REGISTRY:
            raise ValueError(f"search method {name!r} is already registered")
        if not (isinstance(cls, type) and issubclass(cls, SearchMethod)):
            raise TypeError(f"{cls!r} is not a SearchMethod subclass")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    """Registered method names.

    Example:
        >>> from dnnjpeg.search import available_methods  # the package registers every method
        >>> {"sorted", "bounded", "bayes", "bandit", "deepn", "nsga2"} <= set(available_methods())
        True
    """
    return sorted(_REGISTRY)


def method_class(name: str) -> type[SearchMethod]:
    """The class registered as ``name``."""
    if name not in _REGISTRY:
        raise SearchError(f"unknown search method {name!r}; available: {', '.join(available_methods())}")
    return _REGISTRY[name]


def make_method(
    name: str,
    space: SearchSpace | str = "single",
    seed: int = 0,
    budget: int | None = None,
    context: SearchContext | None = None,
    **options: Any,
) -> SearchMethod:
    """Instantiate the method registered as ``name`` (see :class:`SearchMethod` for the arguments)."""
    return method_class(name)(space, seed=seed, budget=budget, context=context, **options)


def top_tables(method: SearchMethod, entries: Sequence[tuple[QTable, float]], n: int) -> np.ndarray:
    """The steps of the ``n`` best entries (ties: earlier first), as rows."""
    order = sorted(range(len(entries)), key=lambda i: (-entries[i][1], i))[: max(1, n)]
    return np.stack([method.space.values(entries[i][0]) for i in order])
