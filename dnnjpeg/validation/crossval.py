"""Class-disjoint cross-validation of table search methods: tune on k-1 folds, validate on the last.

For each method and each of ``k`` class-disjoint folds (:func:`dnnjpeg.evaluation.data.class_disjoint_folds`):

1. a table is obtained from the *training* images only (:func:`obtain_table`: a search method of
   :mod:`dnnjpeg.search`, or a fixed table as a control);
2. it is evaluated on the held-out fold, whose classes the search never saw, and compared with
   standard JPEG on the same images (:func:`dnnjpeg.validation.validate.compare`: gain at equal CR with a
   bootstrap interval, paired tests against the standard quality of nearest size).

Standard JPEG is evaluated once on every image and cut into folds with ``Result.subset``.  The
pooled ("all") row pairs every held-out image once: the gain is the image-weighted mean of the
fold gains; the paired tests run on the concatenated (table, nearest standard) outcomes.

Methods (:func:`parse_method`):

``NAME``
    a search method of :mod:`dnnjpeg.search` (``dnnjpeg tune --method NAME``) run by
    :func:`dnnjpeg.search.tune` on the training images with the given budget, objective and seed
    (fold ``i``: ``seed + i``), in an in-memory study; its objective uses the standard curve on the
    training images (cut from the all-image curve, so nothing is evaluated twice); with
    ``target_quality`` the best table is scaled to the size of that standard quality on them.
``fixed:TABLE`` / ``fixed:TABLE@Q``
    a fixed table (family name or JSON path, member ``Q``), no tuning: a control that shows how much
    a table's measured gain varies across folds by chance (``fixed:standard@50`` gains exactly 0).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._settings import from_keywords
from ..errors import DnnjpegError
from ..evaluation.curve import CurvePoint, StandardCurve
from ..evaluation.data import class_disjoint_folds
from ..families import resolve_table
from ..qtable import QTable
from ..search.base import SearchError
from ..search.objectives import Objective, parse_objective
from ..search.runner import TuneOptions, tune
from ..search.space import SearchSpace, SearchSpaceError
from .stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED, paired_comparison
from .validate import Comparison, _check_bootstrap, _standard_qualities, compare

__all__ = [
    "CROSSVAL_FORMAT",
    "CrossValidation",
    "CrossvalError",
    "CrossvalOptions",
    "CrossvalOptionsError",
    "FoldOutcome",
    "MethodOutcome",
    "crossval",
    "curve_on",
    "format_table",
    "obtain_table",
    "parse_method",
]

#: Value of the ``format`` key of the cross-validation JSON.
CROSSVAL_FORMAT = "dnnjpeg-crossval"


class CrossvalError(DnnjpegError):
    """A bad method name, fold count, or a search engine that is not available."""


class CrossvalOptionsError(CrossvalError, ValueError):
    """A bad :class:`CrossvalOptions` value (a :class:`CrossvalError` that is also a ``ValueError``)."""


def _integer(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise CrossvalOptionsError(f"{name} must be an integer >= {least}, got {value!r}")


@dataclass(frozen=True)
class CrossvalOptions:
    """The settings of :func:`crossval`, checked when made.

    Attributes:
        k, fold_seed: folds from :func:`dnnjpeg.evaluation.data.class_disjoint_folds`.
        qualities: the standard curve on each held-out fold (default 5..95 step 5; kept sorted, once each).
        budget, objective, target_quality, space, search_options: for the search
            (:meth:`tune_options`, :func:`obtain_table`).
        search_seed: fold ``i``'s search uses seed ``search_seed + i``.
        resamples, confidence, seed: bootstrap settings.
        table_dir: when given, each tuned table is saved there as ``METHOD-foldI.json``.

    Raises:
        CrossvalOptionsError: a bad value (a :class:`CrossvalError` and a ``ValueError``), named in the message.

    Example:
        >>> opts = CrossvalOptions(k=3, budget=10, search_seed=4)
        >>> opts.tune_options("bandit", fold=2).seed
        6
        >>> try:
        ...     CrossvalOptions(k=1)
        ... except ValueError as exc:
        ...     print(exc)
        k must be an integer >= 2, got 1
    """

    k: int = 5
    fold_seed: int = 0
    qualities: Sequence[int] | None = None
    budget: int = 100
    objective: str | Objective = "fitness"
    target_quality: int | None = None
    space: str | SearchSpace = "single"
    search_seed: int = 0
    search_options: Mapping[str, Any] | None = None
    resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = DEFAULT_SEED
    table_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        _integer("k", self.k, 2)
        _integer("fold_seed", self.fold_seed, 0)
        qs = _standard_qualities(self.qualities, CrossvalOptionsError)
        if not qs:
            raise CrossvalOptionsError("qualities must name at least one standard quality")
        _integer("budget", self.budget, 1)
        _integer("search_seed", self.search_seed, 0)
        tq = self.target_quality
        if tq is not None and (isinstance(tq, bool) or not isinstance(tq, numbers.Integral) or not 1 <= tq <= 100):
            raise CrossvalOptionsError(f"target_quality must be an integer in 1..100, got {tq!r}")
        try:
            parse_objective(self.objective)
            SearchSpace.parse(self.space)
        except (SearchError, SearchSpaceError) as exc:
            raise CrossvalOptionsError(str(exc)) from None
        if self.search_options is not None and not isinstance(self.search_options, Mapping):
            raise CrossvalOptionsError(f"search_options must be a mapping of option names to values, "
                                       f"got {self.search_options!r}")
        _check_bootstrap(self.resamples, self.confidence, self.seed, CrossvalOptionsError)
        if self.table_dir is not None and not isinstance(self.table_dir, (str, os.PathLike)):
            raise CrossvalOptionsError(f"table_dir must be a folder path, got {self.table_dir!r}")
        object.__setattr__(self, "qualities", qs)

    @classmethod
    def from_kwargs(cls, options: CrossvalOptions | None = None, /, **kwargs: Any) -> CrossvalOptions:
        """``options`` (default: the defaults) with keyword arguments named like the fields, as
        :func:`crossval` takes them; each must agree with ``options`` when both are given.

        Raises:
            ValueError: a keyword that contradicts ``options``, or a bad value.
            TypeError: an unknown keyword.
        """
        return from_keywords(cls, options, kwargs, "crossval option")

    @property
    def bootstrap(self) -> dict[str, Any]:
        """``resamples``, ``confidence`` and ``seed`` as keyword arguments of :func:`compare`."""
        return {"resamples": self.resamples, "confidence": self.confidence, "seed": self.seed}

    def tune_options(self, method: str, fold: int) -> TuneOptions:
        """The search of ``method`` on fold ``fold``'s training images (in memory, seed ``search_seed + fold``)."""
        return TuneOptions(method, budget=self.budget, objective=self.objective, seed=self.search_seed + fold,
                           space=self.space, quality=self.target_quality,
                           method_options=dict(self.search_options or {}))


