"""Family files as typed records (format versions 1 and 2), and ``tune_family`` as stages: a seeded run
gives the tables and figures it gave before it was split, and its result is typed.

The seeded run uses the PSNR evaluator (real libjpeg round trips, no model) with labels attached, so it
takes seconds and needs no weights.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import dnnjpeg
from dnnjpeg import QTable, QTableError
from dnnjpeg.families import (
    FAMILY_FORMAT_VERSION,
    Family,
    FamilyRecord,
    find_family,
    load_family,
    read_family_file,
    read_family_record,
    shipped_tables_dir,
)
from dnnjpeg.search.family import (
    CrossvalFigures,
    FamilyFigures,
    FamilyTuneError,
    FamilyTuneOptions,
    FamilyTuneResult,
    TunedProvenance,
    TuningFigures,
    tune_family,
)
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos


class LabelledPSNR(PSNREvaluator):
    """The PSNR evaluator with class labels (two images per class), for class-disjoint folds."""

    classifier = None

    def __init__(self) -> None:
        super().__init__(synthetic_photos(16, 48, seed=5), "photos", threshold_db=26.0)
        fingerprint = self.fingerprint()
        self.dataset = SimpleNamespace(labelled=True, labels=np.arange(16) // 2,
                                       fingerprint=lambda protocol: fingerprint)


SEEDED = FamilyTuneOptions(qualities=[50, 70, 80], methods=["sorted", "shaped"], budget=3, k=2, seed=3, fold_seed=1,
                           compare_encoders=(), command="seeded")

# Recorded from the code before tune_family was split into stages (commit ff09624, dnnjpeg/family_tune.py
# as it was there): tune_family(LabelledPSNR(), "photos", workdir=..., qualities=[50, 70, 80],
# methods=["sorted", "shaped"], budget=3, k=2, seed=3, fold_seed=1, compare_encoders=(), command="seeded").
# On that machine the whole file the new code writes was identical to the old one but for "version" (1 -> 2).
# Each table is one step list for Y, Cb and Cr (space "single"), natural order; member, then fold 0 and 1.
EXPECTED_METHOD = "sorted"
EXPECTED_TABLES = {
    50: ("18 19 21 21 30 30 35 35 19 21 25 28 30 35 35 46 19 25 28 30 35 37 44 46 27 27 32 34 37 44 46 62 "
         "27 32 34 41 42 48 62 64 32 34 41 42 48 58 67 71 32 42 42 48 57 69 71 78 42 42 49 55 69 71 83 92",
         "14 16 21 23 30 32 44 44 16 20 23 30 32 43 47 60 20 23 29 35 41 49 60 61 23 25 35 41 49 58 61 80 "
         "24 36 41 50 58 61 79 88 38 39 50 58 66 74 97 129 39 53 57 67 72 98 107 134 53 55 70 72 103 103 134 149",
         "21 21 23 23 24 25 35 39 22 23 24 24 25 35 40 48 22 24 24 27 35 40 48 49 24 24 27 34 40 48 50 58 "
         "24 28 33 40 46 50 58 63 30 33 40 46 50 56 63 73 32 41 46 51 55 63 68 74 43 44 52 52 64 67 76 81"),
    70: ("14 15 15 15 17 17 20 21 15 15 16 17 17 20 21 24 15 17 17 18 20 21 24 25 17 17 18 20 21 24 25 28 "
         "17 18 20 23 23 25 27 28 18 20 23 23 25 26 28 32 19 23 23 25 26 30 31 35 23 23 26 26 31 31 35 40",
         "15 15 16 16 17 17 20 20 15 16 16 17 17 20 20 24 16 16 17 17 20 21 24 24 16 17 17 20 21 24 25 27 "
         "16 19 19 21 23 25 27 27 19 19 21 22 25 27 29 32 19 21 21 26 26 29 32 33 21 21 26 26 29 29 34 36",
         "13 13 15 15 17 17 22 24 14 15 15 17 17 22 25 30 14 15 16 18 21 25 29 30 15 16 18 20 25 29 30 36 "
         "16 18 20 25 28 30 36 37 18 20 25 28 31 35 38 49 19 28 28 32 34 38 45 63 28 28 32 33 41 43 69 70"),
    80: ("11 11 12 12 13 13 14 14 11 12 12 13 13 14 14 17 11 12 12 13 14 14 17 17 12 12 13 14 14 17 17 19 "
         "12 13 14 14 17 18 19 20 13 13 14 16 18 19 20 22 13 15 15 18 18 20 21 23 15 15 18 18 20 20 23 23",
         "10 10 12 12 12 12 15 15 10 10 12 12 12 15 15 19 10 12 12 12 15 15 19 19 12 12 13 14 15 18 19 24 "
         "12 13 14 15 17 19 21 25 14 14 15 17 19 20 26 35 14 16 16 19 20 26 30 35 16 16 19 20 29 30 38 43",
         "9 9 10 10 11 11 16 17 10 10 11 11 11 16 18 21 10 11 11 12 16 18 21 22 11 11 12 15 18 21 22 26 "
         "11 13 15 18 20 22 26 28 13 15 18 20 22 25 28 32 14 18 20 23 24 28 30 33 19 20 23 23 28 30 34 36"),
}
# Counted and byte-derived figures: exact.  (tuning top1, cr, bytes_mean, p_value;
# held-out top1, cr, bytes_mean, p_value)
EXPECTED_COUNTS = {
    50: ((0.5625, 6.962518740629685, 1000.5, 0.0078125), (0.5625, 6.959475491726506, 1000.9375, 0.0078125)),
    70: ((1.0, 6.223463063264281, 1119.3125, 0.00048828125), (1.0, 6.217561084458329, 1120.375, 0.00048828125)),
    80: ((1.0, 5.616326530612245, 1240.3125, 0.25), (1.0, 5.624545821558336, 1238.5, 0.25)),
}
# Figures through logarithms and curve fits (tuning KL, held-out KL, held-out gain at equal CR): bit-identical
# on the machine that recorded them; compared to 1e-9 so that another CPU's log1p or BLAS cannot fail the test.
EXPECTED_FLOATS = {
    50: (3.086564989092719, 3.10398747053282, 0.5),
    70: (2.67177684291443, 2.675426284833391, 0.75038046353199),
    80: (2.3909997844850737, 2.3882874218130863, 0.20315524098300042),
}
EXPECTED_FAMILY = {
    "crossval_bd_rate_vs_standard": -14.865663067028711, "crossval_bd_accuracy_vs_standard": 0.6091029602300386,
    "tuning_bd_rate_vs_standard": -14.924639828146658, "tuning_bd_accuracy_vs_standard": 0.607203505975592,
}
EXPECTED_METHOD_BD = {"sorted": (-14.865663067028711, 3.1682214758882665),
                      "shaped": (-13.046447737272427, 6.21066070404408)}
EXPECTED_PROB_AHEAD = [1.0, 1.0, 0.9645]


def steps(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("family") / "photos.work"
    result = tune_family(LabelledPSNR(), "photos", SEEDED, workdir=workdir)
    return result, workdir


def test_seeded_run_gives_the_tables_and_figures_recorded_before_the_split(seeded):
    result, _ = seeded
    d = json.loads(json.dumps(result.to_dict()))
    assert d["provenance"]["method"] == result.chosen == EXPECTED_METHOD
    assert [m["quality"] for m in d["members"]] == [50, 70, 80]
    for m in d["members"]:
        q = m["quality"]
        member, *folds = (list(steps(t)) for t in EXPECTED_TABLES[q])
        assert (m["luma"], m["chroma"], m["subsampling"]) == (member, member, "4:2:0"), q
        fold_tables = m["metrics"]["crossval"]["fold_tables"]
        assert [(t["luma"], t["chroma"]) for t in fold_tables] == [(f, f) for f in folds], q
        t, c = m["metrics"]["tuning"], m["metrics"]["crossval"]
        assert (t["top1"], t["cr"], t["bytes_mean"], t["p_value"]) == EXPECTED_COUNTS[q][0], q
        assert (c["heldout_top1"], c["heldout_cr"], c["heldout_bytes_mean"], c["p_value"]) == EXPECTED_COUNTS[q][1], q
        assert (t["kl"], c["heldout_kl"], c["gain_top1_at_equal_cr"]) == pytest.approx(EXPECTED_FLOATS[q], rel=1e-9)
    metrics = d["metrics"]
    assert {k: metrics[k] for k in EXPECTED_FAMILY} == pytest.approx(EXPECTED_FAMILY, rel=1e-9)
    got_bd = {m: (v["crossval_bd_rate_vs_standard"], v["crossval_kl_bd_rate_vs_standard"])
              for m, v in metrics["method_choice_bd_rate"].items()}
    assert got_bd.keys() == EXPECTED_METHOD_BD.keys()
    assert all(got_bd[m] == pytest.approx(EXPECTED_METHOD_BD[m], rel=1e-9) for m in got_bd)
    assert metrics["crossval_members_ahead"]["prob_ahead"] == EXPECTED_PROB_AHEAD
    assert d["provenance"]["search_devices"] == {"cpu": (2 * 3 * 2 + 3) * 3}  # 12 fold + 3 final searches


def test_result_is_typed_and_its_dict_is_a_version_2_family_file(seeded):
    result, _ = seeded
    assert isinstance(result, FamilyTuneResult) and isinstance(result.record, FamilyRecord)
    d = result.to_dict()
    assert d["format"] == "dnnjpeg-family" and d["version"] == FAMILY_FORMAT_VERSION == 2
    plain = json.loads(json.dumps(d))
    record = FamilyRecord.from_dict(plain, source="photos.json")
    assert record.version == 2 and record.to_dict() == plain
    assert TunedProvenance.from_dict(plain["provenance"]).to_dict() == plain["provenance"]
    assert "writer" not in plain["provenance"]  # libjpeg's tables: no writer recorded
    assert FamilyFigures.from_dict(plain["metrics"]).to_dict() == plain["metrics"]
    for m in plain["members"]:
        crossval = CrossvalFigures.from_dict(m["metrics"]["crossval"])
        assert crossval.to_dict() == m["metrics"]["crossval"]
        assert TuningFigures.from_dict(m["metrics"]["tuning"]).to_dict() == m["metrics"]["tuning"]
        held = result.crossval[result.chosen][m["quality"]]
        assert [t.luma for t in held.fold_tables] == [t.luma for t in crossval.fold_tables]
        assert held.result.top1 == crossval.heldout_top1
    family = Family.from_dict(plain, source="photos.json")
    assert family.qualities == [50, 70, 80] and family.default_quality == 50
    assert family.get(70).luma == steps(EXPECTED_TABLES[70][0]) == record.member(70).table.luma
    assert family.get(70).meta["name"] == "photos-q70"


def test_partial_stages_return_no_file_and_only_read_the_finished_run(seeded):
    result, workdir = seeded
    logged: list[str] = []
    cv = tune_family(LabelledPSNR(), "photos", SEEDED, workdir=workdir, stage="cv", log=logged.append)
    assert cv.record is None and cv.choice is None and cv.finals == {}
    with pytest.raises(FamilyTuneError, match="stage 'cv' assembles no family"):
        cv.to_dict()
    assert set(cv.crossval) == {"sorted", "shaped"}
    for q, member in cv.crossval["sorted"].items():
        assert [t.luma for t in member.fold_tables] == [steps(t) for t in EXPECTED_TABLES[q][1:]]
    final = tune_family(LabelledPSNR(), "photos", SEEDED, workdir=workdir, stage="final", methods=["sorted"],
                        log=logged.append)
    assert final.record is None and final.crossval == {} and final.chosen == "sorted"
    assert {q: r.table.luma for q, r in final.finals["sorted"].items()} == {
        q: steps(t[0]) for q, t in EXPECTED_TABLES.items()}
    assert sum(line.startswith("evaluations outside the searches: 0 run, ") for line in logged) == 2


def test_options_are_one_object_and_keyword_arguments_still_work(tmp_path):
    opts = FamilyTuneOptions(qualities=[75, 40, 75], methods=["sorted"], compare_encoders=["mozjpeg"])
    assert opts.qualities == (40, 75) and opts.methods == ("sorted",) and opts.compare_encoders == ("mozjpeg",)
    assert FamilyTuneOptions().curve_qualities == tuple(range(5, 96, 5))  # dnnjpeg.evaluation.curve.DEFAULT_QUALITIES
    with pytest.raises(FamilyTuneError, match="budget must be >= 1, got 0"):
        tune_family(object(), "x", opts, workdir=tmp_path, budget=0)  # a keyword replaces the option's field
    with pytest.raises(FamilyTuneError, match="choose_by must be one of top1, kl, got 'psnr'"):
        tune_family(object(), "x", workdir=tmp_path, choose_by="psnr")
    with pytest.raises(TypeError, match="unexpected keyword arguments: budgte"):
        tune_family(object(), "x", workdir=tmp_path, budgte=3)
    assert not any(tmp_path.iterdir())


def test_shipped_files_are_version_1_and_read_without_loss():
    files = sorted(shipped_tables_dir().glob("*.json"))
    assert files
    for path in files:
        raw = json.loads(path.read_text(encoding="utf-8"))
        record = read_family_record(path.stem)
        assert record.version == raw["version"] == 1 and record.source == str(path)
        assert {**record.to_dict(), "version": 1} == raw, path  # every key kept; only the version is new
        for m in raw["members"]:
            table = dnnjpeg.load(path.stem, quality=m["quality"])
            assert list(table.luma) == m["luma"] and list(table.chroma) == m["chroma"], path
            assert table.subsampling == m["subsampling"] and table.meta["quality"] == m["quality"], path
            assert table.meta["provenance"] == m["provenance"] and table.meta["metrics"] == m["metrics"], path
            assert table.meta["name"] == m.get("name", raw["name"]), path


def test_tuned_version_1_files_read_into_the_typed_figures():
    lite0 = read_family_record("efficientnet_lite0")
    prov = TunedProvenance.from_dict(lite0.provenance)
    assert prov.tool == "dnnjpeg family" and prov.chosen_by is not None and prov.to_dict() == lite0.provenance
    member = lite0.member(50)
    crossval = CrossvalFigures.from_dict(member.metrics["crossval"])
    assert len(crossval.fold_tables) == prov.k and all(isinstance(t, QTable) for t in crossval.fold_tables)
    assert crossval.to_dict() == member.metrics["crossval"]
    # Lite2's file was written before chosen_by, method_choice_bd_rate and crossval_members_ahead existed
    lite2 = read_family_record("efficientnet_lite2")
    assert "chosen_by" not in lite2.provenance and "crossval_members_ahead" not in lite2.metrics
    assert TunedProvenance.from_dict(lite2.provenance).chosen_by is None
    figures = FamilyFigures.from_dict(lite2.metrics)
    assert figures.crossval_members_ahead is None and figures.method_choice_bd_rate is None
    assert figures.crossval_bd_rate_vs_standard == lite2.metrics["crossval_bd_rate_vs_standard"]


def test_unknown_versions_are_refused_naming_the_file_and_the_version(tmp_path):
    fam = Family("fam", "two members", {30: QTable([30] * 64), 60: QTable([10] * 64)}, 60)
    written = fam.to_dict()
    assert written["version"] == 2 and "name" not in written["members"][0]
    path = tmp_path / "future.json"
    path.write_text(json.dumps({**written, "version": 3}))
    newer = r"future.json: family format version 3 is newer than this dnnjpeg reads \(versions 1, 2\); upgrade"
    for read in (dnnjpeg.load, find_family, read_family_file, read_family_record):
        with pytest.raises(QTableError, match=newer):
            read(path)
    path.write_text(json.dumps({**written, "version": "two"}))
    with pytest.raises(QTableError, match=r"future.json: family format version 'two' is not one this dnnjpeg reads"):
        dnnjpeg.load(path)
    unversioned = {k: v for k, v in written.items() if k != "version"}  # read as version 1
    path.write_text(json.dumps(unversioned))
    assert read_family_record(path).version == 1 and dnnjpeg.load(path, quality=30).luma[0] == 30
    assert load_family("resnet50").to_dict()["version"] == 2
