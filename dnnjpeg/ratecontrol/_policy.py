"""Where to probe next: the search policy, learning online from the images already finished.

Strategies (``Policy(strategy=...)``):

``bisect``
    bisection of the open interval ``(lo, top)``, starting in the middle of the ladder.
``gallop``
    first probe at the online prior (the median answer of the images finished so far in this call),
    then steps of 1, 2, 4, ... away from it until the answer is bracketed, then bisection.
``predict`` (the default)
    first probe at the online prior; then at the rung where the measured ``log(KL / max_kl)`` predicts
    the boundary, using a slope per rung fitted online (the median of the slopes seen in finished
    images) or, once the answer is bracketed, the line through the two bracketing measurements; after
    two probes that did not end the search, bisection (so the worst case stays logarithmic).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["STRATEGIES", "Policy"]

STRATEGIES = ("bisect", "gallop", "predict")
#: Slope of log KL per rung before any image has finished (measured: standard ladder, Lite0, native).
DEFAULT_SLOPE = 0.3


class Policy:
    """Chooses each image's next probe and learns from finished searches.

    Args:
        n_rungs: ladder length.
        max_kl: the criterion's threshold (the predictions work in ``log(KL / max_kl)``).
        strategy: one of :data:`STRATEGIES`.
        prior: the first rung to probe before any image has finished (default: the middle).
    """

    def __init__(self, n_rungs: int, max_kl: float, strategy: str = "predict", prior: int | None = None) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.n = n_rungs
        self.log_tau = math.log(max_kl) if max_kl > 0 else -math.inf
        self.strategy = strategy
        self.prior = n_rungs // 2 if prior is None else prior
        self.answers: list[int] = []
        self.slopes: list[float] = []

    # -- probing ------------------------------------------------------------------------------
    def next_probe(self, st: Any) -> int:
        lo, top = st.lo, st.top
        if self.strategy == "bisect":
            return _clamp(self.n // 2 if not st.outcomes else (lo + top) // 2, lo, top)
        if not st.outcomes:
            return _clamp(self.guess(), lo, top)
        if self.strategy == "predict" and len(st.tried) <= 2 and math.isfinite(self.log_tau):
            p = self._predicted(st)
            if p is not None:
                return _clamp(p, lo, top)
        return self._gallop(st)

    def guess(self) -> int:
        """The first probe: the median answer so far (the prior before any)."""
        if self.strategy == "bisect" or not self.answers:
            return self.prior
        a = sorted(self.answers)
        return a[len(a) // 2]

    def _gallop(self, st: Any) -> int:
        lo, top = st.lo, st.top
        if lo >= 0 and top < self.n:
            return (lo + top) // 2
        step = 1 << max(0, len(st.tried) - 1)
        return _clamp(top - step if top < self.n else lo + step, lo, top)

    def _predicted(self, st: Any) -> int | None:
        """The rung where log(KL / max_kl) is predicted to cross 0 (lowest predicted-holding rung)."""
        pts = [(r, self._excess(st.outcomes[r])) for r in st.tried]
        pts = [(r, e) for r, e in pts if e is not None]
        if not pts:
            return None
        below = [(r, e) for r, e in pts if e > 0 and r <= st.lo]
        above = [(r, e) for r, e in pts if e <= 0 and r >= st.hi]
        if below and above:
            (a, ea), (b, eb) = max(below), min(above)
            if ea > eb:
                return a + math.ceil(ea / (ea - eb) * (b - a) - 1e-9)
        r, e = pts[-1]
        s = self.slope()
        return r + math.ceil(e / s - 1e-9) if e > 0 else r - math.floor(-e / s + 1e-9)

    def _excess(self, out: Any) -> float | None:
        """max over models of log(KL / max_kl); ``None`` when no KL is known; fails on top-1/top-k alone: None."""
        kls = [k for k in out.kl if not math.isnan(k)]
        if not kls:
            return None
        e = math.log(max(max(kls), 1e-30)) - self.log_tau
        if not out.held and e <= 0:
            return None  # failed on top-1 / top-k, not on KL: the KL line says nothing about where it holds
        return e

    def slope(self) -> float:
        if not self.slopes:
            return DEFAULT_SLOPE
        s = sorted(self.slopes)
        return max(s[len(s) // 2], 0.05)

    # -- learning -----------------------------------------------------------------------------
    def learn(self, st: Any) -> None:
        """Record a finished image: its answer (for the prior) and its measured slopes."""
        if st.hi < self.n and st.hi < st.cap:
            self.answers.append(st.hi)
        elif st.lo == self.n - 1:
            self.answers.append(self.n - 1)
        pts = sorted((r, self._excess(st.outcomes[r])) for r in st.tried)
        pts = [(r, e) for r, e in pts if e is not None]
        for (a, ea), (b, eb) in zip(pts, pts[1:]):
            if b > a:
                self.slopes.append((ea - eb) / (b - a))


def _clamp(p: int, lo: int, top: int) -> int:
    return min(max(p, lo + 1), top - 1)
