""":func:`tune`: run a search method against an evaluator, persisting every evaluation in an Optuna study.

The loop of one worker::

    claim a stream (a lock) -> fail dead RUNNING trials -> rebuild the method by replaying the
    stream's finished trials -> repeat: tell the method other streams' new results, ask it for a
    table, create a trial, evaluate, tell the study and the method -> until the study holds
    ``budget`` COMPLETE + PRUNED (+ RUNNING) trials.

``budget`` is the total for the study, so calling :func:`tune` again with a larger budget only
adds the difference, and a run killed at any point and started again continues where it
stopped: finished evaluations are kept, only the one in flight is repeated.  ``workers > 1``
starts that many processes; processes on other machines pointed at the same PostgreSQL study
join the same search (each takes the next free stream).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import multiprocessing
import os
import pickle
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from .._settings import from_keywords
from ..evaluation.curve import SEARCH_CURVE_QUALITIES, CurvePoint, StandardCurve
from ..evaluation.evaluate import PER_IMAGE_FIELDS
from ..qtable import QTable
from ._optuna import quiet_optuna
from .base import SearchContext, SearchError, derive_seed, make_method, method_class
from .objectives import Objective, parse_objective
from .projection import SizeProjectedEvaluator, scale_table
from .space import SearchSpace
from .storage import StorageSpec, claim_stream, open_storage, parse_storage
from .study import (
    ASK_KEY,
    CURVE_KEY,
    METRICS_KEY,
    PAIR_KEY,
    SECONDS_KEY,
    SIZE_MATCH_KEY,
    VALUE_KEY,
    StudyConfig,
    budget_used,
    fail_trial,
    is_finished,
    open_study,
    reap_dead_trials,
    replay_stream,
    table_record,
    trial_stream,
    trial_table,
    trial_value,
)

__all__ = [
    "CURVE_QUALITIES", "Fidelity", "TuneOptions", "TuneOptionsError", "TuneResult", "device_label", "evaluator_identity",
    "size_match", "stream_seed", "tune",
]

#: Consecutive proposals of already evaluated tables answered from the study before one is evaluated anyway.
MAX_REPEATS = 25

#: Standard qualities measured for the objective's reference curve by default (the seed's 10..95).
CURVE_QUALITIES: tuple[int, ...] = SEARCH_CURVE_QUALITIES


def stream_seed(seed: int, stream: int) -> int:
    """Seed of a worker stream: ``seed`` itself for stream 0, a derived seed for the others.

    Example:
        >>> stream_seed(5, 0), stream_seed(5, 1) != 5
        (5, True)
    """
    return int(seed) if stream == 0 else derive_seed(seed, 1_000_003, stream)


@dataclass(frozen=True)
class Fidelity:
    """Successive halving over image counts: evaluate on ``min_images`` first, then ``eta`` times more
    at each rung up to all images, pruning (Optuna's ``SuccessiveHalvingPruner``) candidates that are
    not in the best ``1/eta`` of their rung.  Each rung's objective uses standard JPEG's curve
    measured on that rung's images.

    Example:
        >>> Fidelity.parse("50:3").rungs(500)
        [50, 150, 450, 500]
    """

    min_images: int
    eta: int = 3

    def __post_init__(self) -> None:
        if self.min_images < 1 or self.eta < 2:
            raise SearchError(f"fidelity needs min_images >= 1 and eta >= 2, got {self.min_images}, {self.eta}")

    @classmethod
    def parse(cls, spec: str | int | Fidelity | None) -> Fidelity | None:
        """``None``, ``MIN`` or ``MIN:ETA``."""
        if spec is None or isinstance(spec, Fidelity):
            return spec
        try:
            if isinstance(spec, int):
                return cls(spec)
            parts = str(spec).split(":")
            if len(parts) > 2:
                raise ValueError
            return cls(int(parts[0]), int(parts[1]) if len(parts) == 2 else 3)
        except ValueError:
            raise SearchError(f"fidelity {spec!r}: expected MIN_IMAGES or MIN_IMAGES:ETA, e.g. 50:3") from None

    def rungs(self, n: int) -> list[int]:
        out = []
        m = self.min_images
        while m < n:
            out.append(m)
            m *= self.eta
        return out + [n]

    def to_list(self) -> list[int]:
        return [self.min_images, self.eta]


@dataclass
class TuneResult:
    """The outcome of :func:`tune`.

    Attributes:
        table: the best table, with provenance and metrics in ``table.meta``.
        value: its objective value.
        metrics: its evaluation's aggregates (``Result.summary()``).
        trial: its trial number.
        study_name, storage: where the study lives (password masked).
        n_complete, n_pruned, n_failed: trial counts in the study.
        pareto: non-dominated tables on (accuracy signal, bytes), with metrics in their meta.
        trials: one dict per finished trial (number, state, stream, seq, value, metrics).
        curve: the standard-JPEG curve the objective used.
        config: the study's configuration.
        seconds: wall time of this call.
    """

    table: QTable
    value: float
    metrics: dict[str, Any]
    trial: int
    study_name: str
    storage: str
    n_complete: int
    n_pruned: int
    n_failed: int
    pareto: list[QTable]
    trials: list[dict[str, Any]]
    curve: Any = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def best_so_far(self) -> list[float]:
        """Running maximum of the objective over COMPLETE trials, in trial order."""
        out: list[float] = []
        best = -math.inf
        for t in self.trials:
            if t["state"] == "COMPLETE":
                best = max(best, t["value"])
                out.append(best)
        return out


class TuneOptionsError(SearchError, ValueError):
    """A bad :class:`TuneOptions` value (a :class:`~dnnjpeg.search.SearchError` that is also a ``ValueError``)."""


@contextlib.contextmanager
def _as_option_error() -> Iterator[None]:
    """A SearchError raised by a parser of one setting, as a TuneOptionsError."""
    try:
        yield
    except TuneOptionsError:
        raise
    except SearchError as exc:
        raise TuneOptionsError(exc.problem, fix=exc.fix) from None


def _count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive integer" if least == 1 else "a non-negative integer"
        raise TuneOptionsError(f"{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class TuneOptions:
    """Every setting of :func:`tune` (all but the evaluator and a precomputed curve), checked when made.

    Attributes:
        method: a registered method (:func:`~dnnjpeg.search.available_methods`).
        budget: total evaluations in the study (COMPLETE + PRUNED); a rerun adds only the difference.
        objective: an objective string or object (:mod:`dnnjpeg.search.objectives`).
        seed: the method's seed (stream ``k`` of the study uses a seed derived from it).
        storage: ``None`` (memory), a journal file path, or ``postgresql://`` / ``sqlite:///`` URL.
        study_name: default ``METHOD-OBJECTIVE-SPACE-seedS`` (plus the fidelity and the projection).
        space: search space (:class:`~dnnjpeg.search.SearchSpace` or its string).
        workers: worker processes to start (needs a persistent storage); each owns one stream.
        quality: if given, scale the best table to the size of standard JPEG at this quality on the
            evaluator's images (evaluated once more, outside the budget).
        project: evaluate every candidate scaled to standard JPEG's size at ``quality``
            (:mod:`dnnjpeg.search.projection`): the search explores shapes only.  Needs ``quality``.
        curve_qualities: standard qualities of the objective's reference curve, when it is measured.
        fidelity: successive halving over images (:class:`Fidelity`, ``"MIN"`` or ``"MIN:ETA"``).
        method_options: the method's options (see each method's class).
        progress: show a progress bar with the best value so far.
        command: the command line, recorded in the provenance.

    Raises:
        TuneOptionsError: a bad value (a :class:`~dnnjpeg.search.SearchError` and a ``ValueError``),
            named in the message.

    Example:
        >>> TuneOptions("bandit", budget=40, seed=1).budget
        40
        >>> try:
        ...     TuneOptions("sorted", budget=0)
        ... except ValueError as exc:
        ...     print(exc)
        budget must be a positive integer, got 0
    """

    method: str = "sorted"
    budget: int = 20
    objective: str | Objective = "fitness"
    seed: int = 0
    storage: str | os.PathLike[str] | None = None
    study_name: str | None = None
    space: str | SearchSpace = "single"
    workers: int = 1
    quality: int | None = None
    project: bool = False
    curve_qualities: Sequence[int] = CURVE_QUALITIES
    fidelity: str | int | Fidelity | None = None
    method_options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = False
    command: str | None = None

    def __post_init__(self) -> None:
        _count("budget", self.budget, 1)
        _count("workers", self.workers, 1)
        _count("seed", self.seed, 0)
        q = self.quality
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100):
            raise TuneOptionsError(f"quality must be an integer in 1..100, got {q!r}")
        if self.project and q is None:
            raise TuneOptionsError(
                "project=True needs quality (the standard quality whose size every candidate is scaled to)")
        with _as_option_error():
            cls = method_class(self.method)
            parse_objective(self.objective)
            SearchSpace.parse(self.space)  # a SearchSpaceError is a ValueError already
            fid = Fidelity.parse(self.fidelity)
            if fid is not None and len(cls.directions) > 1:
                raise SearchError(f"method {self.method!r} is multi-objective; Optuna cannot prune it (drop --fidelity)")
            spec = parse_storage(self.storage)
        if self.workers > 1 and spec.kind == "memory":
            raise TuneOptionsError("workers > 1 need a persistent storage (a journal file path or a postgresql:// URL)")
        self._normalise()

    def _normalise(self) -> None:
        """``method_options`` as this object's own dict; ``curve_qualities`` as a tuple of ints."""
        mo = {} if self.method_options is None else self.method_options
        if not isinstance(mo, Mapping):
            raise TuneOptionsError(f"method_options must be a mapping of option names to values, got {mo!r}")
        try:
            qs = tuple(int(x) for x in self.curve_qualities)
        except (TypeError, ValueError):
            raise TuneOptionsError(f"curve_qualities must be integers, got {self.curve_qualities!r}") from None
        object.__setattr__(self, "method_options", dict(mo))
        object.__setattr__(self, "curve_qualities", qs)

    @classmethod
    def from_kwargs(cls, options: TuneOptions | Mapping[str, Any] | None = None, /, **kwargs: Any) -> TuneOptions:
        """``options`` (default: the defaults) with keyword arguments named like the fields, as :func:`tune`
        takes them.  ``options`` that is a mapping is ``method_options`` (tune's spelling from before
        TuneOptions).

        Raises:
            ValueError: a keyword that contradicts ``options``, or a bad value.
            TypeError: an unknown keyword.
        """
        if options is not None and not isinstance(options, TuneOptions):
            if "method_options" in kwargs:
                raise TuneOptionsError("options= (when a mapping: the method's options) and method_options= are "
                                       "one setting; give it once")
            options, kwargs = None, {**kwargs, "method_options": options}
        return from_keywords(cls, options, kwargs, "tune option")


