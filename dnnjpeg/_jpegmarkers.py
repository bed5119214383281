"""JPEG metadata segments: move APPn and COM segments from one JPEG file to another.

Used to give a JPEG written by another encoder (mozjpeg) the metadata Pillow writes (EXIF,
ICC profile in chunks, XMP, comment, JFIF density): Pillow writes the metadata into a tiny
template JPEG, and :func:`replace_metadata` puts the template's metadata segments in front of
the other file's coded image.

Example:
    >>> import io
    >>> from PIL import Image
    >>> def jpeg(**kw):
    ...     buf = io.BytesIO()
    ...     Image.new("RGB", (8, 8)).save(buf, "JPEG", **kw)
    ...     return buf.getvalue()
    >>> out = replace_metadata(jpeg(), jpeg(comment=b"hello", dpi=(300, 300)))
    >>> Image.open(io.BytesIO(out)).info["comment"], Image.open(io.BytesIO(out)).info["dpi"]
    (b'hello', (300, 300))
"""

from __future__ import annotations

from .errors import DnnjpegError

__all__ = ["JpegStructureError", "metadata_segments", "replace_metadata"]

_SOI = b"\xff\xd8"


class JpegStructureError(DnnjpegError, ValueError):
    """The bytes are not a JPEG file whose leading segments can be parsed."""


def _is_metadata(marker: int) -> bool:
    return 0xE0 <= marker <= 0xEF or marker == 0xFE  # APP0..APP15, COM


def _leading_metadata(data: bytes) -> tuple[list[bytes], int]:
    """The APPn/COM segments right after SOI (whole, markers included) and where the rest starts."""
    if not data.startswith(_SOI):
        raise JpegStructureError("not a JPEG file (no SOI marker)")
    segments: list[bytes] = []
    pos = 2
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise JpegStructureError(f"JPEG segment expected at byte {pos}")
        marker = data[pos + 1]
        if not _is_metadata(marker):
            return segments, pos
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise JpegStructureError(f"JPEG segment 0xFF{marker:02X} at byte {pos} runs past the end of the file")
        segments.append(data[pos:end])
        pos = end


def metadata_segments(data: bytes) -> list[bytes]:
    """The APPn and COM segments that follow SOI in the JPEG file ``data``, in order."""
    return _leading_metadata(data)[0]


def replace_metadata(coded: bytes, metadata_from: bytes) -> bytes:
    """``coded`` with its leading APPn/COM segments replaced by those of ``metadata_from``.

    The coded image (tables, frame, scans) of ``coded`` is kept byte for byte.
    """
    _, rest = _leading_metadata(coded)
    return _SOI + b"".join(metadata_segments(metadata_from)) + coded[rest:]
