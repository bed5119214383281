"""What a baseline JPEG spends on each coefficient under libjpeg's standard Huffman tables.

Pillow (libjpeg) without ``optimize`` codes every image with the example Huffman tables of the JPEG
standard (ITU-T T.81, Annex K).  So the bits of a quantized block are known: the DC coefficient costs
the code of its difference's size category plus that many bits; each nonzero AC coefficient costs the
code of its (zero run, size) symbol, one ZRL code per full 16 zeros of the run, and ``size`` bits;
the block ends with an EOB code unless its last coefficient is nonzero.  Only the runs tie frequencies
together, so :func:`coefficient_bits` takes them from a *reference* table (the zeros the coefficients
have when quantized by it): each frequency's bits can then be tabulated on its own for every candidate
step -- exact at the reference table, an approximation near it.  That is what :mod:`dnnjpeg.search.design.rdopt`
needs: at low qualities most blocks are short, a level of +-1 after five or more zeros costs 8 to 17
bits (plus 11 per further 16 zeros) where a run-blind estimate charges about 5, and right after the
previous one only 3, so a table designed with a run-blind rate spends its bytes on isolated
coefficients (``research/rate_models.py``).

The code lengths are read from the Huffman tables (DHT segments) of a JPEG that Pillow writes, so they
are the encoder's own, not a copy.

Example:
    >>> lengths = standard_code_lengths()
    >>> int(lengths["ac", "luma"][0x00]), int(lengths["ac", "luma"][0xF0])   # EOB and ZRL codes
    (4, 11)
    >>> coef = np.zeros((1, 64), np.float32); coef[0, 1] = 40.0                # one AC coefficient
    >>> bits = coefficient_bits(coef, [16] * 64, "luma", steps=[16, 64])
    >>> float(bits[1, 0]), float(bits[1, 1])   # level 2 (symbol 0x02: 2 + 2 bits) and level 1 (0x01: 2 + 1)
    (4.0, 3.0)
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np

from ..._zigzag import ZIGZAG as _ZIGZAG_TUPLE

__all__ = ["COMPONENTS", "block_bits", "check_component", "coefficient_bits", "standard_code_lengths"]

#: Components with their own Huffman tables in a baseline JPEG (Cb and Cr share the chroma ones).
COMPONENTS = ("luma", "chroma")
_MAX_AC_SIZE = 10
_MAX_DC_SIZE = 11
_ZIGZAG = np.asarray(_ZIGZAG_TUPLE)  # zigzag position -> natural index


@functools.cache
def standard_code_lengths() -> dict[tuple[str, str], np.ndarray]:
    """Code length in bits of every symbol of libjpeg's standard Huffman tables.

    Returns:
        ``{("dc", component): (12,) lengths by size category, ("ac", component): (256,) lengths by
        symbol (run << 4 | size; 0 where the table has no code)}`` for ``component`` in :data:`COMPONENTS`.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=50)
    data = buf.getvalue()
    tables: dict[tuple[str, str], np.ndarray] = {}
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:  # up to the start of scan
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if data[i + 1] == 0xC4:  # DHT: one or more tables
            seg, j = data[i + 4 : i + 2 + length], 0
            while j < len(seg):
                kind, ident = ("dc", "ac")[seg[j] >> 4], COMPONENTS[seg[j] & 15]
                counts = seg[j + 1 : j + 17]
                values = seg[j + 17 : j + 17 + sum(counts)]
                lengths = np.zeros(12 if kind == "dc" else 256, dtype=np.float64)
                lengths[list(values)] = np.repeat(np.arange(1, 17), list(counts))
                tables[kind, ident] = lengths
                j += 17 + sum(counts)
        i += 2 + length
    if len(tables) != 4:
        raise RuntimeError(f"expected 4 standard Huffman tables in Pillow's JPEG output, found {sorted(tables)}")
    return tables


def _coefficients(coefficients: np.ndarray) -> np.ndarray:
    c = np.asarray(coefficients, dtype=np.float32)
    if c.ndim != 2 or c.shape[1] != 64 or len(c) == 0:
        raise ValueError(f"coefficients must be (blocks, 64) with blocks >= 1, got {c.shape}")
    return c


