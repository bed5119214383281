"""Tune a whole table family for one model, choose its method by cross-validation, and prove it held out.

:func:`tune_family` is what ``dnnjpeg family`` runs and what produced the files in ``tables/``:

1. **Standard JPEG** is evaluated once on every image at ``curve_qualities`` (and the family's).
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
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DnnjpegError
from ..qtable import QTable

__all__ = ["CHOOSE_BY", "DEFAULT_FAMILY_QUALITIES", "FAMILY_STAGES", "FamilyTuneError", "merge_results", "tune_family"]

#: Member qualities of a shipped family (standard JPEG qualities each member is size-matched to).
DEFAULT_FAMILY_QUALITIES: tuple[int, ...] = (30, 40, 50, 60, 75, 90)
#: ``cv`` (cross-validation only), ``final`` (final searches only), ``all`` (everything, then the family).
FAMILY_STAGES: tuple[str, ...] = ("all", "cv", "final")
#: How cross-validation picks the method (``tune_family(choose_by=...)``).
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
    from ..evaluation.evaluate import PER_IMAGE_FIELDS

    if not parts:
        raise FamilyTuneError("no results to merge")
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in PER_IMAGE_FIELDS}
    order = np.argsort(cat["indices"], kind="stable")
    if np.unique(cat["indices"]).size != cat["indices"].size:
        raise FamilyTuneError("results to merge share images")
    return dataclasses.replace(parts[0], **{f: v[order] for f, v in cat.items()},
                               seconds=float(sum(p.seconds for p in parts)), extra={})


def _check_args(qualities: Sequence[int], methods: Sequence[str], k: int, budget: int, signal: str,
                stage: str, choose_by: str = "top1") -> list[int]:
    from . import available_methods
    from .objectives import SIGNALS

    qs = sorted({int(q) for q in qualities})
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise FamilyTuneError(f"member qualities must be integers in 1..100, got {list(qualities)}")
    if not methods:
        raise FamilyTuneError("no search methods given")
    for m in methods:
        if m not in available_methods():
            raise FamilyTuneError(f"unknown method {m!r}; available: {', '.join(available_methods())}")
    if k < 2:
        raise FamilyTuneError(f"k must be >= 2 class-disjoint folds, got {k}")
    if budget < 1:
        raise FamilyTuneError(f"budget must be >= 1, got {budget}")
    if signal not in SIGNALS:
        raise FamilyTuneError(f"signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
    if stage not in FAMILY_STAGES:
        raise FamilyTuneError(f"stage must be one of {', '.join(FAMILY_STAGES)}, got {stage!r}")
    if choose_by not in CHOOSE_BY:
        raise FamilyTuneError(f"choose_by must be one of {', '.join(CHOOSE_BY)}, got {choose_by!r}")
    return qs


def tune_family(
    evaluator: Any,
    name: str,
    *,
    workdir: str | os.PathLike[str],
    qualities: Sequence[int] = DEFAULT_FAMILY_QUALITIES,
    methods: Sequence[str] = ("sorted",),
    k: int = 2,
    fold_seed: int = 0,
    budget: int = 60,
    signal: str = "kl",
    seed: int = 0,
    space: str = "single",
    project: bool = True,
    stage: str = "all",
    curve_qualities: Sequence[int] = tuple(range(5, 100, 5)),
    compare_encoders: Sequence[str] = ("mozjpeg",),
    choose_by: str = "top1",
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Tune, cross-validate and assemble a family (see the module docstring).

    Args:
        evaluator: an :class:`~dnnjpeg.evaluation.evaluate.Evaluator` on all tuning images (labelled, for the
            class-disjoint folds).
        name: the family's registry name (e.g. ``"efficientnet_lite0"``).
        workdir: folder for the journals (created; reruns resume from it).
        qualities: standard qualities the members are size-matched to.
        methods: candidate search methods; cross-validation picks one.
        k, fold_seed: class-disjoint folds.
        budget: evaluations per search (each fold's and each final one).
        signal: the objective's signal (``kl``: low-noise; ``top1``: the seed's).
        seed: search seed (fold ``i`` uses ``seed + i``; final searches ``seed + k``).
        space: search space (``single``: one table for Y, Cb and Cr, as the seed's).
        project: scale every candidate to the member's size before evaluating it.
        stage: ``all``, ``cv`` or ``final``.
        curve_qualities: standard qualities of the reference curve.
        compare_encoders: other encoder families (:mod:`dnnjpeg.encoders`) measured at
            ``curve_qualities`` for the BD-rate comparison (skipped when not installed).
        choose_by: how cross-validation picks the method: ``"top1"`` (mean held-out top-1 gain at
            equal CR over the members; ties broken by mean held-out KL) or ``"kl"`` (the lowest
            held-out BD-rate at equal KL against standard JPEG: the per-image signal, a few times less
            noisy on a few hundred images).
        command: the command line, recorded in the provenance.
        log: receives progress lines.

    Returns:
        The family as a dict (``"format": "dnnjpeg-family"``) for ``stage="all"``, else ``None``.
    """
    from ..evaluation.data import class_disjoint_folds
    from ..evaluation.store import EvaluationStore
    from ..validation.crossval import curve_on
    from ..validation.validate import compare, family_bd_interval, family_bd_rate
    from . import tune
    from .runner import device_label

    qs = _check_args(qualities, methods, k, budget, signal, stage, choose_by)
    say = log or (lambda _m: None)
    if not evaluator.dataset.labelled:
        raise FamilyTuneError(f"{evaluator.data_name}: class-disjoint folds need labelled images")
    labels = np.asarray(evaluator.dataset.labels)
    root = Path(workdir)
    (root / "cv").mkdir(parents=True, exist_ok=True)
    (root / "final").mkdir(parents=True, exist_ok=True)
    folds = class_disjoint_folds(labels, k=k, seed=fold_seed)
    curve_qs = sorted({int(q) for q in curve_qualities} | set(qs))
    # every evaluation outside the searches is kept beside the journals: a rerun only reads it
    store = EvaluationStore(root / "evaluations", evaluator)

    def report_store() -> None:
        say(f"evaluations outside the searches: {store.n_evaluated} run, {store.n_read} read from {store.folder}")

    say(f"standard JPEG at {len(curve_qs)} qualities on {evaluator.n} images")
    std_all = {q: store.evaluate(QTable.standard(q)) for q in curve_qs}
    objective = {q: f"size-matched-{signal}:{q}" for q in qs}

    def search(ev: Any, method: str, q: int, s: int, journal: Path, curve: Any) -> Any:
        return tune(ev, method, budget=budget, objective=objective[q], seed=s, storage=str(journal),
                    space=space, quality=q, curve=curve, project=project)

    # -- 2. cross-validation -----------------------------------------------------------------
    cv: dict[str, dict[int, dict[str, Any]]] = {}
    search_devices: Counter[str] = Counter()  # trials of every search, by what ran the model
    if stage in ("all", "cv"):
        for method in methods:
            cv[method] = {}
            for q in qs:
                held, tables = [], []
                for i, fold in enumerate(folds):
                    say(f"cv {method} q{q} fold {i + 1}/{k}: search on {len(fold.train)} images")
                    train = evaluator.subset(fold.train)
                    res = search(train, method, q, seed + i, root / "cv" / f"{method}-q{q}-fold{i}.journal",
                                 curve_on(std_all, fold.train))
                    tables.append(res.table)
                    search_devices.update(_devices(res))
                    held.append(store.evaluate(res.table, indices=fold.test))
                pooled = merge_results(held)
                cmp = compare(pooled, std_all)
                std_q = std_all[q]
                paired = _paired(pooled, std_q)
                cv[method][q] = {"result": pooled, "comparison": cmp, "paired_q": paired, "tables": tables}
                say(f"cv {method} q{q}: held-out top1 {pooled.top1:.4f} at CR {pooled.cr:.2f} vs standard q{q} "
                    f"{std_q.top1:.4f} at CR {std_q.cr:.2f} (p={_p(paired)}), at equal CR {100 * cmp.delta_top1:+.2f} pt")
        if stage == "cv":
            report_store()
            return None

    # -- 3. choice ---------------------------------------------------------------------------
    std_curve = {q: std_all[q] for q in curve_qs}
    cv_bd: dict[str, dict[str, float | None]] = {}  # each method's held-out BD-rates vs standard
    for m in cv:
        held_m = {q: cv[m][q]["result"] for q in qs}
        cv_bd[m] = {metric: family_bd_rate(std_curve, held_m, metric=metric)[0] for metric in ("top1", "kl")}
    if cv:
        def score(m: str) -> tuple[float, float]:
            if choose_by == "kl":
                bd = cv_bd[m]["kl"]
                return (-bd if bd is not None else -math.inf, 0.0)
            gain = _mean_gain(cv, m, qs)
            kl = float(np.mean([cv[m][q]["result"].kl_mean for q in qs]))
            return (gain if math.isfinite(gain) else -math.inf, -kl)

        chosen = max(methods, key=score)
        for m in methods:
            bd_t, bd_k = cv_bd[m]["top1"], cv_bd[m]["kl"]
            say(f"cv {m}: mean held-out gain {100 * _mean_gain(cv, m, qs):+.2f} pt, BD-rate vs standard "
                f"{_pct(bd_t)} at equal top-1, {_pct(bd_k)} at equal KL")
        say(f"chosen by cross-validation ({'BD-rate at equal KL' if choose_by == 'kl' else 'mean top-1 gain'}): {chosen}")
        finals = [chosen]
    else:
        chosen = methods[0] if len(methods) == 1 else None
        finals = list(methods)

    # -- 4. final searches -------------------------------------------------------------------
    full_curve = curve_on(std_all, np.arange(evaluator.n))
    final: dict[str, dict[int, Any]] = {}
    for method in finals:
        final[method] = {}
        for q in qs:
            say(f"final {method} q{q}: search on all {evaluator.n} images")
            final[method][q] = search(evaluator, method, q, seed + k, root / "final" / f"{method}-q{q}.journal",
                                      full_curve)
            search_devices.update(_devices(final[method][q]))
    if stage == "final":
        report_store()
        return None
    assert chosen is not None

    # -- 5. the family -----------------------------------------------------------------------
    members_res = {q: store.evaluate(final[chosen][q].table) for q in qs}
    held_res = {q: cv[chosen][q]["result"] for q in qs}
    bd_held, bda_held = family_bd_rate(std_curve, held_res)
    bd_tune, bda_tune = family_bd_rate(std_curve, members_res)
    from ..validation.bd_bootstrap import BD_RESAMPLES, bootstrap_members_ahead

    say(f"bootstrap intervals of the BD-rates ({BD_RESAMPLES} resamples of the images)")
    held_interval = family_bd_interval(std_curve, held_res)
    held_kl_interval = family_bd_interval(std_curve, held_res, metric="kl")
    # like the intervals, a family of one member has none (its McNemar p says it all)
    held_ahead = bootstrap_members_ahead(std_curve, held_res).to_dict() if len(held_res) > 1 else None
    encoders: dict[str, Any] = {}
    for enc in compare_encoders:
        try:
            from ..validation.validate import evaluate_encoder_curve

            enc_curve = evaluate_encoder_curve(store, enc, curve_qs)
        except DnnjpegError as exc:
            say(f"{enc}: not measured ({exc})")
            continue
        bd_std_enc, _ = family_bd_rate(std_curve, enc_curve)
        bd_vs_enc, bda_vs_enc = family_bd_rate(enc_curve, held_res)
        encoders[enc] = {"bd_rate_vs_standard": bd_std_enc, "family_heldout_bd_rate_vs_encoder": bd_vs_enc,
                         "family_heldout_bd_accuracy_vs_encoder": bda_vs_enc,
                         "family_heldout_bd_interval_vs_encoder": family_bd_interval(enc_curve, held_res),
                         "family_heldout_kl_bd_interval_vs_encoder": family_bd_interval(enc_curve, held_res,
                                                                                        metric="kl")}
    from .. import __version__

    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    data_hash = evaluator.dataset.fingerprint(evaluator.protocol)
    writer = getattr(evaluator, "writer", None)
    family_prov = {
        "tool": "dnnjpeg family", "version": __version__, "command": command, "model": evaluator.model_name,
        "model_fingerprint": getattr(evaluator.classifier, "fingerprint", None), "data": evaluator.data_name,
        "data_hash": data_hash, "n_images": evaluator.n, "protocol": evaluator.protocol,
        **({"writer": writer} if writer else {}),
        "methods_compared": list(methods), "method": chosen, "chosen_by": choose_by, "budget": budget, "seed": seed,
        "signal": signal,
        "objective": f"size-matched-{signal}:Q", "projection": project, "space": space, "k": k,
        "fold_seed": fold_seed, "created": created, "measured_by_dnnjpeg": True,
        "machine": f"{platform.machine()} {platform.system()}, assembled and held-out members evaluated on "
                   f"{device_label(evaluator)}",
        "search_devices": dict(sorted(search_devices.items())),
    }
    members = []
    for q in qs:
        t = final[chosen][q]
        r, c = members_res[q], cv[chosen][q]
        cmp_t = compare(r, std_all)
        paired_t = _paired(r, std_all[q])
        metrics = {
            "tuning": {"top1": r.top1, "cr": r.cr, "bytes_mean": r.bytes_mean, "kl": r.kl_mean,
                       "standard_top1": std_all[q].top1, "standard_cr": std_all[q].cr,
                       "standard_bytes_mean": std_all[q].bytes_mean, "standard_kl": std_all[q].kl_mean,
                       "gain_top1_vs_size_matched_standard": r.top1 - std_all[q].top1,
                       "gain_top1_at_equal_cr": _f(cmp_t.delta_top1), "p_value": _f(_pv(paired_t)), "n": r.n},
            "crossval": _cv_metrics(c, std_all[q], k),
        }
        prov = dict(t.table.meta.get("provenance", {}))
        prov.update({"tool": "dnnjpeg family", "command": command, "created": created, "family": name})
        members.append({**t.table.replace(meta={}).to_dict(), "name": f"{name}-q{q}", "quality": q,
                        "provenance": prov, "metrics": metrics})
    family = {
        "format": "dnnjpeg-family", "version": 1, "name": name,
        # `dnnjpeg tables` prints the name before the description: name the model only when it differs
        "description": ("tables" if evaluator.model_name == name else f"tables for {evaluator.model_name}")
                       + f" size-matched to standard JPEG q{', q'.join(map(str, qs))} "
                       f"({chosen} search, {signal} objective, chosen by {k}-fold class-disjoint cross-validation"
                       + (f"; tuned to be written by the {writer} encoder)" if writer else ")"),
        "default_quality": 50 if 50 in qs else qs[len(qs) // 2],
        "provenance": family_prov,
        "metrics": {
            "crossval_bd_rate_vs_standard": bd_held, "crossval_bd_accuracy_vs_standard": bda_held,
            "crossval_bd_interval_vs_standard": held_interval,
            "crossval_kl_bd_interval_vs_standard": held_kl_interval,
            "crossval_members_ahead": held_ahead,
            "tuning_bd_rate_vs_standard": bd_tune, "tuning_bd_accuracy_vs_standard": bda_tune,
            "encoders": encoders,
            "method_choice": {m: {str(q): {"heldout_top1": cv[m][q]["result"].top1,
                                           "gain_top1_at_equal_cr": _f(cv[m][q]["comparison"].delta_top1),
                                           "heldout_kl": cv[m][q]["result"].kl_mean} for q in qs} for m in cv},
            "method_choice_bd_rate": {m: {"crossval_bd_rate_vs_standard": cv_bd[m]["top1"],
                                          "crossval_kl_bd_rate_vs_standard": cv_bd[m]["kl"]} for m in cv},
            "standard_curve": [{"quality": q, "top1": std_all[q].top1, "cr": std_all[q].cr} for q in curve_qs],
        },
        "members": members,
    }
    report_store()
    return family


def _devices(res: Any) -> Counter[str]:
    """A search's finished trials by what ran the model (``"unrecorded"`` for older journals)."""
    return Counter(row.get("device") or "unrecorded" for row in res.trials)


def _cv_metrics(c: Mapping[str, Any], std_q: Any, k: int) -> dict[str, Any]:
    r, cmp, paired = c["result"], c["comparison"], c["paired_q"]
    return {
        "heldout_top1": r.top1, "heldout_cr": r.cr, "heldout_bytes_mean": r.bytes_mean, "heldout_kl": r.kl_mean,
        "standard_top1": std_q.top1, "standard_cr": std_q.cr, "standard_kl": std_q.kl_mean,
        "gain_top1_vs_size_matched_standard": paired.delta, "p_value": _f(_pv(paired)),
        "ci_low": _f(paired.ci_low), "ci_high": _f(paired.ci_high),
        "gain_top1_at_equal_cr": _f(cmp.delta_top1), "gain_ci_low": _f(cmp.ci_low), "gain_ci_high": _f(cmp.ci_high),
        "k": k, "n": r.n,
        "fold_tables": [t.to_dict() for t in c["tables"]],
    }


def _paired(a: Any, b: Any) -> Any:
    from ..validation.stats import paired_comparison

    return paired_comparison(a.correct, b.correct)


def _pv(paired: Any) -> float:
    return paired.mcnemar.p_value if paired.mcnemar is not None else paired.ttest.p_value


def _mean_gain(cv: Mapping[str, Any], method: str, qualities: Sequence[int]) -> float:
    """Mean held-out top-1 gain at equal CR of ``method`` over the members (finite gains only; NaN if none)."""
    gains = [cv[method][q]["comparison"].delta_top1 for q in qualities]
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
