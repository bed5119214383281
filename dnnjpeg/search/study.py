"""The Optuna study behind a tuning run: its configuration, its trials, and resuming from them.

Every evaluation is one Optuna trial.  A trial's user attributes hold (keys prefixed ``dnnjpeg.``):

``ask``
    ``{"table": {"luma", "chroma", "subsampling"}, "stream", "seq", "observed", "repeats", "worker",
    "device"}``: the proposed table, the worker stream that proposed it, the proposal's index in
    that stream, the numbers of other streams' trials the stream's method was told just before
    proposing it, the trials whose tables the method proposed again just before (answered from
    the study instead of being evaluated twice), the worker (``host:pid``) and what ran its model
    (:func:`~dnnjpeg.search.runner.device_label`; absent in journals written before it was recorded).
``metrics``, ``value``, ``pair``, ``seconds``
    the evaluation's ``Result.summary()``, the scalar objective, ``(signal, bytes)`` and the time.
``failed``
    why a trial was marked FAIL (its worker died, over budget, an error).

The study's user attributes hold the run's configuration (``dnnjpeg.config``: method, objective,
space, seed, options, model and data fingerprints) and the standard-JPEG curve the objective uses
(``dnnjpeg.evaluation.curve``).  Resuming (:func:`replay_stream`) rebuilds a stream's method by telling it,
in order, exactly what it was told the first time, so it continues where it stopped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..qtable import QTable
from ._optuna import quiet_optuna
from .base import SearchError, SearchMethod, Value
from .storage import StorageSpec, StreamLock, open_storage, parse_storage, probe_stream

__all__ = [
    "ASK_KEY",
    "CONFIG_KEY",
    "CURVE_KEY",
    "FAILED_KEY",
    "METRICS_KEY",
    "PAIR_KEY",
    "SIZE_MATCH_KEY",
    "VALUE_KEY",
    "StudyConfig",
    "budget_used",
    "fail_trial",
    "is_finished",
    "load_study",
    "open_study",
    "reap_dead_trials",
    "replay_stream",
    "table_record",
    "trial_stream",
    "trial_table",
    "trial_value",
]

ASK_KEY = "dnnjpeg.ask"
METRICS_KEY = "dnnjpeg.metrics"
VALUE_KEY = "dnnjpeg.value"
PAIR_KEY = "dnnjpeg.pair"
SECONDS_KEY = "dnnjpeg.seconds"
FAILED_KEY = "dnnjpeg.failed"
CONFIG_KEY = "dnnjpeg.config"
CURVE_KEY = "dnnjpeg.curve"
#: ``SIZE_MATCH_KEY + ".q{quality}"``: the best trial's size-matched scale and metrics, and the device that
#: measured them (see ``tune(quality=...)``).
SIZE_MATCH_KEY = "dnnjpeg.size_matched"

#: Config fields that must match when a study is reopened.
_IDENTITY_FIELDS = ("method", "objective", "space", "seed", "options", "model", "model_fingerprint", "data_fingerprint",
                    "protocol", "n_images", "fidelity", "projection", "writer")


@dataclass(frozen=True)
class StudyConfig:
    """What a study tunes; a reopened study must have been created with the same values."""

    method: str
    objective: str
    space: str
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)
    model: str = ""
    model_fingerprint: str | None = None
    data: str = ""
    data_fingerprint: str = ""
    protocol: str = ""
    n_images: int = 0
    fidelity: Sequence[Any] | None = None
    projection: int | None = None  # the quality every candidate is scaled to (tune(project=True))
    writer: str | None = None  # the encoder family writing candidates (Evaluator(writer=)); None: libjpeg

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = json.loads(json.dumps(dict(self.options), default=list))
        d["fidelity"] = None if self.fidelity is None else list(self.fidelity)
        return d

    def differences(self, stored: Mapping[str, Any]) -> list[str]:
        """Human-readable mismatches against a stored config dict."""
        mine = self.to_dict()
        out = []
        for key in _IDENTITY_FIELDS:
            a, b = stored.get(key), mine.get(key)
            if a != b:
                out.append(f"{key}: study has {a!r}, this run has {b!r}")
        return out


def open_study(
    storage: Any, spec: StorageSpec, study_name: str, config: StudyConfig, directions: Sequence[str], pruner: Any = None
) -> Any:
    """Create the study or reopen it, checking that it tunes the same thing."""
    import optuna


    with quiet_optuna():
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                directions=list(directions),
                sampler=optuna.samplers.RandomSampler(),
                pruner=pruner,
                load_if_exists=True,
            )
        except Exception as exc:  # noqa: BLE001 - any storage error becomes one clear message
            raise SearchError(f"cannot open study {study_name!r} in {spec.display}: {type(exc).__name__}: {exc}") from None
    have = [d.name.lower() for d in study.directions]
    if have != list(directions):
        raise SearchError(
            f"study {study_name!r} in {spec.display} optimises {have}, this run needs {list(directions)}; "
            "use another --study name"
        )
    stored = study.user_attrs.get(CONFIG_KEY)
    if stored is None:
        study.set_user_attr(CONFIG_KEY, config.to_dict())
    else:
        diffs = config.differences(stored)
        if diffs:
            hint = ""
            if any(d.startswith("model_fingerprint") for d in diffs):
                hint = ("; if it was made with the model's batch norms left unfolded (--no-fold-batchnorm, or by "
                        "dnnjpeg before it folded them), add --no-fold-batchnorm, or drop it if this run has it")
            raise SearchError(
                f"study {study_name!r} in {spec.display} was made for a different run ({'; '.join(diffs)}); "
                f"use another --study name or storage{hint}"
            )
    return study


def load_study(storage: str | os.PathLike[str], study_name: str) -> Any:
    """The existing Optuna study ``study_name`` in ``storage`` (a journal path or an RDB URL, as ``--storage``).

    For reading a finished or running study (its trials: :func:`trial_table`, their ``user_attrs``).

    Raises:
        SearchError: the storage holds no study of that name, or cannot be opened.
    """
    import optuna


    spec = parse_storage(storage)
    with quiet_optuna():
        try:
            return optuna.load_study(study_name=study_name, storage=open_storage(spec))
        except KeyError:
            raise SearchError(f"no study {study_name!r} in {spec.display}") from None


# -- trial records -------------------------------------------------------------------------
def table_record(table: QTable) -> dict[str, Any]:
    """The JSON form of a table kept in a trial."""
    return {"luma": list(table.luma), "chroma": list(table.chroma), "subsampling": table.subsampling}


def _ask_attrs(trial: Any) -> Mapping[str, Any] | None:
    return trial.user_attrs.get(ASK_KEY)


def trial_table(trial: Any) -> QTable:
    """The table a trial evaluated."""
    rec = _ask_attrs(trial)
    if rec is None:
        raise SearchError(f"trial {trial.number} was not made by dnnjpeg tune (no {ASK_KEY} attribute)")
    t = rec["table"]
    return QTable(t["luma"], t["chroma"], subsampling=t["subsampling"])


def trial_stream(trial: Any) -> int | None:
    rec = _ask_attrs(trial)
    return None if rec is None else int(rec["stream"])


def is_finished(trial: Any) -> bool:
    """COMPLETE or PRUNED: an evaluation that counts and will not change."""
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def trial_value(trial: Any, n_objectives: int) -> Value:
    """What the method is told for a finished trial: its value(s), or ``None`` when pruned."""
    from optuna.trial import TrialState

    if trial.state != TrialState.COMPLETE:
        return None
    if n_objectives == 1:
        return float(trial.value)
    return tuple(float(v) for v in trial.values)


def budget_used(trials: Sequence[Any]) -> int:
    """Trials that count against the budget: COMPLETE, PRUNED and RUNNING."""
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)


def fail_trial(study: Any, trial: Any, reason: str) -> None:
    """Mark a RUNNING trial FAIL with ``reason`` (ignored if it finished meanwhile)."""
    from optuna.trial import TrialState

    try:
        study._storage.set_trial_user_attr(trial._trial_id, FAILED_KEY, reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except RuntimeError:  # already finished: nothing to do
        pass


def reap_dead_trials(study: Any, spec: StorageSpec, study_name: str, own: StreamLock) -> list[int]:
    """Fail RUNNING trials whose worker is dead: those of our own stream (we hold its lock, so
    their worker is gone) and those of streams nobody holds.  Returns the failed trial numbers."""
    from optuna.trial import TrialState

    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if trial_stream(t) is not None]
    failed = []
    by_stream: dict[int, list[Any]] = {}
    for t in running:
        by_stream.setdefault(int(trial_stream(t)), []).append(t)  # type: ignore[arg-type]
    for stream, trials in sorted(by_stream.items()):
        if stream == own.stream:
            for t in trials:
                fail_trial(study, t, "interrupted: its worker stopped (the stream was restarted)")
                failed.append(t.number)
            continue
        lock = probe_stream(spec, study_name, stream)
        if lock is None:
            continue  # a live worker owns it
        with lock:
            for t in trials:
                fail_trial(study, t, "interrupted: its worker died")
                failed.append(t.number)
    return failed


def replay_stream(study: Any, method: SearchMethod, stream: int) -> set[int]:
    """Rebuild ``method`` (fresh, same seed) from the study's finished trials of ``stream``.

    For each finished proposal of the stream, in order: tell the other streams' results it had
    been told before that proposal, then :meth:`~SearchMethod.replay` the proposal and its value.
    Returns the trial numbers the method now knows.
    """
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    own: dict[int, Any] = {}
    for t in trials:
        if trial_stream(t) == stream and is_finished(t):
            seq = int(_ask_attrs(t)["seq"])  # type: ignore[index]
            own.setdefault(seq, t)
    known: set[int] = set()
    n_obj = method.n_objectives
    for seq in sorted(own):
        t = own[seq]
        for number in _ask_attrs(t).get("observed", []):  # type: ignore[union-attr]
            ft = by_number.get(int(number))
            if ft is None or int(number) in known or not is_finished(ft):
                raise SearchError(f"cannot replay stream {stream}: trial {number} it had observed is missing")
            method.tell(trial_table(ft), trial_value(ft, n_obj))
            known.add(int(number))
        for number in _ask_attrs(t).get("repeats", []):  # type: ignore[union-attr]
            ft = by_number.get(int(number))
            if ft is None or not is_finished(ft):
                raise SearchError(f"cannot replay stream {stream}: trial {number} it had repeated is missing")
            method.replay(trial_table(ft), trial_value(ft, n_obj))
            known.add(int(number))
        if method.n_asked != seq:
            raise SearchError(f"cannot replay stream {stream}: proposal {method.n_asked} is missing from the study")
        method.replay(trial_table(t), trial_value(t, n_obj))
        known.add(t.number)
    return known
