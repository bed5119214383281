"""Validation: is a table better than standard JPEG, at equal size, on images it never saw?

:func:`validate` evaluates a table (and, for a family, its members), standard JPEG's curve and
optionally other encoders (:mod:`dnnjpeg.encoders`) on the same images, and returns a
:class:`Validation` whose :meth:`~Validation.to_dict` is the documented JSON of
``dnnjpeg validate --json`` (see docs/validation.md).

The statistics are in :func:`compare`, which needs only :class:`~dnnjpeg.evaluation.evaluate.Result` objects
(per-image arrays), no model:

* ``standard_top1_at_cr``: standard JPEG's top-1 at the table's CR, linear in CR between the
  neighbouring standard qualities; ``delta_top1 = top1 - standard_top1_at_cr``;
* ``ci_low``, ``ci_high``: paired bootstrap interval of ``delta_top1`` (images resampled jointly for
  the table and every standard quality; :func:`dnnjpeg.validation.stats.bootstrap_delta_at_rate`);
* ``nearest_quality``: the standard quality of nearest mean bytes, and the paired tests against
  it: exact McNemar (``p_value``) and the seed's paired t-test (``p_value_ttest``).

Example:
    >>> import numpy as np
    >>> from dnnjpeg.evaluation.evaluate import Result
    >>> def res(q, correct, nbytes):
    ...     n = len(correct)
    ...     return Result(model="m", data="d", protocol="crop224", table=None, quality=q, labelled=True,
    ...                   indices=np.arange(n), correct=np.array(correct, float), correct5=np.ones(n),
    ...                   agree=np.ones(n), ce=np.zeros(n), kl=np.zeros(n), bytes=np.array(nbytes, float),
    ...                   pixels=np.full(n, 50176), bmp_bytes=np.full(n, 150582))
    >>> std = {30: res(30, [1, 0, 0, 1], [5000] * 4), 50: res(50, [1, 1, 0, 1], [7000] * 4)}
    >>> c = compare(std[50], std, resamples=200)
    >>> c.delta_top1, c.nearest_quality, c.p_value
    (0.0, 50, 1.0)
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._settings import from_keywords
from ..encoders import EncoderError, get_family
from ..errors import DnnjpegError
from ..evaluation.curve import DEFAULT_QUALITIES, CurvePoint, StandardCurve, bd_accuracy, bd_rate
from ..families import Family, find_family, resolve_table
from ..qtable import QTable
from .bd_bootstrap import BD_RESAMPLES, bootstrap_bd
from .stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedComparison,
    bootstrap_delta_at_rate,
    interp_linear,
    nearest_index,
    paired_comparison,
    wilson_interval,
)

__all__ = [
    "VALIDATION_FORMAT",
    "Comparison",
    "ValidateOptions",
    "ValidateOptionsError",
    "Validation",
    "ValidationError",
    "compare",
    "curve_points",
    "evaluate_encoder_curve",
    "family_bd_interval",
    "family_bd_rate",
    "resolve_family",
    "validate",
]

#: Value of the ``format`` key of the validation JSON.
VALIDATION_FORMAT = "dnnjpeg-validation"


class ValidationError(DnnjpegError):
    """Results that cannot be compared (different images) or a bad validation request."""


class ValidateOptionsError(ValidationError, ValueError):
    """A bad :class:`ValidateOptions` value (a :class:`ValidationError` that is also a ``ValueError``)."""


def _check_bootstrap(resamples: Any, confidence: Any, seed: Any, error: type[Exception]) -> None:
    """Raise ``error`` naming a bad bootstrap setting (shared by validate's and crossval's options)."""
    if isinstance(resamples, bool) or not isinstance(resamples, numbers.Integral) or resamples < 1:
        raise error(f"resamples must be an integer >= 1, got {resamples!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 < confidence < 1.0:
        raise error(f"confidence must be a number in (0, 1), got {confidence!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise error(f"seed must be a non-negative integer, got {seed!r}")


def _standard_qualities(qualities: Sequence[int] | None, error: type[Exception]) -> tuple[int, ...]:
    """``qualities`` (default :data:`~dnnjpeg.evaluation.curve.DEFAULT_QUALITIES`) sorted, once each, as ints."""
    given = DEFAULT_QUALITIES if qualities is None else qualities
    if isinstance(given, (str, bytes)):
        raise error(f"qualities must be a sequence of integers in 1..100, got {given!r}")
    try:
        qs = tuple(sorted({int(q) for q in given}))
    except (TypeError, ValueError):
        raise error(f"qualities must be a sequence of integers in 1..100, got {given!r}") from None
    bad = [q for q in qs if not 1 <= q <= 100]
    if bad:
        raise error(f"qualities must be integers in 1..100, got {bad[0]}")
    return qs


@dataclass(frozen=True)
class ValidateOptions:
    """The settings of :func:`validate`, checked when made.

    Attributes:
        qualities: standard qualities swept (default :data:`dnnjpeg.evaluation.curve.DEFAULT_QUALITIES`;
            kept sorted, once each); the same qualities are swept for every encoder and select the
            family members used for BD-rate.  At least 2.
        encoders: encoder family names from :mod:`dnnjpeg.encoders` (e.g. ``("mozjpeg", "libjpeg-opt")``).
        resamples, confidence, seed: the bootstrap's settings (see :mod:`dnnjpeg.validation.stats`).

    Raises:
        ValidateOptionsError: a bad value (a :class:`ValidationError` and a ``ValueError``), named in the message.

    Example:
        >>> ValidateOptions(qualities=[50, 30, 50]).qualities
        (30, 50)
        >>> try:
        ...     ValidateOptions(encoders=["mozjpeg", "jpeg2000"])
        ... except ValueError as exc:
        ...     print(str(exc).split(";")[0])
        unknown encoder 'jpeg2000'
    """

    qualities: Sequence[int] | None = None
    encoders: Sequence[str] = ()
    resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        qs = _standard_qualities(self.qualities, ValidateOptionsError)
        if len(qs) < 2:
            raise ValidateOptionsError(f"need at least 2 standard qualities to interpolate, got {list(qs)}")
        if isinstance(self.encoders, (str, bytes)):
            raise ValidateOptionsError(f"encoders must be a sequence of encoder names, got {self.encoders!r}")
        encoders = tuple(self.encoders)
        for name in encoders:
            try:
                get_family(name)
            except EncoderError as exc:
                raise ValidateOptionsError(exc.problem, fix=exc.fix) from None
        _check_bootstrap(self.resamples, self.confidence, self.seed, ValidateOptionsError)
        object.__setattr__(self, "qualities", qs)
        object.__setattr__(self, "encoders", encoders)

    @property
    def bootstrap(self) -> dict[str, Any]:
        """``resamples``, ``confidence`` and ``seed`` as keyword arguments of :func:`compare`."""
        return {"resamples": self.resamples, "confidence": self.confidence, "seed": self.seed}


@dataclass(frozen=True)
class Comparison:
    """A result against a reference curve (standard JPEG or another encoder) on the same images.

    Attributes:
        top1, cr, bytes_mean, bpp, n: the result's aggregates.
        reference_top1_at_cr: the reference's top-1 interpolated at ``cr`` (NaN outside its CR range).
        delta_top1: ``top1 - reference_top1_at_cr``.
        ci_low, ci_high: paired bootstrap interval of ``delta_top1``; ``ci_dropped`` resamples fell
            outside the reference's CR range.
        nearest_quality: the reference quality of nearest mean bytes.
        nearest_top1, nearest_cr, nearest_bytes_mean: that point's aggregates.
        paired: :class:`~dnnjpeg.validation.stats.PairedComparison` of per-image top-1 against that point.
    """

    top1: float
    cr: float
    bytes_mean: float
    bpp: float
    n: int
    reference_top1_at_cr: float
    delta_top1: float
    ci_low: float
    ci_high: float
    ci_dropped: int
    nearest_quality: int
    nearest_top1: float
    nearest_cr: float
    nearest_bytes_mean: float
    paired: PairedComparison

    @property
    def p_value(self) -> float:
        """Exact McNemar p-value against the nearest-size reference point."""
        return self.paired.mcnemar.p_value if self.paired.mcnemar is not None else math.nan

    @property
    def p_value_ttest(self) -> float:
        """The seed's paired t-test p-value against the nearest-size reference point."""
        return self.paired.ttest.p_value

    def to_dict(self, prefix: str = "reference") -> dict[str, Any]:
        """Flat JSON-able dict; ``reference_top1_at_cr`` is renamed ``{prefix}_top1_at_cr``."""
        p = self.paired
        return {
            "top1": self.top1,
            "cr": self.cr,
            "bytes_mean": self.bytes_mean,
            "bpp": self.bpp,
            "n": self.n,
            f"{prefix}_top1_at_cr": _num(self.reference_top1_at_cr),
            "delta_top1": _num(self.delta_top1),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "ci_dropped": self.ci_dropped,
            "p_value": _num(self.p_value),
            "p_value_ttest": _num(self.p_value_ttest),
            "t_statistic": _num(p.ttest.statistic),
            "nearest_quality": self.nearest_quality,
            "nearest_top1": self.nearest_top1,
            "nearest_cr": self.nearest_cr,
            "nearest_bytes_mean": self.nearest_bytes_mean,
            "paired_delta_top1": p.delta,
            "paired_ci_low": _num(p.ci_low),
            "paired_ci_high": _num(p.ci_high),
            "mcnemar_b": p.mcnemar.b if p.mcnemar is not None else None,
            "mcnemar_c": p.mcnemar.c if p.mcnemar is not None else None,
        }


