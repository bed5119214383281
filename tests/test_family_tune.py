"""``dnnjpeg family``: cross-validated method choice, resumable stages, a loadable family file.

Real Lite0 weights, real libjpeg, a few dev images and tiny budgets: the numbers mean nothing here,
the structure and the bookkeeping are what is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.cli import main
from dnnjpeg.families import Family
from dnnjpeg.search.family import FamilyTuneError, tune_family
from dnnjpeg.search.storage import open_storage, parse_storage
from dnnjpeg.testing import without_dates

pytestmark = pytest.mark.slow

ARGS = ["--model", "efficientnet_lite0", "--limit", "12", "--name", "lite0-test", "--qualities", "40,75",
        "--methods", "sorted,shaped", "--budget", "2", "--space", "separate+subsampling", "--compare-encoders", "none"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PARALLEL_SCRIPT = EXAMPLES / "family_parallel.sh"


def n_trials(journal) -> int:
    import optuna

    store = open_storage(parse_storage(str(journal)))
    return sum(s.n_trials for s in optuna.get_all_study_summaries(store))


@pytest.fixture(scope="module")
def family_run(dev_data, tmp_path_factory):
    """Stages run one by one (cv, final, all) into one workdir."""
    tmp = tmp_path_factory.mktemp("family")
    out = tmp / "lite0-test.json"
    common = [*ARGS, "--data", str(dev_data), "--out", str(out)]
    assert main(["family", *common, "--stage", "cv"]) == 0
    assert not out.exists()
    cv_journals = sorted((tmp / "lite0-test.work" / "cv").glob("*.journal"))
    assert len(cv_journals) == 2 * 2 * 2  # methods x qualities x folds
    assert main(["family", *common, "--stage", "final"]) == 0
    before = {p.name: n_trials(p) for p in (tmp / "lite0-test.work").rglob("*.journal")}
    assert main(["family", *common]) == 0
    after = {p.name: n_trials(p) for p in (tmp / "lite0-test.work").rglob("*.journal")}
    return out, before, after


def test_family_file_loads_and_members_are_size_matched(family_run, dev_data):
    out, _, _ = family_run
    data = json.loads(out.read_text())
    fam = Family.from_dict(data, source=str(out))
    assert fam.qualities == [40, 75] and fam.default_quality in fam.qualities
    # `dnnjpeg tables` prints the name first: the description names the model only as it differs from the name
    assert fam.description.startswith("tables for efficientnet_lite0 size-matched to standard JPEG q40, q75 (")
    prov = data["provenance"]
    for key in ("command", "method", "budget", "seed", "data_hash", "model", "created", "version", "k"):
        assert prov[key] is not None, key
    assert prov["method"] in ("sorted", "shaped") and prov["methods_compared"] == ["sorted", "shaped"]
    assert prov["command"].startswith("dnnjpeg family ")
    from dnnjpeg.evaluation.evaluate import Evaluator

    ev = Evaluator("efficientnet_lite0", dev_data, limit=12)
    for q in fam.qualities:
        member = fam.get(q)
        assert member.is_baseline
        m = data["members"][fam.qualities.index(q)]["metrics"]
        assert m["crossval"]["n"] == 12 and len(m["crossval"]["fold_tables"]) == 2
        assert 0 <= m["crossval"]["p_value"] <= 1
        assert m["tuning"]["bytes_mean"] <= m["tuning"]["standard_bytes_mean"]
        sizes = ev.sizes(member).mean()
        assert sizes <= ev.sizes(QTable.standard(q)).mean()
        assert m["tuning"]["bytes_mean"] == pytest.approx(sizes)
    assert set(data["metrics"]["method_choice"]) == {"sorted", "shaped"}
    assert "crossval_bd_rate_vs_standard" in data["metrics"]


def test_family_records_its_bd_interval_and_what_ran_the_searches(family_run):
    from dnnjpeg.cli.family import format_summary

    out, _, _ = family_run
    data = json.loads(out.read_text())
    metrics = data["metrics"]
    iv = metrics["crossval_bd_interval_vs_standard"]
    assert iv["resamples"] == 2000 and iv["seed"] == 0 and iv["metric"] == "top1"
    assert iv["bd_rate"] == pytest.approx(metrics["crossval_bd_rate_vs_standard"])
    assert iv["bd_accuracy"] == pytest.approx(metrics["crossval_bd_accuracy_vs_standard"])
    # None only where the held-out curves share no CR range; this seeded run on 12 images has one
    assert iv["ci_low"] is not None, iv
    assert iv["ci_low"] <= iv["ci_high"] and 0.0 <= iv["prob_smaller"] <= 1.0
    assert "% CI" in format_summary(data)
    kl = metrics["crossval_kl_bd_interval_vs_standard"]  # bytes at equal KL: the searches' own signal
    assert kl["metric"] == "kl" and kl["resamples"] == 2000 and kl["seed"] == 0
    assert kl["bd_rate"] is not None, kl  # as above: None only without a shared KL range
    assert "BD-rate at equal KL (held out): " in format_summary(data)
    for enc in metrics["encoders"].values():
        assert enc["family_heldout_kl_bd_interval_vs_encoder"]["metric"] == "kl"
    del metrics["crossval_bd_interval_vs_standard"]  # a file written before the intervals existed
    del metrics["crossval_kl_bd_interval_vs_standard"]
    for enc in metrics["encoders"].values():
        del enc["family_heldout_kl_bd_interval_vs_encoder"]
    summary = format_summary(data)
    assert "% CI" not in summary.splitlines()[-1] and "equal KL" not in summary
    # 2 methods x 2 qualities x 2 folds, then the chosen method's 2 final searches; 2 trials each
    devices = data["provenance"]["search_devices"]
    assert sum(devices.values()) == (8 + 2) * 2 and len(devices) == 1
    (device,) = devices
    assert device != "unrecorded" and data["provenance"]["machine"].endswith(device)


def test_family_records_how_often_every_member_is_ahead(family_run):
    from dnnjpeg.cli.family import format_summary

    out, _, _ = family_run
    data = json.loads(out.read_text())
    ahead = data["metrics"]["crossval_members_ahead"]
    assert ahead["qualities"] == [40, 75] and ahead["metric"] == "top1" and ahead["resamples"] == 2000
    assert ahead["sample_size"] == 12  # the held-out images, pooled over the folds
    # on the images themselves: the members' own cross-validation records
    records = [m["metrics"]["crossval"] for m in data["members"]]
    assert ahead["ahead"] == [c["heldout_top1"] > c["standard_top1"] for c in records]
    assert ahead["every_ahead"] == all(ahead["ahead"])
    assert all(0.0 <= p <= 1.0 for p in ahead["prob_ahead"])
    assert ahead["prob_every_ahead"] <= min(ahead["prob_ahead"])
    line = [x for x in format_summary(data).splitlines() if x.startswith("held-out top1 against standard")]
    assert len(line) == 1 and f"of 2000 resamples (each: q40 {100 * ahead['prob_ahead'][0]:.0f}%" in line[0]
    del data["metrics"]["crossval_members_ahead"]  # a file written before this was recorded
    assert "resamples (each:" not in format_summary(data)


def test_how_many_images_example_remeasures_the_record_and_projects_larger_samples(family_run, dev_data, tmp_path,
                                                                                      capsys):
    """research/how_many_images.py: at the measured size it reproduces the family's own record."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("how_many_images", EXAMPLES.parent / "research" / "how_many_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, _, _ = family_run
    data = json.loads(out.read_text())
    args = ["--family", str(out), "--model", "efficientnet_lite0", "--data", str(dev_data),
            "--limit", "12", "--sizes", "48", "--workdir", str(tmp_path / "outlook")]
    assert module.main(args) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r[0] for r in rows] == ["12", "48"]
    recorded = data["metrics"]["crossval_members_ahead"]
    assert rows[0][5] == f"{100 * recorded['prob_every_ahead']:.0f}%"  # same images, same draws
    bd = data["metrics"]["crossval_bd_interval_vs_standard"]
    assert bd["bd_rate"] is not None, bd  # the record has a BD-rate (None only without a shared CR range)
    assert rows[0][1] == f"{bd['bd_rate']:+.1f}%"
    assert rows[1][1] == rows[0][1]  # a projection keeps the estimate; only the interval narrows
    assert any((tmp_path / "outlook").iterdir())  # evaluations kept for a rerun
    # the seed's table has no cross-validation record: a clear error, not a traceback
    assert module.main(["--family", "resnet50", *args[2:]]) == 2
    assert "resnet50.json: not tuned by 'dnnjpeg family'" in capsys.readouterr().err