# -- evaluator helpers ---------------------------------------------------------------------------
def evaluator_identity(evaluator: Any) -> dict[str, Any]:
    """Model, data and their fingerprints of an evaluator (recorded in the study and the provenance)."""
    if not callable(getattr(evaluator, "evaluate", None)):
        raise SearchError(f"evaluator must have an evaluate(table) method, got {type(evaluator).__name__}")
    protocol = str(getattr(evaluator, "protocol", ""))
    clf = getattr(evaluator, "classifier", None)
    dataset = getattr(evaluator, "dataset", None)
    if dataset is not None and hasattr(dataset, "fingerprint"):
        data_fp = dataset.fingerprint(protocol)
    elif callable(getattr(evaluator, "fingerprint", None)):
        data_fp = evaluator.fingerprint()
    else:
        raise SearchError(f"evaluator {type(evaluator).__name__} has no dataset fingerprint (dataset.fingerprint or fingerprint())")
    return {
        "model": str(getattr(evaluator, "model_name", type(evaluator).__name__)),
        "model_fingerprint": getattr(clf, "fingerprint", None),
        "data": str(getattr(evaluator, "data_name", "")),
        "data_fingerprint": str(data_fp),
        "protocol": protocol,
        "n_images": int(evaluator.n),
        "writer": getattr(evaluator, "writer", None),
    }


