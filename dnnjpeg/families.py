"""Registry of table *families*: named sets of QTables indexed by quality.

A family holds, for one model, a table per quality ``q`` whose file size matches
standard JPEG at quality ``q`` on the data it was tuned on.  ``load(name)``
returns the family's default member; ``load(name, quality=q)`` a given member.

Families come from two places:

* JSON files shipped in the package's ``tables/`` folder (see docs/table-format.md);
* Python factories registered with :func:`register_family` (e.g. ``standard``).

A family *file* is read and written as a :class:`FamilyRecord` (its members :class:`FamilyMember`):
every key the format defines, typed, and the format version checked (:data:`FAMILY_FORMAT_VERSION`
is written; :data:`READABLE_FAMILY_VERSIONS` are read).  :class:`Family` is what loading a table needs.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from .qtable import QTable, QTableError

__all__ = [
    "FAMILY_FORMAT",
    "FAMILY_FORMAT_VERSION",
    "READABLE_FAMILY_VERSIONS",
    "Family",
    "FamilyMember",
    "FamilyRecord",
    "check_family_version",
    "find_family",
    "load",
    "load_family",
    "read_family_file",
    "read_family_record",
    "register_family",
    "resolve_table",
    "shipped_tables_dir",
    "tables",
    "tuned_writer",
]

#: Value of the ``format`` key in a family JSON file.
FAMILY_FORMAT = "dnnjpeg-family"
#: The ``version`` written in family files (what changed from 1: docs/table-format.md).
FAMILY_FORMAT_VERSION = 2
#: The family-file versions this dnnjpeg reads (a file without ``version`` is read as version 1).
READABLE_FAMILY_VERSIONS: tuple[int, ...] = (1, 2)
#: The top-level keys the format defines (others are kept in :attr:`FamilyRecord.unknown`).
_FAMILY_KEYS = ("format", "version", "name", "description", "default_quality", "provenance", "metrics", "members")


@dataclass(frozen=True)
class Family:
    """A named set of QTables, one per quality.

    Attributes:
        name: registry name, e.g. ``"resnet50"``.
        description: one line shown by ``dnnjpeg tables``.
        members: mapping quality -> QTable.
        default_quality: the member ``load(name)`` returns.
        provenance: where the family comes from (shown by ``tables show``).
        metrics: figures measured for the whole family (e.g. cross-validated BD-rate).
    """

    name: str
    description: str
    members: Mapping[int, QTable]
    default_quality: int
    provenance: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def writer(self) -> str | None:
        """The encoder family the tables were tuned to be written by (``dnnjpeg family --writer``);
        ``None``: libjpeg, what Pillow writes."""
        return _recorded_writer(self.provenance)

    @property
    def qualities(self) -> list[int]:
        return sorted(self.members)

    def get(self, quality: int | None = None) -> QTable:
        if quality is None:
            quality = self.default_quality
        if isinstance(quality, bool) or not isinstance(quality, numbers.Integral) or int(quality) not in self.members:
            raise QTableError(
                f"table {self.name!r} has no member for quality {quality!r}; "
                f"available qualities: {_format_qualities(self.qualities)}"
            )
        return self.members[int(quality)]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str, allow_16bit: bool = False) -> Family:
        """The family in a family file's dict (any readable version; errors name ``source``)."""
        return FamilyRecord.from_dict(d, source=source, allow_16bit=allow_16bit).to_family()

    def to_dict(self) -> dict[str, Any]:
        """The family-file dict (version :data:`FAMILY_FORMAT_VERSION`); see :meth:`FamilyRecord.from_family`."""
        return FamilyRecord.from_family(self).to_dict()


