"""``fisher``: tables designed for the model by rate-distortion optimisation, with a searched correction.

The method asks the model which DCT coefficients matter (:mod:`dnnjpeg.search.design.fisher_weights`: the Fisher
information of its prediction, per block and frequency, from a few backward passes over the tuning
images), then designs tables the way RD-OPT designs them for mean squared error
(:mod:`dnnjpeg.search.design.rdopt`): each step minimises its frequency's Fisher-weighted squared error plus
``lam`` times its bits.  The bits are libjpeg's (standard Huffman tables, :mod:`dnnjpeg.search.design.jpegbits`)
with the zero runs of the size being designed for -- standard JPEG at the quality the candidates
are size-matched to (``context.quality``, else ``base_quality``), then, in a second pass, the
uncorrected design that spends as many modeled bits -- and the Fisher weights are taken at the
tuning images as that standard table decodes them, where the model will see the errors.  To second
order that weighted error *is* the KL divergence the size-matched objectives measure, but the
approximation holds only for small errors: on EfficientNet-Lite0 it ranks tables like the real KL
at quality 75 and up, and underrates luma errors at quality 50 and below (docs/search.md, *fisher*).  So the method does not trust one
design; it searches four parameters of the design, each proposal scored by the real objective:

* ``lam``: the rate price, relative to the ratio of weighted error to bits of standard JPEG's
  quality-50 table on these images (log-uniform in the ``lam`` range);
* ``chroma_weight``: the chroma errors' weight relative to luma's (log-uniform);
* ``tilt``: each frequency's weight times ``((1 + u + v) / 8) ** -tilt`` (positive: quantize high
  frequencies more than the Fisher weights say);
* ``blend``: the table is ``standard^(1 - blend) * design^blend`` step by step (uniform in 0..1):
  a path back to standard JPEG's shape where the quadratic model misleads;
* the chroma subsampling, when the space lets it vary.

Proposals: first standard JPEG's tables (quality ``base_quality``, with each allowed subsampling),
then the uncorrected design (``chroma_weight = 1``, ``tilt = 0``, ``blend = 1``, 4:2:0 when allowed) at
``lam`` 1, 1/4 and 4, the same at ``lam`` 1 halfway to standard (``blend = 0.5``), then a uniform
random point and two Gaussian steps around the best design so far, in turn.  With
``first_designs="each"`` (the method ``fisher-each``) the uncorrected design at ``lam`` 1 is proposed
at every allowed subsampling before the other first designs: a model may prefer full-resolution
chroma at one size and 4:2:0 at another, and a search that starts at 4:2:0 only meets the other
subsamplings through its random proposals.  With
``weights="mse"`` the Fisher weights are replaced by ones (classic RD-OPT for squared error; no
model needed).  In a ``single`` space the luma and chroma errors are priced together and one table
serves all components.

Options:
    weights: ``"fisher"`` (default; needs ``context.classifier``) or ``"mse"``.
    rate: ``"huffman"`` (default: libjpeg's bits with the zero runs of the size designed for) or
        ``"proxy"`` (run-blind, :mod:`dnnjpeg.search.design.dct`'s; undercharges isolated coefficients).
    rate_passes: passes of the Huffman rate (default 2: runs of standard JPEG, then of the design).
    fisher_at: ``"decoded"`` (default: the images as standard JPEG at the designed-for size decodes
        them) or ``"original"``.
    max_images: tuning images used for the statistics (default 250, evenly spaced among them).
    draws: random-sign backward passes per image (default 2).
    base_quality: the standard table proposed first (default 50).
    first_designs: ``"main"`` (default: the first designs at 4:2:0, or the space's only subsampling)
        or ``"each"`` (the ``lam`` 1 design at every allowed subsampling first; ``fisher-each``'s default).
    lam: ``[lo, hi]`` range of the relative rate price (default ``[0.1, 10]``).
    chroma_weight: ``[lo, hi]`` range (default ``[0.2, 5]``).
    tilt: ``[lo, hi]`` range (default ``[-1, 1]``).
    local_sigma: step size of the local proposals, in units of each range (default 0.15).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ..evaluation.codec import Codec
from ..qtable import QTable
from .base import SearchError, SearchMethod, register_method
from .design.fisher_weights import block_coefficients, fisher_statistics
from .design.jpegbits import coefficient_bits
from .design.rdopt import RDCurves, rd_curves, rd_steps, rd_steps_for_rate
from .shaped import _range, unit_proposal

__all__ = ["FisherEachSearch", "FisherSearch"]

_U, _V = np.divmod(np.arange(64), 8)
_FREQ = (1.0 + _U + _V) / 8.0
#: (lam, chroma_weight, tilt, blend) of the first designs proposed.
_FIRST = ((1.0, 1.0, 0.0, 1.0), (0.25, 1.0, 0.0, 1.0), (4.0, 1.0, 0.0, 1.0), (1.0, 1.0, 0.0, 0.5))


@register_method("fisher")
class FisherSearch(SearchMethod):
    """Model-weighted RD-OPT tables with a searched correction (see the module docstring).

    Example:
        >>> from dnnjpeg.search import SearchContext
        >>> imgs = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> m = FisherSearch("separate", context=SearchContext(images=imgs), weights="mse")
        >>> m.ask().luma == QTable.standard(50).luma     # standard JPEG first
        True
        >>> designed = m.ask()                           # then the uncorrected design at lam 1
        >>> designed.luma != QTable.standard(50).luma
        True
    """

    needs_images = True
    defaults: ClassVar[dict[str, Any]] = {
        "weights": "fisher", "rate": "huffman", "rate_passes": 2, "fisher_at": "decoded", "max_images": 250,
        "draws": 2, "base_quality": 50, "first_designs": "main",
        "lam": [0.1, 10.0], "chroma_weight": [0.2, 5.0], "tilt": [-1.0, 1.0], "local_sigma": 0.15,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        for key, allowed in (("weights", ("fisher", "mse")), ("rate", ("huffman", "proxy")),
                             ("fisher_at", ("decoded", "original")), ("first_designs", ("main", "each"))):
            if o[key] not in allowed:
                raise SearchError(f"option {key} must be one of {', '.join(map(repr, allowed))}, got {o[key]!r}")
        if o["weights"] == "fisher" and self.context.classifier is None:
            raise SearchError("method 'fisher' needs the model (SearchContext(classifier=...)); "
                              "weights='mse' designs for squared error without one")
        for key in ("max_images", "draws", "rate_passes"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SearchError(f"option {key} must be a positive integer, got {v!r}")
        q = o["base_quality"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
            raise SearchError(f"option base_quality must be an integer in 1..100, got {q!r}")
        if not 0 < float(o["local_sigma"]) <= 1:
            raise SearchError(f"option local_sigma must be in (0, 1], got {o['local_sigma']!r}")
        self._ranges = {k: _range(k, o[k], positive=k != "tilt") for k in ("lam", "chroma_weight", "tilt")}
        self._base = QTable.standard(q)
        self._single = self.space.tables == "single"
        subs = self.space.subsampling
        self._main = main = subs.index("4:2:0") if "4:2:0" in subs else 0  # the first designs' subsampling
        # (index into _FIRST, subsampling index) of the fixed designs proposed after standard JPEG's tables
        visit = [i for i in range(len(subs)) if i != main] if o["first_designs"] == "each" else []
        self._first = [(0, main), *((0, i) for i in visit), *((k, main) for k in range(1, len(_FIRST)))]
        self._curves: dict[str, tuple[Any, Any, float]] = {}  # subsampling -> (luma, chroma, lam scale)
        self._params: dict[QTable, np.ndarray] = {}

    # -- statistics and designs ----------------------------------------------------------------
    def _reference(self) -> QTable:
        """Standard JPEG at the size the candidates are matched to (``base_quality`` when unknown)."""
        q = self.context.quality
        return QTable.standard(int(q)) if q is not None else self._base

    def _curves_for(self, subsampling: str) -> tuple[Any, Any, float]:
        """RD curves of luma and chroma at ``subsampling``, and the ``lam`` unit (all subsamplings at once)."""
        if not self._curves:
            o = self.options
            images = self.context.images
            keep = int(o["max_images"])
            if len(images) > keep:  # evenly spaced, not the first ones (files are often sorted by class)
                images = [images[int(i)] for i in np.linspace(0, len(images) - 1, keep).round()]
            subs = self.space.subsampling
            reference = self._reference()
            coefficients = {sub: block_coefficients(images, sub) for sub in subs}
            if o["weights"] == "fisher":
                at = images
                if o["fisher_at"] == "decoded":  # the model's sensitivity at the size being designed for

                    at, _ = Codec().roundtrip_batch(images, reference.replace(subsampling="4:2:0"))
                stats = fisher_statistics(self.context.classifier, at, subs, draws=int(o["draws"]), seed=self.seed)
                luma_w, chroma_w = stats[subs[0]].luma_weights, {sub: stats[sub].chroma_weights for sub in subs}
            else:
                luma_w, chroma_w = np.ones(64), dict.fromkeys(subs, np.ones(64))
            ref_y: Any = reference.luma if o["rate"] == "huffman" else None
            ref_c: Any = (reference.luma if self._single else reference.chroma) if ref_y is not None else None
            main = subs[self._main]  # the reference's subsampling, when allowed
            luma = rd_curves(coefficients[subs[0]][0], luma_w, reference=ref_y, component="luma")
            chroma = {sub: rd_curves(coefficients[sub][1], chroma_w[sub], reference=ref_c, component="chroma")
                      for sub in subs}
            for _ in range(int(o["rate_passes"]) - 1 if ref_y is not None else 0):
                # zero runs from the uncorrected design that spends the reference's modeled bits (the
                # errors do not depend on the rate model: only the bits are counted again)
                ref_y, ref_c = self._refined_reference(luma, chroma[main], ref_y, ref_c)
                luma = _recount(luma, coefficients[subs[0]][0], ref_y, "luma")
                chroma = {sub: _recount(chroma[sub], coefficients[sub][1], ref_c, "chroma") for sub in subs}
            for sub in subs:
                self._curves[sub] = (luma, chroma[sub], _lam_unit(luma, chroma[sub], self._base))
        return self._curves[subsampling]

    def _refined_reference(self, luma: Any, chroma: Any, ref_y: Any, ref_c: Any) -> tuple[np.ndarray, np.ndarray]:
        if self._single:
            both = RDCurves(luma.distortion + chroma.distortion, luma.rate + chroma.rate, luma.steps)
            (steps,) = rd_steps_for_rate([both], both.totals(ref_y)[1])
            return steps, steps
        y, c = rd_steps_for_rate([luma, chroma], luma.totals(ref_y)[1] + chroma.totals(ref_c)[1])
        return y, c

    def _design(self, u: np.ndarray, sub_index: int) -> QTable:
        (llo, lhi), (clo, chi), (tlo, thi) = (self._ranges[k] for k in ("lam", "chroma_weight", "tilt"))
        lam = math.exp(math.log(llo) + u[0] * (math.log(lhi) - math.log(llo)))
        chroma_weight = math.exp(math.log(clo) + u[1] * (math.log(chi) - math.log(clo)))
        tilt = tlo + u[2] * (thi - tlo)
        blend = float(u[3])
        subsampling = self.space.subsampling[sub_index]
        luma, chroma, unit = self._curves_for(subsampling)
        m = _FREQ ** -tilt
        if self._single:
            both = RDCurves(luma.distortion + chroma_weight * chroma.distortion, luma.rate + chroma.rate, luma.steps)
            y = _blend(self._base.luma, rd_steps(both, lam * unit, m), blend)
            table = QTable(y, None, subsampling=subsampling)
        else:
            y = _blend(self._base.luma, rd_steps(luma, lam * unit, m), blend)
            c = _blend(self._base.chroma, rd_steps(chroma, lam * unit, chroma_weight * m), blend)
            table = QTable(y, c, subsampling=subsampling)
        self._params[table] = np.append(u, sub_index)
        return table

    def _unit_of(self, lam: float, chroma_weight: float, tilt: float, blend: float) -> np.ndarray:
        (llo, lhi), (clo, chi), (tlo, thi) = (self._ranges[k] for k in ("lam", "chroma_weight", "tilt"))
        return np.clip(np.array([
            (math.log(lam) - math.log(llo)) / (math.log(lhi) - math.log(llo)),
            (math.log(chroma_weight) - math.log(clo)) / (math.log(chi) - math.log(clo)),
            (tilt - tlo) / (thi - tlo),
            blend,
        ]), 0.0, 1.0)

    # -- SearchMethod ----------------------------------------------------------------------------
    def _ask(self) -> QTable:
        n_sub = len(self.space.subsampling)
        n = self.n_asked
        if n < n_sub:  # standard JPEG with each allowed subsampling
            t = self._base if not self._single else QTable(self._base.luma, None)
            return t.replace(subsampling=self.space.subsampling[n])
        n -= n_sub
        first = self._first
        if n < len(first):
            return self._design(self._unit_of(*_FIRST[first[n][0]]), first[n][1])
        designs = [(v, i) for i, (t, v) in enumerate(self.scored()) if t in self._params]
        # around the best design so far (standard JPEG's tables, even when better, have no parameters)
        around = self._params[self.scored()[max(designs)[1]][0]] if designs and (n - len(first)) % 3 else None
        u, sub = unit_proposal(self.rng, around, 4, n_sub, float(self.options["local_sigma"]))
        return self._design(u, sub)

    def _rebind(self, asked: QTable, table: QTable) -> None:
        if asked in self._params and table not in self._params:
            self._params[table] = self._params[asked]


def _recount(curves: Any, coefficients: np.ndarray, reference: np.ndarray, component: str) -> Any:
    """``curves`` with the bits counted again with the zero runs of ``reference``."""

    return dataclasses.replace(curves, rate=coefficient_bits(coefficients, reference, component, steps=curves.steps))


def _blend(standard: tuple[int, ...], design: np.ndarray, blend: float) -> np.ndarray:
    """Steps ``standard^(1 - blend) * design^blend`` (a geometric path from standard JPEG's shape to the design)."""
    mixed = np.exp((1.0 - blend) * np.log(np.asarray(standard, float)) + blend * np.log(np.asarray(design, float)))
    return np.clip(np.rint(mixed), 1, 255).astype(int)


def _lam_unit(luma: Any, chroma: Any, base: QTable) -> float:
    """Weighted error per bit of ``base`` (its steps rounded to the grid): the scale of ``lam``."""
    dy, ry = luma.totals(base.luma)
    dc, rc = chroma.totals(base.chroma)
    return (dy + dc) / max(ry + rc, 1e-12) if dy + dc > 0 else 1.0


@register_method("fisher-each")
class FisherEachSearch(FisherSearch):
    """``fisher`` whose first designs visit every allowed subsampling (``first_designs="each"``).

    Example:
        >>> from dnnjpeg.search import SearchContext
        >>> imgs = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> m = FisherEachSearch("separate+subsampling", context=SearchContext(images=imgs), weights="mse")
        >>> [m.ask().subsampling for _ in range(6)]   # standard JPEG at each, then the design at each
        ['4:4:4', '4:2:2', '4:2:0', '4:2:0', '4:4:4', '4:2:2']
    """

    defaults: ClassVar[dict[str, Any]] = {**FisherSearch.defaults, "first_designs": "each"}