def _concat(a: Any, b: Any) -> Any:
    parts = {f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in PER_IMAGE_FIELDS}
    return dataclasses.replace(a, **parts, seconds=a.seconds + b.seconds, extra=dict(a.extra))


def _jsonable_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            out[k] = int(v)
        else:
            f = float(v)
            out[k] = f if math.isfinite(f) else None
    return out


def size_match(evaluator: Any, table: QTable, quality: int, iterations: int = 16) -> tuple[QTable, float, float]:
    """Scale every step of ``table`` so its mean JPEG size is the largest not above standard JPEG's
    at ``quality`` (4:2:0) on the evaluator's images.  Returns ``(table, scale, bytes_mean)``."""
    target = float(np.mean(evaluator.sizes(QTable.standard(int(quality)))))
    lo, hi = math.log(1 / 32), math.log(32)
    best: tuple[QTable, float, float] | None = None
    for _ in range(iterations):
        mid = (lo + hi) / 2
        t = scale_table(table, math.exp(mid))
        size = float(np.mean(evaluator.sizes(t)))
        if size <= target:
            best, hi = (t, math.exp(mid), size), mid
        else:
            lo = mid
    if best is None:
        t = scale_table(table, math.exp(hi))
        best = (t, math.exp(hi), float(np.mean(evaluator.sizes(t))))
    return best


