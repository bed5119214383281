"""The package's layout holds: concepts in subpackages, no import cycles, research apart, old paths deprecated."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dnnjpeg
from dnnjpeg._compat import MOVED

PACKAGE = Path(dnnjpeg.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Imports run when the module is imported (module level, inside top-level if/try; not TYPE_CHECKING)."""
    out: list[ast.stmt] = []

    def walk(stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if isinstance(s, (ast.Import, ast.ImportFrom)):
                out.append(s)
            elif isinstance(s, ast.If) and "TYPE_CHECKING" not in ast.unparse(s.test):
                walk(s.body)
                walk(s.orelse)
            elif isinstance(s, ast.Try):
                for block in (s.body, s.orelse, s.finalbody, *[h.body for h in s.handlers]):
                    walk(block)

    walk(tree.body)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {m for m, p in files.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        base_pkg = mod if mod in packages else mod.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base_pkg.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    target = ".".join(parts + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                graph[mod] |= {t for t in [target, *names] if t in files and t != mod}
            else:
                graph[mod] |= {a.name for a in node.names if a.name in files and a.name != mod}
    return graph


def test_no_import_cycles_between_the_package_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                # a package's __init__ importing its own submodules, which import siblings, is not a cycle
                if not all(a.startswith(cycle[0] + ".") or a == cycle[0] for a in cycle[1:-1]):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_package_never_imports_research():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("research"), f"{path} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("research") for a in node.names), f"{path} imports research"


def test_concepts_live_in_subpackages():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"evaluation", "validation", "search", "ratecontrol", "batch", "transforms", "cli"} <= subpackages
    top = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    assert top == {"advice", "encoders", "errors", "export", "families", "options", "pillow_plugin", "qtable",
                   "testing"}, "a new top-level module: does it belong to a subpackage?"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_still_import_with_a_deprecation_naming_the_new_one(old):
    code = (f"import warnings, importlib, sys\nwarnings.simplefilter('always')\n"
            f"with warnings.catch_warnings(record=True) as w:\n"
            f"    warnings.simplefilter('always')\n"
            f"    old = importlib.import_module({old!r})\n"
            f"new = importlib.import_module({MOVED[old]!r})\n"
            f"assert old is new, (old, new)\n"
            f"msgs = [str(x.message) for x in w if issubclass(x.category, DeprecationWarning)]\n"
            f"assert any({MOVED[old]!r} in m for m in msgs), msgs\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_subpackages_reexport_their_public_names():
    for pkg in ("dnnjpeg.evaluation", "dnnjpeg.validation"):
        module = importlib.import_module(pkg)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for name in module.__all__:
                assert getattr(module, name) is not None, f"{pkg}.{name}"


def test_every_subpackage_is_installed():
    """pyproject lists packages explicitly: a new subpackage missing there imports from a checkout only."""
    import tomllib

    repo = Path(__file__).resolve().parents[1]  # the checkout (PACKAGE may be the installed copy)
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.relative_to(repo).parent.parts) for p in (repo / "dnnjpeg").rglob("__init__.py")}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
