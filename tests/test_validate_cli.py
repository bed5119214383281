"""``dnnjpeg validate`` and :func:`dnnjpeg.validation.validate.validate` with real Lite0, real libjpeg and mozjpeg,
on 16 dev images (small, so fast; the numbers themselves are noise, the known answers are exact)."""

from __future__ import annotations

import json
import math

import pytest

import dnnjpeg
from dnnjpeg.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.needs_data]

LIMIT = "16"

#: Keys docs/validation.md documents for the top level of ``validate --json``.
DOCUMENTED_KEYS = {
    "format", "version", "model", "data", "protocol", "labelled", "table_name", "table_family", "table_quality",
    "top1", "cr", "bytes_mean", "bpp", "n", "standard_top1_at_cr", "delta_top1", "ci_low", "ci_high",
    "ci_dropped", "p_value", "p_value_ttest", "t_statistic", "nearest_quality", "nearest_top1", "nearest_cr",
    "nearest_bytes_mean", "paired_delta_top1", "paired_ci_low", "paired_ci_high", "mcnemar_b", "mcnemar_c",
    "bd_rate", "bd_accuracy", "bd_interval", "kl_bd_interval", "rate_delta_at_top1", "reference_top1", "ci_level", "resamples", "seed",
    "qualities", "standard", "members", "encoders", "table", "seconds", "command",
}


def run_json(capsys, *args: str) -> dict:
    code = main(["validate", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_standard_q50_gives_zero_difference_and_p_one(capsys, dev_data):
    d = run_json(capsys, "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", LIMIT,
                 "--table", "standard", "--quality", "50", "--qualities", "30,50,70", "--resamples", "300")
    assert set(d) == DOCUMENTED_KEYS
    assert d["n"] == 16 and d["table_quality"] == 50 and d["nearest_quality"] == 50
    assert d["delta_top1"] == 0.0 and d["standard_top1_at_cr"] == d["top1"]
    assert d["p_value"] == 1.0 and d["p_value_ttest"] == 1.0 and (d["mcnemar_b"], d["mcnemar_c"]) == (0, 0)
    assert (d["ci_low"], d["ci_high"]) == (0.0, 0.0)
    # the standard family's members at the swept qualities are the curve itself: BD-rate 0
    assert d["bd_rate"] == 0.0 and [m["quality"] for m in d["members"]] == [30, 50, 70]
    iv = d["bd_interval"]
    assert (iv["bd_rate"], iv["ci_low"], iv["ci_high"], iv["prob_smaller"]) == (0.0, 0.0, 0.0, 0.0)
    assert iv["resamples"] == 300  # validate's --resamples, up to the BD bootstrap's 2000
    kl = d["kl_bd_interval"]
    assert kl["metric"] == "kl" and (kl["bd_rate"], kl["ci_low"], kl["ci_high"]) == (0.0, 0.0, 0.0)
    assert [p["quality"] for p in d["standard"]] == [30, 50, 70]
    assert d["standard"][0]["cr"] > d["standard"][1]["cr"] > d["standard"][2]["cr"]


def test_text_summary_gives_the_family_bd_rate_with_its_interval(capsys, dev_data):
    code = main(["validate", "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", LIMIT,
                 "--table", "standard", "--quality", "50", "--qualities", "30,50,70", "--resamples", "100"])
    out = capsys.readouterr().out
    assert code == 0
    assert "BD-rate of the family vs standard: +0.00% (95% CI +0.0% to +0.0%, smaller in 0% of 100 resamples)" in out
    assert "BD-rate at equal KL from the uncompressed prediction: +0.00% (95% CI +0.0% to +0.0%" in out


def test_python_api_agrees_with_the_standard_curve(dev_data, tmp_path):
    from dnnjpeg.evaluation.curve import StandardCurve
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.validation.validate import validate

    # a family made of standard tables at the swept qualities: its BD-rate against standard JPEG must be 0
    qualities = [10, 40, 70]
    members = {q: dnnjpeg.QTable.standard(q) for q in qualities}
    family = dnnjpeg.Family("three-std", "standard q10, q40, q70", members, 40)
    path = tmp_path / "three.json"
    path.write_text(json.dumps(family.to_dict()))
    ev = Evaluator("efficientnet_lite0", dev_data, limit=int(LIMIT))
    try:
        v = validate(ev, path, 40, qualities=qualities, resamples=300)
        curve = StandardCurve.compute(ev, qualities)
        r = validate(ev, dnnjpeg.load("resnet50"), qualities=qualities, resamples=300, standard=v.standard)
    finally:
        ev.close()
    assert v.family_name == "three-std" and sorted(v.members) == qualities
    assert v.bd_rate == 0.0 and v.comparison.delta_top1 == 0.0 and v.comparison.p_value == 1.0
    cmp = r.comparison
    expected = curve.top1_at_cr(cmp.cr, method="linear")
    assert not math.isnan(expected), cmp.cr  # resnet50's CR lies inside the q10..q70 curve's range
    assert cmp.reference_top1_at_cr == pytest.approx(expected, abs=1e-12)
    assert cmp.delta_top1 == pytest.approx(r.result.top1 - expected, abs=1e-12)
    near = min(curve.points, key=lambda p: abs(p.bytes_mean - cmp.bytes_mean))
    assert cmp.nearest_quality == near.quality


def test_errors_name_the_bad_value(capsys, dev_data):
    base = ["validate", "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", LIMIT]
    assert main([*base, "--table", "nope"]) == 2
    assert "unknown table 'nope'" in capsys.readouterr().err
    assert main([*base, "--table", "resnet50", "--compare-encoders", "webp"]) == 2
    assert "unknown encoder 'webp'" in capsys.readouterr().err
    assert main([*base, "--table", "resnet50", "--qualities", "50"]) == 2
    assert "at least 2 standard qualities" in capsys.readouterr().err
    assert main([*base, "--table", "resnet50", "--resamples", "0"]) == 2
    assert "--resamples must be >= 1, got 0" in capsys.readouterr().err
