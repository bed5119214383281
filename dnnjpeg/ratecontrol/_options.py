"""The options of model-in-the-loop rate control, as one picklable value: :class:`RateControl`.

Example:
    >>> rc = RateControl(criterion=Criterion(0.05, keep_top1=True), ladder="mozjpeg", min_quality=30)
    >>> rc.models, rc.ladder, rc.to_dict()["criterion"]
    (('efficientnet_lite0',), 'mozjpeg', {'max_kl': 0.05, 'keep_top1': True, 'top_k': None})
    >>> RateControl(criterion=Criterion(0.05), batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from ..evaluation.models import Classifier, available
from ._criterion import Criterion
from ._ladder import DEFAULT_LADDER, Ladder, get_ladder

__all__ = ["RateControl"]


@dataclass(frozen=True)
class RateControl:
    """Everything :func:`~dnnjpeg.ratecontrol.choose` needs besides the images (plain, picklable values).

    Args:
        models: model names for :func:`dnnjpeg.evaluation.models.get` (or :class:`~dnnjpeg.evaluation.models.Classifier`
            objects); every one must hold.
        criterion: when a model reads a candidate the same (:class:`Criterion`); default ``max_kl=0.05``.
        ladder: a ladder spec (:func:`~dnnjpeg.ratecontrol.get_ladder`), default :data:`DEFAULT_LADDER`
            (``"trellis"``: baseline files, mozjpeg's trellis quantization of the standard tables).
        min_quality: only rungs of at least this quality are candidates (``None``: all).
        device: torch device for the models (``None``: CUDA when available, else the CPU).
        batch_size: images per model call.

    Raises:
        ValueError: naming the option, when one is invalid (checked at construction; :meth:`validate`
            checks again and returns ``self``).
    """

    models: tuple[Any, ...] = ("efficientnet_lite0",)
    criterion: Criterion = field(default_factory=lambda: Criterion(0.05))
    ladder: str = DEFAULT_LADDER
    min_quality: int | None = None
    device: str | None = None
    batch_size: int = 32

    def __post_init__(self) -> None:
        models = self.models
        if isinstance(models, str) or not isinstance(models, (tuple, list)):
            models = (models,)
        object.__setattr__(self, "models", tuple(models))
        self.validate()

    def validate(self) -> RateControl:
        """Check every option; ``ValueError`` names the first bad one.  Returns ``self``."""
        _check_models(self.models)
        if not isinstance(self.criterion, Criterion):
            raise ValueError(f"criterion must be a Criterion, got {type(self.criterion).__name__}")
        if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, numbers.Integral)
                or self.batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        q = self.min_quality
        if q is not None and (isinstance(q, bool) or not isinstance(q, numbers.Integral) or not 1 <= q <= 100):
            raise ValueError(f"min_quality must be None or an integer in 1..100, got {q!r}")
        if self.device is not None and not isinstance(self.device, str):
            raise ValueError(f"device must be None or a string such as 'cuda' or 'cpu', got {self.device!r}")
        self.get_ladder()
        return self

    def get_ladder(self) -> Ladder:
        """The ladder restricted to ``min_quality`` (``ValueError`` naming ``ladder`` or ``min_quality``)."""
        try:
            lad = get_ladder(self.ladder)
        except ValueError as exc:
            raise ValueError(f"ladder: {exc}") from None
        return lad.restrict(self.min_quality)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m if isinstance(m, str) else m.name for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (models by name)."""
        return {"models": list(self.model_names), "criterion": self.criterion.to_dict(), "ladder": self.ladder,
                "min_quality": self.min_quality, "device": self.device, "batch_size": self.batch_size}


def _check_models(models: tuple[Any, ...]) -> None:
    if not models:
        raise ValueError("models must name at least one model")
    known = set(available())
    for m in models:
        if isinstance(m, Classifier):
            continue
        if not isinstance(m, str):
            raise ValueError(f"models: expected model names or Classifier objects, got {type(m).__name__}")
        if m not in known and not m.startswith(("torchvision:", "timm:")):
            raise ValueError(f"models: unknown model {m!r}; known: {', '.join(sorted(known))}, "
                             "or torchvision:NAME, timm:NAME")
    names = [m if isinstance(m, str) else m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"models: {names} names a model twice")
