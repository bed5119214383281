"""``bayes``: Gaussian-process Bayesian optimisation in a box around good tables, then a local grid.

As the seed did (their ``bayesian.py``): bounds are the good tables' ``min - 1.5 std`` ..
``max + 1.5 std`` per coefficient, a GP with expected-improvement-style acquisition proposes steps
inside them, and the search ends with a local grid over a few coefficients of the best table.
Phases, by proposal index ``n``:

1. ``n < n_startup``: sorted random tables (:mod:`dnnjpeg.search.sorted`);
2. GP: Optuna's :class:`optuna.samplers.GPSampler` over unit coordinates (log scale) of the box
   fitted to the ``n_best`` best start-up tables; every result told so far inside the box is
   training data;
3. the last ``grid_fraction`` of the budget: a local grid around the best table so far over the
   ``grid_coeffs`` coefficients whose values correlate most (Spearman) with the objective,
   steps of a quarter of the box width, halved each time the grid is exhausted.

Every proposal is a pure function of the seed, ``n`` and the results told so far, so
:meth:`BayesSearch.replay` skips the GP fit when a run is resumed.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from .._zigzag import ZIGZAG
from ..qtable import QTable
from ._optuna import quiet_optuna
from .base import SearchError, SearchMethod, Value, derive_seed, register_method, top_tables
from .bounded import default_startup
from .sorted import sorted_table
from .space import Box

__all__ = ["BayesSearch", "sensitive_coefficients"]


def sensitive_coefficients(values: np.ndarray, scores: np.ndarray, m: int) -> list[int]:
    """Indices of the ``m`` coefficients whose values have the largest |Spearman correlation| with
    ``scores``; ties (and constant coefficients) go to lower frequencies first (zigzag order).

    Example:
        >>> v = np.tile(np.arange(64), (5, 1)); v[:, 9] = [1, 2, 3, 4, 5]
        >>> sensitive_coefficients(v, np.array([1., 2., 3., 4., 5.]), 2)
        [9, 0]
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    n_coeffs = v.shape[1]
    rank = {idx: k for k, idx in enumerate(ZIGZAG)}
    order_key = [rank[i % 64] + 64 * (i // 64) for i in range(n_coeffs)]
    rho = np.zeros(n_coeffs)
    if len(s) >= 3 and np.ptp(s) > 0:
        rs = np.argsort(np.argsort(s, kind="stable"), kind="stable").astype(np.float64)
        rs -= rs.mean()
        for i in range(n_coeffs):
            col = v[:, i]
            if np.ptp(col) == 0:
                continue
            rc = np.argsort(np.argsort(col, kind="stable"), kind="stable").astype(np.float64)
            rc -= rc.mean()
            denom = np.sqrt((rc**2).sum() * (rs**2).sum())
            rho[i] = abs(float((rc * rs).sum() / denom)) if denom > 0 else 0.0
    order = sorted(range(n_coeffs), key=lambda i: (-round(rho[i], 12), order_key[i]))
    return order[:m]


@register_method("bayes")
class BayesSearch(SearchMethod):
    """GP Bayesian optimisation (Optuna's GPSampler) in the seed's box, then a local grid.

    Options:
        k: box margin in standard deviations of the good start-up tables (default 1.5, the seed's).
        n_startup: sorted random proposals first (default :func:`~dnnjpeg.search.bounded.default_startup`).
        n_best: start-up tables that define the box (default 8).
        transpose: count good tables transposed as well (default True).
        grid_fraction: share of the budget for the final local grid (default 0.2; needs a budget).
        grid_coeffs: coefficients varied by the grid (default 3: 26 neighbours per round).
        gp_startup: GP training points needed before the GP is used (else random in the box; default 4).

    Example:
        >>> m = BayesSearch("single", seed=0, budget=10, n_startup=3)
        >>> m.phase(0), m.phase(3), m.phase(8)
        ('startup', 'gp', 'grid')
    """

    schedules_by_budget = True  # n_startup and the final grid's share default from the budget
    defaults: ClassVar[dict[str, Any]] = {
        "k": 1.5,
        "n_startup": None,
        "n_best": 8,
        "transpose": True,
        "grid_fraction": 0.2,
        "grid_coeffs": 3,
        "gp_startup": 4,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        if o["n_startup"] is None:
            o["n_startup"] = default_startup(self.budget, cap=100)
        if not 0.0 <= float(o["grid_fraction"]) < 1.0:
            raise SearchError(f"option grid_fraction must be in [0, 1), got {o['grid_fraction']!r}")
        if int(o["grid_coeffs"]) < 0 or int(o["n_startup"]) < 1 or int(o["n_best"]) < 1:
            raise SearchError("options grid_coeffs must be >= 0, n_startup and n_best >= 1")

    # -- schedule ------------------------------------------------------------------------------
    @property
    def n_grid(self) -> int:
        if self.budget is None or int(self.options["grid_coeffs"]) == 0:
            return 0
        return round(float(self.options["grid_fraction"]) * self.budget)

    def phase(self, n: int) -> str:
        """``"startup"``, ``"gp"`` or ``"grid"`` for proposal index ``n``."""
        if n < int(self.options["n_startup"]):
            return "startup"
        if self.n_grid and n >= self.budget - self.n_grid:  # type: ignore[operator]
            return "grid"
        return "gp"

    def box(self) -> Box | None:
        """The GP box: the first ``n_startup`` results' best tables +- k std (None before 2 results)."""
        first = [(t, v) for t, v in self.scored()[: int(self.options["n_startup"])]]
        if len(first) < 2:
            return None
        good = top_tables(self, first, int(self.options["n_best"]))
        return Box.around(good, float(self.options["k"]), transpose=bool(self.options["transpose"]))

    # -- proposals -----------------------------------------------------------------------------
    def _ask(self) -> QTable:
        n = self.n_asked
        phase = self.phase(n)
        box = self.box() if phase != "startup" else None
        if phase == "startup" or box is None:
            return sorted_table(self.space, np.random.default_rng(derive_seed(self.seed, n)))
        if phase == "grid" and self.scored():
            return self._grid(n, box)
        return self._gp(n, box)

    def _gp(self, n: int, box: Box) -> QTable:
        import optuna
        from optuna.distributions import FloatDistribution

        dists = {f"u{i:03d}": FloatDistribution(0.0, 1.0) for i in range(self.space.dim)}
        sampler = optuna.samplers.GPSampler(
            seed=derive_seed(self.seed, n, 1) % (2**32),
            n_startup_trials=int(self.options["gp_startup"]),
            independent_sampler=optuna.samplers.RandomSampler(seed=derive_seed(self.seed, n, 2) % (2**32)),
            warn_independent_sampling=False,
        )
        with quiet_optuna():
            study = optuna.create_study(direction="maximize", sampler=sampler)
            trials = []
            for table, value in self.scored():
                u = self.space.to_unit(table, box)
                if np.all(u >= -1e-9) and np.all(u <= 1 + 1e-9):
                    params = {k: float(np.clip(x, 0.0, 1.0)) for k, x in zip(dists, u)}
                    trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=value))
            study.add_trials(trials)
            trial = study.ask(dists)
            u = np.array([trial.params[k] for k in dists])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return self.space.from_unit(u, box)

    def _grid(self, n: int, box: Box) -> QTable:
        scored = self.scored()
        best_i = max(range(len(scored)), key=lambda i: (scored[i][1], -i))
        best = scored[best_i][0]
        values = np.stack([self.space.values(t) for t, _ in scored])
        scores = np.array([v for _, v in scored])
        m = min(int(self.options["grid_coeffs"]), self.space.n_coeffs)
        coeffs = sensitive_coefficients(values, scores, m)
        offsets = [o for o in itertools.product((-1, 0, 1), repeat=m) if any(o)]
        offsets.sort(key=lambda o: (sum(map(abs, o)), o))
        j = n - (self.budget - self.n_grid)  # type: ignore[operator]
        rnd, pos = divmod(j, len(offsets))
        width = np.array(box.hi) - np.array(box.lo)
        step = [max(1, round(width[c] / 4.0) >> rnd) for c in coeffs]
        vals = self.space.values(best).copy()
        for c, o, d in zip(coeffs, offsets[pos], step):
            vals[c] = int(np.clip(vals[c] + o * d, 1, 255))
        return self.space.table(vals, best.subsampling if self.space.variable_subsampling else None)

    def replay(self, table: QTable, value: Value) -> None:
        """Proposals depend only on the seed, the index and the history: skip the GP fit."""
        self.n_asked += 1
        self.tell(table, value)