def _num(x: float | None) -> float | None:
    """NaN -> None (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _check_same_images(result: Any, others: Iterable[Any], what: str) -> None:
    for other in others:
        if not np.array_equal(np.asarray(result.indices), np.asarray(other.indices)):
            q = getattr(other, "quality", None)
            raise ValidationError(
                f"{what} q{q} was evaluated on other images than the result "
                f"({other.n} vs {result.n} images, or a different order); paired statistics need the same images"
            )


def compare(
    result: Any,
    reference: Mapping[int, Any],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Compare one :class:`~dnnjpeg.evaluation.evaluate.Result` with a reference curve at equal size.

    Args:
        result: the table's Result.
        reference: quality -> Result of the reference encoder (standard JPEG, mozjpeg...) on the
            same images in the same order (checked).
        resamples, confidence, seed: the bootstrap's settings (see :mod:`dnnjpeg.validation.stats`).

    Raises:
        ValidationError: empty reference or different images.
    """
    if not reference:
        raise ValidationError("the reference curve has no points")
    qs = sorted(reference)
    refs = [reference[q] for q in qs]
    _check_same_images(result, refs, "reference")
    _, lo, hi, dropped = bootstrap_delta_at_rate(
        result.correct, result.bytes, result.bmp_bytes,
        np.stack([r.correct for r in refs]), np.stack([r.bytes for r in refs]),
        resamples=resamples, confidence=confidence, seed=seed,
    )
    at_cr = interp_linear([r.cr for r in refs], [r.top1 for r in refs], result.cr)
    k = nearest_index([r.bytes_mean for r in refs], result.bytes_mean)
    near = refs[k]
    paired = paired_comparison(result.correct, near.correct, resamples=resamples, confidence=confidence, seed=seed)
    return Comparison(
        top1=result.top1,
        cr=result.cr,
        bytes_mean=result.bytes_mean,
        bpp=result.bpp,
        n=result.n,
        reference_top1_at_cr=at_cr,
        delta_top1=result.top1 - at_cr,
        ci_low=lo,
        ci_high=hi,
        ci_dropped=dropped,
        nearest_quality=int(qs[k]),
        nearest_top1=near.top1,
        nearest_cr=near.cr,
        nearest_bytes_mean=near.bytes_mean,
        paired=paired,
    )


