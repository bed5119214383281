"""Every image at every rung: the exhaustive table a search is measured against.

Example (a tiny random model, 2 images, 3 rungs)::

    >>> import torch
    >>> from PIL import Image
    >>> from dnnjpeg.evaluation.models import Classifier
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 10))
    >>> clf = Classifier.from_module(net, name="tiny", input_size=32, device="cpu")
    >>> imgs = [Image.linear_gradient("L").convert("RGB").resize((48, 40)), Image.new("RGB", (40, 48), "red")]
    >>> t = evaluate_rungs(imgs, "standard:10,50,90", [clf])
    >>> t.nbytes.shape, t.kl["tiny"].shape, t.labels
    ((2, 3), (2, 3), ('q10', 'q50', 'q90'))
    >>> bool((t.nbytes[:, 0] <= t.nbytes[:, 2]).all())
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..evaluation.data import crop224
from ..evaluation.models import get
from ._criterion import Criterion, kl_divergence
from ._engine import Engine, decode_image
from ._ladder import Ladder, get_ladder

__all__ = ["PROTOCOLS", "RungTable", "evaluate_rungs"]

#: ``native``: encode at the stored size, model's own resize/crop after decoding; ``crop224``: the seed's
#: 224x224 crop (Resize 256 bicubic + CenterCrop 224) is encoded, the model gets the decoded crop.
PROTOCOLS = ("native", "crop224")


@dataclass
class RungTable:
    """Every image at every rung.

    Attributes:
        labels: rung labels, in ladder order.
        nbytes: ``(n, r)`` int64 JPEG sizes.
        kl: model name -> ``(n, r)`` float64 ``KL(p_ref || p_rung)``.
        top1: model name -> ``(n, r)`` int64 predicted class at each rung.
        ref_top1: model name -> ``(n,)`` int64 predicted class of the reference.
        topk: model name -> ``(n, r, k)`` the ``k`` highest classes at each rung, highest first.
        ref_topk: model name -> ``(n, k)`` the reference's, highest first.
        protocol: ``native`` or ``crop224``.
        ref_logits: model name -> ``(n, C)`` float32 logits of the reference (the search's prior reads them).
    """

    labels: tuple[str, ...]
    nbytes: np.ndarray
    kl: dict[str, np.ndarray]
    top1: dict[str, np.ndarray]
    ref_top1: dict[str, np.ndarray]
    topk: dict[str, np.ndarray] = field(default_factory=dict)
    ref_topk: dict[str, np.ndarray] = field(default_factory=dict)
    protocol: str = "native"
    ref_logits: dict[str, np.ndarray] = field(default_factory=dict)

    def held(self, criterion: Criterion, models: Sequence[str] | None = None) -> np.ndarray:
        """``(n, r)`` bool: the criterion holds for every model (or every one of ``models``)."""
        ok = np.ones(self.nbytes.shape, dtype=bool)
        for m in self.kl if models is None else models:
            ok &= self.kl[m] <= criterion.max_kl
            if criterion.keep_top1:
                ok &= self.top1[m] == self.ref_top1[m][:, None]
            if criterion.top_k is not None:
                ok &= self._same_top_k(m, criterion.top_k)
        return ok

    def _same_top_k(self, model: str, k: int) -> np.ndarray:
        have = self.topk[model].shape[2] if model in self.topk else 0
        if k > have:
            raise ValueError(f"top_k={k}: this table kept the top {have} classes only (evaluate_rungs(top_k=...))")
        a = np.sort(self.ref_topk[model][:, :k], axis=1)
        b = np.sort(self.topk[model][:, :, :k], axis=2)
        return np.all(a[:, None, :] == b, axis=2)

    def smallest_holding(self, criterion: Criterion, models: Sequence[str] | None = None) -> np.ndarray:
        """Per image, the index of the holding rung with the fewest bytes (lowest index on ties); -1: none."""
        held = self.held(criterion, models)
        size = np.where(held, self.nbytes, np.iinfo(np.int64).max)
        best = size.argmin(axis=1)
        return np.where(held.any(axis=1), best, -1)


def evaluate_rungs(
    images: Sequence[Image.Image],
    ladder: str | Ladder,
    classifiers: Sequence[Any],
    *,
    protocol: str = "native",
    batch_size: int = 32,
    top_k: int = 5,
    workers: int | None = None,
) -> RungTable:
    """Evaluate every image at every rung of ``ladder`` with every classifier (exhaustive; no search).

    Args:
        images: PIL images (the decoded sources).
        ladder: a spec string or a :class:`Ladder`.
        classifiers: :class:`~dnnjpeg.evaluation.models.Classifier` objects (or names for :func:`dnnjpeg.evaluation.models.get`).
        protocol: ``"native"`` (default) or ``"crop224"`` (see :data:`PROTOCOLS`).
        batch_size: images per model call.
        top_k: how many highest classes to keep per candidate (for ``Criterion.top_k`` up to this).
        workers: codec threads (default: usable cores).
    """

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    lad = get_ladder(ladder) if isinstance(ladder, str) else ladder
    clfs = [get(c) for c in classifiers]
    engine = Engine(clfs, batch_size, workers)
    try:
        srcs = engine.map(crop224, list(images)) if protocol == "crop224" else list(images)
        return _table(engine, srcs, lad, protocol, top_k)
    finally:
        engine.close()


def _table(engine: Engine, srcs: list[Any], lad: Ladder, protocol: str, k: int) -> RungTable:
    n, r = len(srcs), len(lad)
    names = [c.name for c in engine.classifiers]
    nbytes = np.zeros((n, r), dtype=np.int64)
    kl = {m: np.zeros((n, r)) for m in names}
    top1 = {m: np.zeros((n, r), dtype=np.int64) for m in names}
    topk = {m: np.zeros((n, r, k), dtype=np.int64) for m in names}
    refs = _run(engine, engine.map(lambda s: _ref_inputs(engine, s, protocol), srcs))
    for j, rung in enumerate(lad):
        pairs = engine.map(lambda s, rung=rung: _cand_inputs(engine, s, rung, protocol), srcs)
        nbytes[:, j] = [len(d) for d, _ in pairs]
        logits = _run(engine, [x for _, x in pairs])
        for m, name in enumerate(names):
            kl[name][:, j] = kl_divergence(refs[m], logits[m])
            top1[name][:, j] = logits[m].argmax(axis=1)
            topk[name][:, j] = _top(logits[m], k)
    return RungTable(lad.labels, nbytes, kl, top1, {m: refs[i].argmax(axis=1) for i, m in enumerate(names)},
                     topk, {m: _top(refs[i], k) for i, m in enumerate(names)}, protocol,
                     {m: refs[i].astype(np.float32) for i, m in enumerate(names)})


def _top(logits: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def _ref_inputs(engine: Engine, src: Any, protocol: str) -> list[np.ndarray]:
    if protocol == "crop224":
        return [src] * len(engine.classifiers)
    return engine.reference_inputs(src)


def _cand_inputs(engine: Engine, src: Any, rung: Any, protocol: str) -> tuple[bytes, list[np.ndarray]]:
    if protocol == "crop224":
        data = rung.encode(src)
        arr = np.asarray(decode_image(data).convert("RGB"))
        return data, [arr] * len(engine.classifiers)
    return engine.candidate(src, rung)


def _run(engine: Engine, inputs: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per classifier, logits of every image's input for it."""
    return [engine.logits(m, [x[m] for x in inputs]) for m in range(len(engine.classifiers))]
