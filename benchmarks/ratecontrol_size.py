"""Honest measurement of per-image rate control (issue #29, point 6): how many bytes does choosing each
image's encoding with a model in the loop save against one fixed quality for all images?

For every ladder (standard JPEG, mozjpeg, jpegli, ... at qualities 10..95) every image is encoded at every
rung and read by every model (the *exhaustive* tables of :func:`dnnjpeg.ratecontrol.evaluate_rungs`, cached
as ``.npz`` in ``--workdir``).  Everything after that is arithmetic on those arrays:

* **per-image choice curve**: for each tau of a sweep (40 log-spaced values 0.002..2 nats), each image
  gets the smallest rung (in bytes) whose chooser KL(p_uncompressed || p_rung) <= tau (every chooser's,
  when several are in the loop; with ``keep-top1`` also the chooser's top-1 unchanged), the top rung when
  none qualifies; the curve point is (mean bytes, top-1 on the labels, mean KL) *as the reading model sees
  the chosen files* (the reader can be another model than the chooser);
* **fixed curve**: one quality for all images, every quality of a ladder;
* **BD-rate** of the choice curve against a fixed curve, at equal top-1 and at equal (reader) KL, with a
  paired bootstrap over the images (each draw recomputes every point of both curves and the BD-rate).

Two BD-rate methods are reported side by side:

``pchip``  (headline)
    :func:`dnnjpeg.evaluation.curve.bd_rate`, the project's: each curve sorted by rate, made monotone by an
    isotonic (pool-adjacent-violators) fit, log-rate as a PCHIP function of accuracy, averaged over
    the common accuracy range.  Intervals from :func:`dnnjpeg.validation.bd_bootstrap.bootstrap_bd`.
``linear``  (the independent prototype's, ../shared/reference/measurement-notes.md)
    each curve made monotone by its running best (best accuracy at or below each rate), log-rate
    piecewise-linear in accuracy, averaged exactly over the common accuracy range
    (:func:`bd_rate_linear`).  Its intervals use the same bootstrap draws.

Usage (quick run, then the full one)::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/ratecontrol_size.py \\
        --data ../shared/data/imagenet-sample-dev --workdir /tmp/rc-size --limit 50
    PYTHONPATH=$PWD nice -n 10 python benchmarks/ratecontrol_size.py \\
        --data ../shared/data/imagenet-sample-dev --workdir /tmp/rc-size

Results and caveats: docs/ratecontrol-results.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: The prototype's tau sweep: 40 log-spaced values from 0.002 to 2 nats.
TAUS = np.geomspace(0.002, 2.0, 40)
#: tau values of the keep-top1 table (inf: the top-1 condition alone).
KEEP_TOP1_TAUS = (0.01, 0.03, 0.1, 0.3, 1.0, math.inf)
MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
QUALITY_RANGE = ":10-95:5"
CACHE_VERSION = 1


# ---------------------------------------------------------------------------------------------------------
# plain-array analysis (no model, no codec: tested on synthetic arrays in tests/test_ratecontrol_size_bench.py)
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Tables:
    """The exhaustive table of one ladder on ``n`` images, as plain arrays.

    Attributes:
        ladder: the ladder's spec (e.g. ``standard:10-95:5``).
        rungs: rung names, in ladder order (the last is the *top* rung, the fallback).
        qualities: quality of each rung (NaN where a rung has none).
        nbytes: ``(n, r)`` file sizes.
        kl: model -> ``(n, r)`` KL(p_uncompressed || p_rung) in nats.
        top1: model -> ``(n, r)`` predicted class on each rung.
        ref_top1: model -> ``(n,)`` predicted class on the uncompressed image.
        labels: ``(n,)`` true classes.
    """

    ladder: str
    rungs: list[str]
    qualities: np.ndarray
    nbytes: np.ndarray
    kl: dict[str, np.ndarray]
    top1: dict[str, np.ndarray]
    ref_top1: dict[str, np.ndarray]
    labels: np.ndarray
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.nbytes.shape[0])

    def correct(self, model: str) -> np.ndarray:
        """``(n, r)`` top-1 hit on the label."""
        return (self.top1[model] == self.labels[:, None]).astype(np.float64)

    def ref_correct(self, model: str) -> np.ndarray:
        return (self.ref_top1[model] == self.labels).astype(np.float64)

    def subset(self, idx: np.ndarray) -> Tables:
        return Tables(self.ladder, list(self.rungs), self.qualities, self.nbytes[idx],
                      {m: v[idx] for m, v in self.kl.items()}, {m: v[idx] for m, v in self.top1.items()},
                      {m: v[idx] for m, v in self.ref_top1.items()}, self.labels[idx], self.seconds, dict(self.meta))


class Curve(NamedTuple):
    """Per-image values of the points of one curve: every array is ``(points, n)``.

    A point's aggregate is the mean over images; a bootstrap draw takes the same columns of every array.
    """

    nbytes: np.ndarray
    correct: np.ndarray
    kl: np.ndarray

    def means(self, sel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if sel is None:
            return self.nbytes.mean(axis=1), self.correct.mean(axis=1), self.kl.mean(axis=1)
        return self.nbytes[:, sel].mean(axis=1), self.correct[:, sel].mean(axis=1), self.kl[:, sel].mean(axis=1)

    def values(self, metric: str) -> np.ndarray:
        return {"top1": self.correct, "kl": self.kl}[metric]


def choose(nbytes: np.ndarray, kls: Sequence[np.ndarray], taus: Sequence[float] | np.ndarray, *,
           same_top1: Sequence[np.ndarray] = (), fallback: int | None = None) -> np.ndarray:
    """Rung chosen for each image at each tau: ``(len(taus), n)`` indices into the rungs.

    Per image, among the rungs where every chooser's KL is ``<= tau`` (and every ``same_top1`` mask, an
    ``(n, r)`` boolean "the chooser's top-1 is unchanged", holds), the one of fewest bytes (the first in
    ladder order on ties); ``fallback`` (default: the top rung, the last) when none qualifies.

    Example:
        >>> nb = np.array([[100., 200., 400.]]); kl = np.array([[0.5, 0.1, 0.0]])
        >>> choose(nb, [kl], [0.05, 0.2, 1.0]).tolist()
        [[2], [1], [0]]
    """
    nb = np.asarray(nbytes, dtype=np.float64)
    n, r = nb.shape
    fb = r - 1 if fallback is None else int(fallback)
    ok_static = np.ones((n, r), dtype=bool)
    for m in same_top1:
        ok_static &= np.asarray(m, dtype=bool)
    worst = np.max(np.stack([np.asarray(k, dtype=np.float64) for k in kls]), axis=0) if kls else np.zeros((n, r))
    out = np.empty((len(taus), n), dtype=np.int64)
    for t, tau in enumerate(taus):
        ok = ok_static & (worst <= tau)
        masked = np.where(ok, nb, np.inf)
        pick = np.argmin(masked, axis=1)
        out[t] = np.where(ok.any(axis=1), pick, fb)
    return out


def choice_curve(choice: np.ndarray, nbytes: np.ndarray, correct: np.ndarray, kl: np.ndarray) -> Curve:
    """The reader's per-image values of the chosen files (``choice`` from :func:`choose`)."""
    rows = np.arange(choice.shape[1])[None, :]
    return Curve(np.asarray(nbytes, np.float64)[rows, choice], np.asarray(correct, np.float64)[rows, choice],
                 np.asarray(kl, np.float64)[rows, choice])