def _size_matched(study: Any, evaluator: Any, table: QTable, trial: int, quality: int,
                  objective: Objective) -> tuple[QTable, float, float, dict[str, Any]]:
    """:func:`size_match` of the best trial's ``table`` and its metrics, kept in the study: a rerun of a
    finished study whose best trial has not changed reads them instead of encoding and evaluating again
    (minutes per search with a slow writer such as trellis), when its model runs on the same device (a
    study shared by a GPU and a CPU machine: each measures its own)."""
    key = f"{SIZE_MATCH_KEY}.q{int(quality)}"
    device = device_label(evaluator)
    stored = study.user_attrs.get(key)
    if isinstance(stored, Mapping) and stored.get("trial") == trial and stored.get("device") == device:
        scale = float(stored["scale"])
        return scale_table(table, scale), scale, float(stored["bytes_mean"]), dict(stored["metrics"])
    matched, scale, size = size_match(evaluator, table, quality)
    res = evaluator.evaluate(matched)
    metrics = _jsonable_metrics(res.summary())
    metrics["objective"] = float(objective(res.summary()))
    study.set_user_attr(key, {"trial": int(trial), "device": device, "scale": float(scale), "bytes_mean": float(size),
                              "metrics": metrics})
    return matched, scale, size, metrics


def device_label(evaluator: Any) -> str:
    """What ran an evaluator's model: ``"cpu"``, or ``"cuda (NVIDIA H100 ...)"`` with the card's name.

    Example:
        >>> class Ev:
        ...     device = "cpu"
        >>> device_label(Ev())
        'cpu'
    """
    device = str(getattr(evaluator, "device", "unknown"))
    if device.startswith("cuda"):
        try:
            import torch

            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        except Exception:  # noqa: BLE001 - a name is a nicety, the device string is the record
            return device
    return device


# -- the worker -----------------------------------------------------------------------------------
@dataclass
class _Job:
    """Everything a worker needs besides the evaluator (picklable for worker processes)."""

    spec: StorageSpec
    study_name: str
    method: str
    space: str
    seed: int
    budget: int
    options: dict[str, Any]
    objective: Objective
    fidelity: Fidelity | None
    n_images: int
    rung_objectives: dict[int, Objective] = field(default_factory=dict)
    quality: int | None = None  # the standard quality every candidate is size-projected to, if any


def _pruner(fidelity: Fidelity | None) -> Any:
    import optuna

    if fidelity is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=fidelity.min_images, reduction_factor=fidelity.eta, min_early_stopping_rate=0
    )


def _evaluate(job: _Job, evaluator: Any, table: QTable, trial: Any) -> tuple[bool, Any]:
    """Evaluate ``table``; with a fidelity schedule, report each rung and stop if pruned.
    Returns ``(pruned, result)``."""
    if job.fidelity is None:
        return False, evaluator.evaluate(table)
    order = fidelity_order(job.seed, job.n_images)
    result = None
    prev = 0
    for n in job.fidelity.rungs(job.n_images):
        part = evaluator.evaluate(table, indices=order[prev:n])
        prev = n
        result = part if result is None else _concat(result, part)
        if n < job.n_images:
            trial.report(job.rung_objectives[n](result.summary()), step=n)
            if trial.should_prune():
                return True, result
    return False, result


def fidelity_order(seed: int, n: int) -> np.ndarray:
    """The fixed random image order of a study's successive-halving rungs (rung ``k`` = its first ``n_k``)."""
    return np.random.default_rng(derive_seed(seed, 7_777)).permutation(n)


def _work(job: _Job, evaluator: Any, storage: Any = None, on_trial: Callable[[Any], None] | None = None) -> int:
    """Run one worker until the study's budget is used; returns the stream it owned."""
    import optuna

    storage = storage if storage is not None else open_storage(job.spec)
    with quiet_optuna():
        study = optuna.load_study(
            study_name=job.study_name, storage=storage, sampler=optuna.samplers.RandomSampler(), pruner=_pruner(job.fidelity)
        )
    claim = claim_stream(job.spec, job.study_name)
    try:
        reap_dead_trials(study, job.spec, job.study_name, claim)
        if budget_used(study.get_trials(deepcopy=False)) >= job.budget:
            return claim.stream  # finished: nothing to ask, so no method to build and replay (fisher's takes minutes)
        cls = method_class(job.method)
        context = SearchContext(images=evaluator.images, classifier=getattr(evaluator, "classifier", None),
                                quality=job.quality) if cls.needs_images else None
        method = make_method(job.method, job.space, seed=stream_seed(job.seed, claim.stream), budget=job.budget,
                             context=context, **job.options)
        try:
            _loop(job, evaluator, study, method, claim.stream, on_trial)
        finally:
            method.close()
    finally:
        claim.release()
    return claim.stream


