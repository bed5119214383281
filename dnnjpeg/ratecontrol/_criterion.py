"""When does a model read a candidate encoding "the same" as the original?

``KL(p_ref || p_cand) <= max_kl`` (nats, softmax of the logits, float64 as in
:func:`dnnjpeg.evaluation.evaluate._metrics`), and optionally the same top-1 class (``keep_top1``) or the same
set of ``top_k`` classes (order inside the set free).

Example:
    >>> import numpy as np
    >>> ref = np.array([[3.0, 1.0, 0.0]])
    >>> c = Criterion(max_kl=0.05, keep_top1=True)
    >>> held, kl, top1 = c.check(ref, np.array([[2.9, 1.0, 0.1]]))
    >>> bool(held[0]), round(float(kl[0]), 4), bool(top1[0])
    (True, 0.0013, True)
    >>> bool(c.check(ref, np.array([[1.0, 3.0, 0.0]]))[0][0])
    False
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["Criterion", "kl_divergence"]


@dataclass(frozen=True)
class Criterion:
    """``KL(p_ref || p_cand) <= max_kl`` and, optionally, the same top-1 class or the same top-k set.

    Args:
        max_kl: the largest KL divergence (nats) allowed, ``>= 0``.
        keep_top1: also require the candidate's top-1 class to be the reference's.
        top_k: also require the same set of ``top_k`` highest classes (``None``: no such condition).

    Raises:
        ValueError: naming the option, when one is out of range or of the wrong type.
    """

    max_kl: float
    keep_top1: bool = False
    top_k: int | None = None

    def __post_init__(self) -> None:
        kl = self.max_kl
        if isinstance(kl, bool) or not isinstance(kl, numbers.Real) or not math.isfinite(kl) or kl < 0:
            raise ValueError(f"max_kl must be a finite number >= 0 (nats), got {kl!r}")
        object.__setattr__(self, "max_kl", float(kl))
        if not isinstance(self.keep_top1, (bool, np.bool_)):
            raise ValueError(f"keep_top1 must be True or False, got {self.keep_top1!r}")
        object.__setattr__(self, "keep_top1", bool(self.keep_top1))
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
            raise ValueError(f"top_k must be None or an integer >= 1, got {k!r}")
        object.__setattr__(self, "top_k", None if k is None else int(k))

    def check(self, ref_logits: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: ``(held, kl, top1_kept)`` for candidate ``logits`` against ``ref_logits`` (both ``(N, C)``)."""
        ref = np.asarray(ref_logits, dtype=np.float64)
        cand = np.asarray(logits, dtype=np.float64)
        kl = kl_divergence(ref, cand)
        top1 = ref.argmax(axis=1) == cand.argmax(axis=1)
        held = kl <= self.max_kl
        if self.keep_top1:
            held &= top1
        if self.top_k is not None:
            held &= _same_top_k(ref, cand, self.top_k)
        return held, kl, top1

    def to_dict(self) -> dict[str, object]:
        return {"max_kl": self.max_kl, "keep_top1": self.keep_top1, "top_k": self.top_k}


def kl_divergence(ref_logits: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``KL(softmax(ref) || softmax(logits))`` per row in nats (float64, clipped at 0).

    Example:
        >>> float(kl_divergence(np.zeros((1, 4)), np.zeros((1, 4)))[0])
        0.0
    """
    zr = np.asarray(ref_logits, dtype=np.float64)
    z = np.asarray(logits, dtype=np.float64)
    logq = zr - _logsumexp(zr)
    logp = z - _logsumexp(z)
    return np.maximum(np.sum(np.exp(logq) * (logq - logp), axis=1), 0.0)


def _logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _same_top_k(ref: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    k = min(k, ref.shape[1])
    a = np.sort(np.argsort(-ref, axis=1, kind="stable")[:, :k], axis=1)
    b = np.sort(np.argsort(-cand, axis=1, kind="stable")[:, :k], axis=1)
    return np.all(a == b, axis=1)