def fixed_curve(nbytes: np.ndarray, correct: np.ndarray, kl: np.ndarray, rungs: Sequence[int] | None = None) -> Curve:
    """One rung for every image, each rung a point (``rungs``: which columns; default all)."""
    cols = np.arange(np.asarray(nbytes).shape[1]) if rungs is None else np.asarray(rungs)
    return Curve(np.asarray(nbytes, np.float64)[:, cols].T, np.asarray(correct, np.float64)[:, cols].T,
                 np.asarray(kl, np.float64)[:, cols].T)


def _running_best(logr: np.ndarray, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy levels, cheapest log-rate reaching each): the running best of accuracy along rate."""
    order = np.argsort(logr, kind="stable")
    x = logr[order]
    y = np.maximum.accumulate(acc[order])
    uy, first = np.unique(y, return_index=True)
    return uy, x[first]


def bd_rate_linear(anchor: tuple[Any, Any], test: tuple[Any, Any], *, metric: str = "top1") -> float:
    """The prototype's BD-rate (percent) of ``test`` against ``anchor``, each a ``(rates, values)`` pair.

    Each curve is made monotone by its running best (the best value at or below each rate), log-rate is
    interpolated piecewise-linearly as a function of the value, and the mean gap ``log(test) - log(anchor)``
    over the common value range is integrated exactly; ``100 * (exp(gap) - 1)``.  ``metric="kl"`` means
    lower is better.  NaN when the ranges do not overlap.

    Example:
        >>> r = [1000., 2000., 4000.]; a = [0.5, 0.7, 0.8]
        >>> round(bd_rate_linear((r, a), ([x / 2 for x in r], a)), 9)
        -50.0
    """
    sign = {"top1": 1.0, "kl": -1.0}[metric]
    curves = []
    for rates, vals in (anchor, test):
        r = np.asarray(rates, dtype=np.float64).reshape(-1)
        v = sign * np.asarray(vals, dtype=np.float64).reshape(-1)
        ok = np.isfinite(r) & np.isfinite(v) & (r > 0)
        uy, x = _running_best(np.log(r[ok]), v[ok])
        if uy.size < 2:
            return math.nan
        curves.append((uy, x))
    (ya, xa), (yt, xt) = curves
    lo, hi = max(ya[0], yt[0]), min(ya[-1], yt[-1])
    if not hi > lo:
        return math.nan
    knots = np.unique(np.concatenate([[lo, hi], ya[(ya > lo) & (ya < hi)], yt[(yt > lo) & (yt < hi)]]))
    gap = np.interp(knots, yt, xt) - np.interp(knots, ya, xa)  # piecewise linear between the knots: exact
    mean = float(np.sum((gap[1:] + gap[:-1]) * 0.5 * np.diff(knots)) / (hi - lo))
    return 100.0 * (math.exp(mean) - 1.0)


class _Point(NamedTuple):
    """What :func:`dnnjpeg.validation.bd_bootstrap.bootstrap_bd` reads of a Result."""

    indices: np.ndarray
    correct: np.ndarray
    kl: np.ndarray
    bytes: np.ndarray


def _as_points(curve: Curve) -> list[_Point]:
    idx = np.arange(curve.nbytes.shape[1])
    return [_Point(idx, curve.correct[i], curve.kl[i], curve.nbytes[i]) for i in range(curve.nbytes.shape[0])]


def _bd_pair(anchor: Curve, test: Curve, metric: str, method: str, sel: np.ndarray | None) -> float:
    from dnnjpeg.evaluation.curve import bd_rate

    ab, ac, ak = anchor.means(sel)
    tb, tc, tk = test.means(sel)
    av, tv = (ac, tc) if metric == "top1" else (ak, tk)
    if method == "linear":
        return bd_rate_linear((ab, av), (tb, tv), metric=metric)
    return bd_rate((ab, av), (tb, tv), metric=metric)


def bd_interval(anchor: Curve, test: Curve, *, metric: str = "top1", resamples: int = 2000, seed: int = 0,
                confidence: float = 0.95) -> dict[str, Any]:
    """BD-rate of ``test`` against ``anchor`` (both on the same images) with paired bootstrap intervals.

    ``pchip``: :func:`dnnjpeg.validation.bd_bootstrap.bootstrap_bd` (the project's BD-rate, its bootstrap);
    ``linear``: :func:`bd_rate_linear` on the same draws (``numpy.random.default_rng(seed)``, one
    ``integers(0, n, n)`` per draw, as ``bootstrap_bd`` draws them).

    Returns:
        ``{"pchip": {...BDInterval fields...}, "linear": {"bd_rate", "ci_low", "ci_high", "prob_smaller",
        "dropped"}}`` (NaN as ``None``).
    """
    from dnnjpeg.validation.bd_bootstrap import bootstrap_bd
    from dnnjpeg.validation.stats import _percentile_ci

    out: dict[str, Any] = {}
    if resamples > 0:
        out["pchip"] = bootstrap_bd(_as_points(anchor), _as_points(test), metric=metric, resamples=resamples,
                                    seed=seed, confidence=confidence).to_dict()
    else:
        out["pchip"] = {"bd_rate": _finite(_bd_pair(anchor, test, metric, "pchip", None))}
    est = _bd_pair(anchor, test, metric, "linear", None)
    lin: dict[str, Any] = {"bd_rate": _finite(est)}
    if resamples > 0:
        n = anchor.nbytes.shape[1]
        rng = np.random.default_rng(seed)
        vals = np.array([_bd_pair(anchor, test, metric, "linear", rng.integers(0, n, size=n))
                         for _ in range(resamples)])
        lo, hi = _percentile_ci(vals, confidence)
        fin = np.isfinite(vals)
        lin.update(ci_low=_finite(lo), ci_high=_finite(hi),
                   prob_smaller=float(np.mean(vals[fin] < 0)) if fin.any() else None,
                   dropped=int(np.sum(~fin)), resamples=resamples)
    out["linear"] = lin
    out["range"] = common_range(anchor, test, metric)
    return out


def common_range(anchor: Curve, test: Curve, metric: str = "top1") -> list[float] | None:
    """``[lo, hi]``: the range of mean top-1 (or KL) both curves cover once made monotone (running best),
    the range a BD-rate averages over; ``None`` when they do not overlap.  A range of a fraction of a point
    of top-1 makes the BD-rate at equal top-1 meaningless (it is then set by a few images).

    Example:
        >>> a = Curve(np.array([[1.0], [2.0]]), np.array([[0.5], [0.9]]), np.zeros((2, 1)))
        >>> t = Curve(np.array([[1.0], [2.0]]), np.array([[0.7], [1.0]]), np.zeros((2, 1)))
        >>> common_range(a, t)
        [0.7, 0.9]
    """
    sign = 1.0 if metric == "top1" else -1.0
    ends = []
    for c in (anchor, test):
        b, ok, kl = c.means()
        v = ok if metric == "top1" else kl
        y, _ = _running_best(np.log(b), sign * v)
        ends.append((y[0], y[-1]))
    lo, hi = max(ends[0][0], ends[1][0]), min(ends[0][1], ends[1][1])
    if not hi > lo:
        return None
    return sorted([float(sign * lo), float(sign * hi)])


def bytes_at_top1(rates: np.ndarray, top1: np.ndarray, target: float) -> float:
    """Mean bytes a curve needs for top-1 ``target``: its running best, log-rate linear in top-1 (as
    :func:`bd_rate_linear` reads curves); NaN above the curve's best top-1, the cheapest point's bytes at or
    below its lowest.

    Example:
        >>> round(bytes_at_top1(np.array([1000., 4000., 3000.]), np.array([0.5, 0.9, 0.7]), 0.8), 6)
        3464.101615
    """
    uy, x = _running_best(np.log(np.asarray(rates, np.float64)), np.asarray(top1, np.float64))
    if target > uy[-1]:
        return math.nan
    return float(np.exp(x[0] if target <= uy[0] else np.interp(target, uy, x)))


def iso_top1_saving(anchor: Curve, test: Curve, *, resamples: int = 2000, seed: int = 0,
                    confidence: float = 0.95) -> dict[str, Any]:
    """Bytes of a one-point ``test`` (its first point) against the bytes ``anchor`` needs for the same top-1
    (:func:`bytes_at_top1`), in percent, with a paired bootstrap interval (draws where the anchor never
    reaches the test's top-1 are dropped and counted)."""
    from dnnjpeg.validation.stats import _percentile_ci

    def one(sel: np.ndarray | None) -> tuple[float, float]:
        ab, ac, _ = anchor.means(sel)
        tb, tc, _ = test.means(sel)
        need = bytes_at_top1(ab, ac, float(tc[0]))
        return 100.0 * (float(tb[0]) / need - 1.0), need

    est, need = one(None)
    out: dict[str, Any] = {"saving": _finite(est), "anchor_bytes": _finite(need)}
    if resamples > 0:
        n = anchor.nbytes.shape[1]
        rng = np.random.default_rng(seed)
        vals = np.array([one(rng.integers(0, n, size=n))[0] for _ in range(resamples)])
        lo, hi = _percentile_ci(vals, confidence)
        out.update(ci_low=_finite(lo), ci_high=_finite(hi), dropped=int(np.sum(~np.isfinite(vals))))
    return out


def _finite(v: Any) -> Any:
    return float(v) if v is not None and np.isfinite(v) else None


def curve_points(curve: Curve, labels: Sequence[Any]) -> list[dict[str, Any]]:
    """``[{"at": label, "bytes": mean, "top1": mean, "kl": mean}, ...]`` for JSON."""
    b, c, k = curve.means()
    return [{"at": lab, "bytes": float(x), "top1": float(y), "kl": float(z)} for lab, x, y, z in zip(labels, b, c, k)]


def union(tables: Sequence[Tables], name: str) -> Tables:
    """One ladder holding every rung of ``tables`` (same images): the choice may pick any encoder.

    The fallback (last rung) is the largest rung on average."""
    first = tables[0]
    nb = np.concatenate([t.nbytes for t in tables], axis=1)
    order = np.argsort(nb.mean(axis=0), kind="stable")  # ascending mean size: the top rung is last
    models = [m for m in first.kl if all(m in t.kl for t in tables)]

    def cat(get: Any) -> np.ndarray:
        return np.concatenate([get(t) for t in tables], axis=1)[:, order]

    rungs = [f"{t.ladder.split(':')[0]}/{r}" for t in tables for r in t.rungs]
    return Tables(name, [rungs[i] for i in order], np.concatenate([t.qualities for t in tables])[order], nb[:, order],
                  {m: cat(lambda t, m=m: t.kl[m]) for m in models}, {m: cat(lambda t, m=m: t.top1[m]) for m in models},
                  {m: first.ref_top1[m] for m in models}, first.labels, sum(t.seconds for t in tables))


def reader_curves(t: Tables, choosers: Sequence[str], reader: str, taus: Sequence[float] | np.ndarray, *,
                  keep_top1: bool = False) -> Curve:
    """The per-image choice curve of ladder ``t``: chosen with ``choosers``' KL, read by ``reader``."""
    same = [t.top1[m] == t.ref_top1[m][:, None] for m in choosers] if keep_top1 else []
    ch = choose(t.nbytes, [t.kl[m] for m in choosers], taus, same_top1=same)
    return choice_curve(ch, t.nbytes, t.correct(reader), t.kl[reader])


def fixed(t: Tables, reader: str) -> Curve:
    return fixed_curve(t.nbytes, t.correct(reader), t.kl[reader])


# ---------------------------------------------------------------------------------------------------------
# exhaustive tables: dnnjpeg.ratecontrol.evaluate_rungs, cached in the workdir
# ---------------------------------------------------------------------------------------------------------
def normalize_spec(spec: str) -> str:
    """``standard`` -> ``standard:10-95:5`` (the prototype's qualities); a spec with qualities is kept."""
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "family":
        return spec
    return spec if arg else f"{kind}{QUALITY_RANGE}"


def _cache_path(workdir: Path, spec: str, protocol: str, fingerprint: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in spec)
    return workdir / f"rungs-{safe}-{protocol}-{fingerprint[:16]}.npz"


def save_tables(path: Path, t: Tables) -> None:
    arrays: dict[str, Any] = {"nbytes": t.nbytes, "labels": t.labels, "qualities": t.qualities,
                              "rungs": np.array(t.rungs), "ladder": np.array(t.ladder),
                              "seconds": np.array(t.seconds), "meta": np.array(json.dumps(t.meta))}
    for m in t.kl:
        arrays[f"kl|{m}"] = t.kl[m]
        arrays[f"top1|{m}"] = t.top1[m]
        arrays[f"ref_top1|{m}"] = t.ref_top1[m]
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_tables(path: Path) -> Tables:
    with np.load(path, allow_pickle=False) as z:
        models = [k.split("|", 1)[1] for k in z.files if k.startswith("kl|")]
        return Tables(str(z["ladder"]), [str(r) for r in z["rungs"]], z["qualities"], z["nbytes"],
                      {m: z[f"kl|{m}"] for m in models}, {m: z[f"top1|{m}"] for m in models},
                      {m: z[f"ref_top1|{m}"] for m in models}, z["labels"], float(z["seconds"]),
                      json.loads(str(z["meta"])))


#: Images per resumable piece of an exhaustive table (a multiple of the CPU batch of 8, so that the model's
#: batches are the same as in one call over every image).
CHUNK = 96


def _exhaustive(spec: str, dataset: Any, models: Sequence[str], protocol: str, partial: Path | None = None) -> Tables:
    """Encode every image at every rung of ``spec`` and read every rung with every model
    (:func:`dnnjpeg.ratecontrol.evaluate_rungs`; models with batch norms folded, batches of 8 on the CPU), in
    pieces of :data:`CHUNK` images, each kept under ``partial`` (when given) so that a killed run resumes."""
    from PIL import Image

    from dnnjpeg.evaluation.models import get
    from dnnjpeg.ratecontrol import evaluate_rungs, get_ladder

    ladder = get_ladder(spec)
    clfs = [get(m).fold_batchnorm() for m in models]
    cpu = all(getattr(c.device, "type", str(c.device)) == "cpu" for c in clfs)
    names = [c.name for c in clfs]
    n = len(dataset)
    pieces: list[dict[str, np.ndarray]] = []
    seconds = 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        path = None if partial is None else partial / f"{'-'.join(names)}-{start}-{stop}.npz"
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as z:
                pieces.append({k: z[k] for k in z.files})
            continue
        images = [Image.fromarray(dataset.load_image(i)) for i in range(start, stop)]
        t0 = time.perf_counter()
        table = evaluate_rungs(images, ladder, clfs, protocol=protocol, batch_size=8 if cpu else 64)
        dt = time.perf_counter() - t0
        if list(table.labels) != list(ladder.labels):
            raise RuntimeError(f"{spec}: evaluate_rungs returned rungs {table.labels}, expected {ladder.labels}")
        piece = {"nbytes": np.asarray(table.nbytes, dtype=np.float64), "seconds": np.array(dt)}
        for m, c in zip(models, names):
            piece[f"kl|{m}"] = np.asarray(table.kl[c], dtype=np.float64)
            piece[f"top1|{m}"] = np.asarray(table.top1[c], dtype=np.int64)
            piece[f"ref_top1|{m}"] = np.asarray(table.ref_top1[c], dtype=np.int64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **piece)
            os.replace(tmp, path)
        print(f"    images {start}..{stop - 1}: {dt:.0f} s", flush=True)
        pieces.append(piece)
    seconds = float(sum(float(p["seconds"]) for p in pieces))

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in pieces], axis=0)

    return Tables(spec, list(ladder.labels),
                  np.array([np.nan if r.quality is None else r.quality for r in ladder], dtype=np.float64),
                  cat("nbytes"), {m: cat(f"kl|{m}") for m in models}, {m: cat(f"top1|{m}") for m in models},
                  {m: cat(f"ref_top1|{m}") for m in models}, np.asarray(dataset.labels, dtype=np.int64), seconds,
                  {"protocol": protocol, "progressive": bool(ladder.progressive), "batch_size": 8 if cpu else 64,
                   "chunk": CHUNK})