def curve_points(results: Mapping[int, Any], confidence: float = DEFAULT_CONFIDENCE) -> list[dict[str, Any]]:
    """One JSON-able dict per quality: ``quality, top1, top1_ci_low, top1_ci_high`` (Wilson interval),
    ``cr, bytes_mean, bpp, n``."""
    out = []
    for q in sorted(results):
        r = results[q]
        hits = int(np.sum(r.correct))
        lo, hi = wilson_interval(hits, r.n, confidence) if r.n else (math.nan, math.nan)
        out.append({
            "quality": int(q), "top1": r.top1, "top1_ci_low": lo, "top1_ci_high": hi,
            "cr": r.cr, "bytes_mean": r.bytes_mean, "bpp": r.bpp, "n": r.n,
        })
    return out


def family_bd_rate(standard: Mapping[int, Any], members: Mapping[int, Any], *,
                   metric: str = "top1") -> tuple[float | None, float | None]:
    """``(bd_rate %, bd_accuracy)`` of a family's member Results against standard JPEG's, or
    ``(None, None)`` with fewer than 2 members or no shared accuracy range.  ``metric`` as in
    :func:`~dnnjpeg.evaluation.curve.bd_rate` (``"kl"``: bytes at equal KL divergence from the uncompressed
    image's prediction)."""
    if len(members) < 2 or len(standard) < 2:
        return None, None
    anchor = [standard[q] for q in sorted(standard)]
    test = [members[q] for q in sorted(members)]
    return _num(bd_rate(anchor, test, metric=metric)), _num(bd_accuracy(anchor, test, metric=metric))


