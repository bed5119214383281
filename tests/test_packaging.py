"""The installed package: data files found, doctests pass, imports stay light."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import dnnjpeg

REPO = Path(__file__).resolve().parents[1]


def test_installed_copy_is_used_when_required():
    """CI installs with ``pip install .`` (not editable) and sets DNNJPEG_EXPECT_INSTALLED=1."""
    if os.environ.get("DNNJPEG_EXPECT_INSTALLED") != "1":
        pytest.skip("set DNNJPEG_EXPECT_INSTALLED=1 to check a non-editable install (.ci/run does)")
    package_dir = Path(dnnjpeg.__file__).resolve().parent
    assert REPO not in package_dir.parents, f"tests imported the source tree {package_dir}, not the installed copy"
    assert (package_dir / "_shipped_tables" / "resnet50.json").is_file()


def test_tables_found_from_another_folder(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import dnnjpeg; print(sorted(dnnjpeg.tables()))"],
                          cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "resnet50" in proc.stdout and "standard" in proc.stdout


def test_core_import_does_not_load_torch():
    code = "import sys, dnnjpeg, dnnjpeg.cli; dnnjpeg.cli.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def _modules() -> list[str]:
    names = ["dnnjpeg"]
    for info in pkgutil.walk_packages(dnnjpeg.__path__, "dnnjpeg."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_doctests(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name}"