def _loop(job: _Job, evaluator: Any, study: Any, method: Any, stream: int, on_trial: Callable[[Any], None] | None) -> None:
    """Replay the stream, then ask / evaluate / tell until the study's budget is used."""
    from optuna.trial import TrialState

    known = replay_stream(study, method, stream)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    device = device_label(evaluator)
    done: dict[QTable, Any] = {}  # evaluated tables -> their first finished trial
    seen: set[int] = set()
    while True:
        trials = study.get_trials(deepcopy=False)
        if budget_used(trials) >= job.budget:
            return
        new = sorted(
            (t for t in trials if is_finished(t) and t.number not in known and trial_stream(t) not in (None, stream)),
            key=lambda t: t.number,
        )
        for t in new:
            method.tell(trial_table(t), trial_value(t, method.n_objectives))
            known.add(t.number)
        # a table the study already holds is answered from it, not evaluated again
        for t in trials:
            if t.number not in seen and is_finished(t) and ASK_KEY in t.user_attrs:
                seen.add(t.number)
                done.setdefault(trial_table(t), t)
        repeats: list[int] = []
        table = method.ask()
        while table in done and len(repeats) < MAX_REPEATS:
            hit = done[table]
            method.tell(table, trial_value(hit, method.n_objectives))
            known.add(hit.number)
            repeats.append(hit.number)
            table = method.ask()
        with quiet_optuna():
            trial = study.ask()
        trial.set_user_attr(
            ASK_KEY,
            {"table": table_record(table), "stream": stream, "seq": method.n_asked - 1,
             "observed": [t.number for t in new], "repeats": repeats, "worker": worker, "device": device},
        )
        live = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if sum(t.number < trial.number for t in live) >= job.budget:
            fail_trial(study, trial, "over budget: other workers used it up")
            return
        t0 = time.perf_counter()
        try:
            pruned, result = _evaluate(job, evaluator, table, trial)
            summary = result.summary()
            scalar = float(job.objective(summary))
            pair = [float(x) for x in job.objective.pair(summary)]
            trial.set_user_attr(METRICS_KEY, _jsonable_metrics(summary))
            trial.set_user_attr(VALUE_KEY, scalar)
            trial.set_user_attr(PAIR_KEY, pair)
            trial.set_user_attr(SECONDS_KEY, round(time.perf_counter() - t0, 3))
        except BaseException as exc:
            fail_trial(study, trial, f"error: {type(exc).__name__}: {exc}")
            raise
        value: Any
        with quiet_optuna():
            if pruned:
                study.tell(trial, state=TrialState.PRUNED)
                value = None
            elif method.n_objectives == 1:
                study.tell(trial, scalar)
                value = scalar
            else:
                study.tell(trial, pair)
                value = tuple(pair)
        method.tell(table, value)
        known.add(trial.number)
        if on_trial is not None:
            on_trial(study)


