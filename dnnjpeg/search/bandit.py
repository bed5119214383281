"""``bandit``: the seed's composite heuristic, an area-under-curve multi-armed bandit over techniques.

OpenTuner's ``AUCBanditMetaTechnique`` (Ansel et al., PACT 2014), which the seed used, gives each
proposal to one of several techniques and credits a technique when its proposal beats the best
result so far.  A technique's score is the area under its recent credit curve (later successes
weigh more) plus an exploration bonus ``C * sqrt(2 log2(uses) / uses_of_technique)``.

Techniques, all working in unit coordinates (log scale) of a box around the best start-up tables
(``k`` standard deviations, as in ``bounded``):

* ``pso``, ``de``, ``nelder-mead``: nevergrad's ``PSO``, ``TwoPointsDE`` and ``NelderMead``;
* ``annealing``: simulated annealing from the best start-up table (Gaussian moves on a few
  coordinates, Metropolis acceptance, linear cooling over the budget);
* ``greedy``: greedy mutation of the best table so far.

The first ``n_startup`` proposals are sorted random tables (the box needs results).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..qtable import QTable
from .base import SearchError, SearchMethod, Value, derive_seed, register_method, top_tables
from .bounded import default_startup
from .sorted import sorted_table
from .space import Box

__all__ = ["TECHNIQUES", "AUCBandit", "BanditSearch"]

#: Technique names the ``techniques`` option accepts.
TECHNIQUES: tuple[str, ...] = ("pso", "de", "nelder-mead", "annealing", "greedy")
_NEVERGRAD = {"pso": "PSO", "de": "TwoPointsDE", "nelder-mead": "NelderMead"}


class AUCBandit:
    """OpenTuner's AUC bandit: pick the key with the best ``AUC credit + C * exploration``.

    Args:
        keys: the arms.
        C: exploration weight (OpenTuner's default 0.05).
        window: how many recent results the credit looks at (OpenTuner's default 500).

    Example:
        >>> b = AUCBandit(["a", "b"])
        >>> rng = np.random.default_rng(0)
        >>> first = b.choose(rng); b.record(first, True)
        >>> b.choose(rng) != first  # an unused arm has infinite exploration bonus
        True
    """

    def __init__(self, keys: Sequence[str], C: float = 0.05, window: int = 500) -> None:
        if not keys:
            raise SearchError("a bandit needs at least one arm")
        self.keys = list(keys)
        self.C = float(C)
        self.window = int(window)
        self.history: deque[tuple[str, bool]] = deque()
        self.uses = {k: 0 for k in self.keys}

    def exploitation(self, key: str) -> float:
        pos = 0
        score = 0.0
        for k, improved in self.history:
            if k == key:
                pos += 1
                if improved:
                    score += pos
        return score * 2.0 / (pos * (pos + 1.0)) if pos else 0.0

    def exploration(self, key: str) -> float:
        if self.uses[key] == 0:
            return math.inf
        return math.sqrt(2.0 * math.log2(max(2, len(self.history))) / self.uses[key])

    def score(self, key: str) -> float:
        return self.exploitation(key) + self.C * self.exploration(key)

    def choose(self, rng: np.random.Generator) -> str:
        """The arm with the highest score (ties broken at random)."""
        keys = [self.keys[i] for i in rng.permutation(len(self.keys))]
        return max(keys, key=self.score)

    def record(self, key: str, improved: bool) -> None:
        self.history.append((key, bool(improved)))
        self.uses[key] += 1
        while len(self.history) > self.window:
            old, _ = self.history.popleft()
            self.uses[old] -= 1


class _Nevergrad:
    """One nevergrad optimizer over the unit cube, started at ``start``."""

    def __init__(self, kind: str, dim: int, seed: int, start: np.ndarray) -> None:
        import nevergrad as ng

        param = ng.p.Array(init=np.clip(start, 0.0, 1.0), lower=0.0, upper=1.0)
        param.random_state = np.random.RandomState(seed % (2**32))
        self.opt = ng.optimizers.registry[_NEVERGRAD[kind]](parametrization=param, budget=None, num_workers=1)
        if hasattr(self.opt, "enable_pickling"):
            self.opt.enable_pickling()  # recast optimizers (Nelder-Mead) replay their tells on unpickle
        self.pending: dict[bytes, Any] = {}

    def close(self) -> None:
        thread = getattr(self.opt, "_messaging_thread", None)
        if thread is not None:
            thread.stop()

    def propose(self, rng: np.random.Generator, state: _State) -> np.ndarray:
        with warnings.catch_warnings():
            # Nelder-Mead that has converged returns random points: the bandit's credit handles it.
            warnings.filterwarnings("ignore", message=".*converged.*")
            cand = self.opt.ask()
        u = np.asarray(cand.value, dtype=np.float64)
        self.pending[u.tobytes()] = cand
        return u

    def result(self, u: np.ndarray, value: float | None, state: _State) -> None:
        cand = self.pending.pop(u.tobytes(), None)
        if cand is None:
            return
        self.opt.tell(cand, -value if value is not None else state.penalty())


class _Annealing:
    """Simulated annealing: Gaussian moves, Metropolis acceptance, linear cooling."""

    def __init__(self, start: np.ndarray, value: float, sigma: float = 0.1) -> None:
        self.x = start.copy()
        self.v = value
        self.sigma = sigma
        self.steps = 0

    def propose(self, rng: np.random.Generator, state: _State) -> np.ndarray:
        return _mutate(self.x, rng, self.sigma)

    def result(self, u: np.ndarray, value: float | None, state: _State) -> None:
        self.steps += 1
        if value is None:
            return
        t = state.temperature()
        if value >= self.v or (t > 0 and state.rng.random() < math.exp((value - self.v) / t)):
            self.x, self.v = u.copy(), value


class _Greedy:
    """Greedy mutation of the best table so far."""

    def __init__(self, sigma: float = 0.15) -> None:
        self.sigma = sigma

    def propose(self, rng: np.random.Generator, state: _State) -> np.ndarray:
        return _mutate(state.best_u, rng, self.sigma)

    def result(self, u: np.ndarray, value: float | None, state: _State) -> None:
        pass


def _mutate(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Change 1..4 random coordinates by ``N(0, sigma)`` (reflected into [0, 1])."""
    y = x.copy()
    m = int(rng.integers(1, min(4, len(x)) + 1))
    idx = rng.choice(len(x), size=m, replace=False)
    y[idx] = y[idx] + rng.normal(0.0, sigma, m)
    y = np.abs(y)
    y = np.where(y > 1.0, 2.0 - y, y)
    return np.clip(y, 0.0, 1.0)


class _State:
    """What techniques may read: best point, value range, temperature."""

    def __init__(self, method: BanditSearch) -> None:
        self.method = method
        self.rng = method.rng

    @property
    def best_u(self) -> np.ndarray:
        return self.method.best_u

    def penalty(self) -> float:
        vals = [v for _, v in self.method.scored()]
        lo, hi = min(vals), max(vals)
        return -(lo - (hi - lo) - 1e-3)

    def temperature(self) -> float:
        m = self.method
        vals = np.array([v for _, v in m.scored()[: int(m.options["n_startup"])]])
        t0 = float(vals.std()) if len(vals) > 1 else 0.0
        if m.budget is None:
            return t0 * 0.97 ** max(0, m.n_asked - int(m.options["n_startup"]))
        left = 1.0 - (m.n_asked - int(m.options["n_startup"])) / max(1, m.budget - int(m.options["n_startup"]))
        return t0 * max(0.0, left)


@register_method("bandit")
class BanditSearch(SearchMethod):
    """AUC bandit over PSO, differential evolution, Nelder-Mead, simulated annealing and greedy mutation.

    Options:
        techniques: which arms (default all of :data:`TECHNIQUES`).
        n_startup: sorted random proposals first (default :func:`~dnnjpeg.search.bounded.default_startup`).
        k: box margin around the best start-up tables, in standard deviations (default 0.5).
        n_best: start-up tables that define the box (default 8).
        C, window: bandit exploration weight and credit window (OpenTuner's 0.05 and 500).

    Example:
        >>> m = BanditSearch("single", seed=1, n_startup=2)
        >>> for v in (0.1, 0.3, 0.2):
        ...     m.tell(m.ask(), v)
        >>> m.last_technique in TECHNIQUES
        True
    """

    schedules_by_budget = True  # the annealing arm cools over the budget; n_startup defaults from it
    defaults: ClassVar[dict[str, Any]] = {
        "techniques": TECHNIQUES,
        "n_startup": None,
        "k": 0.5,
        "n_best": 8,
        "C": 0.05,
        "window": 500,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o["n_startup"] is None:
            o["n_startup"] = default_startup(self.budget)
        techs = tuple(o["techniques"])
        bad = [t for t in techs if t not in TECHNIQUES]
        if bad or not techs:
            raise SearchError(f"option techniques must be a non-empty subset of {', '.join(TECHNIQUES)}, got {techs!r}")
        o["techniques"] = techs
        self.bandit = AUCBandit(techs, float(o["C"]), int(o["window"]))
        self.box: Box | None = None
        self.techniques: dict[str, Any] = {}
        self.best_u: np.ndarray = np.zeros(0)
        self.pending: dict[QTable, tuple[str, np.ndarray]] = {}
        self.last_technique: str | None = None

    def _start(self) -> None:
        scored = self.scored()
        good = top_tables(self, scored, int(self.options["n_best"]))
        self.box = Box.around(good, float(self.options["k"]), transpose=True)
        best_t, best_v = self.best
        assert best_t is not None and best_v is not None
        self.best_u = self.space.to_unit(best_t, self.box).clip(0.0, 1.0)
        for i, name in enumerate(self.options["techniques"]):
            if name in _NEVERGRAD:
                self.techniques[name] = _Nevergrad(name, self.space.dim, derive_seed(self.seed, 100 + i), self.best_u)
            elif name == "annealing":
                self.techniques[name] = _Annealing(self.best_u, best_v)
            else:
                self.techniques[name] = _Greedy()

    def _ask(self) -> QTable:
        if self.n_asked < int(self.options["n_startup"]) or len(self.scored()) < 2:
            self.last_technique = None
            return sorted_table(self.space, self.rng)
        if self.box is None:
            self._start()
        assert self.box is not None
        name = self.bandit.choose(self.rng)
        u = self.techniques[name].propose(self.rng, _State(self))
        table = self.space.from_unit(u, self.box)
        self.pending[table] = (name, u)
        self.last_technique = name
        return table

    def _rebind(self, asked: QTable, table: QTable) -> None:
        if asked in self.pending:
            self.pending[table] = self.pending.pop(asked)

    def _tell(self, table: QTable, value: Value) -> None:
        entry = self.pending.pop(table, None)
        v = None if value is None else float(value)  # type: ignore[arg-type]
        prev = [x for _, x in self.scored()[:-1]] if v is not None else [x for _, x in self.scored()]
        improved = v is not None and (not prev or v > max(prev))
        if improved and self.box is not None:
            self.best_u = self.space.to_unit(table, self.box).clip(0.0, 1.0)
        if entry is None:
            return
        name, u = entry
        self.techniques[name].result(u, v, _State(self))
        self.bandit.record(name, improved)

    def close(self) -> None:
        """Stop the thread nevergrad's Nelder-Mead runs in (it would keep the interpreter alive)."""
        for tech in self.techniques.values():
            if isinstance(tech, _Nevergrad):
                tech.close()
