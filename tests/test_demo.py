"""The README's demo command runs end to end (model in the loop, tune, validate, recompress) on
scikit-image photos, and says on screen what it compares with what."""

from __future__ import annotations

import importlib.util
import json
import re
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
    for step in ("== 1.", "== 2.", "== 3.", "== 4."):
        assert step in out
    # 1. each family once per line, with its default member
    lines = [ln for ln in out.splitlines() if ln.startswith("  efficientnet_lite0 ")]
    assert len(lines) == 1 and "default q50" in lines[0] and lines[0].count("efficientnet_lite0") == 1
    # 2. the model in the loop: compared with one fixed quality at equal agreement and equal KL, in kB
    assert re.search(r"read back by efficientnet_lite0: top-1 agreement with the original tile = \d+/\d+", out)
    assert re.search(r"at equal agreement: (q\d+ is the smallest|no fixed quality)", out)
    assert re.search(r"at equal mean KL: (q\d+ is the smallest|no fixed quality)", out)
    assert "illustrative only" in out
    report = json.loads((tmp_path / "model-report.json").read_text())
    assert (tmp_path / "model-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tiles = sorted((tmp_path / "tiles-model").glob("*.png"))
    assert tiles and all(p.read_bytes()[:2] == b"\xff\xd8" for p in tiles)  # JPEG data, names kept
    assert report["summary"]["ok"] + report["summary"]["kept"] == len(tiles)
    # 3. tune reads an unlabelled folder: it speaks of agreement, and validate's difference comes with its interval
    assert re.search(r"objective size-matched-kl:50 = \S+ +agreement ", out)
    assert re.search(r"difference at equal size [+-]\d\.\d+ \(95% CI ", out)
    table = json.loads((tmp_path / "lite0-tuned.json").read_text())
    assert table["provenance"]["method"] == "sorted"
    # 4. recompress with a table: resumes, and bytes are compared with standard JPEG, not with the PNG sources
    outputs = sorted((tmp_path / "photos-dnn").glob("*.png"))
    assert outputs and all(p.read_bytes()[:2] == b"\xff\xd8" for p in outputs)
    assert "nothing left to do" in out  # the second recompress resumed
    assert re.search(r"standard JPEG q50 [\d.]+ kB; tuned table", out)
    trellis = {p.name: p.stat().st_size for p in (tmp_path / "photos-dnn-trellis").glob("*.png")}
    assert trellis.keys() == {p.name for p in outputs}
    assert sum(trellis.values()) < sum(p.stat().st_size for p in outputs)  # same table, fewer bytes
