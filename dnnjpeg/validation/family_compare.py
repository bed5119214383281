"""Compare two tuned families on the classes their cross-validation held out.

A family file (``dnnjpeg family``) keeps, for each member, the table each fold's search found
(``metrics.crossval.fold_tables``) and the fold assignment (``provenance.k``, ``fold_seed``).
:func:`heldout_results` evaluates those tables again, each on the images of the classes its search
never saw, and pools the folds: the held-out curve behind the family's cross-validated BD-rate.
:func:`compare_families` does this for two families on the same images and compares them paired,
image by image: the BD-rate of the second against the first with a bootstrap interval
(:func:`~dnnjpeg.validation.bd_bootstrap.bootstrap_bd`), and per shared quality the difference in held-out
top-1 (exact McNemar) and in mean bytes.  That is the question "is the budget-100 family better
than the budget-30 one?", answered with the same statistics as "is it better than standard JPEG?".

Every re-measured held-out top-1 is checked against the figure the file records (``reproduced``);
with the model build and machine that made the file they agree exactly, and with another build
(e.g. batch norms folded or not, a GPU) they usually still agree or differ by an image or two.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..encoders import get_family
from ..errors import DnnjpegError
from ..evaluation.data import class_disjoint_folds
from ..families import _recorded_writer, read_family_file
from ..qtable import QTable, QTableError
from ..search.family import merge_results
from .bd_bootstrap import BD_RESAMPLES, bootstrap_bd
from .stats import mcnemar_exact

__all__ = ["FamilyCompareError", "FamilyComparison", "compare_families", "heldout_results", "read_family"]


class FamilyCompareError(DnnjpegError):
    """A family file that cannot be compared (no cross-validation record, other data)."""


def read_family(family: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A tuned family as a dict, from a dict, a JSON path or a shipped family's name."""
    if isinstance(family, Mapping):
        return dict(family)
    try:
        data, source = read_family_file(family)
    except QTableError as exc:
        raise FamilyCompareError(str(exc)) from None
    data.setdefault("_source", source)
    return data


def _label(data: Mapping[str, Any]) -> str:
    return str(data.get("_source") or data.get("name") or "family")


def heldout_results(family: str | os.PathLike[str] | Mapping[str, Any], evaluator: Any, *,
                    encoder: str | None = None) -> tuple[dict[int, Any], dict[int, bool]]:
    """``(quality -> pooled held-out Result, quality -> reproduced)`` of a tuned family.

    Args:
        family: a family dict, JSON path or shipped name, written by ``dnnjpeg family``.
        evaluator: an :class:`~dnnjpeg.evaluation.evaluate.Evaluator` on the data the family was tuned on (its
            ``data_hash`` must match: the folds are classes of *that* data).
        encoder: an encoder family of :mod:`dnnjpeg.encoders` that writes each fold table, e.g.
            ``"mozjpeg"``: the same tables with trellis quantization.  Default: the evaluator's
            ``writer`` if it has one, else the family's own (the ``writer`` its provenance records,
            ``dnnjpeg family --writer``; libjpeg when none).  The recorded held-out top-1 was measured
            with the family's own writer, so ``reproduced`` is mostly False with another.

    Raises:
        FamilyCompareError: no cross-validation record, or other data than the family's.
    """

    data = read_family(family)
    prov = data.get("provenance", {})
    where = _label(data)
    if not prov.get("measured_by_dnnjpeg") or "k" not in prov or "fold_seed" not in prov:
        raise FamilyCompareError(f"{where}: not tuned by 'dnnjpeg family' (no cross-validation record)")
    fingerprint = evaluator.dataset.fingerprint(evaluator.protocol)
    if prov.get("data_hash") != fingerprint:
        raise FamilyCompareError(
            f"{where}: tuned on data {prov.get('data')!r} (hash {prov.get('data_hash')}, {prov.get('n_images')} images, "
            f"{prov.get('protocol')}); this evaluator has {evaluator.data_name!r} (hash {fingerprint}, {evaluator.n} "
            f"images, {evaluator.protocol}): held-out classes are only defined on the family's own data")
    k, fold_seed = int(prov["k"]), int(prov["fold_seed"])
    chosen = _written_by(data, evaluator, encoder)
    writer = None
    if chosen is not None:
        writer = get_family(chosen)
    folds = class_disjoint_folds(evaluator.dataset.labels, k=k, seed=fold_seed)
    results: dict[int, Any] = {}
    reproduced: dict[int, bool] = {}
    for member in data["members"]:
        q = int(member["quality"])
        cv = member.get("metrics", {}).get("crossval", {})
        tables = [QTable.from_dict(t) for t in cv.get("fold_tables", [])]
        if len(tables) != k:
            raise FamilyCompareError(f"{where} q{q}: {len(tables)} fold tables recorded, k is {k}")
        held = [evaluator.evaluate(t if writer is None else writer.with_table(t), indices=fold.test)
                for t, fold in zip(tables, folds)]
        results[q] = merge_results(held)
        recorded = cv.get("heldout_top1")
        reproduced[q] = recorded is not None and math.isclose(results[q].top1, recorded, abs_tol=1e-12)
    return results, reproduced