def _steps(steps: Sequence[int], what: str, *, table: bool) -> np.ndarray:
    """Steps >= 1 as float64; exactly 64 of them when ``steps`` is a ``table``."""
    s = np.asarray(steps, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0 or not np.isfinite(s).all() or (s < 1).any():
        raise ValueError(f"{what} must be steps >= 1, got {steps!r}")
    if table and s.shape != (64,):
        raise ValueError(f"{what} must be 64 steps, got {len(s)}")
    return s


def check_component(component: str) -> str:
    """``component`` if it is one of :data:`COMPONENTS`; otherwise a ``ValueError`` naming it."""
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {', '.join(COMPONENTS)}, got {component!r}")
    return component


def _size(levels: np.ndarray, cap: int) -> np.ndarray:
    """JPEG size category of integer levels: bits of ``|level|`` (0 for 0), at most ``cap``."""
    return np.minimum(np.frexp(levels)[1], cap)  # |level| = m * 2**e with 0.5 <= m < 1: e bits


def _runs(zigzag_coefficients: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Zeros before each zigzag position since the previous nonzero AC level under ``reference``."""
    nonzero = np.rint(zigzag_coefficients / reference[_ZIGZAG]) != 0
    pos = np.arange(64)
    last = np.maximum.accumulate(np.where(nonzero, pos, 0), axis=1)  # last nonzero at or before (DC counts as 0)
    before = np.concatenate([np.zeros((len(last), 1), dtype=last.dtype), last[:, :-1]], axis=1)
    return np.maximum(pos - before - 1, 0)


def _dc_bits(dc_levels: np.ndarray, dc_lengths: np.ndarray) -> np.ndarray:
    """Bits of each block's DC difference (from the block before it; the first from zero)."""
    size = _size(np.diff(dc_levels, prepend=0.0), _MAX_DC_SIZE)
    return dc_lengths[size] + size


def coefficient_bits(
    coefficients: np.ndarray,
    reference: Sequence[int],
    component: str = "luma",
    *,
    steps: Sequence[int],
    max_blocks: int | None = 60_000,
) -> np.ndarray:
    """Bits each frequency costs at each candidate step, zero runs taken from ``reference``.

    ``bits[k, j]``: the total, over blocks, of the bits frequency ``k`` (natural order) costs when
    quantized with ``steps[j]``: for AC, the (run, size) code, the ZRL codes and the ``size`` bits of
    each nonzero level, with the run of zeros before it as ``reference`` quantizes the block; for DC,
    the code and bits of each difference from the previous block.  EOB codes are left out (one per
    block, whatever the steps).  With ``steps`` equal to ``reference`` the sum over frequencies is
    the exact size of the entropy-coded data minus EOBs (up to DC order: blocks are taken in the
    order given, libjpeg codes 4:2:0 luma two rows at a time).

    Args:
        coefficients: ``(blocks, 64)`` DCT coefficients in natural order, blocks in coding order
            (:func:`dnnjpeg.search.design.fisher_weights.block_coefficients`).
        reference: 64 steps (natural order) whose zero runs are used.
        component: ``"luma"`` or ``"chroma"`` (which Huffman tables).
        steps: candidate steps (ascending ints).
        max_blocks: AC sums over at most this many evenly spaced blocks, scaled up (DC uses all blocks).

    Returns:
        ``(64, len(steps))`` float64 bits.

    Raises:
        ValueError: shapes or steps that do not fit, an unknown component.
    """
    lengths = standard_code_lengths()
    component = check_component(component)
    c = _coefficients(coefficients)
    ref = _steps(reference, "reference", table=True)
    grid = _steps(steps, "steps", table=False)
    rows = np.arange(len(c))
    if max_blocks is not None and len(c) > max_blocks:
        rows = np.linspace(0, len(c) - 1, int(max_blocks)).round().astype(int)
    scale = len(c) / len(rows)
    cz = c[rows][:, _ZIGZAG]
    ac = np.abs(cz[:, 1:]).astype(np.float64)  # the size of a level does not depend on its sign
    cost = _ac_cost(lengths["ac", component]).ravel()
    first = _runs(cz, ref)[:, 1:] * (_MAX_AC_SIZE + 1)  # index of (run, size 0) in the cost table
    bits = np.empty((64, len(grid)))
    for j, q in enumerate(grid):
        bits[_ZIGZAG[1:], j] = cost[first + _size(np.rint(ac / q), _MAX_AC_SIZE)].sum(0) * scale
        bits[0, j] = _dc_bits(np.rint(c[:, 0] / q), lengths["dc", component]).sum()
    return bits


def _ac_cost(ac_lengths: np.ndarray) -> np.ndarray:
    """``(63, 11)`` bits of an AC level of each size after each zero run (0..62): symbol code, ZRL codes
    and size bits; 0 for size 0 (a zero costs nothing itself)."""
    run, size = np.arange(63)[:, None], np.arange(_MAX_AC_SIZE + 1)[None, :]
    cost = ac_lengths[(run % 16) * 16 + size] + size + ac_lengths[0xF0] * (run // 16)
    return np.where(size > 0, cost, 0.0)


def block_bits(coefficients: np.ndarray, table: Sequence[int], component: str = "luma") -> np.ndarray:
    """Exact entropy-coded bits of each block quantized with ``table`` (EOB included, DC as in
    :func:`coefficient_bits`).

    Args:
        coefficients: ``(blocks, 64)`` DCT coefficients in natural order, blocks in coding order.
        table: 64 steps, natural order.
        component: ``"luma"`` or ``"chroma"``.

    Returns:
        ``(blocks,)`` float64 bits.
    """
    lengths = standard_code_lengths()
    component = check_component(component)
    c = _coefficients(coefficients)
    steps = _steps(table, "table", table=True)
    cz = c[:, _ZIGZAG]
    levels = np.rint(cz / steps[_ZIGZAG])
    size = _size(levels, _MAX_AC_SIZE)
    ac = lengths["ac", component]
    cost = _ac_cost(ac)[_runs(cz, steps)[:, 1:], size[:, 1:]].sum(1)
    eob = np.where(size[:, 63] > 0, 0.0, ac[0x00])
    return cost + eob + _dc_bits(levels[:, 0], lengths["dc", component])
