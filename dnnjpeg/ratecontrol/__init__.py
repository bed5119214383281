"""Model in the loop: recompress each image to the smallest file its model still reads the same.

Per image, among a *ladder* of candidate encodings ordered by size (:func:`get_ladder`), pick the
smallest whose decoded image every model reads like the original: ``KL(p_ref || p_cand) <= max_kl``,
optionally with the same top-1 class or top-k set (:class:`Criterion`).  The reference is the decoded
source image through the model's own resize/crop (the ``native`` protocol).  See docs/ratecontrol.md.

Example::

    from dnnjpeg.ratecontrol import Criterion, RateControl, choose, encode_for_model
    choice = encode_for_model(img, "efficientnet_lite0", max_kl=0.05)
    choice.rung, choice.nbytes, choice.evaluations          # the rung label, its bytes, forward passes
    rc = RateControl(criterion=Criterion(0.05), ladder="mozjpeg", min_quality=30)
    clfs = load_classifiers(rc)                             # once per process
    choices = choose(images, rc, classifiers=clfs, sources=source_bytes)   # batched across images
"""

from __future__ import annotations

from ._criterion import Criterion, kl_divergence
from ._engine import load_classifiers
from ._exhaustive import PROTOCOLS, RungTable, evaluate_rungs
from ._ladder import (
    DEFAULT_LADDER,
    DEFAULT_QUALITIES,
    JpegliEncoder,
    Ladder,
    Rung,
    get_ladder,
    ladders,
    register_ladder,
)
from ._options import RateControl
from ._policy import KLModel
from ._search import Choice, choose, encode_for_model

__all__ = [
    "DEFAULT_LADDER",
    "DEFAULT_QUALITIES",
    "PROTOCOLS",
    "Choice",
    "Criterion",
    "JpegliEncoder",
    "KLModel",
    "Ladder",
    "RateControl",
    "Rung",
    "RungTable",
    "choose",
    "encode_for_model",
    "evaluate_rungs",
    "get_ladder",
    "kl_divergence",
    "ladders",
    "load_classifiers",
    "register_ladder",
]