def get_tables(spec: str, dataset: Any, models: Sequence[str], protocol: str, workdir: Path, *,
               log: Any = print) -> Tables:
    """The cached exhaustive table of ``spec`` (computed for the models it lacks)."""
    path = _cache_path(workdir, spec, protocol, dataset.fingerprint(protocol))
    have = load_tables(path) if path.is_file() else None
    missing = [m for m in models if have is None or m not in have.kl]
    if not missing:
        log(f"  {spec}: read {path.name} ({have.n} images x {len(have.rungs)} rungs)")
        return have
    log(f"  {spec}: evaluating {len(dataset)} images x rungs with {', '.join(missing)} ...")
    new = _exhaustive(spec, dataset, missing, protocol, workdir / (path.stem + "-partial"))
    if have is not None:
        if not np.array_equal(have.nbytes, new.nbytes):
            raise RuntimeError(f"{path}: cached file sizes differ from a fresh encode; delete it and rerun")
        for m in missing:
            have.kl[m], have.top1[m], have.ref_top1[m] = new.kl[m], new.top1[m], new.ref_top1[m]
        have.seconds += new.seconds
        new = have
    workdir.mkdir(parents=True, exist_ok=True)
    save_tables(path, new)
    log(f"  {spec}: {new.seconds:.0f} s, cached in {path}")
    return new


