"""Replay the search on an exhaustive :class:`RungTable`: the same search code, no model run.

Each candidate's outcome is looked up in the table, so the evaluations a search spends and the rung it
picks can be measured for many criteria and strategies at the cost of one exhaustive run
(``benchmarks/ratecontrol_search.py``).

Example:
    >>> import numpy as np
    >>> kl = np.array([[0.9, 0.3, 0.04, 0.01, 0.001], [0.2, 0.01, 0.005, 0.001, 0.0]])
    >>> t = RungTable(("q10", "q30", "q50", "q70", "q90"), np.array([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]]) * 1000,
    ...               {"m": kl}, {"m": np.zeros((2, 5), int)}, {"m": np.zeros(2, int)})
    >>> states = simulate(t, Criterion(0.05), strategy="bisect")
    >>> [s.hi for s in states], [len(s.tried) for s in states]
    ([2, 1], [3, 3])
    >>> t.smallest_holding(Criterion(0.05)).tolist()
    [2, 1]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._criterion import Criterion
from ._exhaustive import RungTable
from ._policy import KLModel, Policy, Thresholds
from ._search import Outcome, State, search

__all__ = ["TableOracle", "answers", "simulate"]


class TableOracle:
    """Outcomes read from ``table``: models in the table's order, a later model run only where the earlier held."""

    def __init__(self, table: RungTable, criterion: Criterion, sources_nbytes: Sequence[int | None] | None = None,
                 models: Sequence[str] | None = None) -> None:
        self.table = table
        self.models = list(table.kl if models is None else models)
        self.held = {m: table.held(criterion, [m]) for m in self.models}
        n = table.nbytes.shape[0]
        self.sources = list(sources_nbytes) if sources_nbytes is not None else [None] * n

    def round(self, refs: list[int], probes: list[tuple[int, int]]) -> tuple[list[Any], list[Outcome]]:
        logits = self.table.ref_logits
        ref = [[logits[m][i] for m in self.models] if all(m in logits for m in self.models) else [] for i in refs]
        return [(x, len(self.models)) for x in ref], [self._outcome(i, r) for i, r in probes]

    def release(self, i: int) -> None:
        pass

    def _outcome(self, i: int, r: int) -> Outcome:
        nb = int(self.table.nbytes[i, r])
        src = self.sources[i]
        out = Outcome(True, [math.nan] * len(self.models), [None] * len(self.models), nb)
        if src is not None and nb >= src:
            out.held, out.too_big = False, True
            return out
        for m, name in enumerate(self.models):
            out.kl[m] = float(self.table.kl[name][i, r])
            out.top1[m] = bool(self.table.top1[name][i, r] == self.table.ref_top1[name][i])
            out.passes += 1
            if not self.held[name][i, r]:
                out.held = False
                break
        return out


def simulate(table: RungTable, criterion: Criterion, *, strategy: str = "predict", window: int = 32,
             sources_nbytes: Sequence[int | None] | None = None, models: Sequence[str] | None = None,
             thresholds: Thresholds = Thresholds(), kl_model: KLModel | None = None) -> list[State]:
    """The search's final states for every image of ``table`` (``State.hi`` is the answer when it held)."""
    n, r = table.nbytes.shape
    qualities = [int(x[1:]) if re.fullmatch(r"q\d+", x) else None for x in table.labels]
    policy = Policy(r, criterion.max_kl, strategy, kl_model, qualities, thresholds)
    return search(n, r, TableOracle(table, criterion, sources_nbytes, models), policy, window)


def answers(states: Sequence[State]) -> np.ndarray:
    """Per image, the rung the search picked when one held (lowest verified holding rung), else -1."""
    return np.array([s.hi if s.hi < s.n and s.hi < s.cap else -1 for s in states])
