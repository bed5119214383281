"""The :class:`DNNJPEG` torchvision (``transforms.v2``) transform."""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any, Union

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform

from ..families import find_family, resolve_table
from ..options import EncodeOptions
from ..qtable import SUBSAMPLINGS, QTable
from .functional import _encode_settings, _options_for, apply_options

__all__ = ["DNNJPEG"]

TableSpec = Union[str, "os.PathLike[str]", QTable]


def _is_pure_tensor(obj: Any) -> bool:
    return type(obj) is torch.Tensor


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _members(entry: TableSpec, quality: int | tuple[int, int] | None) -> list[QTable]:
    """The tables one ``table`` entry stands for under ``quality``."""
    if isinstance(entry, QTable):
        if quality is not None:
            raise ValueError(f"quality={quality!r} selects family members; it cannot be used with a QTable ({entry!r})")
        return [entry]
    if not isinstance(entry, (str, os.PathLike)):
        # ValueError, not TypeError: every bad DNNJPEG argument raises ValueError (project rule).
        raise ValueError(f"table entry {entry!r} must be a family name, a JSON path or a QTable")  # noqa: TRY004
    default = resolve_table(entry)  # raises QTableError (a ValueError) naming a bad name or file
    family = find_family(entry)
    if family is None:
        if quality is not None:
            raise ValueError(f"table file {os.fspath(entry)!r} holds a single table; quality={quality!r} cannot apply")
        return [default]
    if quality is None:
        return [default]
    if _is_int(quality):
        return [family.get(int(quality))]
    lo, hi = quality
    chosen = [family.members[q] for q in family.qualities if lo <= q <= hi]
    if not chosen:
        raise ValueError(
            f"table {family.name!r} has no member with quality in [{lo}, {hi}]; "
            f"its qualities are {', '.join(map(str, family.qualities))}"
        )
    return chosen


def _check_quality(quality: Any) -> int | tuple[int, int] | None:
    if quality is None or _is_int(quality):
        return quality
    if (
        isinstance(quality, Sequence)
        and not isinstance(quality, str)
        and len(quality) == 2
        and all(_is_int(q) for q in quality)
    ):
        lo, hi = int(quality[0]), int(quality[1])
        if lo > hi:
            raise ValueError(f"quality range {tuple(quality)!r} has min > max")
        return (lo, hi)
    raise ValueError(f"quality must be None, an int or a (min, max) pair of ints, got {quality!r}")


class DNNJPEG(Transform):
    """JPEG-compress images with a dnnjpeg table (a data augmentation or a deployment simulation).

    Each call draws one table: an entry of ``table`` uniformly at random, then, when
    ``quality`` is a range, one of that family's members in the range uniformly at random.
    Every image in the call (a whole ``[N, C, H, W]`` batch included) gets that table.  All
    draws use torch's global generator, so ``torch.manual_seed`` makes them reproducible and
    each DataLoader worker draws its own stream.

    Images (PIL images, plain tensors, ``tv_tensors.Image`` and ``tv_tensors.Video``) are
    transformed by :func:`dnnjpeg.transforms.functional.dnnjpeg`, which documents dtype,
    device and shape handling.  Bounding boxes, masks, labels and other inputs pass through
    untouched (a plain tensor beside an explicit image is treated as data, as in torchvision).

    Args:
        table: a family name (``dnnjpeg.tables()``), a table/family JSON path, a
            :class:`~dnnjpeg.QTable`, or a non-empty list of these to choose from (default
            ``"resnet50"``).
        quality: ``None`` (each family's default member), an int (that member), or a
            ``(min, max)`` range drawn among the family members inside it.  Every family
            must have at least one matching member; QTables and single-table files take
            only ``None``.
        p: probability of compressing at all (per call).
        subsampling: ``"4:4:4"``, ``"4:2:2"``, ``"4:2:0"``, or ``None`` for each table's own.
        trellis: quantize with mozjpeg's trellis quantization (the pixels of a dataset written
            by ``dnnjpeg recompress --trellis``); slower.  Default False.
        options: one table's encode settings (:class:`~dnnjpeg.EncodeOptions`: ``table``,
            ``quality``, ``subsampling``, ``writer``) instead of those four arguments, which must
            then agree with it (``optimize``, ``progressive`` and ``metadata`` do not change the
            pixels and are not used).

    Raises:
        ValueError: any bad argument (unknown table, missing member, bad range, ``p``
            outside [0, 1], unknown subsampling, a 16-bit table, an argument that contradicts
            ``options``).

    Example:
        >>> import torch
        >>> t = DNNJPEG("standard", quality=(40, 60), p=1.0)
        >>> out = t(torch.full((2, 3, 16, 16), 128, dtype=torch.uint8))
        >>> out.shape, out.dtype
        (torch.Size([2, 3, 16, 16]), torch.uint8)
        >>> DNNJPEG("resnet50", quality=90)
        Traceback (most recent call last):
        ...
        dnnjpeg.qtable.QTableError: table 'resnet50' has no member for quality 90; available qualities: 50
    """

    _transformed_types = (PIL.Image.Image, tv_tensors.Image, tv_tensors.Video, _is_pure_tensor)

    def __init__(
        self,
        table: TableSpec | Sequence[TableSpec] | None = None,
        quality: int | tuple[int, int] | None = None,
        p: float = 1.0,
        subsampling: str | None = None,
        trellis: bool | None = None,
        *,
        options: EncodeOptions | None = None,
    ) -> None:
        super().__init__()
        table, quality, subsampling, trellis = _encode_settings(options, table, quality, subsampling, trellis)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if subsampling is not None and subsampling not in SUBSAMPLINGS:
            raise ValueError(f"subsampling {subsampling!r} is not one of {', '.join(SUBSAMPLINGS)} (or None)")
        quality = _check_quality(quality)
        if isinstance(table, (QTable, str, os.PathLike)):
            entries: list[TableSpec] = [table]
            self.table: TableSpec | list[TableSpec] = table
        elif isinstance(table, Sequence) and not isinstance(table, bytes):
            entries = list(table)
            if not entries:
                raise ValueError("table list is empty")
            self.table = entries
        else:
            msg = f"table must be a name, a JSON path, a QTable or a list of them, got {table!r}"
            raise ValueError(msg)  # noqa: TRY004
        choices = []
        for entry in entries:
            members = _members(entry, quality)
            choices.append(tuple((qt, _options_for(qt, subsampling, trellis)) for qt in members))
        self.quality = quality
        self.p = float(p)
        self.subsampling = subsampling
        self.trellis = trellis
        self._choices: tuple[tuple[tuple[QTable, dict[str, Any]], ...], ...] = tuple(choices)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw whether to apply and which table: ``{"apply": bool, "qtable": QTable, "options": dict}``."""
        apply = True
        if self.p < 1.0:
            apply = bool(torch.rand(()) < self.p)
        members = self._choices[_draw(len(self._choices))]
        qtable, options = members[_draw(len(members))]
        return {"apply": apply, "qtable": qtable, "options": options}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Compress one image-like input with the drawn table (or return it as is)."""
        if not params["apply"]:
            return inpt
        return apply_options(inpt, params["options"])

    def extra_repr(self) -> str:
        table = self.table if isinstance(self.table, (str, list)) else repr(self.table)
        return (f"table={table!r}, quality={self.quality}, p={self.p}, subsampling={self.subsampling}, "
                f"trellis={self.trellis}")


def _draw(n: int) -> int:
    """A uniform index in ``range(n)`` from torch's generator (no draw when ``n == 1``)."""
    return 0 if n == 1 else int(torch.randint(n, ()))