def test_final_stage_reads_the_journals_without_new_evaluations(family_run):
    _, before, after = family_run
    assert before == after
    assert all(n == 2 for n in after.values())


def test_rerun_of_a_finished_family_runs_no_model_and_writes_the_same_family(family_run, dev_data):
    """Journals and ``evaluations/`` hold everything: no table is encoded or evaluated again."""
    from dnnjpeg.evaluation.evaluate import Evaluator

    class CountingEvaluator(Evaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.calls = []  # shared with its subsets (fold evaluators)

        def evaluate(self, table=None, indices=None):
            self.calls.append("evaluate")
            return super().evaluate(table, indices)

        def sizes(self, table, indices=None):
            self.calls.append("sizes")
            return super().sizes(table, indices)

    out, _, _ = family_run
    original = json.loads(out.read_text())
    assert len(list((out.with_suffix(".work") / "evaluations").glob("*.json"))) > 0
    ev = CountingEvaluator("efficientnet_lite0", dev_data, limit=12)
    try:
        again = tune_family(ev, "lite0-test", workdir=out.with_suffix(".work"), qualities=[40, 75],
                            methods=["sorted", "shaped"], budget=2, space="separate+subsampling", compare_encoders=(),
                            command=original["provenance"]["command"])
    finally:
        ev.close()
    assert ev.calls == []
    assert without_dates(json.loads(json.dumps(again.to_dict()))) == without_dates(original)


def test_method_is_chosen_by_heldout_gain(family_run):
    out, _, _ = family_run
    data = json.loads(out.read_text())
    choice = data["metrics"]["method_choice"]
    mean = {m: np.mean([v["gain_top1_at_equal_cr"] for v in per_q.values()]) for m, per_q in choice.items()}
    best = max(mean.values())
    assert mean[data["provenance"]["method"]] == best
    assert data["provenance"]["chosen_by"] == "top1"
    bd = data["metrics"]["method_choice_bd_rate"]
    assert set(bd) == {"sorted", "shaped"}
    chosen = data["provenance"]["method"]
    assert bd[chosen]["crossval_bd_rate_vs_standard"] == pytest.approx(data["metrics"]["crossval_bd_rate_vs_standard"])


def test_choose_by_kl_picks_the_lowest_bd_rate_at_equal_kl(family_run, dev_data, capsys):
    out, _, _ = family_run
    kl_out = out.with_name("by-kl.json")
    workdir = out.with_suffix(".work")
    assert main(["family", *ARGS, "--data", str(dev_data), "--out", str(kl_out), "--workdir", str(workdir),
                 "--choose-by", "kl", "--progress"]) == 0
    log = capsys.readouterr()
    assert "chosen by cross-validation (BD-rate at equal KL)" in log.out + log.err  # the progress line
    assert "evaluations outside the searches: 0 run, " in log.err  # a rerun on finished journals
    assert "class-disjoint cross-validation, BD-rate at equal KL)" in log.out  # the summary
    data = json.loads(kl_out.read_text())
    prov, bd = data["provenance"], data["metrics"]["method_choice_bd_rate"]
    assert prov["chosen_by"] == "kl" and "--choose-by kl" in prov["command"]
    rates = {m: v["crossval_kl_bd_rate_vs_standard"] for m, v in bd.items()}
    # 12 images could leave a method no shared KL range (None); in this seeded run both have one
    assert all(r is not None for r in rates.values()), rates
    assert rates[prov["method"]] == min(rates.values())
    # the CV journals are the top-1 run's: same per-method figures
    assert bd == json.loads(out.read_text())["metrics"]["method_choice_bd_rate"]


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": ["nope"]}, "unknown method"), ({"k": 1}, "k must be"), ({"qualities": [0]}, "1..100"),
    ({"signal": "psnr"}, "signal"), ({"stage": "later"}, "stage"), ({"budget": 0}, "budget"),
    ({"choose_by": "psnr"}, "choose_by"),
])
def test_bad_arguments_raise_before_any_work(kwargs, match, tmp_path):
    with pytest.raises(FamilyTuneError, match=match):
        tune_family(object(), "x", workdir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_regenerate_reruns_the_recorded_command_and_gets_the_same_tables(family_run, tmp_path, capsys):
    out, _, _ = family_run
    tables = tmp_path / "tables"
    tables.mkdir()
    original = json.loads(out.read_text())
    (tables / "lite0-test.json").write_text(out.read_text())
    (tables / "seed.json").write_text(json.dumps({"format": "dnnjpeg-family", "provenance": {"source": "a paper"}}))
    assert main(["regenerate", "--tables", str(tables), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "seed: not tuned by dnnjpeg" in printed
    assert f"--out {tables / 'lite0-test.json'}" in printed
    assert main(["regenerate", "--tables", str(tables), "--only", "lite0-test"]) == 0
    again = json.loads((tables / "lite0-test.json").read_text())
    assert [m["luma"] for m in again["members"]] == [m["luma"] for m in original["members"]]
    assert [m["chroma"] for m in again["members"]] == [m["chroma"] for m in original["members"]]
    assert again["provenance"]["method"] == original["provenance"]["method"]
    capsys.readouterr()
    assert main(["regenerate", "--tables", str(tables), "--only", "nope", "--dry-run"]) != 0
    assert "no family named nope" in capsys.readouterr().err


def test_parallel_script_splits_the_searches_and_the_family_command_only_reads_them(dev_data, tmp_path):
    """examples/family_parallel.sh: one process per stage, method and quality group, one workdir."""
    work = tmp_path / "lite0-test.work"
    env = {**os.environ, "METHODS": "sorted", "QUALITY_GROUPS": "40 75", "WORKERS": "1",
           "EXTRA": "--limit 12", "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(PARALLEL_SCRIPT), "efficientnet_lite0", str(dev_data), str(work), "2", "600"],
                         check=False, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    journals = {p.relative_to(work).as_posix() for p in work.rglob("*.journal")}
    assert journals == {"cv/sorted-q40-fold0.journal", "cv/sorted-q40-fold1.journal", "cv/sorted-q75-fold0.journal",
                        "cv/sorted-q75-fold1.journal", "final/sorted-q40.journal", "final/sorted-q75.journal"}
    before = {p: n_trials(work / p) for p in journals}
    out = tmp_path / "lite0-test.json"
    assert main(["family", "--model", "efficientnet_lite0", "--data", str(dev_data), "--limit", "12",
                 "--name", "lite0-test", "--qualities", "40,75", "--methods", "sorted", "--k", "2", "--fold-seed", "0",
                 "--budget", "2", "--signal", "kl", "--seed", "0", "--space", "separate+subsampling",
                 "--compare-encoders", "none", "--workdir", str(work), "--out", str(out)]) == 0
    assert {p: n_trials(work / p) for p in journals} == before == dict.fromkeys(journals, 2)
    fam = Family.from_dict(json.loads(out.read_text()), source=str(out))
    assert fam.qualities == [40, 75]


def test_parallel_script_rejects_wrong_arguments():
    run = subprocess.run(["bash", str(PARALLEL_SCRIPT), "efficientnet_lite0"], check=False,
                         capture_output=True, text=True)
    assert run.returncode == 2 and "usage:" in run.stderr


def test_compare_families_remeasures_the_heldout_curve_and_compares_paired(family_run, dev_data, tmp_path, capsys):
    """A family against itself: recorded held-out top-1 reproduced, zero differences; against a copy
    whose fold tables are standard JPEG's, the differences are those of independent evaluations."""
    from dnnjpeg.evaluation.data import class_disjoint_folds
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.validation.family_compare import compare_families

    out, _, _ = family_run
    data = json.loads(out.read_text())
    std_copy = json.loads(out.read_text())
    for m in std_copy["members"]:
        m["metrics"]["crossval"]["fold_tables"] = [QTable.standard(m["quality"]).to_dict()] * 2
        m["metrics"]["crossval"]["heldout_top1"] = -1.0  # a record the re-measurement cannot match
    std_path = tmp_path / "std.json"
    std_path.write_text(json.dumps(std_copy))
    ev = Evaluator("efficientnet_lite0", dev_data, limit=12)
    try:
        same = compare_families(out, out, ev, resamples=50)
        cmp = compare_families(out, std_path, ev, resamples=50)
        folds = class_disjoint_folds(ev.dataset.labels, k=2, seed=0)
        expected, expected_kl = {}, {}
        for m in data["members"]:
            q = m["quality"]
            held = [ev.evaluate(QTable.from_dict(t), indices=f.test)
                    for t, f in zip(m["metrics"]["crossval"]["fold_tables"], folds)]
            tuned = sum(r.correct.sum() for r in held)
            assert tuned / 12 == pytest.approx(m["metrics"]["crossval"]["heldout_top1"])
            std = ev.evaluate(QTable.standard(q))
            expected[q] = std.top1 - tuned / 12
            expected_kl[q] = std.kl_mean - sum(r.kl.sum() for r in held) / 12
    finally:
        ev.close()
    assert all(same.reproduced.values()) and same.bd["bd_rate"] in (0.0, None)
    assert [m["delta_top1"] for m in same.members] == [0.0, 0.0] and [m["p_value"] for m in same.members] == [1.0, 1.0]
    assert {m["quality"]: m["delta_top1"] for m in cmp.members} == pytest.approx(expected)
    assert {m["quality"]: m["delta_kl"] for m in cmp.members} == pytest.approx(expected_kl, abs=1e-6)  # float32 KL
    assert [m["delta_kl"] for m in same.members] == [0.0, 0.0] and same.bd_kl["metric"] == "kl"
    assert same.bd_kl["bd_rate"] in (0.0, None) and same.bd_kl["ci_low"] in (0.0, None)
    assert cmp.reproduced[str(std_path)] is False
    assert main(["compare-families", str(out), str(std_path), "--model", "efficientnet_lite0", "--data", str(dev_data),
                 "--limit", "12", "--resamples", "20", "--json"]) == 0
    printed, members = json.loads(capsys.readouterr().out)["members"], cmp.to_dict()["members"]
    assert len(printed) == len(members)  # member by member: pytest >= 9 refuses approx() of a list of dicts
    assert all(p == pytest.approx(m) for p, m in zip(printed, members))


def test_heldout_results_through_another_encoder(family_run, dev_data):
    """The fold tables written by mozjpeg (trellis) instead of libjpeg, each on its held-out fold."""
    from dnnjpeg.encoders import MozjpegEncoder
    from dnnjpeg.evaluation.data import class_disjoint_folds
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.validation.family_compare import heldout_results

    out, _, _ = family_run
    data = json.loads(out.read_text())
    ev = Evaluator("efficientnet_lite0", dev_data, limit=12)
    try:
        libjpeg, _ = heldout_results(out, ev)
        trellis, _ = heldout_results(out, ev, encoder="mozjpeg")
        folds = class_disjoint_folds(ev.dataset.labels, k=2, seed=0)
        for m in data["members"]:
            q = m["quality"]
            held = [ev.evaluate(MozjpegEncoder(table=QTable.from_dict(t)), indices=f.test)
                    for t, f in zip(m["metrics"]["crossval"]["fold_tables"], folds)]
            assert trellis[q].top1 == pytest.approx(sum(r.correct.sum() for r in held) / 12)
            assert trellis[q].bytes_mean == pytest.approx(sum(r.bytes.sum() for r in held) / 12)
            assert trellis[q].bytes_mean < libjpeg[q].bytes_mean
    finally:
        ev.close()


def test_compare_families_refuses_other_data_and_untuned_files(family_run, dev_data, tmp_path):
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.validation.family_compare import FamilyCompareError, compare_families

    out, _, _ = family_run
    ev = Evaluator("efficientnet_lite0", dev_data, limit=10)
    try:
        with pytest.raises(FamilyCompareError, match=r"lite0-test.json: tuned on data .* 12 images.* 10 images"):
            compare_families(out, out, ev)
        with pytest.raises(FamilyCompareError, match="resnet50.json: not tuned by 'dnnjpeg family'"):
            compare_families("resnet50", out, ev)
        (tmp_path / "x.json").write_text("{}")
        with pytest.raises(FamilyCompareError, match="x.json: not a family file"):
            compare_families(tmp_path / "x.json", out, ev)
    finally:
        ev.close()


def test_family_tuned_for_another_writer_records_it_and_reproduces_with_it(family_run, dev_data, tmp_path, capsys):
    """``--writer trellis``: every candidate written with trellis quantization, standard JPEG still libjpeg's."""
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.families import find_family, tuned_writer
    from dnnjpeg.validation.family_compare import heldout_results

    out = tmp_path / "lite0-trellis.json"
    args = ["--model", "efficientnet_lite0", "--limit", "12", "--name", "lite0-trellis", "--qualities", "50",
            "--methods", "sorted", "--budget", "2", "--compare-encoders", "none", "--writer", "trellis",
            "--data", str(dev_data), "--out", str(out)]
    assert main(["family", *args]) == 0
    data = json.loads(out.read_text())
    assert data["provenance"]["writer"] == "trellis" and "--writer trellis" in data["provenance"]["command"]
    family = find_family(out)
    assert family.writer == "trellis" and "written by the trellis encoder" in family.description
    assert tuned_writer(family.get(50)) == "trellis" and find_family(family_run[0]).writer is None
    # compress says so when the table is written without the encoder it was tuned for
    photo = min(dev_data.rglob("*.JPEG"))
    capsys.readouterr()
    assert main(["compress", str(photo), str(tmp_path / "plain.jpg"), "--table", str(out)]) == 0
    assert "tuned to be written by the trellis encoder" in capsys.readouterr().err
    assert main(["compress", str(photo), str(tmp_path / "trellis.jpg"), "--table", str(out), "--writer", "trellis"]) == 0
    assert "tuned to be written" not in capsys.readouterr().err
    (tmp_path / "src").mkdir()
    shutil.copy(photo, tmp_path / "src")
    assert main(["recompress", str(tmp_path / "src"), str(tmp_path / "dst"), "--table", str(out), "--no-progress"]) == 0
    assert "pass --writer trellis to write what it was tuned for" in capsys.readouterr().err
    # compare-families --writer trellis: the libjpeg family's recorded figures are not re-checked, and says so
    assert main(["compare-families", str(family_run[0]), str(out), "--model", "efficientnet_lite0", "--data",
                 str(dev_data), "--limit", "12", "--resamples", "20", "--writer", "trellis"]) == 0
    err = capsys.readouterr().err
    assert (f"{family_run[0]}: written by trellis here; its recorded held-out figures were measured written by "
            "libjpeg, so they are not re-checked") in err
    assert f"{out}:" not in err  # its own writer, its figures reproduced
    with Evaluator("efficientnet_lite0", dev_data, limit=12) as ev:
        _, reproduced = heldout_results(out, ev)  # written with the family's own writer
        assert all(reproduced.values())
        expected, _ = heldout_results(family_run[0], ev, encoder="trellis")
    # A libjpeg-tuned family through an evaluator with a writer: written by that writer.
    with Evaluator("efficientnet_lite0", dev_data, limit=12, writer="trellis") as ev:
        got, _ = heldout_results(family_run[0], ev)
    assert {q: r.bytes_mean for q, r in got.items()} == {q: r.bytes_mean for q, r in expected.items()}