def parse_method(method: str) -> tuple[str, str | None, int | None]:
    """``"NAME"`` -> ``("search", NAME, None)``; ``"fixed:T@Q"`` -> ``("fixed", T, Q)``.

    Example:
        >>> parse_method("fixed:standard@50"), parse_method("sorted-random")
        (('fixed', 'standard', 50), ('search', 'sorted-random', None))
    """
    m = method.strip()
    if not m:
        raise CrossvalError("empty method name")
    if m.startswith("fixed:"):
        spec = m[len("fixed:"):]
        quality: int | None = None
        if "@" in spec:
            spec, q = spec.rsplit("@", 1)
            try:
                quality = int(q)
            except ValueError:
                raise CrossvalError(f"method {method!r}: quality {q!r} after '@' is not an integer") from None
        if not spec:
            raise CrossvalError(f"method {method!r}: no table after 'fixed:'")
        return "fixed", spec, quality
    return "search", m, None


def obtain_table(
    kind: str,
    name: str,
    quality: int | None,
    train: Any,
    *,
    curve: Any = None,
    options: TuneOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> QTable:
    """The table a method produces from the training evaluator ``train`` (the only place that tunes).

    Args:
        kind, name, quality: from :func:`parse_method`.
        train: an Evaluator on the training folds only.
        curve: standard JPEG's curve on ``train`` (:class:`~dnnjpeg.evaluation.curve.StandardCurve`) for the
            objective; ``None`` lets the search measure it.
        options: the search's settings (:class:`~dnnjpeg.search.TuneOptions`, e.g.
            :meth:`CrossvalOptions.tune_options`); its method is ``name`` whatever it holds.  A mapping here
            is the method's options (the spelling from before TuneOptions).
        **kwargs: fields of :class:`~dnnjpeg.search.TuneOptions` (``budget=``, ``objective=``, ``seed=``,
            ``space=``...), with ``target_quality=`` for its ``quality`` (scale the best table to standard
            JPEG's size at this quality on ``train``).
    """
    if "target_quality" in kwargs:
        kwargs["quality"] = kwargs.pop("target_quality")
    opts = TuneOptions.from_kwargs(options, **kwargs)
    if kind == "fixed":
        return resolve_table(name, quality)
    return tune(train, curve=curve, options=dataclasses.replace(opts, method=name)).table


@dataclass
class FoldOutcome:
    """One method on one held-out fold."""

    fold: int
    train_size: int
    test_size: int
    test_classes: int
    table: QTable
    comparison: Comparison
    result: Any = field(repr=False)
    nearest: Any = field(repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold, "train_size": self.train_size, "test_size": self.test_size,
            "test_classes": self.test_classes, **self.comparison.to_dict(prefix="standard"),
            "table": self.table.to_dict(), "seconds": self.seconds,
        }


@dataclass
class MethodOutcome:
    """One method over all folds, with the pooled figures."""

    method: str
    folds: list[FoldOutcome]
    pooled_delta_top1: float
    pooled: Any  # PairedComparison of concatenated (table, nearest standard) outcomes

    def to_dict(self) -> dict[str, Any]:
        p = self.pooled
        return {
            "method": self.method,
            "folds": [f.to_dict() for f in self.folds],
            "pooled": {
                "delta_top1": _num(self.pooled_delta_top1),
                "paired_delta_top1": p.delta,
                "paired_ci_low": _num(p.ci_low),
                "paired_ci_high": _num(p.ci_high),
                "p_value": _num(p.mcnemar.p_value) if p.mcnemar is not None else None,
                "p_value_ttest": _num(p.ttest.p_value),
                "mcnemar_b": p.mcnemar.b if p.mcnemar is not None else None,
                "mcnemar_c": p.mcnemar.c if p.mcnemar is not None else None,
                "n": p.n,
            },
        }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


@dataclass
class CrossValidation:
    """All methods' outcomes; :meth:`to_dict` is the ``crossval --json`` object."""

    methods: list[MethodOutcome]
    k: int
    seed: int
    model: str
    data: str
    protocol: str
    n: int
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CROSSVAL_FORMAT, "version": 1, "model": self.model, "data": self.data,
            "protocol": self.protocol, "n": self.n, "k": self.k, "fold_seed": self.seed,
            "settings": dict(self.settings), "methods": [m.to_dict() for m in self.methods],
            "seconds": self.seconds,
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _labels(evaluator: Any) -> np.ndarray:
    ds = getattr(evaluator, "dataset", None)
    if ds is None:
        raise CrossvalError("the evaluator has no .dataset: class-disjoint folds need the labels")
    return np.asarray(ds.labels)


def crossval(
    evaluator: Any,
    methods: Sequence[str],
    *,
    options: CrossvalOptions | None = None,
    log: Callable[[str], Any] | None = None,
    **kwargs: Any,
) -> CrossValidation:
    """Cross-validate ``methods`` on ``evaluator``'s images with ``options.k`` class-disjoint folds.

    Args:
        evaluator: an Evaluator on all images (tuning uses ``evaluator.subset(train)``).
        methods: method strings (see the module docstring).
        options: the settings (:class:`CrossvalOptions`: folds, curve, search, bootstrap, table_dir).
        log: callable receiving progress lines (e.g. ``print``), or ``None``.
        **kwargs: the fields of :class:`CrossvalOptions` as keywords (``k=``, ``budget=``,
            ``search_seed=``...); each must agree with ``options`` when both are given.
    """
    t0 = time.perf_counter()
    opts = CrossvalOptions.from_kwargs(options, **kwargs)
    if not methods:
        raise CrossvalError("no methods given")
    parsed = [(m, *parse_method(m)) for m in methods]
    labels = _labels(evaluator)
    folds = class_disjoint_folds(labels, k=opts.k, seed=opts.fold_seed)
    say = log or (lambda _msg: None)
    say(f"standard JPEG at {len(opts.qualities)} qualities on all {len(labels)} images")
    std_all = {q: evaluator.evaluate(QTable.standard(q)) for q in opts.qualities}
    out_dir = Path(opts.table_dir) if opts.table_dir is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(evaluator, opts, labels, folds, std_all, out_dir, say)
    outcomes = [_method_outcome(run, spec) for spec in parsed]
    first = std_all[opts.qualities[0]]
    return CrossValidation(
        methods=outcomes, k=opts.k, seed=opts.fold_seed, model=first.model, data=first.data, protocol=first.protocol,
        n=len(labels),
        settings={"qualities": list(opts.qualities), "budget": opts.budget, "objective": opts.objective,
                  "target_quality": opts.target_quality, "space": opts.space, "search_seed": opts.search_seed,
                  "resamples": opts.resamples, "confidence": opts.confidence, "seed": opts.seed},
        seconds=time.perf_counter() - t0,
    )


@dataclass
class _Run:
    """One cross-validation: the settings, the folds, standard JPEG on every image, where tables go."""

    evaluator: Any
    options: CrossvalOptions
    labels: np.ndarray
    folds: list[Any]
    std_all: dict[int, Any]
    out_dir: Path | None
    say: Callable[[str], Any]


def _method_outcome(run: _Run, spec: tuple[str, str, str, int | None]) -> MethodOutcome:
    """One method on every fold, with the pooled figures (every held-out image once)."""
    fold_out = [_fold_outcome(run, spec, i, fold) for i, fold in enumerate(run.folds)]
    sizes = np.array([f.test_size for f in fold_out], dtype=float)
    deltas = np.array([f.comparison.delta_top1 for f in fold_out], dtype=float)
    pooled_delta = float(np.sum(sizes * deltas) / np.sum(sizes)) if np.all(np.isfinite(deltas)) else math.nan
    pooled = paired_comparison(np.concatenate([f.result.correct for f in fold_out]),
                               np.concatenate([f.nearest.correct for f in fold_out]), **run.options.bootstrap)
    return MethodOutcome(method=spec[0], folds=fold_out, pooled_delta_top1=pooled_delta, pooled=pooled)


def _fold_outcome(run: _Run, spec: tuple[str, str, str, int | None], i: int, fold: Any) -> FoldOutcome:
    """Obtain the method's table from fold ``i``'s training images, compare it on the held-out ones."""
    method, kind, name, quality = spec
    t1 = time.perf_counter()
    run.say(f"{method}: fold {i + 1}/{run.options.k} (train {len(fold.train)}, test {len(fold.test)} images)")
    train, curve, search = None, None, None
    if kind == "search":
        train = run.evaluator.subset(fold.train)
        curve = curve_on(run.std_all, fold.train)
        search = run.options.tune_options(name, i)
    table = obtain_table(kind, name, quality, train, curve=curve, options=search)
    if run.out_dir is not None:
        safe = method.replace(":", "-").replace("/", "_").replace("@", "-q")
        table.to_json(run.out_dir / f"{safe}-fold{i}.json")
    result = run.evaluator.evaluate(table, indices=fold.test)
    std = {q: r.subset(fold.test) for q, r in run.std_all.items()}
    cmp = compare(result, std, **run.options.bootstrap)
    return FoldOutcome(
        fold=i, train_size=len(fold.train), test_size=len(fold.test),
        test_classes=int(np.unique(run.labels[fold.test]).size), table=table, comparison=cmp,
        result=result, nearest=std[cmp.nearest_quality], seconds=time.perf_counter() - t1,
    )


def curve_on(std_all: Mapping[int, Any], indices: np.ndarray) -> Any:
    """Standard JPEG's curve on ``indices``, cut from the all-image Results (no evaluation)."""
    subs = {q: r.subset(indices) for q, r in std_all.items()}
    first = next(iter(subs.values()))
    return StandardCurve(points=[CurvePoint.from_result(q, subs[q]) for q in sorted(subs)],
                         model=first.model, data=first.data, protocol=first.protocol, results=subs)


def format_table(cv: CrossValidation | Mapping[str, Any]) -> str:
    """The seed-style table: one row per method, one column per fold plus ``all``; each cell
    ``gain (p=McNemar p, t=t-test p)`` with the gain in percentage points at equal CR."""
    d = cv.to_dict() if isinstance(cv, CrossValidation) else dict(cv)

    def cell(delta: float | None, p: float | None, pt: float | None) -> str:
        g = "n/a" if delta is None else f"{100 * delta:+.2f}"
        return f"{g} (p={_fmt_p(p)}, t={_fmt_p(pt)})"

    k = d["k"]
    head = ["method"] + [f"fold {i}" for i in range(k)] + ["all"]
    rows = []
    for m in d["methods"]:
        row = [m["method"]]
        for f in m["folds"]:
            row.append(cell(f["delta_top1"], f["p_value"], f["p_value_ttest"]))
        p = m["pooled"]
        row.append(cell(p["delta_top1"], p["p_value"], p["p_value_ttest"]))
        rows.append(row)
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3g}" if p >= 0.001 else f"{p:.1e}"