def family_bd_interval(standard: Mapping[int, Any], members: Mapping[int, Any], *,
                       resamples: int | None = None, confidence: float = DEFAULT_CONFIDENCE,
                       seed: int = DEFAULT_SEED, metric: str = "top1") -> dict[str, Any] | None:
    """:func:`~dnnjpeg.validation.bd_bootstrap.bootstrap_bd` of a family's member Results against a curve
    (quality -> Result on the same images), as a JSON-ready dict; ``None`` with fewer than 2 points
    on a side.  ``resamples`` defaults to :data:`~dnnjpeg.validation.bd_bootstrap.BD_RESAMPLES`."""
    if len(members) < 2 or len(standard) < 2:
        return None
    anchor = [standard[q] for q in sorted(standard)]
    test = [members[q] for q in sorted(members)]
    n = BD_RESAMPLES if resamples is None else resamples
    return bootstrap_bd(anchor, test, resamples=n, confidence=confidence, seed=seed, metric=metric).to_dict()


def resolve_family(table: str | os.PathLike[str] | QTable, quality: int | None = None) -> tuple[QTable, Family | None]:
    """The table to validate and, when ``table`` names a family (or a family JSON file), the family.

    Example:
        >>> t, fam = resolve_family("resnet50")
        >>> t.luma[0], fam.qualities
        (17, [50])
    """
    qt = resolve_table(table, quality)
    if isinstance(table, QTable):
        return qt, None
    return qt, find_family(table)


def evaluate_encoder_curve(
    evaluator: Any, family: str, qualities: Sequence[int], indices: Sequence[int] | np.ndarray | None = None
) -> dict[int, Any]:
    """quality -> Result of the encoder family ``family`` (:mod:`dnnjpeg.encoders`) at each quality."""
    fam = get_family(family)
    return {int(q): evaluator.evaluate(fam.at(int(q)), indices=indices) for q in qualities}