# ---------------------------------------------------------------------------------------------------------
# the figures
# ---------------------------------------------------------------------------------------------------------
#: The prototype's figures (../shared/reference/measurement-notes.md), native protocol, Lite0, standard ladder.
PROTOTYPE = {
    "bd_top1": -37.6, "bd_kl": -28.5,
    "fixed": {10: (0.736, 9.3e3), 30: (0.828, 18.4e3), 50: (0.848, 25.6e3), 75: (0.866, 38.3e3), 95: (0.886, 89.6e3)},
    "choice": {0.034: (0.888, 28.8e3), 0.14: (0.874, 16.7e3)},
}
GOALS = {"vs_standard_top1": -60.0, "vs_standard_top1_moonshot": -70.0, "vs_mozjpeg_top1": -50.0,
         "keep_top1_points": 0.5, "lite0_read_by_lite2": -25.0, "lite01_read_by_lite2": -30.0}


def _short(model: str) -> str:
    return model.replace("efficientnet_lite", "Lite")


def _kind(spec: str) -> str:
    return spec.split(":", 1)[0]


def _rung_of(t: Tables, quality: int) -> int | None:
    hit = np.flatnonzero(t.qualities == quality)
    return int(hit[0]) if hit.size else None


def bd_row(base: Curve, test: Curve, metric: str, resamples: int, seed: int, **what: Any) -> dict[str, Any]:
    return {**what, "metric": metric, **bd_interval(base, test, metric=metric, resamples=resamples, seed=seed)}


