"""Ladders: candidate encodings of one image, ordered by increasing quality (expected size).

A :class:`Ladder` is a tuple of :class:`Rung` objects; a rung turns a PIL image's pixels into JPEG
bytes (no metadata) through one of :mod:`dnnjpeg.encoders`' encoders.  Ladders are named by *spec
strings* (:func:`get_ladder`):

``KIND``, ``KIND:20,30,50``, ``KIND:10-95:5`` (start-stop:step, stop included)
    for every quality-based kind (``standard``, ``mozjpeg``, ``trellis``, ``jpegli``); the default
    qualities are 10..95 step 5.
``family:NAME``, ``family:NAME:30,50``
    a tuned table family's members (all, or those qualities), written by libjpeg.

Kinds are registered with :func:`register_ladder`; :func:`ladders` lists them.

Example:
    >>> lad = get_ladder("standard:20,30,50")
    >>> lad.labels, lad.progressive
    (('q20', 'q30', 'q50'), False)
    >>> get_ladder("standard:10-30:10").labels
    ('q10', 'q20', 'q30')
    >>> get_ladder("standard").restrict(80).labels
    ('q80', 'q85', 'q90', 'q95')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..encoders import Encoder, PillowEncoder, make_encoder
from ..families import load_family
from ..pillow_plugin import to_jpeg_mode

__all__ = ["DEFAULT_LADDER", "DEFAULT_QUALITIES", "JpegliEncoder", "Ladder", "Rung", "get_ladder", "ladders", "register_ladder"]

#: The qualities of a quality-based ladder given without a list: 10, 15, ..., 95.
DEFAULT_QUALITIES: tuple[int, ...] = tuple(range(10, 96, 5))

#: The ladder used when none is given (why: docs/ratecontrol.md, "Which ladder is the default").  Baseline
#: files with trellis quantization: on the dev photos -52% bytes against one fixed standard quality at equal
#: top-1, where the standard ladder gives -37% and mozjpeg's progressive one -56%.
DEFAULT_LADDER = "trellis"


def pixels(img: Image.Image | np.ndarray) -> np.ndarray:
    """The uint8 HWC RGB (or HW gray) pixels a rung encodes: JPEG's mode rule, CMYK as RGB."""
    if isinstance(img, np.ndarray):
        return img
    im = to_jpeg_mode(img)
    if im.mode == "CMYK":
        im = im.convert("RGB")
    return np.asarray(im)


@dataclass(frozen=True)
class Rung:
    """One candidate encoding: ``label`` (e.g. ``"q30"``), its ``quality`` and the ``encoder`` writing it."""

    label: str
    quality: int | None
    encoder: Encoder = field(repr=False)

    def encode(self, img: Image.Image | np.ndarray) -> bytes:
        """JPEG bytes of ``img``'s pixels (no metadata)."""
        return self.encoder.encode(pixels(img))


@dataclass(frozen=True)
class Ladder:
    """Rungs ordered by increasing quality (expected size); ``progressive`` says how files are coded.

    Attributes:
        spec: the spec string it was built from (``get_ladder(spec)`` rebuilds it).
        kind: ``standard``, ``mozjpeg``, ``trellis``, ``jpegli``, ``family``, ...
        rungs: the rungs, lowest quality first.
        progressive: whether the rungs write progressive JPEGs (else baseline sequential).
        description: one line.
    """

    spec: str
    kind: str
    rungs: tuple[Rung, ...]
    progressive: bool
    description: str = ""

    def __len__(self) -> int:
        return len(self.rungs)

    def __getitem__(self, i: int) -> Rung:
        return self.rungs[i]

    def __iter__(self) -> Iterator[Rung]:
        return iter(self.rungs)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.rungs)

    def index(self, label: str) -> int:
        """Position of the rung labelled ``label``."""
        return self.labels.index(label)

    def restrict(self, min_quality: int | None) -> Ladder:
        """The rungs of quality ``>= min_quality`` (all for ``None``); ``ValueError`` when none is left."""
        if min_quality is None:
            return self
        kept = tuple(r for r in self.rungs if r.quality is not None and r.quality >= min_quality)
        if not kept:
            raise ValueError(f"min_quality={min_quality} leaves no rung of ladder {self.spec!r} "
                             f"(qualities {', '.join(str(r.quality) for r in self.rungs)})")
        return Ladder(f"{self.spec}@min{min_quality}", self.kind, kept, self.progressive, self.description)


@dataclass(frozen=True)
class _Kind:
    factory: Callable[[str | None], tuple[Rung, ...]]
    progressive: bool
    description: str


_KINDS: dict[str, _Kind] = {}


def register_ladder(
    kind: str, description: str, *, progressive: bool
) -> Callable[[Callable[[str | None], tuple[Rung, ...]]], Callable[[str | None], tuple[Rung, ...]]]:
    """Decorator registering ``factory(arg) -> rungs`` for specs ``KIND`` (arg ``None``) and ``KIND:ARG``."""

    def deco(factory: Callable[[str | None], tuple[Rung, ...]]) -> Callable[[str | None], tuple[Rung, ...]]:
        if kind in _KINDS:
            raise ValueError(f"ladder kind {kind!r} is already registered")
        _KINDS[kind] = _Kind(factory, progressive, description)
        return factory

    return deco


def ladders() -> dict[str, str]:
    """Registered ladder kinds with their descriptions."""
    return {k: v.description for k, v in _KINDS.items()}


