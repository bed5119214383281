"""Zigzag <-> natural (row-major) order for 8x8 DCT blocks.

JPEG files store quantization tables in zigzag order; dnnjpeg, Pillow's
``Image.quantization`` and libjpeg's ``jpeg_add_quant_table`` use natural
row-major order.  These helpers convert between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ZIGZAG", "from_zigzag", "to_zigzag"]


def _zigzag_indices() -> tuple[int, ...]:
    order: list[int] = []
    for s in range(15):  # anti-diagonals r + c = s
        cells = [(r, s - r) for r in range(8) if 0 <= s - r < 8]
        if s % 2 == 0:  # even diagonals run bottom-left -> top-right
            cells.reverse()
        order.extend(r * 8 + c for r, c in cells)
    return tuple(order)


#: ``ZIGZAG[k]`` is the natural (row-major) index of the k-th coefficient in zigzag order.
ZIGZAG: tuple[int, ...] = _zigzag_indices()


def to_zigzag(natural: Sequence[int]) -> list[int]:
    """Reorder 64 values from natural row-major order to zigzag order.

    Example:
        >>> to_zigzag(list(range(64)))[:6]
        [0, 1, 8, 16, 9, 2]
    """
    if len(natural) != 64:
        raise ValueError(f"expected 64 values, got {len(natural)}")
    return [natural[i] for i in ZIGZAG]


def from_zigzag(zigzag: Sequence[int]) -> list[int]:
    """Reorder 64 values from zigzag order to natural row-major order.

    Example:
        >>> from_zigzag(to_zigzag(list(range(64)))) == list(range(64))
        True
    """
    if len(zigzag) != 64:
        raise ValueError(f"expected 64 values, got {len(zigzag)}")
    natural = [0] * 64
    for k, i in enumerate(ZIGZAG):
        natural[i] = zigzag[k]
    return natural
