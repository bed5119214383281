"""The search engine: tune quantization tables for a classifier (``dnnjpeg tune``).

Methods (``ask`` for tables, ``tell`` results; see :mod:`dnnjpeg.search.base`)::

    sorted   the seed's sorted random generator
    bounded  random search inside bounds from the best tables so far
    bayes    Gaussian-process Bayesian optimisation + local grid (Optuna's GPSampler)
    bandit   AUC bandit over PSO, DE, Nelder-Mead (nevergrad), annealing, greedy mutation
    deepn    DeepN-JPEG: table from the data's DCT statistics (a baseline)
    fisher   RD-OPT tables weighted by the model's Fisher information, with a searched correction
    fisher-each  ``fisher`` whose first designs visit every allowed subsampling
    shaped   standard JPEG's tables bent by a few searched parameters
    nsga2    NSGA-II multi-objective search for the accuracy-size Pareto front

Objectives (:mod:`dnnjpeg.search.objectives`), persistence in Optuna studies
(:mod:`dnnjpeg.search.study`) and the tuning loop :func:`tune` build on them.
"""

from __future__ import annotations

from . import bandit, bayes, bounded, deepn, fisher, nsga2, shaped, sorted  # noqa: F401  (register the methods)
from .base import (
    SearchContext,
    SearchError,
    SearchMethod,
    available_methods,
    derive_seed,
    make_method,
    method_class,
    register_method,
)
from .objectives import Fitness, Objective, SizeMatched, TargetAccuracy, parse_objective
from .runner import CURVE_QUALITIES, Fidelity, TuneOptions, TuneOptionsError, TuneResult, size_match, tune
from .space import Box, SearchSpace, SearchSpaceError

__all__ = [
    "CURVE_QUALITIES",
    "Box",
    "Fidelity",
    "Fitness",
    "Objective",
    "SearchContext",
    "SearchError",
    "SearchMethod",
    "SearchSpace",
    "SearchSpaceError",
    "SizeMatched",
    "TargetAccuracy",
    "TuneOptions",
    "TuneOptionsError",
    "TuneResult",
    "available_methods",
    "derive_seed",
    "make_method",
    "method_class",
    "parse_objective",
    "register_method",
    "size_match",
    "tune",
]
