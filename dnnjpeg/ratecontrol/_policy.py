"""Where to probe next: the search policy, and the model of log KL it learns online.

Strategies (``Policy(strategy=...)``):

``bisect``
    bisection of the open interval ``(lo, top)``, starting in the middle of the ladder.
``gallop``
    first probe at the median answer of the images finished so far, then steps of 1, 2, 4, ... away
    from it until the answer is bracketed, then bisection.
``predict`` (the default)
    a probabilistic model of each image's KL (:class:`KLModel`): ``log KL_i(r) = c_i + f[r] + noise``,
    the image's *sensitivity* ``c_i`` a priori ``a + b x_i`` (``x_i``: log entropy of the reference
    prediction, free since the reference is run anyway) and updated by every KL measured on the image.
    The first probe is the lowest rung whose predicted chance of holding is at least
    :attr:`Thresholds.first`; after a failure, the lowest with at least :attr:`Thresholds.up`; below a
    verified hold, the lowest with at least :attr:`Thresholds.down` (by default the search always ends on
    a verified boundary; :attr:`Thresholds.stop` can trade bytes for evaluations).  After
    :data:`PREDICTED_PROBES` probes it brackets by doubling steps and bisects, so the worst case stays
    logarithmic in the ladder's length.  ``f``, the noise per rung and
    ``a, b`` are fitted online from the images already finished (the same :class:`KLModel` can be passed
    to successive calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["STRATEGIES", "KLModel", "Policy", "Thresholds"]

STRATEGIES = ("bisect", "gallop", "predict")
#: Before any image has finished: log KL ~ INTERCEPT + ENTROPY_SLOPE x + QUALITY_SLOPE q, residual sd
#: DEFAULT_SD (least squares on the 500 dev photos, standard ladder q10..q95, EfficientNet-Lite0, native).
INTERCEPT, ENTROPY_SLOPE, QUALITY_SLOPE, DEFAULT_SD = -1.26, 1.11, -0.049, 0.9
#: Before any image has finished: log bytes ~ SIZE_Q2 q^2 + SIZE_Q1 q + const (same photos and ladder).
SIZE_Q2, SIZE_Q1 = 5.2e-5, 0.016
#: ``predict`` places this many probes by the model, then brackets and bisects.
PREDICTED_PROBES = 4
_LOG_KL_FLOOR = math.log(1e-8)


@dataclass(frozen=True)
class Thresholds:
    """What steers the ``predict`` strategy (see the module docstring).

    Attributes:
        first: chance of holding the first probe must have (the lowest such rung is probed).
        up: the same after a failure.
        down: the same below a verified hold.
        stop: accept a verified hold without probing the rung below when the chance that it holds times the
            fraction of bytes it would save is below this; ``0`` (the default) always verifies, so the answer
            is a rung whose lower neighbour failed (or the bottom one).

    The defaults were chosen on the dev photos (benchmarks/ratecontrol_search.py, docs/ratecontrol.md).
    """

    first: float = 0.3
    up: float = 0.5
    down: float = 0.2
    stop: float = 0.0


class KLModel:
    """``log KL_i(r) = c_i + f[r] + N(0, sd[r]^2)``, ``c_i ~ N(a + b x_i, s0^2)``, fitted online.

    Args:
        qualities: the rungs' qualities (the cold-start ``f`` is linear in them; ``None``: in the index).
        capacity: how many finished images to remember.
    """

    def __init__(self, qualities: list[int | None] | None = None, capacity: int = 4000) -> None:
        qs = [q if q is not None else 10 + 5 * i for i, q in enumerate(qualities or [])]
        self.n = len(qs)
        self.f = np.array([QUALITY_SLOPE * q for q in qs], dtype=np.float64)
        #: log bytes per rung, up to a per-image constant (cold start: libjpeg's standard tables on the dev photos)
        self.g = np.array([SIZE_Q2 * q * q + SIZE_Q1 * q for q in qs], dtype=np.float64)
        self.sd = np.full(self.n, DEFAULT_SD)
        self.a, self.b, self.s0 = INTERCEPT, ENTROPY_SLOPE, 1.2
        self.capacity = capacity
        self.images: list[tuple[float | None, list[tuple[int, float]]]] = []
        self.sizes: list[list[tuple[int, float]]] = []
        self._fitted = 0

    def fits(self, n_rungs: int) -> bool:
        return self.n == n_rungs

    # -- prediction -----------------------------------------------------------------------
    def posterior(self, x: float | None, points: list[tuple[int, float]]) -> tuple[float, float]:
        """Mean and variance of ``c`` given the reference feature ``x`` and measured ``(rung, log KL)`` points."""
        mu, var = (self.a + self.b * x, self.s0**2) if x is not None else (self.a, self.s0**2 + 1.0)
        for r, lk in points:
            w = 1.0 / self.sd[r] ** 2
            new = 1.0 / (1.0 / var + w)
            mu, var = new * (mu / var + (lk - self.f[r]) * w), new
        return mu, var

    def p_hold(self, mu: float, var: float, r: int, log_tau: float) -> float:
        """Chance that KL at rung ``r`` is at most ``exp(log_tau)``."""
        if log_tau == -math.inf:
            return 0.0
        z = (log_tau - self.f[r] - mu) / math.sqrt(var + self.sd[r] ** 2)
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    # -- learning -------------------------------------------------------------------------
    def saving(self, r: int, h: int) -> float:
        """Expected fraction of bytes saved by rung ``r`` instead of rung ``h``."""
        return 1.0 - math.exp(min(self.g[r] - self.g[h], 0.0))

    def add(self, x: float | None, points: list[tuple[int, float]], sizes: list[tuple[int, float]]) -> None:
        """Remember a finished image (its feature, measured ``(rung, log KL)`` and ``(rung, log bytes)``);
        refits every 8 images."""
        if points:
            self.images.append((x, points))
            del self.images[: -self.capacity]
        if len(sizes) >= 2:
            self.sizes.append(sizes)
            del self.sizes[: -self.capacity]
        if len(self.images) >= self._fitted + 8:
            self.fit()

    def fit(self) -> None:
        """Alternating least squares of the additive model, then the noise and the prior on ``c``."""
        if len(self.images) < 8:
            return
        self._fitted = len(self.images)
        rows = [(i, r, lk) for i, (_, pts) in enumerate(self.images) for r, lk in pts]
        img, rung, y = (np.array(v) for v in zip(*rows))
        img, rung = img.astype(int), rung.astype(int)
        self.f, c = _additive(img, rung, y, len(self.images), self.f)
        self._fit_noise(y - self.f[rung] - c[img], img, rung)
        self._fit_prior(c)
        if len(self.sizes) >= 8:
            rows = [(i, r, lb) for i, pts in enumerate(self.sizes) for r, lb in pts]
            img, rung, y = (np.array(v) for v in zip(*rows))
            self.g, _ = _additive(img.astype(int), rung.astype(int), y, len(self.sizes), self.g)

    def _fit_noise(self, res: np.ndarray, img: np.ndarray, rung: np.ndarray) -> None:
        multi = np.bincount(img)[img] >= 2  # one point per image fits its c exactly: no residual to learn from
        if multi.sum() < 16:
            return
        k = np.bincount(img)[img][multi]
        scaled = res[multi] ** 2 * k / (k - 1)  # residuals around a fitted mean are too small by (k-1)/k
        pooled = float(np.mean(scaled))
        per = np.bincount(rung[multi], weights=scaled, minlength=self.n)
        cnt = np.bincount(rung[multi], minlength=self.n)
        self.sd = np.sqrt(np.maximum((per + 8 * pooled) / (cnt + 8), 0.09))

    def _fit_prior(self, c: np.ndarray) -> None:
        xs = np.array([x if x is not None else np.nan for x, _ in self.images])
        ok = ~np.isnan(xs)
        if ok.sum() >= 8 and np.ptp(xs[ok]) > 0:
            b, a = np.polyfit(xs[ok], c[ok], 1)
            self.a, self.b = float(a), float(b)
            self.s0 = float(max(np.std(c[ok] - (a + b * xs[ok])), 0.3))


def _additive(img: np.ndarray, rung: np.ndarray, y: np.ndarray, n_img: int,
              prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y ~ c[img] + f[rung]`` by alternating means; rungs seen rarely lean on ``prior``'s shape."""
    f, c = prior.copy(), np.zeros(n_img)
    count = np.bincount(rung, minlength=len(prior))
    for _ in range(10):
        c = _group_mean(y - f[rung], img, n_img, c)
        f = _smooth(_group_mean(y - c[img], rung, len(prior), None), count, prior)
    return f, c


