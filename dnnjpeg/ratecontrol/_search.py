"""The search: per image, the smallest rung every model still reads like the original.

Images stream through a window of ``batch_size`` active images; each round sends one input per
active image (its reference first, then one candidate rung) through each model as one batch.
Per image the search keeps ``lo`` (highest rung seen failing), ``hi`` (lowest rung seen holding)
and ``cap`` (lowest rung not smaller than the original JPEG, when one is given) and probes inside
``(lo, min(hi, cap))`` until the interval is empty: the answer ``hi`` is then a rung that was
evaluated and held, whose lower neighbour was evaluated and failed (or is the bottom).  Where to
probe is :class:`Policy`'s job (see :mod:`dnnjpeg.ratecontrol._policy`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ._criterion import Criterion
from ._engine import Engine, decode_image, load_classifiers
from ._ladder import DEFAULT_LADDER, Ladder, get_ladder
from ._options import RateControl
from ._policy import KLModel, Policy

__all__ = ["Choice", "Outcome", "State", "choose", "encode_for_model", "search"]


@dataclass
class Outcome:
    """What one candidate (image, rung) gave: ``held`` for every model, per-model ``kl`` (NaN: that model
    was not run, an earlier one failed) and ``top1`` kept, its size, and whether it was not even run
    because it is no smaller than the original (``too_big``)."""

    held: bool
    kl: list[float]
    top1: list[bool | None]
    nbytes: int
    data: bytes | None = None
    too_big: bool = False
    passes: int = 0


@dataclass
class State:
    """One image's search: the bounds, what was tried, and the forward passes spent."""

    n: int
    lo: int = -1
    hi: int = -1
    cap: int = -1
    ref: Any = None
    tried: list[int] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    passes: int = 0
    ref_passes: int = 0
    accepted: bool = False

    def __post_init__(self) -> None:
        self.hi = self.cap = self.n

    @property
    def top(self) -> int:
        return min(self.hi, self.cap)

    @property
    def done(self) -> bool:
        return self.ref is not None and (self.accepted or self.lo + 1 >= self.top)

    def release(self) -> None:
        """Once finished: drop the bytes that cannot be the answer and the reference logits (memory)."""
        held = [r for r in self.tried if self.outcomes[r].held]
        keep = min(held, key=lambda r: (self.outcomes[r].nbytes, r)) if held else self.n - 1
        for r, out in self.outcomes.items():
            if r != keep:
                out.data = None
        self.ref = ()

    def record(self, r: int, out: Outcome) -> None:
        self.outcomes[r] = out
        self.passes += out.passes
        if out.too_big:
            self.cap = min(self.cap, r)
            return
        self.tried.append(r)
        if out.held:
            self.hi = min(self.hi, r)
        else:
            self.lo = max(self.lo, r)


class Oracle(Protocol):
    """Runs one round: references of newly admitted images and one candidate per probing image."""

    def round(self, refs: list[int], probes: list[tuple[int, int]]) -> tuple[list[Any], list[Outcome]]: ...

    def release(self, i: int) -> None: ...


def search(n_images: int, n_rungs: int, oracle: Oracle, policy: Policy, window: int) -> list[State]:
    """Run the search over ``n_images`` with ``window`` images active at a time; returns every final state."""
    states = [State(n_rungs) for _ in range(n_images)]
    waiting = iter(range(n_images))
    active: list[int] = []
    while True:
        new = [i for _, i in zip(range(window - len(active)), waiting)]
        probes = [(i, policy.next_probe(states[i])) for i in active]
        if not new and not probes:
            return states
        refs, outs = oracle.round(new, probes)
        for i, ref in zip(new, refs):
            states[i].ref, states[i].ref_passes = ref
        for (i, r), out in zip(probes, outs):
            states[i].record(r, out)
        active += new
        for i in active:
            states[i].accepted = states[i].accepted or (states[i].ref is not None and policy.stop(states[i]))
        for i in [i for i in active if states[i].done]:
            policy.learn(states[i])
            states[i].release()
            oracle.release(i)
        active = [i for i in active if not states[i].done]


@dataclass
class Choice:
    """The encoding chosen for one image.

    Attributes:
        data: the JPEG bytes (no metadata; the source's bytes when ``kept_original``).
        nbytes: ``len(data)``.
        rung: the chosen rung's label (``"q35"``); ``None`` when the original was kept.
        index: the rung's position in the full ladder ``get_ladder(rc.ladder)`` (before ``min_quality``).
        held: the output meets the criterion for every model (the original always does: it is the reference;
            ``False`` only for the top-rung fallback when no rung held).
        kept_original: no rung smaller than the source held, so the source's bytes are kept.
        kl: model name -> KL of the output (0 for the original; NaN where an earlier model already failed).
        top1_kept: model name -> the output's top-1 class is the reference's.
        evaluations: forward passes of this image, summed over models, the reference included.
        search_evaluations: those spent on candidates (``evaluations`` minus the references).
        tried: labels of the rungs run through the models, in the order tried.
    """

    data: bytes
    nbytes: int
    rung: str | None
    index: int | None
    held: bool
    kept_original: bool
    kl: dict[str, float]
    top1_kept: dict[str, bool]
    evaluations: int
    search_evaluations: int = 0
    tried: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """JSON-able dict of everything but ``data`` (NaN as ``None``)."""
        return {
            "nbytes": self.nbytes, "rung": self.rung, "index": self.index, "held": self.held,
            "kept_original": self.kept_original,
            "kl": {m: (None if math.isnan(v) else v) for m, v in self.kl.items()},
            "top1_kept": dict(self.top1_kept), "evaluations": self.evaluations,
            "search_evaluations": self.search_evaluations, "tried": list(self.tried),
        }