def analyse(tables: dict[str, Tables], models: Sequence[str], *, resamples: int = 2000, seed: int = 0,
            taus: np.ndarray = TAUS, log: Any = print) -> dict[str, Any]:
    """Every figure of the benchmark from the exhaustive tables (``tables[spec]``; the first model chooses).

    ``tables`` must hold ``standard:10-95:5`` (the fixed anchor of every comparison)."""
    chooser = models[0]
    std_spec = normalize_spec("standard")
    std = tables[std_spec]
    moz = next((t for s, t in tables.items() if s == normalize_spec("mozjpeg")), None)
    out: dict[str, Any] = {"n": std.n, "taus": [float(x) for x in taus], "chooser": chooser,
                           "uncompressed_top1": {m: float(std.ref_correct(m).mean()) for m in models},
                           "fixed": {}, "choice": {}, "bd": [], "keep_top1": [], "cross_model": []}
    for spec, t in tables.items():
        out["fixed"][spec] = {m: curve_points(fixed(t, m), t.rungs) for m in models if m in t.kl}
        out["choice"][spec] = {
            "kl": curve_points(reader_curves(t, [chooser], chooser, taus), [float(x) for x in taus]),
            "kl+top1": curve_points(reader_curves(t, [chooser], chooser, taus, keep_top1=True),
                                    [float(x) for x in taus])}

    def anchors_for(spec: str) -> list[tuple[str, Tables]]:
        """Fixed standard, fixed mozjpeg (when measured) and the ladder's own fixed qualities."""
        out_a = [(std_spec, std)]
        if moz is not None:
            out_a.append((normalize_spec("mozjpeg"), moz))
        if spec not in (std_spec, normalize_spec("mozjpeg")) and "+" not in spec:
            out_a.append((spec, tables[spec]))
        return out_a

    # 1. per-image choice (chooser reads) against one fixed quality
    for spec, t in tables.items():
        for keep in (False, True):
            test = reader_curves(t, [chooser], chooser, taus, keep_top1=keep)
            for aspec, at in anchors_for(spec):
                for metric in ("top1", "kl"):
                    log(f"  BD {spec}{' keep-top1' if keep else ''} vs fixed {aspec} at equal {metric}")
                    out["bd"].append(bd_row(fixed(at, chooser), test, metric, resamples, seed, ladder=spec,
                                            choosers=[chooser], reader=chooser, keep_top1=keep, anchor=aspec))
    # fixed encoders against fixed standard (context)
    for spec, t in tables.items():
        if spec == std_spec or "+" in spec:
            continue
        for metric in ("top1", "kl"):
            out["bd"].append(bd_row(fixed(std, chooser), fixed(t, chooser), metric, resamples, seed, ladder=spec,
                                    choosers=[], reader=chooser, keep_top1=False, anchor=std_spec, fixed=True))

    # 2. cross-model reading: choice by some models, files read by another, against fixed standard (that reader)
    combos = [([chooser], m) for m in models[1:]]
    if len(models) >= 3:
        combos.append((list(models[:2]), models[2]))
        combos.append(([models[2]], models[2]))  # the reader in its own loop: the best it could be
    for spec, t in tables.items():
        for keep in (False, True):
            for choosers, reader in combos:
                if any(m not in t.kl for m in [*choosers, reader]):
                    continue  # this ladder was read by the chooser only (--cross-ladders)
                test = reader_curves(t, choosers, reader, taus, keep_top1=keep)
                bases = [(std_spec, std)]
                if moz is not None and reader in moz.kl and not keep:
                    bases.append((normalize_spec("mozjpeg"), moz))
                for aspec, at in bases:
                    for metric in ("top1", "kl"):
                        log(f"  BD {spec}{' keep-top1' if keep else ''} chosen by {'+'.join(map(_short, choosers))} "
                            f"read by {_short(reader)} vs fixed {aspec} ({metric})")
                        out["cross_model"].append(bd_row(fixed(at, reader), test, metric, resamples, seed,
                                                         ladder=spec, choosers=choosers, reader=reader,
                                                         keep_top1=keep, anchor=aspec))

    # 3. keep-top1 at a few tau against uncompressed top-1 and standard q20's mean size
    from dnnjpeg.validation.stats import bootstrap_mean_diff_ci

    q20 = _rung_of(std, 20)
    q20_bytes = std.nbytes[:, q20] if q20 is not None else None
    ref_ok = std.ref_correct(chooser)
    for spec, t in tables.items():
        for tau in KEEP_TOP1_TAUS:
            c = reader_curves(t, [chooser], chooser, [tau], keep_top1=True)
            ok, nb = c.correct[0], c.nbytes[0]
            lo, hi = bootstrap_mean_diff_ci(ok, ref_ok, resamples=resamples, seed=seed) if resamples else (None, None)
            row = {"ladder": spec, "tau": None if math.isinf(tau) else tau, "top1": float(ok.mean()),
                   "delta_points": 100 * float(ok.mean() - ref_ok.mean()),
                   "delta_ci": None if lo is None else [100 * lo, 100 * hi],
                   "bytes": float(nb.mean()), "kl": float(c.kl[0].mean()),
                   "fallback_share": float(np.mean(~((t.top1[chooser] == t.ref_top1[chooser][:, None])
                                                     & (t.kl[chooser] <= tau)).any(axis=1)))}
            if q20_bytes is not None:
                row.update(q20_bytes=float(q20_bytes.mean()), vs_q20=100 * float(nb.mean() / q20_bytes.mean() - 1),
                           q20_top1=float(std.correct(chooser)[:, q20].mean()), vs_q20_ci=None)
                if resamples:
                    blo, bhi = bootstrap_mean_diff_ci(nb, q20_bytes, resamples=resamples, seed=seed)
                    row["vs_q20_ci"] = [100 * blo / q20_bytes.mean(), 100 * bhi / q20_bytes.mean()]
            # the bytes fixed standard JPEG needs for this top-1 (the running best of its curve)
            row["iso_top1"] = iso_top1_saving(fixed(std, chooser), c, resamples=resamples, seed=seed)
            # the same files read by the other models: their top-1 against their own uncompressed top-1
            row["other_readers"] = {}
            for m in models[1:]:
                if m in t.kl:
                    cm = reader_curves(t, [chooser], m, [tau], keep_top1=True)
                    row["other_readers"][m] = {
                        "top1": float(cm.correct.mean()),
                        "delta_points": 100 * float(cm.correct.mean() - std.ref_correct(m).mean()),
                        "q20_top1": None if q20 is None else float(std.correct(m)[:, q20].mean())}
            out["keep_top1"].append(row)

    # 4. the prototype's figures next to ours
    rep: dict[str, Any] = {"fixed": {}, "choice": {}}
    for q, (p_top1, p_bytes) in PROTOTYPE["fixed"].items():
        i = _rung_of(std, q)
        if i is not None:
            rep["fixed"][q] = {"top1": float(std.correct(chooser)[:, i].mean()),
                               "bytes": float(std.nbytes[:, i].mean()),
                               "prototype_top1": p_top1, "prototype_bytes": p_bytes}
    for tau, (p_top1, p_bytes) in PROTOTYPE["choice"].items():
        c = reader_curves(std, [chooser], chooser, [tau])
        rep["choice"][tau] = {"top1": float(c.correct.mean()), "bytes": float(c.nbytes.mean()),
                              "prototype_top1": p_top1, "prototype_bytes": p_bytes}
    out["reproduction"] = rep
    return out


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------
def fmt_bd(d: dict[str, Any] | None) -> str:
    """``-37.6% [-45.1, -30.2]`` (point estimate and 95% interval), ``n/a`` when undefined."""
    if not d or d.get("bd_rate") is None:
        return "n/a"
    s = f"{d['bd_rate']:+.1f}%"
    if d.get("ci_low") is not None and d.get("ci_high") is not None:
        s += f" [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]"
    return s