@dataclass(frozen=True)
class FamilyMember:
    """One member of a family file: a table and what the file records about it.

    Attributes:
        quality: the standard JPEG quality the member is size-matched to.
        table: the steps and subsampling (its ``meta`` is empty: the rest is below).
        name, description: the member's own, if the file gives them (a member without a name takes the
            family's when loaded).
        provenance, metrics: as in a single-table file (``metrics.tuning``/``metrics.crossval`` for a
            family tuned by ``dnnjpeg family``: :class:`dnnjpeg.search.family.TuningFigures`,
            :class:`dnnjpeg.search.family.CrossvalFigures`).
        extra: the member's ``extra`` object (other JSON values kept in ``QTable.meta``).
    """

    quality: int
    table: QTable
    name: str | None = None
    description: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, m: Mapping[str, Any], *, source: str, allow_16bit: bool = False) -> FamilyMember:
        """A member from its dict in a family file; errors name ``source`` (e.g. ``"f.json members[0]"``)."""
        if not isinstance(m, Mapping):
            raise QTableError(f"{source}: expected a JSON object, got {type(m).__name__}")
        if "quality" not in m:
            raise QTableError(f"{source} has no 'quality'")
        table = QTable.from_dict(m, source=source, allow_16bit=allow_16bit)
        return cls(quality=int(m["quality"]), table=table.replace(meta={}),
                   name=None if m.get("name") is None else str(m["name"]),
                   description=None if m.get("description") is None else str(m["description"]),
                   provenance=dict(m.get("provenance", {})), metrics=dict(m.get("metrics", {})),
                   extra=dict(m.get("extra", {})))

    @classmethod
    def from_qtable(cls, quality: int, table: QTable) -> FamilyMember:
        """A member from a table whose ``meta`` holds its name, provenance, metrics and other values."""
        meta = dict(table.meta)
        meta.pop("quality", None)
        name, description = meta.pop("name", None), meta.pop("description", None)
        return cls(quality=int(quality), table=table.replace(meta={}), name=name, description=description,
                   provenance=dict(meta.pop("provenance", {})), metrics=dict(meta.pop("metrics", {})), extra=meta)

    def to_dict(self) -> dict[str, Any]:
        """The member's dict: the single-table keys, then ``name`` (if any) and ``quality``."""
        d = self.table.to_dict()  # format, version, luma, chroma, subsampling[, allow_16bit], provenance, metrics
        d["provenance"], d["metrics"] = _plain(self.provenance), _plain(self.metrics)
        if self.extra:
            d["extra"] = _plain(self.extra)
        if self.description is not None:
            d["description"] = self.description
        if self.name is not None:
            d["name"] = self.name
        d["quality"] = self.quality
        return d

    def to_qtable(self, family_name: str) -> QTable:
        """The member as :func:`load` returns it: the table with its name (the family's if it has none),
        quality, provenance, metrics and extra values in ``meta``."""
        meta: dict[str, Any] = {"name": self.name if self.name is not None else family_name}
        if self.description is not None:
            meta["description"] = self.description
        meta.update({"quality": self.quality, "provenance": _plain(self.provenance), "metrics": _plain(self.metrics),
                     **_plain(self.extra)})
        return self.table.replace(meta=meta)