@functools.lru_cache(maxsize=64)
def get_ladder(spec: str) -> Ladder:
    """The :class:`Ladder` named by ``spec`` (see the module docstring); ``ValueError`` when it is not one."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"ladder must be a spec string such as 'standard' or 'mozjpeg:20-90:10', got {spec!r}")
    kind, _, arg = spec.strip().partition(":")
    if kind not in _KINDS:
        raise ValueError(f"unknown ladder {spec!r}; kinds: {', '.join(sorted(_KINDS))}")
    k = _KINDS[kind]
    rungs = k.factory(arg or None)
    if not rungs:
        raise ValueError(f"ladder {spec!r} has no rungs")
    return Ladder(spec.strip(), kind, tuple(rungs), k.progressive, k.description)


def parse_qualities(arg: str | None, what: str = "ladder") -> tuple[int, ...]:
    """``None`` -> :data:`DEFAULT_QUALITIES`; ``"20,30,50"``; ``"10-95:5"`` / ``"10-95"`` (step 1); parts joined
    by commas (``"5-24,25-95:5"``), sorted.

    Example:
        >>> parse_qualities("50,20,30"), parse_qualities("90-100:5")
        ((20, 30, 50), (90, 95, 100))
        >>> parse_qualities("5-9,10-30:10")
        (5, 6, 7, 8, 9, 10, 20, 30)
    """
    if arg is None:
        return DEFAULT_QUALITIES
    qs: list[int] = []
    for part in arg.split(","):
        if not part.strip():
            continue
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*(?::\s*(\d+)\s*)?", part)
        if m:
            lo, hi, step = int(m[1]), int(m[2]), int(m[3] or 1)
            if step < 1 or lo > hi:
                raise ValueError(f"{what}: bad quality range {part.strip()!r} (want START-STOP:STEP with "
                                 "START <= STOP, STEP >= 1)")
            qs.extend(range(lo, hi + 1, step))
        elif part.strip().isdigit():
            qs.append(int(part))
        else:
            raise ValueError(f"{what}: qualities {arg!r} are not a list like 20,30,50, a range like 10-95:5 "
                             "or both joined by commas (5-24,25-95:5)")
    bad = [q for q in qs if not 1 <= q <= 100]
    if bad or not qs or len(set(qs)) != len(qs):
        raise ValueError(f"{what}: qualities {arg!r} must be distinct integers in 1..100")
    return tuple(sorted(qs))


def _by_quality(arg: str | None, kind: str, make: Callable[[int], Encoder]) -> tuple[Rung, ...]:
    return tuple(Rung(f"q{q}", q, make(q)) for q in parse_qualities(arg, f"ladder {kind!r}"))


@register_ladder("standard", "libjpeg (Pillow), standard tables at each quality, 4:2:0, baseline", progressive=False)
def _standard(arg: str | None) -> tuple[Rung, ...]:
    return _by_quality(arg, "standard", lambda q: make_encoder("libjpeg", quality=q))


@register_ladder("mozjpeg", "mozjpeg 4.0.3 defaults (its tables, trellis, 4:2:0), progressive", progressive=True)
def _mozjpeg(arg: str | None) -> tuple[Rung, ...]:
    return _by_quality(arg, "mozjpeg", lambda q: make_encoder("mozjpeg", quality=q))


@register_ladder("trellis", "mozjpeg trellis quantization of the standard tables, 4:2:0, baseline",
                 progressive=False)
def _trellis(arg: str | None) -> tuple[Rung, ...]:
    return _by_quality(arg, "trellis", lambda q: make_encoder("trellis", quality=q))


@register_ladder("jpegli", "jpegli (pyjpegli) at each quality: its own tables, 4:2:0, baseline", progressive=False)
def _jpegli(arg: str | None) -> tuple[Rung, ...]:
    return _by_quality(arg, "jpegli", lambda q: JpegliEncoder(q))


@register_ladder("family", "a tuned family's members (family:NAME or family:NAME:QUALITIES), libjpeg, baseline",
                 progressive=False)
def _family(arg: str | None) -> tuple[Rung, ...]:
    if not arg:
        raise ValueError("ladder 'family' needs a family name: family:NAME, e.g. family:efficientnet_lite0")
    name, _, quals = arg.partition(":")
    try:
        fam = load_family(name)
    except Exception as exc:  # QTableError lists the known names
        raise ValueError(f"ladder 'family:{arg}': {exc}") from None
    wanted = parse_qualities(quals, f"ladder 'family:{name}'") if quals else tuple(fam.qualities)
    missing = [q for q in wanted if q not in fam.members]
    if missing:
        raise ValueError(f"ladder 'family:{arg}': no member for qualities {missing}; members: {fam.qualities}")
    return tuple(Rung(f"q{q}", q, PillowEncoder(fam.members[q], name=f"{name} q{q}")) for q in wanted)


@dataclass(frozen=True)
class JpegliEncoder:
    """jpegli (the ``pyjpegli`` package) at ``quality``: its own tables, 4:2:0, baseline (its only mode).

    pyjpegli encodes RGB only; a gray image is written as RGB (three equal channels).
    """

    quality: int
    name: str = "jpegli"

    @property
    def meta(self) -> dict[str, Any]:
        return {"name": self.name, "quality": int(self.quality)}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": "pyjpegli", "quality": int(self.quality)}

    def encode(self, img: np.ndarray) -> bytes:
        try:
            import pyjpegli
        except ImportError:
            raise ImportError("the 'jpegli' ladder needs the pyjpegli package: "
                              "pip install pyjpegli (or 'dnnjpeg[jpegli]')") from None
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2 or arr.shape[2] == 1:
            arr = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)
        arr = np.ascontiguousarray(arr)
        return pyjpegli.encode(arr.tobytes(), arr.shape[1], arr.shape[0], int(self.quality))

