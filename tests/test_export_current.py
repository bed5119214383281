"""The committed plugins/*/tables/ files are exactly what ``dnnjpeg export --all`` writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

import dnnjpeg
from dnnjpeg.export import GENERATED_MARKER, PLUGIN_FOLDERS, export_all, exported_members
from dnnjpeg.families import shipped_tables_dir

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
FIX = "run `dnnjpeg export --all --out plugins` in the repository root and commit the result"


def _tree(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for folder in PLUGIN_FOLDERS.values():
        tables = root / folder / "tables"
        if tables.is_dir():
            files.update({p.relative_to(root).as_posix(): p.read_bytes() for p in tables.iterdir() if p.is_file()})
    return files


def test_committed_plugin_tables_are_current(tmp_path: Path):
    if not PLUGINS.is_dir():
        pytest.skip(f"{PLUGINS} not found (running outside the source tree)")
    export_all(tmp_path)
    fresh = _tree(tmp_path)
    committed = _tree(PLUGINS)
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(k for k in set(fresh) & set(committed) if fresh[k] != committed[k])
    assert not missing, f"plugin files missing: {missing}; {FIX}"
    assert not extra, f"plugin files that export no longer writes: {extra}; {FIX}"
    assert not stale, f"plugin files differ from a fresh export (edited by hand or outdated): {stale}; {FIX}"


def test_every_shipped_table_is_exported():
    members = set(exported_members())
    for name in dnnjpeg.tables():
        family = dnnjpeg.load_family(name)
        if name == "standard":
            assert members & {(name, q) for q in family.qualities} == {(name, family.default_quality)}
        elif (shipped_tables_dir() / f"{name}.json").is_file():
            assert {(name, q) for q in family.qualities} <= members, name


def test_committed_files_are_marked_generated():
    if not PLUGINS.is_dir():
        pytest.skip(f"{PLUGINS} not found (running outside the source tree)")
    files = _tree(PLUGINS)
    assert files, "no generated plugin tables committed"
    for rel, data in files.items():
        assert GENERATED_MARKER.encode() in data, rel