#: A BD-rate at equal top-1 over a common top-1 range narrower than this (2 points) is not shown: the choice
#: curve is flat there (keep-top1 keeps the uncompressed top-1 at every tau) and a few images decide it.
MIN_TOP1_RANGE = 0.02


def fmt_bd_top1(d: dict[str, Any]) -> str:
    """:func:`fmt_bd`, or ``flat`` when the common top-1 range is narrower than :data:`MIN_TOP1_RANGE`."""
    r = d.get("range")
    if not r or r[1] - r[0] < MIN_TOP1_RANGE:
        return "flat"
    return fmt_bd(d["pchip"] if "pchip" in d else d)


def fmt_range(d: dict[str, Any]) -> str:
    """``82.0–88.6%`` (the common top-1 range of a BD row)."""
    r = d.get("range")
    return "none" if not r else f"{100 * r[0]:.1f}–{100 * r[1]:.1f}%"


def _iso(d: dict[str, Any] | None) -> str:
    if not d or d.get("saving") is None:
        return "not reached"
    s = f"{d['anchor_bytes']:.0f}: {d['saving']:+.1f}%"
    if d.get("ci_low") is not None:
        s += f" [{d['ci_low']:+.1f}, {d['ci_high']:+.1f}]"
        if d.get("dropped"):
            s += f" ({d['dropped']} draws unreached)"
    return s


def _flat(row: dict[str, Any], method: str) -> str:
    return "flat" if fmt_bd_top1(row) == "flat" else fmt_bd(row[method])


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"


def _goal_text(value: dict[str, Any], goal: float) -> str:
    """``≤ -60%: no`` / ``yes`` / ``yes (CI)`` when even the interval's upper end meets it."""
    bd = value.get("bd_rate")
    if bd is None:
        return f"≤ {goal:+.0f}%: n/a"
    met = bd <= goal
    sure = value.get("ci_high") is not None and value["ci_high"] <= goal
    return f"≤ {goal:+.0f}%: " + ("yes, whole CI" if sure else "yes (point)" if met else "no")


def _pair(rows: list[dict[str, Any]], **match: Any) -> dict[str, dict[str, Any]]:
    got = {}
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            got[r["metric"]] = r
    return got


