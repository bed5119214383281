"""``dnnjpeg crossval``: class-disjoint folds, held-out comparison, the seed-style table (real Lite0, 16 images)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnnjpeg.cli import main
from dnnjpeg.validation.crossval import CrossvalError, format_table, parse_method


def test_parse_method():
    assert parse_method("fixed:resnet50") == ("fixed", "resnet50", None)
    assert parse_method("fixed:path/to/t.json@75") == ("fixed", "path/to/t.json", 75)
    assert parse_method(" bayes ") == ("search", "bayes", None)
    with pytest.raises(CrossvalError, match="quality 'x' after '@' is not an integer"):
        parse_method("fixed:standard@x")
    with pytest.raises(CrossvalError, match="no table after 'fixed:'"):
        parse_method("fixed:")


@pytest.mark.slow
@pytest.mark.needs_data
def test_crossval_fixed_and_searched_tables(capsys, dev_data, tmp_path):
    code = main(["crossval", "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", "16",
                 "--methods", "fixed:standard@50,fixed:resnet50,sorted", "--k", "2", "--budget", "2",
                 "--qualities", "10,30,50,70,90", "--resamples", "200", "--out", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    d = json.loads(captured.out)
    assert d["format"] == "dnnjpeg-crossval" and d["k"] == 2 and d["n"] == 16
    assert [m["method"] for m in d["methods"]] == ["fixed:standard@50", "fixed:resnet50", "sorted"]
    control, resnet, tuned = d["methods"]
    # every image is held out exactly once
    assert sum(f["test_size"] for f in control["folds"]) == 16
    assert all(f["train_size"] + f["test_size"] == 16 for f in control["folds"])
    # standard q50 against standard JPEG on each held-out fold: exactly no gain, p = 1
    for f in control["folds"]:
        assert f["delta_top1"] == 0.0 and f["p_value"] == 1.0 and f["p_value_ttest"] == 1.0
        assert f["nearest_quality"] == 50
    assert control["pooled"]["delta_top1"] == 0.0 and control["pooled"]["p_value"] == 1.0
    assert control["pooled"]["n"] == 16 and resnet["pooled"]["n"] == 16
    # the pooled gain is the image-weighted mean of the fold gains
    sizes = np.array([f["test_size"] for f in resnet["folds"]])
    deltas = [f["delta_top1"] for f in resnet["folds"]]
    assert all(x is not None for x in deltas), deltas  # resnet50's sizes lie inside each fold's curve
    assert resnet["pooled"]["delta_top1"] == pytest.approx(float(np.dot(sizes, deltas) / sizes.sum()))
    # the searched tables were tuned on the training folds only, with one seed per fold
    prov = [f["table"]["provenance"] for f in tuned["folds"]]
    assert [p["method"] for p in prov] == ["sorted", "sorted"] and [p["seed"] for p in prov] == [0, 1]
    assert [p["n_images"] for p in prov] == [f["train_size"] for f in tuned["folds"]]
    assert prov[0]["data_hash"] != prov[1]["data_hash"]
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == ["crossval.json", "fixed-resnet50-fold0.json", "fixed-resnet50-fold1.json",
                     "fixed-standard-q50-fold0.json", "fixed-standard-q50-fold1.json",
                     "sorted-fold0.json", "sorted-fold1.json"]
    text = format_table(d)
    assert text.splitlines()[0].split() == ["method", "fold", "0", "fold", "1", "all"]
    assert "fixed:standard@50  +0.00 (p=1, t=1)" in text


def test_crossval_bad_arguments(capsys):
    assert main(["crossval", "--model", "efficientnet_lite0", "--data", ".", "--methods", "a,a"]) == 2
    assert "names a method twice" in capsys.readouterr().err
    assert main(["crossval", "--model", "efficientnet_lite0", "--data", ".", "--methods", "fixed:x", "--k", "1"]) == 2
    assert "--k must be >= 2, got 1" in capsys.readouterr().err