@dataclass
class Validation:
    """Everything :func:`validate` measured; :meth:`to_dict` is the ``--json`` object.

    Attributes:
        result: the table's Result.  comparison: it against standard JPEG.
        standard: quality -> Result of standard JPEG.
        encoders: encoder name -> quality -> Result; encoder_comparisons: the table against each.
        members: family quality -> Result (members at the swept qualities), with ``bd_rate``,
            ``bd_accuracy`` of the family against standard JPEG; ``bd_interval`` and ``kl_bd_interval``
            their paired bootstrap intervals at equal top-1 and at equal KL.
        rate_delta_at_top1: percent bytes the table needs against standard JPEG at its top-1
            (standard's CR at that top-1 from the isotonic curve), negative = smaller files.
        reference: aggregates of the uncompressed images (may be empty).
    """

    table: QTable
    table_label: str
    family_name: str | None
    result: Any
    comparison: Comparison
    standard: dict[int, Any]
    encoders: dict[str, dict[int, Any]] = field(default_factory=dict)
    encoder_comparisons: dict[str, Comparison] = field(default_factory=dict)
    encoder_bd_rates: dict[str, float | None] = field(default_factory=dict)
    encoder_point_deltas: dict[str, list[Comparison]] = field(default_factory=dict)
    members: dict[int, Any] = field(default_factory=dict)
    member_comparisons: dict[int, Comparison] = field(default_factory=dict)
    bd_rate: float | None = None
    bd_accuracy: float | None = None
    bd_interval: dict[str, Any] | None = None
    kl_bd_interval: dict[str, Any] | None = None
    rate_delta_at_top1: float | None = None
    reference: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON object (docs/validation.md lists every key)."""
        r = self.result
        d: dict[str, Any] = {"format": VALIDATION_FORMAT, "version": 1}
        d.update(model=r.model, data=r.data, protocol=r.protocol, labelled=bool(r.labelled))
        d.update(table_name=self.table_label, table_family=self.family_name,
                 table_quality=self.table.meta.get("quality"))
        d.update(self.comparison.to_dict(prefix="standard"))
        d["bd_rate"] = self.bd_rate
        d["bd_accuracy"] = self.bd_accuracy
        d["bd_interval"] = self.bd_interval
        d["kl_bd_interval"] = self.kl_bd_interval
        d["rate_delta_at_top1"] = self.rate_delta_at_top1
        d["reference_top1"] = self.reference.get("top1")
        d["ci_level"] = self.settings.get("confidence")
        d["resamples"] = self.settings.get("resamples")
        d["seed"] = self.settings.get("seed")
        d["qualities"] = sorted(self.standard)
        d["standard"] = curve_points(self.standard)
        d["members"] = [
            {"quality": int(q), **self.member_comparisons[q].to_dict(prefix="standard")} for q in sorted(self.members)
        ]
        d["encoders"] = {
            name: {
                "bd_rate": self.encoder_bd_rates.get(name),
                "points": [
                    {**pt, "delta_top1_vs_standard": _num(c.delta_top1),
                     "delta_ci_low": _num(c.ci_low), "delta_ci_high": _num(c.ci_high)}
                    for pt, c in zip(curve_points(curve), self.encoder_point_deltas.get(name, []))
                ],
                "table_vs_encoder": self.encoder_comparisons[name].to_dict(prefix="encoder"),
            }
            for name, curve in self.encoders.items()
        }
        d["table"] = self.table.to_dict()
        d["seconds"] = self.seconds
        return d

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _rate_delta_at_top1(standard: Mapping[int, Any], result: Any) -> float | None:
    pts = [CurvePoint.from_result(q, standard[q]) for q in sorted(standard)]
    if len(pts) < 2:
        return None
    cr_std = StandardCurve(points=pts).cr_at_top1(result.top1)
    if cr_std is None or not math.isfinite(cr_std):
        return None
    return 100.0 * (cr_std / result.cr - 1.0)


def validate(
    evaluator: Any,
    table: str | os.PathLike[str] | QTable,
    quality: int | None = None,
    *,
    options: ValidateOptions | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    standard: Mapping[int, Any] | None = None,
    **kwargs: Any,
) -> Validation:
    """Evaluate ``table`` and standard JPEG (and ``options.encoders``) on the same images and compare them.

    Args:
        evaluator: a :class:`~dnnjpeg.evaluation.evaluate.Evaluator` (the held-out data).
        table: a QTable, family name or JSON path; ``quality`` picks a family member.
        options: the settings (:class:`ValidateOptions`: qualities, encoders, bootstrap).
        indices: evaluate only these dataset indices.
        standard: precomputed standard Results (quality -> Result on the same images) to reuse.
        **kwargs: the fields of :class:`ValidateOptions` as keywords (``qualities=``, ``encoders=``,
            ``resamples=``, ``confidence=``, ``seed=``); each must agree with ``options`` when both are given.

    """
    t0 = time.perf_counter()
    opts = from_keywords(ValidateOptions, options, kwargs, "validate")
    qt, family = resolve_family(table, quality)
    label = qt.meta.get("name") or (os.fspath(table) if not isinstance(table, QTable) else "table")
    bench = _Bench(evaluator, indices)
    std = bench.standard(opts.qualities, standard)
    result = bench.run(qt)
    comparison = compare(result, std, **opts.bootstrap)
    members, member_cmp = _members(bench, family, std, opts)
    bd = _family_bd(std, members, opts)
    encoders = _encoder_curves(bench, result, std, opts)
    reference = evaluator.evaluate(None, indices=indices).summary()
    return Validation(
        table=qt, table_label=str(label), family_name=family.name if family is not None else None,
        result=result, comparison=comparison, standard=std, members=members, member_comparisons=member_cmp,
        **bd, **encoders, rate_delta_at_top1=_rate_delta_at_top1(std, result), reference=reference,
        settings={"resamples": int(opts.resamples), "confidence": float(opts.confidence), "seed": int(opts.seed),
                  "qualities": list(opts.qualities)},
        seconds=time.perf_counter() - t0,
    )


class _Bench:
    """An evaluator on the validation's images; equal tables (QTable equality ignores meta) are evaluated once."""

    def __init__(self, evaluator: Any, indices: Sequence[int] | np.ndarray | None) -> None:
        self.evaluator, self.indices = evaluator, indices
        self.cache: dict[QTable, Any] = {}

    def standard(self, qualities: Sequence[int], given: Mapping[int, Any] | None) -> dict[int, Any]:
        """quality -> Result of standard JPEG at ``qualities``, from ``given`` where it has one."""
        std: dict[int, Any] = dict(given or {})
        for q in qualities:
            if q not in std:
                std[q] = self.evaluator.evaluate(QTable.standard(q), indices=self.indices)
            self.cache[QTable.standard(q)] = std[q]
        return {q: std[q] for q in qualities}

    def run(self, table: QTable) -> Any:
        if table not in self.cache:
            self.cache[table] = self.evaluator.evaluate(table, indices=self.indices)
        return self.cache[table]