@dataclass
class FamilyComparison:
    """Family ``b`` against family ``a`` on the same held-out images (see :func:`compare_families`).

    Attributes:
        a, b: the families' names (or files).
        bd: :meth:`~dnnjpeg.validation.bd_bootstrap.BDInterval.to_dict` of ``b``'s held-out curve against ``a``'s
            (negative BD-rate = ``b`` needs fewer bytes at equal top-1); ``None`` under 2 members each.
        bd_kl: the same at equal KL divergence from the uncompressed images' predictions (the searches'
            signal: far less noisy than top-1, so a narrower interval).
        members: per shared quality: both held-out top-1 and mean bytes, ``delta_top1`` (b - a),
            ``bytes_ratio`` (b / a), exact McNemar ``p_value`` of the paired top-1 difference, both
            held-out mean KL and ``delta_kl`` (b - a; negative = b closer to the uncompressed prediction).
        reproduced: per family, whether every re-measured held-out top-1 equals the recorded one.
        writers: per family, ``{"tuned_for": ..., "written_by": ...}``: the encoder its recorded figures
            were measured with (its own writer, ``"libjpeg"`` when none) and the one that wrote its tables
            here (the evaluator's writer, else its own). When they differ, ``reproduced`` is not expected.
        n: images.
    """

    a: str
    b: str
    bd: dict[str, Any] | None
    members: list[dict[str, Any]] = field(default_factory=list)
    reproduced: dict[str, bool] = field(default_factory=dict)
    n: int = 0
    bd_kl: dict[str, Any] | None = None
    writers: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n": self.n, "bd": self.bd, "bd_kl": self.bd_kl, "members": self.members,
                "reproduced": self.reproduced, "writers": self.writers}


def compare_families(a: str | os.PathLike[str] | Mapping[str, Any], b: str | os.PathLike[str] | Mapping[str, Any],
                     evaluator: Any, *, resamples: int | None = None, seed: int = 0) -> FamilyComparison:
    """Held-out curves of two tuned families on ``evaluator``'s images, compared paired.

    Args:
        a: the reference family (e.g. the shipped one). b: the candidate.
        evaluator: an Evaluator on the data both families were tuned on.
        resamples, seed: of the BD-rate bootstrap (default :data:`~dnnjpeg.validation.bd_bootstrap.BD_RESAMPLES`).
    """

    da, db = read_family(a), read_family(b)
    ra, rep_a = heldout_results(da, evaluator)
    rb, rep_b = heldout_results(db, evaluator)
    bd = bd_kl = None
    if len(ra) >= 2 and len(rb) >= 2:
        curves = [ra[q] for q in sorted(ra)], [rb[q] for q in sorted(rb)]
        draws = BD_RESAMPLES if resamples is None else resamples
        bd = bootstrap_bd(*curves, resamples=draws, seed=seed).to_dict()
        bd_kl = bootstrap_bd(*curves, resamples=draws, seed=seed, metric="kl").to_dict()
    members = []
    for q in sorted(set(ra) & set(rb)):
        x, y = ra[q], rb[q]
        members.append({
            "quality": q, "a_top1": x.top1, "b_top1": y.top1, "delta_top1": y.top1 - x.top1,
            "a_bytes_mean": x.bytes_mean, "b_bytes_mean": y.bytes_mean, "bytes_ratio": y.bytes_mean / x.bytes_mean,
            "p_value": mcnemar_exact(y.correct, x.correct).p_value,
            "a_kl": x.kl_mean, "b_kl": y.kl_mean, "delta_kl": y.kl_mean - x.kl_mean,
        })
    na, nb = _label(da), _label(db)
    if na == nb:
        na, nb = f"{na} (a)", f"{nb} (b)"
    return FamilyComparison(a=na, b=nb, bd=bd, bd_kl=bd_kl, members=members,
                            reproduced={na: all(rep_a.values()), nb: all(rep_b.values())}, n=evaluator.n,
                            writers={na: _writers(da, evaluator), nb: _writers(db, evaluator)})


def _written_by(family: Mapping[str, Any], evaluator: Any, encoder: str | None = None) -> str | None:
    """The encoder family :func:`heldout_results` writes a family's fold tables with (``None``: libjpeg).
    An explicit choice (``encoder``, or the evaluator's writer) wins; otherwise the family's own writer."""
    return encoder or getattr(evaluator, "writer", None) or _recorded_writer(family.get("provenance"))


def _writers(family: Mapping[str, Any], evaluator: Any) -> dict[str, str]:
    """What :func:`heldout_results` (without ``encoder=``) writes a family's fold tables with, and what its
    recorded figures were written with."""
    return {"tuned_for": _recorded_writer(family.get("provenance")) or "libjpeg",
            "written_by": _written_by(family, evaluator) or "libjpeg"}