@dataclass(frozen=True)
class FamilyRecord:
    """A family file, typed: what :meth:`from_dict` reads and :meth:`to_dict` writes.

    Attributes:
        name: the registry name (the file name without ``.json``).
        description: one line shown by ``dnnjpeg tables``.
        default_quality: the member ``dnnjpeg.load(name)`` returns.
        members: the members, in the file's order.
        provenance: where the family comes from (for a family tuned by ``dnnjpeg family``:
            :class:`dnnjpeg.search.family.TunedProvenance`).
        metrics: figures measured for the whole family (tuned: :class:`dnnjpeg.search.family.FamilyFigures`).
        version: the format version the file was written with (:meth:`to_dict` writes
            :data:`FAMILY_FORMAT_VERSION`).
        unknown: keys the format does not define, kept as they are and written back.
        source: where the record was read from (for messages; not written).

    Example:
        >>> rec = read_family_record("resnet50")
        >>> rec.version, rec.qualities, rec.members[0].table.luma[:4]
        (1, [50], (17, 16, 17, 20))
        >>> rec.to_dict()["version"]
        2
    """

    name: str
    description: str
    default_quality: int
    members: Sequence[FamilyMember]
    provenance: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    version: int = FAMILY_FORMAT_VERSION
    unknown: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False)

    @property
    def qualities(self) -> list[int]:
        return sorted(m.quality for m in self.members)

    def member(self, quality: int) -> FamilyMember:
        """The member for ``quality`` (the last one, if the file lists it twice, as :func:`load` does)."""
        found = [m for m in self.members if m.quality == quality]
        if not found:
            raise QTableError(f"{self.source or self.name}: no member for quality {quality!r}; "
                              f"available qualities: {_format_qualities(self.qualities)}")
        return found[-1]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str, allow_16bit: bool = False) -> FamilyRecord:
        """Read a family file's dict of any version in :data:`READABLE_FAMILY_VERSIONS`; errors name ``source``."""
        version = check_family_version(d, source)
        for key in ("name", "description", "members", "default_quality"):
            if key not in d:
                raise QTableError(f"{source}: missing required key {key!r}")
        for i, m in enumerate(d["members"]):
            if not isinstance(m, Mapping) or "quality" not in m:
                raise QTableError(f"{source}: members[{i}] has no 'quality'")
        members = tuple(FamilyMember.from_dict(m, source=f"{source} members[{i}]", allow_16bit=allow_16bit)
                        for i, m in enumerate(d["members"]))
        if int(d["default_quality"]) not in {m.quality for m in members}:
            raise QTableError(f"{source}: default_quality {d['default_quality']} is not a member")
        return cls(name=str(d["name"]), description=str(d["description"]), default_quality=int(d["default_quality"]),
                   members=members, provenance=dict(d.get("provenance", {})), metrics=dict(d.get("metrics", {})),
                   version=version, unknown={k: v for k, v in d.items() if k not in _FAMILY_KEYS}, source=source)

    @classmethod
    def from_family(cls, family: Family) -> FamilyRecord:
        """The record of a :class:`Family`: members in quality order, without names (a member loaded from
        the file takes the family's)."""
        members = tuple(dataclasses.replace(FamilyMember.from_qtable(q, family.members[q]), name=None)
                        for q in family.qualities)
        return cls(name=family.name, description=family.description, default_quality=family.default_quality,
                   members=members, provenance=dict(family.provenance), metrics=dict(family.metrics))

    def to_dict(self) -> dict[str, Any]:
        """The family file's dict, version :data:`FAMILY_FORMAT_VERSION` (``metrics`` only when there are some)."""
        return {
            "format": FAMILY_FORMAT, "version": FAMILY_FORMAT_VERSION, "name": self.name,
            "description": self.description, "default_quality": self.default_quality,
            "provenance": _plain(self.provenance),
            **({"metrics": _plain(self.metrics)} if self.metrics else {}),
            "members": [m.to_dict() for m in self.members],
            **_plain(self.unknown),
        }

    def to_family(self) -> Family:
        """The :class:`Family` that :func:`load` uses (each member's table with its record in ``meta``)."""
        return Family(name=self.name, description=self.description,
                      members={m.quality: m.to_qtable(self.name) for m in self.members},
                      default_quality=self.default_quality, provenance=dict(self.provenance),
                      metrics=dict(self.metrics))


def check_family_version(d: Mapping[str, Any], source: str) -> int:
    """The format version of a family file's dict (1 when it has none), or :class:`QTableError` naming
    ``source`` when it is not a family file or was written in a version this dnnjpeg cannot read.

    Example:
        >>> check_family_version({"format": "dnnjpeg-family", "version": 3}, "new.json")
        Traceback (most recent call last):
        ...
        dnnjpeg.qtable.QTableError: new.json: family format version 3 is newer than this dnnjpeg reads ...
    """
    if d.get("format") != FAMILY_FORMAT:
        raise QTableError(f"{source}: 'format' is {d.get('format')!r}, expected {FAMILY_FORMAT!r}")
    version = d.get("version", 1)
    if version in READABLE_FAMILY_VERSIONS and isinstance(version, int) and not isinstance(version, bool):
        return version
    readable = ", ".join(map(str, READABLE_FAMILY_VERSIONS))
    if isinstance(version, int) and not isinstance(version, bool) and version > max(READABLE_FAMILY_VERSIONS):
        raise QTableError(f"{source}: family format version {version} is newer than this dnnjpeg reads "
                          f"(versions {readable}); upgrade dnnjpeg to read it")
    raise QTableError(f"{source}: family format version {version!r} is not one this dnnjpeg reads "
                      f"(versions {readable})")


