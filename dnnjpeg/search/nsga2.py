"""``nsga2``: multi-objective search (Optuna's NSGA-II) for the whole accuracy-size Pareto front.

Each table gets two values: the objective's accuracy signal (maximised; top-1, or minus mean
cross-entropy or KL for the continuous signals) and the mean JPEG size in bytes (minimised).  The
first generation is ``population_size`` sorted random tables; later ones come from Optuna's
:class:`optuna.samplers.NSGAIISampler` (simulated binary crossover on log-scale unit coordinates by
default).  :func:`dnnjpeg.search.tune` returns the front it found (``TuneResult.pareto``) and, as
``TuneResult.table``, the front's member with the best scalar objective.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any, ClassVar

import numpy as np

from ..qtable import QTable
from ._optuna import dumps_without_locks, quiet_optuna
from .base import SearchError, SearchMethod, Value, register_method
from .sorted import sorted_table

__all__ = ["CROSSOVERS", "NSGA2Search"]

#: Crossover operators the ``crossover`` option accepts.
CROSSOVERS: tuple[str, ...] = ("sbx", "uniform", "blxalpha")


def _crossover(name: str) -> Any:
    from optuna.exceptions import ExperimentalWarning
    from optuna.samplers.nsgaii import BLXAlphaCrossover, SBXCrossover, UniformCrossover

    with warnings.catch_warnings():  # the operators are marked experimental; chosen deliberately
        warnings.simplefilter("ignore", ExperimentalWarning)
        return {"sbx": SBXCrossover, "uniform": UniformCrossover, "blxalpha": BLXAlphaCrossover}[name]()


@register_method("nsga2")
class NSGA2Search(SearchMethod):
    """NSGA-II on (accuracy signal, bytes).  Values told are ``(signal, bytes)`` pairs.

    Options:
        population_size: tables per generation (default ``budget // 4`` clipped to 4..50).
        crossover: ``"sbx"`` (default), ``"uniform"`` or ``"blxalpha"``.
        crossover_prob: default 0.9 (Optuna's).
        mutation_prob: per-coefficient mutation probability (default Optuna's ``1 / dim``).

    Example:
        >>> m = NSGA2Search("single", seed=0, population_size=4)
        >>> t = m.ask(); m.tell(t, (0.8, 5000.0))
        >>> m.directions
        ('maximize', 'minimize')
    """

    schedules_by_budget = True  # population_size defaults from the budget
    directions = ("maximize", "minimize")
    defaults: ClassVar[dict[str, Any]] = {"population_size": None, "crossover": "sbx", "crossover_prob": 0.9, "mutation_prob": None}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        import optuna
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        super().__init__(*args, **kwargs)
        o = self.options
        if o["population_size"] is None:
            o["population_size"] = 50 if self.budget is None else max(4, min(50, self.budget // 4))
        if int(o["population_size"]) < 2:
            raise SearchError(f"option population_size must be >= 2, got {o['population_size']!r}")
        if o["crossover"] not in CROSSOVERS:
            raise SearchError(f"option crossover must be one of {', '.join(CROSSOVERS)}, got {o['crossover']!r}")
        self.dists: dict[str, Any] = {f"u{i:03d}": FloatDistribution(0.0, 1.0) for i in range(self.space.n_coeffs)}
        if self.space.variable_subsampling:
            self.dists["subsampling"] = CategoricalDistribution(list(self.space.subsampling))
        sampler = optuna.samplers.NSGAIISampler(
            population_size=int(o["population_size"]),
            crossover=_crossover(o["crossover"]),
            crossover_prob=float(o["crossover_prob"]),
            mutation_prob=None if o["mutation_prob"] is None else float(o["mutation_prob"]),
            seed=self.seed % (2**32),
        )
        with quiet_optuna():
            self.study = optuna.create_study(directions=list(self.directions), sampler=sampler)
        self.pending: dict[QTable, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # The study (its NSGA-II sampler and in-memory storage) holds locks and thread-locals;
        # pickle it on its own with those written as fresh ones (see _optuna.dumps_without_locks).
        return {**self.__dict__, "study": dumps_without_locks(self.study)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "study": pickle.loads(state["study"])})

    def _params(self, table: QTable) -> dict[str, Any]:
        u = self.space.full_box().to_unit(self.space.values(table))
        params: dict[str, Any] = {k: float(np.clip(x, 0.0, 1.0)) for k, x in zip(self.dists, u)}
        if self.space.variable_subsampling:
            params["subsampling"] = table.subsampling
        return params

    def _table(self, params: dict[str, Any]) -> QTable:
        u = np.array([params[f"u{i:03d}"] for i in range(self.space.n_coeffs)])
        sub = params.get("subsampling") if self.space.variable_subsampling else None
        return self.space.table(self.space.full_box().from_unit(u), sub)

    def _ask(self) -> QTable:
        with quiet_optuna():
            if self.n_asked < int(self.options["population_size"]):
                self.study.enqueue_trial(self._params(sorted_table(self.space, self.rng)))
            trial = self.study.ask(self.dists)
        table = self._table(trial.params)
        self.pending[table] = trial.number
        return table

    def _rebind(self, asked: QTable, table: QTable) -> None:
        if asked in self.pending:
            self.pending[table] = self.pending.pop(asked)

    def _tell(self, table: QTable, value: Value) -> None:
        import optuna

        number = self.pending.pop(table, None)
        with quiet_optuna():
            if number is None:
                if value is not None:  # another worker's result: kept, outside the generations
                    dists = {k: d for k, d in self.dists.items()}
                    self.study.add_trial(
                        optuna.trial.create_trial(params=self._params(table), distributions=dists, values=list(value))  # type: ignore[arg-type]
                    )
                return
            if value is None:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(number, list(value))  # type: ignore[arg-type]