def markdown(res: dict[str, Any]) -> str:
    """The results as markdown tables (every figure with its goal)."""
    L: list[str] = []
    std = normalize_spec("standard")
    moz = normalize_spec("mozjpeg")
    ch = _short(res["chooser"])
    L.append(f"Images: {res['n']}; chooser {ch}; tau: {len(res['taus'])} log-spaced values "
             f"{res['taus'][0]:g}..{res['taus'][-1]:g} nats; BD-rate `pchip` = dnnjpeg.evaluation.curve.bd_rate "
             "(isotonic + PCHIP, "
             "headline), `linear` = the prototype's (running best + piecewise linear); [95% bootstrap interval over "
             f"images, {res.get('resamples', '?')} resamples].")
    L.append("")
    unc = res["uncompressed_top1"]
    L.append("Uncompressed top-1: " + ", ".join(f"{_short(m)} {100 * v:.1f}%" for m, v in unc.items()))
    L.append("")
    L.append(f"**Per-image choice, chosen and read by {ch}, against one fixed quality for all images**")
    L.append("")
    L.append("| ladder | criterion | against fixed | equal top-1 (pchip) | equal top-1 (linear) | top-1 range "
             "| equal KL (pchip) | equal KL (linear) | goal (equal top-1, pchip) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for r in res["bd"]:
        if r["metric"] != "top1" or r.get("fixed"):
            continue
        p = _pair(res["bd"], ladder=r["ladder"], keep_top1=r["keep_top1"], anchor=r["anchor"], fixed=r.get("fixed"))
        goal = ""
        if fmt_bd_top1(p["top1"]) == "flat":
            goal = "n/a (flat top-1 curve)"
        elif r["anchor"] == std:
            goal = _goal_text(p["top1"]["pchip"], GOALS["vs_standard_top1"]) + "; moonshot " + \
                _goal_text(p["top1"]["pchip"], GOALS["vs_standard_top1_moonshot"])
        elif r["anchor"] == moz:
            goal = _goal_text(p["top1"]["pchip"], GOALS["vs_mozjpeg_top1"])
        L.append(f"| {r['ladder']} | KL ≤ τ{' & same top-1' if r['keep_top1'] else ''} | {_kind(r['anchor'])} "
                 f"| {_flat(p['top1'], 'pchip')} | {_flat(p['top1'], 'linear')} | {fmt_range(p['top1'])} "
                 f"| {fmt_bd(p['kl']['pchip'])} | {fmt_bd(p['kl']['linear'])} | {goal} |")
    fixed_rows = [r for r in res["bd"] if r.get("fixed") and r["metric"] == "top1"]
    if fixed_rows:
        L.append("")
        L.append("**One fixed quality of another encoder against fixed standard JPEG (context)**")
        L.append("")
        L.append("| fixed | equal top-1 (pchip) | equal top-1 (linear) | equal KL (pchip) | equal KL (linear) |")
        L.append("|---|---|---|---|---|")
        for r in fixed_rows:
            p = _pair(res["bd"], ladder=r["ladder"], fixed=True)
            L.append(f"| {r['ladder']} | {fmt_bd(p['top1']['pchip'])} | {fmt_bd(p['top1']['linear'])} "
                     f"| {fmt_bd(p['kl']['pchip'])} | {fmt_bd(p['kl']['linear'])} |")
    if res["cross_model"]:
        L.append("")
        L.append("**Files chosen by one model, read by another (against one fixed quality read by the reader)**")
        L.append("")
        L.append("| ladder | criterion | chosen by | read by | against fixed | equal reader top-1 (pchip) | (linear) "
                 "| top-1 range | equal reader KL (pchip) | (linear) | goal |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in res["cross_model"]:
            if r["metric"] != "top1":
                continue
            p = _pair(res["cross_model"], ladder=r["ladder"], choosers=r["choosers"], reader=r["reader"],
                      keep_top1=r["keep_top1"], anchor=r["anchor"])
            who = "+".join(map(_short, r["choosers"]))
            goal = ""
            if r["keep_top1"] or r["anchor"] != std:
                goal = ""
            elif r["reader"].endswith("lite2") and r["choosers"] == [res["chooser"]]:
                goal = _goal_text(p["top1"]["pchip"], GOALS["lite0_read_by_lite2"])
            elif r["reader"].endswith("lite2") and len(r["choosers"]) == 2:
                goal = _goal_text(p["top1"]["pchip"], GOALS["lite01_read_by_lite2"])
            elif r["reader"] in r["choosers"]:
                goal = "(reader in its own loop: reference)"
            crit = "KL ≤ τ" + (" & same top-1" if r["keep_top1"] else "")
            L.append(f"| {r['ladder']} | {crit} | {who} | {_short(r['reader'])} | {_kind(r['anchor'])} "
                     f"| {_flat(p['top1'], 'pchip')} "
                     f"| {_flat(p['top1'], 'linear')} | {fmt_range(p['top1'])} | {fmt_bd(p['kl']['pchip'])} "
                     f"| {fmt_bd(p['kl']['linear'])} | {goal} |")
    if res["keep_top1"]:
        unc = 100 * res["uncompressed_top1"][res["chooser"]]
        L.append("")
        L.append(f"**keep-top1 (KL ≤ τ and {ch}'s top-1 unchanged), {ch} top-1 on the labels; uncompressed "
                 f"{unc:.1f}%**")
        L.append("")
        q20 = next((r for r in res["keep_top1"] if "q20_bytes" in r), None)
        if q20:
            L.append(f"Standard q20 for all images: {q20['q20_bytes']:.0f} bytes, {ch} top-1 "
                     f"{100 * q20['q20_top1']:.1f}%.")
            L.append("")
        L.append("| ladder | τ | top-1 | Δ vs uncompressed, points [CI] | mean bytes "
                 "| vs standard q20's mean bytes [CI] "
                 "| fixed standard's bytes at this top-1: saving [CI] "
                 "| images at fallback | goal: Δ ≥ −0.5 pt and bytes ≤ q20 "
                 "| same files read by others: Δ top-1 vs their uncompressed (fixed q20's Δ) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in res["keep_top1"]:
            tau = "∞" if r["tau"] is None else f"{r['tau']:g}"
            vs = "n/a" if "vs_q20" not in r else f"{r['vs_q20']:+.1f}%" + _ci(r.get("vs_q20_ci"))
            met = r["delta_points"] >= -GOALS["keep_top1_points"] and r.get("vs_q20", 1.0) <= 0
            others = ", ".join(
                f"{_short(m)} {o['delta_points']:+.1f}"
                + ("" if o["q20_top1"] is None else f" ({100 * (o['q20_top1'] - o['top1']) + o['delta_points']:+.1f})")
                for m, o in r.get("other_readers", {}).items())
            L.append(f"| {r['ladder']} | {tau} | {100 * r['top1']:.1f}% | {r['delta_points']:+.1f}"
                     f"{_ci(r.get('delta_ci'))} | {r['bytes']:.0f} | {vs} | {_iso(r.get('iso_top1'))} "
                     f"| {100 * r['fallback_share']:.1f}% | {'yes' if met else 'no'} | {others} |")
    rep = res.get("reproduction")
    if rep:
        L.append("")
        L.append(f"**Reproduction of the prototype (standard ladder, {ch}): ours vs prototype**")
        L.append("")
        L.append("| point | top-1 | prototype top-1 | mean kB | prototype kB |")
        L.append("|---|---|---|---|---|")
        for q, v in rep["fixed"].items():
            L.append(f"| fixed q{q} | {100 * v['top1']:.1f}% | {100 * v['prototype_top1']:.1f}% | "
                     f"{v['bytes'] / 1e3:.1f} | {v['prototype_bytes'] / 1e3:.1f} |")
        for tau, v in rep["choice"].items():
            L.append(f"| choice τ={tau} | {100 * v['top1']:.1f}% | {100 * v['prototype_top1']:.1f}% | "
                     f"{v['bytes'] / 1e3:.1f} | {v['prototype_bytes'] / 1e3:.1f} |")
        p = _pair(res["bd"], ladder=std, keep_top1=False, anchor=std, fixed=None)
        if p:
            L.append(f"| BD equal top-1 | {fmt_bd(p['top1']['pchip'])} (pchip), {fmt_bd(p['top1']['linear'])} (linear) "
                     f"| {PROTOTYPE['bd_top1']:+.1f}% | | |")
            L.append(f"| BD equal KL | {fmt_bd(p['kl']['pchip'])} (pchip), {fmt_bd(p['kl']['linear'])} (linear) "
                     f"| {PROTOTYPE['bd_kl']:+.1f}% | | |")
    return "\n".join(L) + "\n"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import PIL.features

        info["pillow"] = __import__("PIL").__version__
        info["libjpeg_turbo"] = PIL.features.version("libjpeg_turbo")
    except Exception:  # noqa: BLE001 - best effort
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a labelled image folder (labels.csv)")
    p.add_argument("--workdir", type=Path, required=True,
                   help="where the exhaustive tables (.npz), results.json and results.md go")
    p.add_argument("--ladders", default="standard,mozjpeg,jpegli",
                   help="comma-separated ladder specs (a bare kind gets qualities 10-95:5); A+B is the union of "
                        "two ladders' rungs (per image the smallest of either); standard:10-95:5 is always added "
                        "as the fixed anchor")
    p.add_argument("--protocol", choices=("native", "crop224"), default="native")
    p.add_argument("--models", default=",".join(MODELS),
                   help="comma-separated; the first chooses, every one reads (cross-model needs 3)")
    p.add_argument("--ladder", action="append", default=[], metavar="SPEC",
                   help="one more ladder spec (repeatable), for specs with commas, e.g. "
                        "'mozjpeg+mozjpeg:5,6,7,8,9' (mozjpeg 10..95:5 and 5..9 as one ladder)")
    p.add_argument("--cross-ladders", default="standard",
                   help="ladders read by every model (cross-model figures); the others are read by the chooser "
                        "(the first model) only, a quarter of the model time; 'all' for every ladder")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (a quick run)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from dnnjpeg.evaluation.data import load_dataset

    t_start = time.perf_counter()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dataset = load_dataset(args.data, limit=args.limit)
    if not dataset.labelled:
        p.error(f"{args.data} has no labels: top-1 needs labels.csv")
    ladder_args = [x.strip() for x in args.ladders.split(",") if x.strip()] + [x.strip() for x in args.ladder]
    specs: list[str] = []
    for s in [normalize_spec("standard")] + ladder_args:
        for part in s.split("+"):
            part = normalize_spec(part)
            if part not in specs:
                specs.append(part)
    print(f"{len(dataset)} images of {args.data}, protocol {args.protocol}, models {', '.join(models)}")
    cross = specs if args.cross_ladders.strip() == "all" else \
        [normalize_spec(x) for x in args.cross_ladders.split(",") if x.strip()]
    tables = {s: get_tables(s, dataset, models if s in cross else models[:1], args.protocol, args.workdir)
              for s in specs}
    wanted: dict[str, Tables] = {normalize_spec("standard"): tables[normalize_spec("standard")]}
    for s in ladder_args:
        parts = [normalize_spec(x) for x in s.split("+")]
        wanted["+".join(parts)] = tables[parts[0]] if len(parts) == 1 else union([tables[x] for x in parts],
                                                                                  "+".join(parts))
    t_tables = time.perf_counter() - t_start
    res = analyse(wanted, models, resamples=args.resamples, seed=args.seed)
    res.update(resamples=args.resamples, seed=args.seed, command="python " + " ".join([sys.argv[0]] + sys.argv[1:]
                                                                                     if argv is None else argv),
               cross_ladders=[s for s in specs if s in cross], data=str(args.data),
               data_fingerprint=dataset.fingerprint(args.protocol), protocol=args.protocol,
               models=models, ladders=list(wanted), machine=machine(),
               date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               seconds={"tables_cached_or_computed": t_tables, "tables_compute_recorded": {
                   s: t.seconds for s, t in tables.items()}, "total": time.perf_counter() - t_start})
    md = markdown(res)
    header = (f"Command: `{res['command']}`  \nData: {res['data']} ({res['n']} images, fingerprint "
              f"{res['data_fingerprint'][:12]}), protocol {res['protocol']}; models {', '.join(models)}  \n"
              f"Machine: {res['machine'].get('cpu', res['machine']['processor'])}, {res['machine']['cpu_count']} "
              f"cores, GPU {res['machine'].get('cuda') or 'none'}; torch {res['machine'].get('torch')}; "
              f"{res['date']}; {res['seconds']['total']:.0f} s this run\n\n")
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "results.json").write_text(json.dumps(res, indent=1, default=_json_default))
    (args.workdir / "results.md").write_text(header + md)
    print()
    print(header + md)
    print(f"written: {args.workdir / 'results.json'}, {args.workdir / 'results.md'}")
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serializable: {type(o)}")


if __name__ == "__main__":
    sys.exit(main())