def _members(bench: _Bench, family: Family | None, std: Mapping[int, Any],
             opts: ValidateOptions) -> tuple[dict[int, Any], dict[int, Comparison]]:
    """The family's members at the swept qualities: their Results and their comparisons with standard JPEG."""
    members: dict[int, Any] = {}
    member_cmp: dict[int, Comparison] = {}
    if family is not None:
        for q in opts.qualities:
            if q in family.members:
                members[q] = bench.run(family.members[q])
                member_cmp[q] = compare(members[q], std, **opts.bootstrap)
    return members, member_cmp


def _family_bd(std: Mapping[int, Any], members: Mapping[int, Any], opts: ValidateOptions) -> dict[str, Any]:
    """The family's BD-rate and BD-accuracy against standard JPEG, with bootstrap intervals at equal
    top-1 and at equal KL (:class:`Validation` fields)."""
    bd, bda = family_bd_rate(std, members)
    bd_opts = {"resamples": min(opts.resamples, BD_RESAMPLES), "confidence": opts.confidence, "seed": opts.seed}
    return {
        "bd_rate": bd,
        "bd_accuracy": bda,
        "bd_interval": family_bd_interval(std, members, **bd_opts),
        "kl_bd_interval": family_bd_interval(std, members, metric="kl", **bd_opts),
    }


def _encoder_curves(bench: _Bench, result: Any, std: Mapping[int, Any], opts: ValidateOptions) -> dict[str, Any]:
    """Each encoder's curve at the swept qualities, the table against it, its BD-rate and each of its
    points against standard JPEG (:class:`Validation` fields)."""
    curves: dict[str, dict[int, Any]] = {}
    cmp: dict[str, Comparison] = {}
    bd: dict[str, float | None] = {}
    points: dict[str, list[Comparison]] = {}
    for name in opts.encoders:
        curve = evaluate_encoder_curve(bench.evaluator, name, opts.qualities, indices=bench.indices)
        curves[name] = curve
        cmp[name] = compare(result, curve, **opts.bootstrap)
        bd[name] = _num(_bd(std, curve))
        points[name] = [compare(curve[q], std, **opts.bootstrap) for q in sorted(curve)]
    return {"encoders": curves, "encoder_comparisons": cmp, "encoder_bd_rates": bd, "encoder_point_deltas": points}


def _bd(standard: Mapping[int, Any], curve: Mapping[int, Any]) -> float:
    return bd_rate([standard[q] for q in sorted(standard)], [curve[q] for q in sorted(curve)])
