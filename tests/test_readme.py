"""The README's and the guide's code examples really work: Python blocks run in order, shell blocks in bash.

A block preceded by ``<!-- readme-test: skip (reason) -->`` is not run (used for the setup
commands, which this very suite is part of, and for hours-long jobs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # the examples run EfficientNet-Lite0 with its real weights

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: every document whose examples run, and the files its Python examples must have written
DOCUMENTS = {"README.md": ("x.jpg", "y.jpg", "z.jpg"), "docs/guide.md": ()}
BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```(python|bash)\n(.*?)```", re.DOTALL)


def _blocks(language: str, document: Path = README) -> list[str]:
    return [code for skip, lang, code in BLOCK.findall(document.read_text()) if lang == language and not skip]


@pytest.fixture()
def workdir(tmp_path, photo, monkeypatch):
    photo.save(tmp_path / "photo.png")
    (tmp_path / "photos").mkdir()
    for name, box in (("a", (0, 0, 256, 256)), ("b", (256, 0, 512, 256)), ("c", (0, 256, 256, 512))):
        photo.crop(box).save(tmp_path / "photos" / f"{name}.png")
    import dnnjpeg

    dnnjpeg.QTable([9] * 64, subsampling="4:4:4").to_json(tmp_path / "my_table.json")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_python_examples_run(workdir, document):
    blocks = _blocks("python", ROOT / document)
    assert blocks, f"{document} has no Python examples"
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for code in blocks:
        exec(compile(code, str(ROOT / document), "exec"), namespace)  # noqa: S102 - the docs are ours
    for produced in DOCUMENTS[document]:
        with Image.open(workdir / produced) as im:
            assert im.format == "JPEG"


@pytest.mark.parametrize("document", sorted(DOCUMENTS))
def test_shell_examples_run(workdir, document):
    blocks = _blocks("bash", ROOT / document)
    assert blocks, f"{document} has no shell examples"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for code in blocks:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{document} block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
