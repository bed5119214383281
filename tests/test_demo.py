"""The README's demo command runs end to end (tune, validate, recompress) on scikit-image photos."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_runs(tmp_path, capsys):
    pytest.importorskip("skimage", reason="the demo's photos come with scikit-image (test extra)")
    pytest.importorskip("optuna", reason="the demo tunes a table (tune extra)")
    spec = importlib.util.spec_from_file_location("dnnjpeg_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert demo.main(["--out", str(tmp_path), "--budget", "3"]) == 0
    out = capsys.readouterr().out
    for step in ("== 1.", "== 2.", "== 3.", "== 4.", "== 5."):
        assert step in out
    table = json.loads((tmp_path / "lite0-tuned.json").read_text())
    assert table["provenance"]["method"] == "sorted"
    outputs = sorted((tmp_path / "photos-dnn").glob("*.png"))
    assert outputs and all(p.read_bytes()[:2] == b"\xff\xd8" for p in outputs)  # JPEG data, names kept
    assert "nothing left to do" in out  # the second recompress resumed
    trellis = {p.name: p.stat().st_size for p in (tmp_path / "photos-dnn-trellis").glob("*.png")}
    assert trellis.keys() == {p.name for p in outputs}
    assert sum(trellis.values()) < sum(p.stat().st_size for p in outputs)  # same table, fewer bytes
