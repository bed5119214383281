"""Tune a whole table family for one model, choose its method by cross-validation, and prove it held out.

:func:`tune_family` is what ``dnnjpeg family`` runs and what produced the files in ``tables/``:

1. **Plan**: the folds, and **standard JPEG** evaluated once on every image at ``curve_qualities``
   (and the family's).
2. **Cross-validation** (``stage="cv"``): the images are cut into ``k`` class-disjoint folds
   (:func:`dnnjpeg.evaluation.data.class_disjoint_folds`).  For every method, member quality ``Q`` and fold,
   the method searches on the other folds' images with the objective ``size-matched-SIGNAL:Q``
   (every candidate scaled to standard ``Q``'s size first when ``project``), the best table is
   scaled to standard ``Q``'s size on those images, and evaluated on the held-out fold.  Pooling the
   folds gives, per method and member, a held-out result on every image, compared with standard
   ``Q`` on the same images (paired McNemar test, bootstrap interval) and with the standard curve at
   equal CR; the held-out members form a curve whose BD-rate against standard JPEG is the
   family's cross-validated BD-rate.
3. **Choice**: the method with the highest mean held-out top-1 gain over the size-matched standard
   table (ties: lower KL).  The tuning-set score plays no part.
4. **Final tables** (``stage="final"``): the chosen method searches on all images for each member.
5. **The family** (``stage="all"``, the default, runs 1-4 and writes the file): members with
   provenance (command, method, budget, seed, data hash, model, date, version) and metrics (tuning
   and cross-validated top-1, CR, gain, p-value), the family's BD-rates (held out and on the tuning
   images) against standard JPEG and against mozjpeg.

Every search writes an Optuna journal under ``workdir`` (``cv/METHOD-qQ-foldI.journal``,
``final/METHOD-qQ.journal``) and every other evaluation is kept in ``evaluations/``
(:class:`~dnnjpeg.evaluation.store.EvaluationStore`): rerunning the same command resumes where it stopped, on this machine
or another (a packed dataset, :mod:`dnnjpeg.evaluation.pack`, has the fingerprint of its source).  The stages
can run on different machines into the same workdir (e.g. ``--stage cv`` on a GPU machine while
``--stage final`` runs here), and a last ``--stage all`` only reads the journals and evaluations.

:func:`tune_family` takes its settings as one :class:`FamilyTuneOptions` (keyword arguments of the same
names still work) and returns a :class:`FamilyTuneResult`: the stages' typed outcomes and, for
``stage="all"``, the family file as a :class:`~dnnjpeg.families.FamilyRecord`.  What the file records
for a tuned family is typed here too: :class:`TunedProvenance`, :class:`FamilyFigures` (the family's
``metrics``), :class:`TuningFigures` and :class:`CrossvalFigures` (each member's); their ``from_dict``
also reads version-1 files, written before some keys existed (a missing key reads as ``None``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import __version__
from ..errors import DnnjpegError
from ..evaluation.curve import DEFAULT_QUALITIES
from ..evaluation.data import Fold, class_disjoint_folds
from ..evaluation.evaluate import PER_IMAGE_FIELDS
from ..evaluation.store import EvaluationStore
from ..families import FamilyMember, FamilyRecord
from ..qtable import QTable
from ..validation.bd_bootstrap import BD_RESAMPLES, bootstrap_members_ahead
from ..validation.crossval import curve_on
from ..validation.stats import paired_comparison
from ..validation.validate import compare, evaluate_encoder_curve, family_bd_interval, family_bd_rate
from . import available_methods, tune
from .objectives import SIGNALS
from .runner import device_label

__all__ = [
    "CHOOSE_BY",
    "DEFAULT_FAMILY_QUALITIES",
    "FAMILY_STAGES",
    "CrossvalFigures",
    "CrossvalMember",
    "FamilyFigures",
    "FamilyTuneError",
    "FamilyTuneOptions",
    "FamilyTuneResult",
    "MethodChoice",
    "TunedProvenance",
    "TuningFigures",
    "merge_results",
    "tune_family",
]

#: Member qualities of a shipped family (standard JPEG qualities each member is size-matched to).
DEFAULT_FAMILY_QUALITIES: tuple[int, ...] = (30, 40, 50, 60, 75, 90)
#: ``cv`` (cross-validation only), ``final`` (final searches only), ``all`` (everything, then the family).
FAMILY_STAGES: tuple[str, ...] = ("all", "cv", "final")
#: How cross-validation picks the method (``FamilyTuneOptions(choose_by=...)``).
CHOOSE_BY: tuple[str, ...] = ("top1", "kl")


class FamilyTuneError(DnnjpegError):
    """Bad family-tuning arguments."""


def merge_results(parts: Sequence[Any]) -> Any:
    """One :class:`~dnnjpeg.evaluation.evaluate.Result` from Results on disjoint index sets, in index order.

    Example:
        >>> from dnnjpeg.evaluation.evaluate import Result
        >>> def r(idx, ok):
        ...     n = len(idx)
        ...     return Result(model="m", data="d", protocol="crop224", table=None, quality=None, labelled=True,
        ...                   indices=np.array(idx), correct=np.array(ok, bool), correct5=np.ones(n, bool),
        ...                   agree=np.ones(n, bool), ce=np.zeros(n), kl=np.zeros(n), bytes=np.full(n, 100),
        ...                   pixels=np.full(n, 50176), bmp_bytes=np.full(n, 150582))
        >>> m = merge_results([r([3, 1], [1, 0]), r([0, 2], [1, 1])])
        >>> m.indices.tolist(), m.correct.tolist()
        ([0, 1, 2, 3], [True, False, True, True])
    """
    if not parts:
        raise FamilyTuneError("no results to merge")
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in PER_IMAGE_FIELDS}
    order = np.argsort(cat["indices"], kind="stable")
    if np.unique(cat["indices"]).size != cat["indices"].size:
        raise FamilyTuneError("results to merge share images")
    return dataclasses.replace(parts[0], **{f: v[order] for f, v in cat.items()},
                               seconds=float(sum(p.seconds for p in parts)), extra={})


# -- options -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamilyTuneOptions:
    """What :func:`tune_family` tunes and how (``dnnjpeg family`` has a flag for each).

    Attributes:
        qualities: standard qualities the members are size-matched to (kept sorted, without repeats).
        methods: candidate search methods; cross-validation picks one.
        k, fold_seed: class-disjoint folds.
        budget: evaluations per search (each fold's and each final one).
        signal: the objective's signal (``kl``: low-noise; ``top1``: the seed's).
        seed: search seed (fold ``i`` uses ``seed + i``; final searches ``seed + k``).
        space: search space (``single``: one table for Y, Cb and Cr, as the seed's).
        project: scale every candidate to the member's size before evaluating it.
        stage: ``all``, ``cv`` or ``final`` (:data:`FAMILY_STAGES`).
        curve_qualities: standard qualities of the reference curve.
        compare_encoders: other encoder families (:mod:`dnnjpeg.encoders`) measured at
            ``curve_qualities`` for the BD-rate comparison (skipped when not installed).
        choose_by: how cross-validation picks the method: ``"top1"`` (mean held-out top-1 gain at
            equal CR over the members; ties broken by mean held-out KL) or ``"kl"`` (the lowest
            held-out BD-rate at equal KL against standard JPEG: the per-image signal, a few times less
            noisy on a few hundred images).
        command: the command line, recorded in the provenance.

    Raises:
        FamilyTuneError: a value out of range, an unknown method, signal, stage or ``choose_by``.

    Example:
        >>> FamilyTuneOptions(qualities=[75, 40, 75], methods=["sorted", "shaped"]).qualities
        (40, 75)
        >>> FamilyTuneOptions(k=1)
        Traceback (most recent call last):
        ...
        dnnjpeg.search.family.FamilyTuneError: k must be >= 2 class-disjoint folds, got 1
    """

    qualities: Sequence[int] = DEFAULT_FAMILY_QUALITIES
    methods: Sequence[str] = ("sorted",)
    k: int = 2
    fold_seed: int = 0
    budget: int = 60
    signal: str = "kl"
    seed: int = 0
    space: str = "single"
    project: bool = True
    stage: str = "all"
    curve_qualities: Sequence[int] = DEFAULT_QUALITIES
    compare_encoders: Sequence[str] = ("mozjpeg",)
    choose_by: str = "top1"
    command: str | None = None

    def __post_init__(self) -> None:
        qs = sorted({int(q) for q in self.qualities})
        if not qs or any(not 1 <= q <= 100 for q in qs):
            raise FamilyTuneError(f"member qualities must be integers in 1..100, got {list(self.qualities)}")
        if not self.methods:
            raise FamilyTuneError("no search methods given")
        for m in self.methods:
            if m not in available_methods():
                raise FamilyTuneError(f"unknown method {m!r}; available: {', '.join(available_methods())}")
        if self.k < 2:
            raise FamilyTuneError(f"k must be >= 2 class-disjoint folds, got {self.k}")
        if self.budget < 1:
            raise FamilyTuneError(f"budget must be >= 1, got {self.budget}")
        for what, value, allowed in (("signal", self.signal, SIGNALS), ("stage", self.stage, FAMILY_STAGES),
                                     ("choose_by", self.choose_by, CHOOSE_BY)):
            if value not in allowed:
                raise FamilyTuneError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
        object.__setattr__(self, "qualities", tuple(qs))
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "curve_qualities", tuple(int(q) for q in self.curve_qualities))
        object.__setattr__(self, "compare_encoders", tuple(self.compare_encoders))


# -- what a tuned family file records, typed ---------------------------------------------------------

_R = TypeVar("_R", bound="_Figures")


class _Figures:
    """``from_dict``/``to_dict`` in field order; a key missing from the dict (a version-1 file written
    before the key existed) reads as ``None``."""

    @classmethod
    def from_dict(cls: type[_R], d: Mapping[str, Any]) -> _R:
        return cls(**{f.name: d.get(f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class TunedProvenance(_Figures):
    """A tuned family's ``provenance`` (docs/family.md, *What the file records*); ``writer`` is written
    only when the tables were tuned for another encoder than libjpeg."""

    tool: str
    version: str
    command: str | None
    model: str
    model_fingerprint: str | None
    data: str
    data_hash: str
    n_images: int
    protocol: str
    writer: str | None
    methods_compared: list[str]
    method: str
    chosen_by: str | None
    budget: int
    seed: int
    signal: str
    objective: str
    projection: bool
    space: str
    k: int
    fold_seed: int
    created: str
    measured_by_dnnjpeg: bool
    machine: str
    search_devices: dict[str, int] | None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not d["writer"]:
            del d["writer"]
        return d


@dataclass(frozen=True)
class TuningFigures(_Figures):
    """A member's ``metrics.tuning``: its final table on all the tuning images, against standard ``Q``."""

    top1: float
    cr: float
    bytes_mean: float
    kl: float
    standard_top1: float
    standard_cr: float
    standard_bytes_mean: float
    standard_kl: float
    gain_top1_vs_size_matched_standard: float
    gain_top1_at_equal_cr: float | None
    p_value: float | None
    n: int


@dataclass(frozen=True)
class CrossvalFigures(_Figures):
    """A member's ``metrics.crossval``: the fold tables, each on the classes its search never saw."""

    heldout_top1: float
    heldout_cr: float
    heldout_bytes_mean: float
    heldout_kl: float
    standard_top1: float
    standard_cr: float
    standard_kl: float
    gain_top1_vs_size_matched_standard: float
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    gain_top1_at_equal_cr: float | None
    gain_ci_low: float | None
    gain_ci_high: float | None
    k: int
    n: int
    fold_tables: tuple[QTable, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CrossvalFigures:
        tables = tuple(QTable.from_dict(t, source=f"fold_tables[{i}]")
                       for i, t in enumerate(d.get("fold_tables") or ()))
        return dataclasses.replace(super().from_dict({**d, "fold_tables": ()}), fold_tables=tables)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fold_tables": [t.to_dict() for t in self.fold_tables]}


@dataclass(frozen=True)
class FamilyFigures(_Figures):
    """A tuned family's ``metrics`` (docs/family.md): BD-rates against standard JPEG held out and on the
    tuning images, their bootstrap intervals (:func:`~dnnjpeg.validation.bd_bootstrap.bootstrap_bd` dicts), how often
    every member is ahead, other encoders, each method's cross-validation figures, standard JPEG's curve."""

    crossval_bd_rate_vs_standard: float | None
    crossval_bd_accuracy_vs_standard: float | None
    crossval_bd_interval_vs_standard: dict[str, Any] | None
    crossval_kl_bd_interval_vs_standard: dict[str, Any] | None
    crossval_members_ahead: dict[str, Any] | None
    tuning_bd_rate_vs_standard: float | None
    tuning_bd_accuracy_vs_standard: float | None
    encoders: dict[str, dict[str, Any]]
    method_choice: dict[str, dict[str, dict[str, float | None]]]
    method_choice_bd_rate: dict[str, dict[str, float | None]] | None
    standard_curve: list[dict[str, float]]


# -- the stages' outcomes ------------------------------------------------------------------------

@dataclass(frozen=True)
class CrossvalMember:
    """One method's held-out member at one quality: the fold tables' Results pooled over the folds,
    compared with standard JPEG at equal CR (``comparison``) and with standard ``Q`` (``paired``)."""

    result: Any
    comparison: Any
    paired: Any
    fold_tables: tuple[QTable, ...]


@dataclass(frozen=True)
class MethodChoice:
    """Which method cross-validation chose (``None``: not chosen, ``stage="final"`` with several),
    whose final searches run, and each method's held-out BD-rates (``{"top1": .., "kl": ..}``)."""

    chosen: str | None
    finals: tuple[str, ...]
    bd_rates: Mapping[str, Mapping[str, float | None]]


@dataclass(frozen=True)
class FamilyTuneResult:
    """What :func:`tune_family` did: the stages' outcomes and, for ``stage="all"``, the family file.

    Attributes:
        name: the family's name.
        options: the options it ran with.
        crossval: method -> quality -> :class:`CrossvalMember` (empty for ``stage="final"``).
        choice: the method choice (``None`` for ``stage="cv"``).
        finals: method -> quality -> the final search's :class:`~dnnjpeg.search.TuneResult`.
        search_devices: every search's trials counted by what ran the model.
        record: the family file (``None`` unless ``stage="all"``).
    """

    name: str
    options: FamilyTuneOptions
    crossval: Mapping[str, Mapping[int, CrossvalMember]]
    choice: MethodChoice | None
    finals: Mapping[str, Mapping[int, Any]]
    search_devices: Mapping[str, int]
    record: FamilyRecord | None

    @property
    def chosen(self) -> str | None:
        return None if self.choice is None else self.choice.chosen

    def to_dict(self) -> dict[str, Any]:
        """The family file's dict (what ``dnnjpeg family`` writes); only ``stage="all"`` assembles one."""
        if self.record is None:
            raise FamilyTuneError(f"stage {self.options.stage!r} assembles no family; run stage 'all' for the file")
        return self.record.to_dict()


# -- tune_family and its stages ------------------------------------------------------------------

def tune_family(evaluator: Any, name: str, options: FamilyTuneOptions | None = None, *,
                workdir: str | os.PathLike[str], log: Callable[[str], None] | None = None,
                **kwargs: Any) -> FamilyTuneResult:
    """Tune, cross-validate and assemble a family (see the module docstring).

    Args:
        evaluator: an :class:`~dnnjpeg.evaluation.evaluate.Evaluator` on all tuning images (labelled, for the
            class-disjoint folds).
        name: the family's registry name (e.g. ``"efficientnet_lite0"``).
        options: what to tune and how (:class:`FamilyTuneOptions`).
        workdir: folder for the journals and evaluations (created; reruns resume from it).
        log: receives progress lines.
        **kwargs: fields of :class:`FamilyTuneOptions` (``qualities=``, ``budget=``, ...), as before the
            options object existed; with ``options`` they replace its fields.

    Returns:
        A :class:`FamilyTuneResult`; its ``record`` (``to_dict()``: the family file) for ``stage="all"``.
    """
    opts = _options(options, kwargs)
    run = _plan(evaluator, name, Path(workdir), opts, log or (lambda _m: None))
    cv = _crossvalidate(run) if opts.stage in ("all", "cv") else {}
    choice: MethodChoice | None = None
    finals: dict[str, dict[int, Any]] = {}
    record: FamilyRecord | None = None
    if opts.stage != "cv":
        choice = _choose_method(run, cv)
        finals = _final_searches(run, choice.finals)
    if opts.stage == "all":
        assert choice is not None and choice.chosen is not None
        record = _assemble(run, cv, choice, finals[choice.chosen])
    run.say(f"evaluations outside the searches: {run.store.n_evaluated} run, {run.store.n_read} read from "
            f"{run.store.folder}")
    return FamilyTuneResult(name=name, options=opts, crossval=cv, choice=choice, finals=finals,
                            search_devices=dict(sorted(run.devices.items())), record=record)


def _options(options: FamilyTuneOptions | None, kwargs: Mapping[str, Any]) -> FamilyTuneOptions:
    known = {f.name for f in dataclasses.fields(FamilyTuneOptions)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"tune_family() got unexpected keyword arguments: {', '.join(unknown)} "
                        f"(options: {', '.join(sorted(known))})")
    if options is None:
        return FamilyTuneOptions(**kwargs)
    return dataclasses.replace(options, **kwargs)


@dataclass
class _Run:
    """What every stage shares: the evaluator, its evaluations kept in the workdir, the folds and
    standard JPEG on every image at every curve quality."""

    evaluator: Any
    name: str
    root: Path
    opts: FamilyTuneOptions
    say: Callable[[str], None]
    folds: list[Fold]
    store: EvaluationStore
    curve_qs: list[int]
    std_all: dict[int, Any]
    devices: Counter[str] = field(default_factory=Counter)  # trials of every search, by what ran the model

    def search(self, ev: Any, method: str, q: int, seed: int, journal: Path, curve: Any) -> Any:
        o = self.opts
        res = tune(ev, method, budget=o.budget, objective=f"size-matched-{o.signal}:{q}", seed=seed,
                   storage=str(journal), space=o.space, quality=q, curve=curve, project=o.project)
        self.devices.update(_devices(res))
        return res


def _plan(evaluator: Any, name: str, root: Path, opts: FamilyTuneOptions, say: Callable[[str], None]) -> _Run:
    """Stage 1: the class-disjoint folds, the workdir, and standard JPEG's curve on every image."""
    if not evaluator.dataset.labelled:
        raise FamilyTuneError(f"{evaluator.data_name}: class-disjoint folds need labelled images")
    labels = np.asarray(evaluator.dataset.labels)
    (root / "cv").mkdir(parents=True, exist_ok=True)
    (root / "final").mkdir(parents=True, exist_ok=True)
    folds = class_disjoint_folds(labels, k=opts.k, seed=opts.fold_seed)
    curve_qs = sorted(set(opts.curve_qualities) | set(opts.qualities))
    # every evaluation outside the searches is kept beside the journals: a rerun only reads it
    store = EvaluationStore(root / "evaluations", evaluator)
    say(f"standard JPEG at {len(curve_qs)} qualities on {evaluator.n} images")
    std_all = {q: store.evaluate(QTable.standard(q)) for q in curve_qs}
    return _Run(evaluator, name, root, opts, say, folds, store, curve_qs, std_all)


def _crossvalidate(run: _Run) -> dict[str, dict[int, CrossvalMember]]:
    """Stage 2: every method searches each member on the training folds; its tables are pooled held out."""
    return {method: {q: _crossvalidate_member(run, method, q) for q in run.opts.qualities}
            for method in run.opts.methods}


def _crossvalidate_member(run: _Run, method: str, q: int) -> CrossvalMember:
    held, tables = [], []
    for i, fold in enumerate(run.folds):
        run.say(f"cv {method} q{q} fold {i + 1}/{run.opts.k}: search on {len(fold.train)} images")
        res = run.search(run.evaluator.subset(fold.train), method, q, run.opts.seed + i,
                         run.root / "cv" / f"{method}-q{q}-fold{i}.journal", curve_on(run.std_all, fold.train))
        tables.append(res.table)
        held.append(run.store.evaluate(res.table, indices=fold.test))
    pooled = merge_results(held)
    cmp = compare(pooled, run.std_all)
    std_q = run.std_all[q]
    paired = _paired(pooled, std_q)
    run.say(f"cv {method} q{q}: held-out top1 {pooled.top1:.4f} at CR {pooled.cr:.2f} vs standard q{q} "
            f"{std_q.top1:.4f} at CR {std_q.cr:.2f} (p={_p(paired)}), at equal CR {100 * cmp.delta_top1:+.2f} pt")
    return CrossvalMember(result=pooled, comparison=cmp, paired=paired, fold_tables=tuple(tables))


def _choose_method(run: _Run, cv: Mapping[str, Mapping[int, CrossvalMember]]) -> MethodChoice:
    """Stage 3: the method with the best held-out figures (``choose_by``); without cross-validation
    (``stage="final"``) every method's finals run."""
    qs, methods = run.opts.qualities, run.opts.methods
    bd_rates = {m: {metric: family_bd_rate(run.std_all, {q: cv[m][q].result for q in qs}, metric=metric)[0]
                    for metric in ("top1", "kl")} for m in cv}
    if not cv:
        return MethodChoice(chosen=methods[0] if len(methods) == 1 else None, finals=tuple(methods), bd_rates={})

    def score(m: str) -> tuple[float, float]:
        if run.opts.choose_by == "kl":
            bd = bd_rates[m]["kl"]
            return (-bd if bd is not None else -math.inf, 0.0)
        gain = _mean_gain(cv, m, qs)
        kl = float(np.mean([cv[m][q].result.kl_mean for q in qs]))
        return (gain if math.isfinite(gain) else -math.inf, -kl)

    chosen = max(methods, key=score)
    for m in methods:
        run.say(f"cv {m}: mean held-out gain {100 * _mean_gain(cv, m, qs):+.2f} pt, BD-rate vs standard "
                f"{_pct(bd_rates[m]['top1'])} at equal top-1, {_pct(bd_rates[m]['kl'])} at equal KL")
    how = "BD-rate at equal KL" if run.opts.choose_by == "kl" else "mean top-1 gain"
    run.say(f"chosen by cross-validation ({how}): {chosen}")
    return MethodChoice(chosen=chosen, finals=(chosen,), bd_rates=bd_rates)


def _final_searches(run: _Run, methods: Sequence[str]) -> dict[str, dict[int, Any]]:
    """Stage 4: each method searches every member on all the images."""
    full_curve = curve_on(run.std_all, np.arange(run.evaluator.n))
    final: dict[str, dict[int, Any]] = {}
    for method in methods:
        final[method] = {}
        for q in run.opts.qualities:
            run.say(f"final {method} q{q}: search on all {run.evaluator.n} images")
            final[method][q] = run.search(run.evaluator, method, q, run.opts.seed + run.opts.k,
                                          run.root / "final" / f"{method}-q{q}.journal", full_curve)
    return final


def _heldout_check(run: _Run, cv: Mapping[str, Mapping[int, CrossvalMember]], choice: MethodChoice,
                   members_res: Mapping[int, Any]) -> FamilyFigures:
    """Stage 5: the chosen method's held-out members as a family against standard JPEG (BD-rates with
    bootstrap intervals, every member ahead?) and other encoders, beside the tuning images' figures."""
    qs, std, chosen = run.opts.qualities, run.std_all, choice.chosen
    assert chosen is not None
    held_res = {q: cv[chosen][q].result for q in qs}
    bd_held, bda_held = family_bd_rate(std, held_res)
    bd_tune, bda_tune = family_bd_rate(std, members_res)
    run.say(f"bootstrap intervals of the BD-rates ({BD_RESAMPLES} resamples of the images)")
    held_interval = family_bd_interval(std, held_res)
    held_kl_interval = family_bd_interval(std, held_res, metric="kl")
    # like the intervals, a family of one member has none (its McNemar p says it all)
    held_ahead = bootstrap_members_ahead(std, held_res).to_dict() if len(held_res) > 1 else None
    return FamilyFigures(
        crossval_bd_rate_vs_standard=bd_held, crossval_bd_accuracy_vs_standard=bda_held,
        crossval_bd_interval_vs_standard=held_interval, crossval_kl_bd_interval_vs_standard=held_kl_interval,
        crossval_members_ahead=held_ahead, tuning_bd_rate_vs_standard=bd_tune, tuning_bd_accuracy_vs_standard=bda_tune,
        encoders=_encoder_figures(run, held_res),
        method_choice={m: {str(q): {"heldout_top1": cv[m][q].result.top1,
                                    "gain_top1_at_equal_cr": _f(cv[m][q].comparison.delta_top1),
                                    "heldout_kl": cv[m][q].result.kl_mean} for q in qs} for m in cv},
        method_choice_bd_rate={m: {"crossval_bd_rate_vs_standard": choice.bd_rates[m]["top1"],
                                   "crossval_kl_bd_rate_vs_standard": choice.bd_rates[m]["kl"]} for m in cv},
        standard_curve=[{"quality": q, "top1": std[q].top1, "cr": std[q].cr} for q in run.curve_qs],
    )


def _encoder_figures(run: _Run, held_res: Mapping[int, Any]) -> dict[str, dict[str, Any]]:
    """Each other encoder's curve against standard JPEG, and the held-out family against it."""
    encoders: dict[str, dict[str, Any]] = {}
    for enc in run.opts.compare_encoders:
        try:
            enc_curve = evaluate_encoder_curve(run.store, enc, run.curve_qs)
        except DnnjpegError as exc:
            run.say(f"{enc}: not measured ({exc})")
            continue
        bd_std_enc, _ = family_bd_rate(run.std_all, enc_curve)
        bd_vs_enc, bda_vs_enc = family_bd_rate(enc_curve, held_res)
        encoders[enc] = {"bd_rate_vs_standard": bd_std_enc, "family_heldout_bd_rate_vs_encoder": bd_vs_enc,
                         "family_heldout_bd_accuracy_vs_encoder": bda_vs_enc,
                         "family_heldout_bd_interval_vs_encoder": family_bd_interval(enc_curve, held_res),
                         "family_heldout_kl_bd_interval_vs_encoder": family_bd_interval(enc_curve, held_res,
                                                                                        metric="kl")}
    return encoders


def _assemble(run: _Run, cv: Mapping[str, Mapping[int, CrossvalMember]], choice: MethodChoice,
              finals: Mapping[int, Any]) -> FamilyRecord:
    """Stage 6: the family file: members with provenance and metrics, the family's figures."""
    qs, ev, o, chosen = run.opts.qualities, run.evaluator, run.opts, choice.chosen
    assert chosen is not None
    members_res = {q: run.store.evaluate(finals[q].table) for q in qs}
    figures = _heldout_check(run, cv, choice, members_res)
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    provenance = _provenance(run, chosen, created)
    members = [_member(run, q, finals[q].table, members_res[q], cv[chosen][q], created) for q in qs]
    # `dnnjpeg tables` prints the name before the description: name the model only when it differs
    description = (("tables" if ev.model_name == run.name else f"tables for {ev.model_name}")
                   + f" size-matched to standard JPEG q{', q'.join(map(str, qs))} "
                   f"({chosen} search, {o.signal} objective, chosen by {o.k}-fold class-disjoint "
                   "cross-validation"
                   + (f"; tuned to be written by the {provenance.writer} encoder)" if provenance.writer else ")"))
    return FamilyRecord(name=run.name, description=description,
                        default_quality=50 if 50 in qs else qs[len(qs) // 2], members=tuple(members),
                        provenance=provenance.to_dict(), metrics=figures.to_dict())


def _provenance(run: _Run, chosen: str, created: str) -> TunedProvenance:
    ev, o = run.evaluator, run.opts
    return TunedProvenance(
        tool="dnnjpeg family", version=__version__, command=o.command, model=ev.model_name,
        model_fingerprint=getattr(ev.classifier, "fingerprint", None), data=ev.data_name,
        data_hash=ev.dataset.fingerprint(ev.protocol), n_images=ev.n, protocol=ev.protocol,
        writer=getattr(ev, "writer", None), methods_compared=list(o.methods), method=chosen, chosen_by=o.choose_by,
        budget=o.budget, seed=o.seed, signal=o.signal, objective=f"size-matched-{o.signal}:Q", projection=o.project,
        space=o.space, k=o.k, fold_seed=o.fold_seed, created=created, measured_by_dnnjpeg=True,
        machine=f"{platform.machine()} {platform.system()}, assembled and held-out members evaluated on "
                f"{device_label(ev)}",
        search_devices=dict(sorted(run.devices.items())),
    )


def _member(run: _Run, q: int, table: QTable, r: Any, c: CrossvalMember, created: str) -> FamilyMember:
    """One member: the final table, its figures on the tuning images and held out, its search's provenance."""
    std_q = run.std_all[q]
    cmp_t = compare(r, run.std_all)
    paired_t = _paired(r, std_q)
    tuning = TuningFigures(
        top1=r.top1, cr=r.cr, bytes_mean=r.bytes_mean, kl=r.kl_mean, standard_top1=std_q.top1,
        standard_cr=std_q.cr, standard_bytes_mean=std_q.bytes_mean, standard_kl=std_q.kl_mean,
        gain_top1_vs_size_matched_standard=r.top1 - std_q.top1, gain_top1_at_equal_cr=_f(cmp_t.delta_top1),
        p_value=_f(_pv(paired_t)), n=r.n)
    held, cmp, paired = c.result, c.comparison, c.paired
    crossval = CrossvalFigures(
        heldout_top1=held.top1, heldout_cr=held.cr, heldout_bytes_mean=held.bytes_mean, heldout_kl=held.kl_mean,
        standard_top1=std_q.top1, standard_cr=std_q.cr, standard_kl=std_q.kl_mean,
        gain_top1_vs_size_matched_standard=paired.delta, p_value=_f(_pv(paired)), ci_low=_f(paired.ci_low),
        ci_high=_f(paired.ci_high), gain_top1_at_equal_cr=_f(cmp.delta_top1), gain_ci_low=_f(cmp.ci_low),
        gain_ci_high=_f(cmp.ci_high), k=run.opts.k, n=held.n, fold_tables=c.fold_tables)
    prov = dict(table.meta.get("provenance", {}))
    prov.update({"tool": "dnnjpeg family", "command": run.opts.command, "created": created, "family": run.name})
    return FamilyMember(quality=q, table=table.replace(meta={}), name=f"{run.name}-q{q}", provenance=prov,
                        metrics={"tuning": tuning.to_dict(), "crossval": crossval.to_dict()})


def _devices(res: Any) -> Counter[str]:
    """A search's finished trials by what ran the model (``"unrecorded"`` for older journals)."""
    return Counter(row.get("device") or "unrecorded" for row in res.trials)


def _paired(a: Any, b: Any) -> Any:
    return paired_comparison(a.correct, b.correct)


def _pv(paired: Any) -> float:
    return paired.mcnemar.p_value if paired.mcnemar is not None else paired.ttest.p_value


def _mean_gain(cv: Mapping[str, Mapping[int, CrossvalMember]], method: str, qualities: Sequence[int]) -> float:
    """Mean held-out top-1 gain at equal CR of ``method`` over the members (finite gains only; NaN if none)."""
    gains = [cv[method][q].comparison.delta_top1 for q in qualities]
    gains = [g for g in gains if math.isfinite(g)]
    return float(np.mean(gains)) if gains else math.nan


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f}%"


def _p(paired: Any) -> str:
    p = _pv(paired)
    return f"{p:.3g}"


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