class EngineOracle:
    """Runs rounds for real: codec work on the engine's threads, one batch per model and round."""

    def __init__(self, engine: Engine, images: Sequence[Image.Image], ladder: Ladder, criterion: Criterion,
                 sources: Sequence[bytes | None]) -> None:
        self.engine, self.images, self.ladder, self.criterion = engine, images, ladder, criterion
        self.sources = sources
        self.refs: dict[int, list[np.ndarray]] = {}

    def round(self, refs: list[int], probes: list[tuple[int, int]]) -> tuple[list[Any], list[Outcome]]:
        eng = self.engine
        ref_in = eng.map(lambda i: eng.reference_inputs(self.images[i]), refs)
        cands = eng.map(self._candidate, probes)
        outs = [Outcome(x is not None, [math.nan] * len(eng.classifiers), [None] * len(eng.classifiers), len(d), d,
                        too_big=x is None) for d, x in cands]
        alive = [k for k, (_, x) in enumerate(cands) if x is not None]
        for m in range(len(eng.classifiers)):
            logits = eng.logits(m, [x[m] for x in ref_in] + [cands[k][1][m] for k in alive])
            for j, i in enumerate(refs):
                self.refs.setdefault(i, []).append(logits[j])
            alive = self._judge(m, logits[len(refs):], [probes[k][0] for k in alive], alive, outs)
        n = len(eng.classifiers)
        return [(self.refs[i], n) for i in refs], outs

    def release(self, i: int) -> None:
        self.refs.pop(i, None)

    def _candidate(self, probe: tuple[int, int]) -> tuple[bytes, list[np.ndarray] | None]:
        i, r = probe
        src = self.sources[i]
        data = self.ladder[r].encode(self.images[i])
        if src is not None and len(data) >= len(src):
            return data, None
        decoded = decode_image(data)
        return data, [np.asarray(c.transform(decoded)) for c in self.engine.classifiers]

    def _judge(self, m: int, logits: np.ndarray, imgs: list[int], alive: list[int], outs: list[Outcome]) -> list[int]:
        if not alive:
            return alive
        ref = np.stack([self.refs[i][m] for i in imgs])
        held, kl, top1 = self.criterion.check(ref, logits)
        for k, h, d, t in zip(alive, held, kl, top1):
            outs[k].kl[m], outs[k].top1[m], outs[k].passes = float(d), bool(t), outs[k].passes + 1
            outs[k].held = outs[k].held and bool(h)
        return [k for k, h in zip(alive, held) if h]


def choose(
    images: Sequence[Image.Image],
    rc: RateControl,
    *,
    classifiers: Sequence[Any] | None = None,
    sources: Sequence[bytes | None] | None = None,
    kl_model: KLModel | None = None,
    workers: int | None = None,
) -> list[Choice]:
    """For each image, the smallest rung of ``rc``'s ladder every model reads like the image itself.

    Args:
        images: the decoded source images (PIL).
        rc: the options.
        classifiers: ``rc.models`` already loaded (:func:`load_classifiers`), in that order; default: load them.
        sources: per image, the source file's bytes when it is a JPEG already (or ``None``): it is kept
            when no smaller rung holds, and rungs not smaller than it are never run through a model.
        kl_model: the search's model of KL (:class:`~dnnjpeg.ratecontrol.KLModel`); pass the same object to
            successive calls with the same models and ladder to keep what it learned (default: a fresh one,
            learning from this call's images only).
        workers: threads for the codec work (encode, decode, resize); default: the usable cores
            (``$DNNJPEG_WORKERS``).  Pass 1 inside a process pool that already uses every core.

    Returns:
        one :class:`Choice` per image, in order.

    Example (a tiny random model; real ones by name, e.g. the default ``efficientnet_lite0``):
        >>> from dnnjpeg.testing import synthetic_image, tiny_classifier
        >>> clf = tiny_classifier(num_classes=10, input_size=32)
        >>> rc = RateControl(models=(clf,), criterion=Criterion(max_kl=0.01), ladder="standard:10-90:10")
        >>> images = [synthetic_image(i, (96, 80)) for i in range(4)]
        >>> choices = choose(images, rc, classifiers=[clf])
        >>> all(c.held and c.kl[clf.name] <= 0.01 and c.rung in c.tried for c in choices)
        True
        >>> all(c.evaluations == 1 + len(c.tried) for c in choices)   # the reference + one per rung tried
        True
        >>> c = choices[0]
        >>> rung = get_ladder(rc.ladder)[c.index]
        >>> c.data == rung.encode(images[0]) and c.rung == rung.label
        True
    """
    rc.validate()
    clfs = list(classifiers) if classifiers is not None else load_classifiers(rc)
    if len(clfs) != len(rc.models):
        raise ValueError(f"classifiers: got {len(clfs)} for {len(rc.models)} models {list(rc.model_names)}")
    srcs = list(sources) if sources is not None else [None] * len(images)
    if len(srcs) != len(images):
        raise ValueError(f"sources: got {len(srcs)} for {len(images)} images")
    ladder = rc.get_ladder()
    offset = len(get_ladder(rc.ladder)) - len(ladder)
    engine = Engine(clfs, rc.batch_size, workers)
    try:
        oracle = EngineOracle(engine, images, ladder, rc.criterion, srcs)
        policy = Policy(len(ladder), rc.criterion.max_kl, model=kl_model, qualities=[r.quality for r in ladder])
        states = search(len(images), len(ladder), oracle, policy, rc.batch_size)
        names = [c.name for c in clfs]
        return [_choice(st, ladder, offset, img, src, names) for st, img, src in zip(states, images, srcs)]
    finally:
        engine.close()