def _plain(value: Any) -> Any:
    """``value`` with every mapping a plain dict and every tuple a list: what ``json.loads`` gives back."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _format_qualities(qs: list[int]) -> str:
    if len(qs) > 10 and qs == list(range(qs[0], qs[-1] + 1)):
        return f"{qs[0]}..{qs[-1]}"
    return ", ".join(map(str, qs))


_FACTORIES: dict[str, Callable[[], Family]] = {}


def register_family(name: str) -> Callable[[Callable[[], Family]], Callable[[], Family]]:
    """Decorator registering a zero-argument factory that builds a :class:`Family`.

    Example (registers for the rest of the process, so not run as a doctest)::

        @register_family("my-flat")
        def _flat() -> Family:
            return Family("my-flat", "flat 8s", {50: QTable([8] * 64)}, 50)

        load("my-flat").luma[0]  # 8
    """

    def deco(factory: Callable[[], Family]) -> Callable[[], Family]:
        if name in _FACTORIES:
            raise ValueError(f"table family {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return deco


@register_family("standard")
def _standard_family() -> Family:
    members = {q: QTable.standard(q) for q in range(1, 101)}
    return Family(
        name="standard",
        description="libjpeg's standard (ITU-T T.81 Annex K) tables scaled by quality 1..100, 4:2:0",
        members=members,
        default_quality=75,
        provenance={"source": "ITU-T T.81 Annex K; libjpeg jpeg_quality_scaling", "measured_by_dnnjpeg": False},
    )


def shipped_tables_dir() -> Path:
    """Folder holding the shipped family JSON files.

    An installed package carries them as ``dnnjpeg/_shipped_tables/`` (package data
    mapped from the repository's ``tables/``); a source checkout reads ``tables/``.
    """
    installed = Path(__file__).resolve().parent / "_shipped_tables"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "tables"


@lru_cache(maxsize=1)
def _shipped_files() -> dict[str, Path]:
    folder = shipped_tables_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


@cache
def load_family(name: str) -> Family:
    """The :class:`Family` registered under ``name``."""
    if name in _FACTORIES:
        return _FACTORIES[name]()
    files = _shipped_files()
    if name in files:
        return Family.from_dict(_read_json(files[name]), source=str(files[name]))
    raise QTableError(f"unknown table {name!r}; available: {', '.join(sorted(tables()))}")


def tables() -> dict[str, str]:
    """Names of all available table families with their one-line descriptions.

    Example:
        >>> "standard" in tables() and "resnet50" in tables()
        True
    """
    out: dict[str, str] = {}
    for name in sorted(set(_FACTORIES) | set(_shipped_files())):
        out[name] = load_family(name).description
    return out


def load(name: str | os.PathLike[str], quality: int | None = None, *, allow_16bit: bool = False) -> QTable:
    """A shipped table by name (family member for ``quality``), or a table JSON file.

    The result plugs straight into Pillow: ``img.save(f, qtables=load("resnet50"))``.
    Do not pass ``quality=`` to Pillow alongside it: Pillow >= 11.3 would rescale it.

    Args:
        name: a family name from :func:`tables`, or a path to a table/family JSON file.
        quality: which family member (a standard JPEG quality the member is size-matched
            to); ``None`` for the family default.
        allow_16bit: accept a table file with steps above 255 (16-bit JPEG, which many decoders
            reject) even when the file does not say ``"allow_16bit": true``.

    Example:
        >>> load("resnet50").luma[:4]
        (17, 16, 17, 20)
        >>> load("standard", quality=50).luma[:4]
        (16, 11, 10, 16)
    """
    if isinstance(name, (str, os.PathLike)) and _looks_like_path(name):
        return _load_path(Path(name), quality, allow_16bit)
    if not isinstance(name, str):
        raise QTableError(f"table name must be a string or path, got {type(name).__name__}")
    return load_family(name).get(quality)


def tuned_writer(table: QTable) -> str | None:
    """The encoder family ``table`` was tuned to be written by, from its provenance (``"trellis"`` for a
    table from ``dnnjpeg family --writer trellis``); ``None`` when libjpeg's (or unrecorded).

    A table is a valid baseline table whatever writes it; written by another encoder than the one it
    was tuned for, it keeps its size match only roughly and its measured accuracy not at all.

    Example:
        >>> tuned_writer(load("efficientnet_lite0")) is None
        True
    """
    return _recorded_writer(table.meta.get("provenance"))


def _recorded_writer(provenance: Any) -> str | None:
    w = provenance.get("writer") if isinstance(provenance, Mapping) else None
    return str(w) if w else None


def _looks_like_path(name: str | os.PathLike[str]) -> bool:
    s = os.fspath(name)
    return s.endswith(".json") or os.sep in s or (os.altsep is not None and os.altsep in s) or Path(s).is_file()


def _read_json(path: Path) -> Any:
    """The JSON in a table or family file; :class:`QTableError` naming the file when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QTableError(f"{path}: cannot read table file: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QTableError(f"{path}: not valid JSON: {exc}") from None


def read_family_file(family: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """The raw JSON dict of a family file and where it came from, with every key it holds.

    :class:`Family` keeps what loading a table needs; tools that read a tuning run's record
    (fold tables, cross-validation figures) want the whole file.

    Args:
        family: a family JSON path, or the name of a shipped family (a file in :func:`shipped_tables_dir`).

    Raises:
        QTableError: no such file or shipped family, unreadable, or not a family file.

    Example:
        >>> data, source = read_family_file("resnet50")
        >>> data["format"], source.endswith("resnet50.json")
        ('dnnjpeg-family', True)
    """
    files = _shipped_files()
    if isinstance(family, str) and not _looks_like_path(family):
        if family not in files:
            raise QTableError(f"{family!r}: no such family file or shipped family; shipped: {', '.join(files)}")
        path = files[family]
    else:
        path = Path(os.fspath(family))
    data = _read_json(path)
    if not isinstance(data, dict) or data.get("format") != FAMILY_FORMAT:
        raise QTableError(f"{path}: not a family file ('format' is not {FAMILY_FORMAT!r})")
    check_family_version(data, str(path))
    return data, str(path)


def read_family_record(family: str | os.PathLike[str], *, allow_16bit: bool = False) -> FamilyRecord:
    """The :class:`FamilyRecord` of a family file, or of a shipped family by name (as :func:`read_family_file`;
    ``allow_16bit`` as for :func:`load`).

    Example:
        >>> rec = read_family_record("efficientnet_lite0")
        >>> rec.provenance["tool"], rec.source.endswith("efficientnet_lite0.json")
        ('dnnjpeg family', True)
    """
    data, source = read_family_file(family)
    return FamilyRecord.from_dict(data, source=source, allow_16bit=allow_16bit)


def find_family(table: str | os.PathLike[str], *, allow_16bit: bool = False) -> Family | None:
    """The family a table name or JSON path stands for; ``None`` for a single-table file.
    ``allow_16bit`` as for :func:`load`.

    Raises:
        QTableError: an unknown name, or a file that cannot be read (naming it).

    Example:
        >>> find_family("resnet50").qualities
        [50]
    """
    if isinstance(table, str) and not _looks_like_path(table):
        return load_family(table)
    data = _read_json(Path(os.fspath(table)))
    if isinstance(data, dict) and data.get("format") == FAMILY_FORMAT:
        return Family.from_dict(data, source=os.fspath(table), allow_16bit=allow_16bit)
    return None


def _load_path(path: Path, quality: int | None, allow_16bit: bool = False) -> QTable:
    data = _read_json(path)
    if isinstance(data, dict) and data.get("format") == FAMILY_FORMAT:
        return Family.from_dict(data, source=str(path), allow_16bit=allow_16bit).get(quality)
    if quality is not None:
        raise QTableError(f"{path}: a single-table file has no quality members (got quality={quality})")
    return QTable.from_dict(data, source=str(path), allow_16bit=allow_16bit)


def resolve_table(
    table: str | os.PathLike[str] | QTable, quality: int | None = None, *, allow_16bit: bool = False
) -> QTable:
    """Accept a QTable, a family name or a JSON path; ``quality`` only applies to families;
    ``allow_16bit`` as for :func:`load`."""
    if isinstance(table, QTable):
        if quality is not None:
            raise QTableError("quality selects a family member; it cannot be combined with a QTable object")
        return table
    if isinstance(table, (str, os.PathLike)):
        return load(table, quality, allow_16bit=allow_16bit)
    raise QTableError(f"table must be a name, a JSON path or a QTable, got {type(table).__name__}")