def _group_mean(v: np.ndarray, g: np.ndarray, n: int, default: np.ndarray | None) -> np.ndarray:
    s, k = np.bincount(g, weights=v, minlength=n), np.bincount(g, minlength=n)
    out = s / np.maximum(k, 1)
    return out if default is None else np.where(k > 0, out, default)


def _smooth(f: np.ndarray, count: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Rungs seen fewer than 3 times lean on the prior shape, shifted to join the seen ones."""
    seen = count >= 3
    if not seen.any():
        return prior
    shift = float(np.mean(f[seen] - prior[seen]))
    w = np.minimum(count / 3.0, 1.0)
    return w * f + (1 - w) * (prior + shift)


class Policy:
    """Chooses each image's next probe and learns from finished searches.

    Args:
        n_rungs: ladder length.
        max_kl: the criterion's threshold.
        strategy: one of :data:`STRATEGIES`.
        model: a :class:`KLModel` to use and keep training (a fresh one when ``None`` or of another length).
        qualities: the rungs' qualities (for a fresh model's cold start).
        thresholds: the ``predict`` strategy's :class:`Thresholds`.
    """

    def __init__(self, n_rungs: int, max_kl: float, strategy: str = "predict", model: KLModel | None = None,
                 qualities: list[int | None] | None = None, thresholds: Thresholds = Thresholds()) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.n = n_rungs
        self.log_tau = math.log(max_kl) if max_kl > 0 else -math.inf
        self.strategy = strategy
        self.th = thresholds
        self.model = model if model is not None and model.fits(n_rungs) else KLModel(qualities or [None] * n_rungs)
        self.answers: list[int] = []

    def next_probe(self, st: Any) -> int:
        lo, top = st.lo, st.top
        if self.strategy == "bisect":
            return _clamp(self.n // 2 if not st.outcomes else (lo + top) // 2, lo, top)
        if self.strategy == "gallop" or len(st.tried) >= PREDICTED_PROBES:
            return self._gallop(st)  # bracket by doubling steps, then bisect: a logarithmic worst case
        mu, var = self.model.posterior(_feature(st.ref), self._points(st))
        if st.hi < self.n:  # a verified hold: probe below only when it has a fair chance
            return _clamp(self._lowest(mu, var, self.th.down, lo, st.hi), lo, top)
        return _clamp(self._lowest(mu, var, self.th.up if st.tried else self.th.first, lo, top), lo, top)

    def stop(self, st: Any) -> bool:
        """Accept ``st.hi`` without probing below it (only ``predict``, when the rung below is unlikely to hold)."""
        if self.strategy != "predict" or st.hi >= self.n or st.lo + 1 >= st.hi:
            return False
        mu, var = self.model.posterior(_feature(st.ref), self._points(st))
        gain = self.model.p_hold(mu, var, st.hi - 1, self.log_tau) * self.model.saving(st.hi - 1, st.hi)
        return gain < self.th.stop

    def _lowest(self, mu: float, var: float, p: float, lo: int, top: int) -> int:
        for r in range(lo + 1, top):
            if self.model.p_hold(mu, var, r, self.log_tau) >= p:
                return r
        return top - 1

    def _gallop(self, st: Any) -> int:
        lo, top = st.lo, st.top
        if not st.outcomes:
            a = sorted(self.answers)
            return _clamp(a[len(a) // 2] if a else self.n // 2, lo, top)
        if lo >= 0 and top < self.n:
            return (lo + top) // 2
        step = 1 << max(0, len(st.tried) - 1)
        return _clamp(top - step if top < self.n else lo + step, lo, top)

    @staticmethod
    def _points(st: Any) -> list[tuple[int, float]]:
        """Measured ``(rung, log KL)``: the largest KL over the models that ran (a failing model's, if any)."""
        pts = []
        for r in st.tried:
            kls = [k for k in st.outcomes[r].kl if not math.isnan(k)]
            if kls:
                pts.append((r, max(math.log(max(kls)) if max(kls) > 0 else _LOG_KL_FLOOR, _LOG_KL_FLOOR)))
        return pts

    def learn(self, st: Any) -> None:
        """Record a finished image: its answer (for ``gallop``) and its measurements (for the model)."""
        if st.hi < self.n and st.hi < st.cap:
            self.answers.append(st.hi)
        elif st.lo == self.n - 1:
            self.answers.append(self.n - 1)
        sizes = [(r, math.log(st.outcomes[r].nbytes)) for r in st.tried if st.outcomes[r].nbytes > 0]
        self.model.add(_feature(st.ref), self._points(st), sizes)


def _feature(ref: Any) -> float | None:
    """Log entropy (nats) of the reference prediction, averaged over models; ``None`` without logits."""
    if not isinstance(ref, (list, tuple)) or not ref:
        return None
    xs = []
    for z in ref:
        z = np.asarray(z, dtype=np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        xs.append(math.log(max(float(-(p * np.log(np.maximum(p, 1e-300))).sum()), 1e-6)))
    return float(np.mean(xs))


def _clamp(p: int, lo: int, top: int) -> int:
    return min(max(p, lo + 1), top - 1)
