"""The README's code examples really work: Python blocks run in order, shell blocks run in bash.

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

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\s*)?```(python|bash)\n(.*?)```", re.DOTALL)


def _blocks(language: str) -> list[str]:
    return [code for skip, lang, code in BLOCK.findall(README.read_text()) if lang == language and not skip]


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


def test_python_examples_run(workdir):
    blocks = _blocks("python")
    assert blocks, "README has no Python examples"
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README is ours
    for produced in ("x.jpg", "y.jpg", "z.jpg"):
        with Image.open(workdir / produced) as im:
            assert im.format == "JPEG"


def test_shell_examples_run(workdir):
    blocks = _blocks("bash")
    assert blocks, "README has no shell examples"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for code in blocks:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=workdir, env=env,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"README block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