def _worker_main(job: _Job, evaluator_blob: bytes, threads: int, errors: Any) -> None:
    """Entry point of a worker process."""
    try:
        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:
            pass
        evaluator = pickle.loads(evaluator_blob)
        _work(job, evaluator)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        errors.put(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        raise SystemExit(1) from None


# -- progress ---------------------------------------------------------------------------------------
class _Progress:
    def __init__(self, enabled: bool, budget: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=budget, desc=desc, unit="eval", dynamic_ncols=True)

    def update(self, study: Any) -> None:
        if self.bar is None:
            return
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        self.bar.n = len(trials)
        scored = [t for t in trials if t.state == TrialState.COMPLETE and VALUE_KEY in t.user_attrs]
        if scored:
            best = max(scored, key=lambda t: t.user_attrs[VALUE_KEY])
            m = best.user_attrs.get(METRICS_KEY, {})
            self.bar.set_postfix(best=f"{best.user_attrs[VALUE_KEY]:+.4f}", top1=f"{m.get('top1') or 0:.4f}",
                                 cr=f"{m.get('cr') or 0:.2f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- curve ------------------------------------------------------------------------------------------
def _load_curve(curve: Any) -> Any:
    if curve is None or isinstance(curve, StandardCurve):
        return curve
    try:
        return StandardCurve.from_json(curve)
    except (OSError, ValueError, KeyError) as exc:
        raise SearchError(f"cannot read standard curve {curve}: {exc}") from None


def _extend_curve(curve: Any, evaluator: Any, qualities: Sequence[int]) -> Any:
    have = set(curve.qualities.tolist())
    missing = sorted(set(qualities) - have)
    if not missing:
        return curve
    points = list(curve.points) + [CurvePoint.from_result(q, evaluator.evaluate_standard(q)) for q in missing]
    return StandardCurve(sorted(points, key=lambda p: p.quality), model=curve.model, data=curve.data,
                         protocol=curve.protocol, reference=dict(curve.reference), fit_qualities=curve.fit_qualities)


def _study_curve(study: Any, evaluator: Any, setup: _Setup, curve: Any) -> Any:
    """Standard JPEG's curve for the objective: the study's, else ``curve`` (given), else measured at
    ``curve_qualities``; extended to the qualities the objective needs and kept in the study."""
    ident, opts = setup.ident, setup.options
    need = sorted(set(setup.objective.required_qualities()))
    stored = study.user_attrs.get(CURVE_KEY)
    if stored is not None:
        c = StandardCurve.from_dict(stored)
    elif curve is not None:
        c = _load_curve(curve)
        n = c.points[0].n if c.points else 0
        if n != ident["n_images"] or (c.model and c.model != ident["model"]):
            raise SearchError(
                f"the standard curve given was measured with {c.model or '?'} on {n} images; "
                f"this search uses {ident['model']} on {ident['n_images']}"
            )
    else:
        qs = sorted({int(q) for q in opts.curve_qualities} | set(need))
        if len(qs) < 3:
            raise SearchError(f"the standard curve needs at least 3 qualities, got {qs}")
        c = StandardCurve.compute(evaluator, qs, progress=opts.progress, keep_results=False)
    extended = _extend_curve(c, evaluator, need)
    if stored is None or extended is not c:
        study.set_user_attr(CURVE_KEY, extended.to_dict())
    return extended


def _rung_objectives(study: Any, evaluator: Any, setup: _Setup, curve: Any) -> dict[int, Objective]:
    """The objective of each partial rung, bound to standard JPEG's curve on that rung's images
    (measured once per study and stored in it), so a rung scores candidates as the full objective
    would on those images."""
    fidelity, n_images, progress = setup.fidelity, setup.ident["n_images"], setup.options.progress
    if fidelity is None:
        return {}
    order = fidelity_order(setup.options.seed, n_images)
    out: dict[int, Objective] = {}
    for n in fidelity.rungs(n_images)[:-1]:
        key = f"{CURVE_KEY}.rung{n}"
        stored = study.user_attrs.get(key)
        if stored is not None:
            c = StandardCurve.from_dict(stored)
        else:
            c = StandardCurve.compute(evaluator, curve.qualities.tolist(), indices=order[:n], progress=progress,
                                      keep_results=False)
            study.set_user_attr(key, c.to_dict())
        out[n] = setup.objective.bind(c)
    return out


# -- results ----------------------------------------------------------------------------------------
def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` (signal up, bytes down) dominates ``b``."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not is_finished(t) or ASK_KEY not in t.user_attrs:
            continue
        ask = t.user_attrs[ASK_KEY]
        rows.append({
            "number": t.number, "state": t.state.name, "stream": ask["stream"], "seq": ask["seq"],
            "value": t.user_attrs.get(VALUE_KEY), "pair": t.user_attrs.get(PAIR_KEY),
            "metrics": t.user_attrs.get(METRICS_KEY, {}), "seconds": t.user_attrs.get(SECONDS_KEY),
            "table": ask["table"], "device": ask.get("device"),
        })
    return rows


def _table_from_row(row: Mapping[str, Any], meta: dict[str, Any]) -> QTable:
    t = row["table"]
    return QTable(t["luma"], t["chroma"], subsampling=t["subsampling"], meta=meta)


# -- the public entry point ---------------------------------------------------------------------------
def tune(
    evaluator: Any,
    method: str | None = None,
    budget: int | None = None,
    objective: str | Objective | None = None,
    seed: int | None = None,
    storage: str | os.PathLike[str] | None = None,
    study_name: str | None = None,
    *,
    curve: Any = None,
    options: TuneOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> TuneResult:
    """Search a quantization table for ``evaluator`` with ``method``; every evaluation goes into an Optuna study.

    Args:
        evaluator: a :class:`dnnjpeg.evaluation.evaluate.Evaluator` (or anything with its interface, e.g.
            :class:`~dnnjpeg.search.psnr.PSNREvaluator`); use ``evaluator.subset(idx)`` to tune on a fold.
        method, budget, objective, seed, storage, study_name: as in :class:`TuneOptions` (``None``:
            ``options``' value, by default TuneOptions' default).
        curve: a :class:`dnnjpeg.evaluation.curve.StandardCurve` or its JSON path for the objective, measured
            on the same images; default: measured at ``curve_qualities`` and kept in the study.
        options: every setting in one :class:`TuneOptions`.  A mapping here is the method's options
            (``method_options``, the spelling from before TuneOptions).
        **kwargs: any other field of :class:`TuneOptions` (``space=``, ``workers=``, ``quality=``,
            ``project=``, ``curve_qualities=``, ``fidelity=``, ``method_options=``, ``progress=``,
            ``command=``); each must agree with ``options`` when both are given.

    Raises:
        SearchError: a bad setting (then also a ``ValueError``), a study that holds another search, a
            failed evaluation.

    Example:
        >>> from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos
        >>> ev = PSNREvaluator(synthetic_photos(2, 32))
        >>> res = tune(ev, "sorted", budget=3, objective="fitness-ce", curve_qualities=(20, 50, 80))
        >>> len(res.trials), res.table.meta["provenance"]["method"]
        (3, 'sorted')
        >>> opts = TuneOptions("sorted", budget=3, objective="fitness-ce", curve_qualities=(20, 50, 80))
        >>> tune(ev, options=opts).value == res.value
        True
    """
    t_start = time.perf_counter()
    named = {"method": method, "budget": budget, "objective": objective, "seed": seed, "storage": storage,
             "study_name": study_name}
    opts = TuneOptions.from_kwargs(options, **{k: v for k, v in named.items() if v is not None}, **kwargs)
    setup = _setup(evaluator, opts)
    store = open_storage(setup.spec)
    study = open_study(store, setup.spec, setup.name, setup.config, setup.directions, _pruner(setup.fidelity))
    std_curve = _study_curve(study, evaluator, setup, curve)
    job = _make_job(setup, study, evaluator, std_curve)
    _search(job, evaluator, opts, store, study)
    return _result(study, setup, job.objective, std_curve, evaluator, t_start)


@dataclass
class _Setup:
    """A checked search: the settings parsed, the evaluator identified, the study named and configured."""

    options: TuneOptions
    objective: Objective
    space: SearchSpace
    fidelity: Fidelity | None
    spec: StorageSpec
    ident: dict[str, Any]
    name: str
    config: StudyConfig
    directions: Sequence[str]


def _setup(evaluator: Any, opts: TuneOptions) -> _Setup:
    """Check what needs the evaluator (the method's options, the fidelity against its images) and
    describe the study; nothing is evaluated yet."""
    cls = method_class(opts.method)
    obj, sp, fid = parse_objective(opts.objective), SearchSpace.parse(opts.space), Fidelity.parse(opts.fidelity)
    projection = opts.quality if opts.project else None
    # fail early on bad options (a small grey stand-in image for methods that need images)
    make_method(opts.method, sp, seed=opts.seed, budget=opts.budget, context=SearchContext(
        images=np.full((1, 16, 16, 3), 128, np.uint8), classifier=getattr(evaluator, "classifier", None),
        quality=projection), **opts.method_options)
    spec = parse_storage(opts.storage)
    ident = evaluator_identity(evaluator)
    if fid is not None and fid.min_images >= ident["n_images"]:
        raise SearchError(f"fidelity starts at {fid.min_images} images but the evaluator has only {ident['n_images']}")
    name = opts.study_name or (f"{opts.method}-{obj.spec}-{sp}-seed{opts.seed}"
                               + (f"-fid{fid.min_images}x{fid.eta}" if fid else "")
                               + (f"-proj{opts.quality}" if opts.project else ""))
    config = StudyConfig(
        method=opts.method, objective=obj.spec, space=str(sp), seed=opts.seed, options=opts.method_options,
        model=ident["model"], model_fingerprint=ident["model_fingerprint"], data=ident["data"],
        data_fingerprint=ident["data_fingerprint"], protocol=ident["protocol"], n_images=ident["n_images"],
        writer=ident["writer"], fidelity=None if fid is None else fid.to_list(), projection=projection,
    )
    return _Setup(opts, obj, sp, fid, spec, ident, name, config, cls.directions)


def _make_job(setup: _Setup, study: Any, evaluator: Any, curve: Any) -> _Job:
    """The workers' job: the objective bound to the study's curve (and each rung's, with a fidelity)."""
    opts, fid, n = setup.options, setup.fidelity, setup.ident["n_images"]
    bound = setup.objective.bind(_bare_curve(curve))
    job = _Job(setup.spec, setup.name, opts.method, str(setup.space), opts.seed, opts.budget, opts.method_options,
               bound, fid, n, quality=opts.quality if opts.project else None)
    if fid is not None:
        job.rung_objectives = _rung_objectives(study, evaluator, setup, curve)
    return job


def _search(job: _Job, evaluator: Any, opts: TuneOptions, store: Any, study: Any) -> None:
    """Run the workers (this process, or ``opts.workers`` processes) until the study's budget is used."""
    searched = evaluator
    if opts.project:
        searched = SizeProjectedEvaluator(evaluator, opts.quality)
    bar = _Progress(opts.progress, opts.budget, f"tune {opts.method}")
    try:
        bar.update(study)
        if opts.workers == 1:
            _work(job, searched, store, on_trial=bar.update)
        else:
            _run_processes(job, searched, opts.workers, bar, study)
    finally:
        bar.close()


def _bare_curve(curve: Any) -> Any:
    """The curve without per-quality Results (small to pickle)."""
    return StandardCurve.from_dict(curve.to_dict())


def _run_processes(job: _Job, evaluator: Any, workers: int, bar: _Progress, study: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    blob = pickle.dumps(evaluator)
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_worker_main, args=(job, blob, threads, errors), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / workers)
            bar.update(study)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        raise
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if messages:
        raise SearchError(f"a tuning worker failed: {messages[0]}")
    if bad:
        raise SearchError(f"tuning workers exited with codes {bad}")


def _result(study: Any, setup: _Setup, objective: Objective, curve: Any, evaluator: Any, t_start: float) -> TuneResult:
    """The study's best table (size-matched with ``quality``), its Pareto front and every trial."""
    from optuna.trial import TrialState

    name, opts = setup.name, setup.options
    rows = _trial_rows(study)
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if not complete:
        raise SearchError(f"study {name!r} has no completed evaluation")
    best = max(complete, key=lambda r: (r["value"], -r["number"]))
    n_failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    provenance = _provenance(setup, rows, complete, best, curve, objective)
    metrics = {**best["metrics"], "objective": best["value"]}
    table = _table_from_row(best, {"name": f"tuned-{opts.method}", "provenance": provenance, "metrics": metrics})
    if opts.quality is not None:
        matched, scale, size, m = _size_matched(study, evaluator, table, best["number"], opts.quality, objective)
        provenance = {**provenance, "size_matched": {"quality": opts.quality, "scale": scale, "bytes_mean": size,
                                                     "search_metrics": metrics}}
        table = matched.replace(meta={"name": f"tuned-{opts.method}", "quality": opts.quality,
                                      "provenance": provenance, "metrics": m})
        metrics = m
    return TuneResult(
        table=table, value=float(metrics["objective"]), metrics=metrics, trial=best["number"], study_name=name,
        storage=setup.spec.display, n_complete=len(complete), n_pruned=provenance["trials_pruned"],
        n_failed=n_failed, pareto=_pareto(complete), trials=rows, curve=curve, config=setup.config.to_dict(),
        seconds=time.perf_counter() - t_start,
    )


def _provenance(setup: _Setup, rows: list[dict[str, Any]], complete: list[dict[str, Any]], best: Mapping[str, Any],
                curve: Any, objective: Objective) -> dict[str, Any]:
    """The best table's ``provenance``: the search, the study, the data and the standard curve."""
    config, opts = setup.config, setup.options
    signal_fit = None
    try:
        signal_fit = curve.fitness(objective.signal).to_dict()
    except (ValueError, KeyError):
        pass
    provenance: dict[str, Any] = {
        "tool": "dnnjpeg tune",
        "version": __version__,
        "method": config.method,
        "options": config.to_dict()["options"],
        "objective": config.objective,
        "space": config.space,
        "budget": opts.budget,
        "seed": config.seed,
        "study": setup.name,
        "storage": setup.spec.display,
        "model": config.model,
        "model_fingerprint": config.model_fingerprint,
        "data": config.data,
        "data_hash": config.data_fingerprint,
        "protocol": config.protocol,
        "n_images": config.n_images,
        "fidelity": config.to_dict()["fidelity"],
        "projection": config.projection,
        **({"writer": config.writer} if config.writer else {}),
        "trial": best["number"],
        "trials_complete": len(complete),
        "trials_pruned": sum(r["state"] == "PRUNED" for r in rows),
        "standard_curve": {"qualities": curve.qualities.tolist(), "signal": objective.signal, "fitness": signal_fit},
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    if opts.command:
        provenance["command"] = opts.command
    return provenance


def _pareto(complete: list[dict[str, Any]]) -> list[QTable]:
    """The non-dominated COMPLETE trials' tables on (accuracy signal, bytes), smallest first."""
    front = [r for r in complete if not any(_dominates(o["pair"], r["pair"]) for o in complete)]
    front.sort(key=lambda r: r["pair"][1])
    return [_table_from_row(r, {"name": f"pareto-{r['number']}", "metrics": {**r["metrics"], "objective": r["value"]}})
            for r in front]