def _choice(st: State, ladder: Ladder, offset: int, img: Image.Image, source: bytes | None,
            names: list[str]) -> Choice:
    held = [r for r in st.tried if st.outcomes[r].held]
    if held:
        best = min(held, key=lambda r: (st.outcomes[r].nbytes, r))
    else:  # nothing held: the top rung, or the original when it is smaller
        best = len(ladder) - 1
        if st.outcomes.get(best) is None or st.outcomes[best].data is None:
            data = ladder[best].encode(img)
            st.outcomes[best] = Outcome(False, [math.nan] * len(names), [None] * len(names), len(data), data)
        if source is not None and len(source) <= st.outcomes[best].nbytes:
            return _original(st, ladder, source, names)
    out = st.outcomes[best]
    return Choice(out.data, out.nbytes, ladder[best].label, best + offset, out.held, False,  # type: ignore[arg-type]
                  dict(zip(names, out.kl)), {m: bool(t) for m, t in zip(names, out.top1) if t is not None},
                  st.passes + st.ref_passes, st.passes, tuple(ladder[r].label for r in st.tried))


def _original(st: State, ladder: Ladder, source: bytes, names: list[str]) -> Choice:
    return Choice(source, len(source), None, None, True, True, dict.fromkeys(names, 0.0), dict.fromkeys(names, True),
                  st.passes + st.ref_passes, st.passes, tuple(ladder[r].label for r in st.tried))


def encode_for_model(
    img: Image.Image,
    model: str | Any = "efficientnet_lite0",
    *,
    max_kl: float = 0.05,
    keep_top1: bool = False,
    top_k: int | None = None,
    ladder: str = DEFAULT_LADDER,
    min_quality: int | None = None,
    source: bytes | None = None,
    device: str | None = None,
) -> Choice:
    """The smallest encoding of one image that ``model`` (a name, a Classifier, or a sequence of them: all
    must hold) reads like ``img`` itself: ``choose([img], ...)[0]``.  Registry models are loaded once per
    process and kept (see :func:`choose` for the arguments).

    Example:
        >>> from dnnjpeg.testing import synthetic_image, tiny_classifier
        >>> img = synthetic_image(0, (96, 80))
        >>> clf = tiny_classifier(num_classes=10, input_size=32)
        >>> c = encode_for_model(img, clf, max_kl=0.01, ladder="standard:10-90:10")
        >>> c.held, c.kept_original, c.evaluations == 1 + len(c.tried), c.nbytes == len(c.data)
        (True, False, True, True)
        >>> tiny_jpeg = get_ladder("standard:2")[0].encode(img)   # a source smaller than every rung: kept
        >>> encode_for_model(img, clf, max_kl=0.01, ladder="standard:10-90:10", source=tiny_jpeg).data == tiny_jpeg
        True
    """
    models = tuple(model) if isinstance(model, (list, tuple)) else (model,)
    rc = RateControl(models, Criterion(max_kl, keep_top1, top_k), ladder, min_quality, device, batch_size=1)
    clfs = [_cached_classifier(m, device) if isinstance(m, str) else m for m in models]
    return choose([img], rc, classifiers=clfs, sources=[source])[0]


@functools.lru_cache(maxsize=4)
def _cached_classifier(name: str, device: str | None) -> Any:
    return load_classifiers(RateControl((name,), device=device))[0]
