"""libjpeg's standard tables (ITU-T T.81 Annex K) and its quality scaling."""

from __future__ import annotations

__all__ = ["STD_CHROMA", "STD_LUMA", "quality_scale_factor", "scale_table"]

#: Annex K.1 luminance table, natural row-major order (libjpeg ``std_luminance_quant_tbl``).
STD_LUMA: tuple[int, ...] = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip

#: Annex K.2 chrominance table, natural row-major order (libjpeg ``std_chrominance_quant_tbl``).
STD_CHROMA: tuple[int, ...] = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip


def quality_scale_factor(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: quality 1..100 to a percentage scale factor.

    Example:
        >>> quality_scale_factor(50), quality_scale_factor(75), quality_scale_factor(10)
        (100, 50, 500)
    """
    q = min(max(int(quality), 1), 100)
    return 5000 // q if q < 50 else 200 - 2 * q


def scale_table(base: tuple[int, ...] | list[int], scale_factor: int, force_baseline: bool = True) -> list[int]:
    """libjpeg's ``jpeg_add_quant_table`` arithmetic: ``(b * scale + 50) // 100`` clamped.

    Values are clamped to 1..32767, and to 1..255 when ``force_baseline`` is true
    (what ``cjpeg -quality`` and Pillow's ``quality=`` do).
    """
    upper = 255 if force_baseline else 32767
    return [min(max((b * scale_factor + 50) // 100, 1), upper) for b in base]
