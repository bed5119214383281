"""Shipped table families: load(), tables(), errors, JSON files."""

from __future__ import annotations

import json

import pytest

import dnnjpeg
from dnnjpeg import QTable, QTableError
from dnnjpeg.families import FAMILY_FORMAT, Family, find_family, load_family, read_family_file, shipped_tables_dir

SEED_TABLE_87 = [
    17, 16, 17, 20, 24, 34, 32, 39,
    18, 19, 22, 23, 26, 29, 30, 47,
    21, 22, 21, 28, 26, 43, 33, 43,
    27, 25, 29, 30, 33, 38, 35, 65,
    21, 27, 26, 41, 45, 53, 49, 53,
    34, 35, 36, 36, 45, 58, 49, 80,
    29, 44, 34, 42, 42, 62, 64, 68,
    31, 41, 37, 59, 67, 44, 77, 102,
]  # fmt: skip


def test_tables_lists_names_with_descriptions():
    names = dnnjpeg.tables()
    assert {"resnet50", "standard"} <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())


def test_resnet50_is_seed_table_87_for_all_components():
    qt = dnnjpeg.load("resnet50")
    assert isinstance(qt, QTable)
    assert list(qt.luma) == SEED_TABLE_87 and list(qt.chroma) == SEED_TABLE_87
    assert qt.subsampling == "4:2:0"
    prov = qt.meta["provenance"]
    assert "2003.02874" in prov["source"] and prov["measured_by_dnnjpeg"] is False
    reported = qt.meta["metrics"]["reported_by_source"]
    assert (reported["top1"], reported["cr"]) == (0.7122, 21.51)
    assert (reported["standard_q50_top1"], reported["standard_q50_cr"]) == (0.7069, 21.69)


def test_standard_family_members_and_default():
    fam = load_family("standard")
    assert fam.qualities == list(range(1, 101))
    assert dnnjpeg.load("standard") == QTable.standard(75)
    assert dnnjpeg.load("standard", quality=30) == QTable.standard(30)


def test_unknown_name_lists_what_exists():
    with pytest.raises(QTableError, match=r"unknown table 'nope'; available: .*resnet50.*standard"):
        dnnjpeg.load("nope")


def test_unknown_quality_lists_members():
    with pytest.raises(QTableError, match=r"'resnet50' has no member for quality 75; available qualities: 50"):
        dnnjpeg.load("resnet50", quality=75)
    with pytest.raises(QTableError, match=r"available qualities: 1\.\.100"):
        dnnjpeg.load("standard", quality=0)


def test_load_from_table_and_family_files(tmp_path):
    single = tmp_path / "mine.json"
    QTable([7] * 64, meta={"name": "mine"}).to_json(single)
    assert dnnjpeg.load(single).luma == (7,) * 64
    assert dnnjpeg.load(str(single)).luma == (7,) * 64
    with pytest.raises(QTableError, match="single-table file has no quality members"):
        dnnjpeg.load(single, quality=50)

    fam = Family("fam", "two members", {30: QTable([30] * 64), 60: QTable([10] * 64)}, 60)
    path = tmp_path / "fam.json"
    path.write_text(json.dumps(fam.to_dict()))
    assert dnnjpeg.load(path).luma[0] == 10
    assert dnnjpeg.load(path, quality=30).luma[0] == 30


def test_find_family_and_read_family_file_by_name_and_path(tmp_path):
    fam = Family("fam", "two members", {30: QTable([30] * 64), 60: QTable([10] * 64)}, 60,
                 metrics={"bd_rate": -0.1})
    path = tmp_path / "fam.json"
    raw = fam.to_dict() | {"extra": {"kept": True}}
    path.write_text(json.dumps(raw))
    single = tmp_path / "single.json"
    QTable([7] * 64).to_json(single)

    assert find_family(path).qualities == [30, 60] and find_family(str(path)).metrics == {"bd_rate": -0.1}
    assert find_family(single) is None
    assert find_family("standard").default_quality == 75  # a registered factory, no file behind it
    data, source = read_family_file(path)
    assert data["extra"] == {"kept": True} and source == str(path)  # every key, not only Family's
    data, source = read_family_file("resnet50")
    assert data["name"] == "resnet50" and source == str(shipped_tables_dir() / "resnet50.json")

    with pytest.raises(QTableError, match="single.json: not a family file"):
        read_family_file(single)
    with pytest.raises(QTableError, match="'nope': no such family file or shipped family"):
        read_family_file("nope")
    with pytest.raises(QTableError, match="unknown table 'nope'"):
        find_family("nope")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for read in (read_family_file, find_family):
        with pytest.raises(QTableError, match="broken.json: not valid JSON"):
            read(broken)
    with pytest.raises(QTableError, match="missing.json: cannot read table file"):
        find_family(tmp_path / "missing.json")


def test_resolve_table_refuses_quality_with_qtable():
    with pytest.raises(QTableError, match="cannot be combined with a QTable"):
        dnnjpeg.resolve_table(QTable([4] * 64), quality=50)
    with pytest.raises(QTableError, match="must be a name, a JSON path or a QTable"):
        dnnjpeg.resolve_table(12)  # type: ignore[arg-type]


def test_every_shipped_file_is_valid():
    files = sorted(shipped_tables_dir().glob("*.json"))
    assert files, f"no shipped tables found in {shipped_tables_dir()}"
    for path in files:
        data = json.loads(path.read_text())
        assert data["format"] == FAMILY_FORMAT, path
        assert data["name"] == path.stem, path
        fam = load_family(path.stem)
        assert fam.provenance, f"{path}: provenance missing"
        for q in fam.qualities:
            member = fam.get(q)
            assert member.is_baseline, f"{path} q{q}"
            assert member.meta.get("provenance"), f"{path} q{q}: member provenance missing"


MEASURED_PROVENANCE = ("command", "method", "budget", "seed", "data_hash", "model", "created", "version", "k")


def test_families_tuned_by_dnnjpeg_record_how_and_what_was_measured():
    for path in sorted(shipped_tables_dir().glob("*.json")):
        data = json.loads(path.read_text())
        prov = data["provenance"]
        if not prov.get("measured_by_dnnjpeg"):
            continue
        missing = [k for k in MEASURED_PROVENANCE if prov.get(k) in (None, "")]
        assert not missing, f"{path}: provenance lacks {missing}"
        assert prov["command"].startswith("dnnjpeg family "), path
        assert "crossval_bd_rate_vs_standard" in data["metrics"], path
        assert f"--out tables/{path.name}" in prov["command"], f"{path}: regenerate would not write back here"
        assert sum(prov["search_devices"].values()) > 0, path
        iv = data["metrics"]["crossval_bd_interval_vs_standard"]
        assert iv["bd_rate"] == pytest.approx(data["metrics"]["crossval_bd_rate_vs_standard"]), path
        assert iv["ci_low"] <= iv["ci_high"] and iv["resamples"] >= 1000, path
        for m in data["members"]:
            cv = m["metrics"]["crossval"]
            for key in ("heldout_top1", "heldout_cr", "standard_top1", "gain_top1_vs_size_matched_standard",
                        "p_value", "gain_top1_at_equal_cr"):
                assert key in cv, f"{path} q{m['quality']}: crossval metric {key} missing"
            assert m["metrics"]["tuning"]["bytes_mean"] <= m["metrics"]["tuning"]["standard_bytes_mean"], path


def tuned_families() -> list:
    paths = sorted(shipped_tables_dir().glob("*.json"))
    return [p for p in paths if json.loads(p.read_text())["provenance"].get("measured_by_dnnjpeg")]


@pytest.mark.slow
@pytest.mark.parametrize("path", tuned_families(), ids=lambda p: p.stem)
def test_recorded_command_builds_the_model_the_searches_used(path):
    """``dnnjpeg regenerate`` resumes the journals only if the recorded command builds the same model
    (weights, preprocessing, batch norms folded or not) as the run that wrote them."""
    import shlex

    from dnnjpeg.cli import build_parser
    from dnnjpeg.evaluation.models import get

    prov = json.loads(path.read_text())["provenance"]
    args = build_parser().parse_args(shlex.split(prov["command"])[1:])
    model = get(args.model, device="cpu")
    if not args.no_fold_batchnorm:
        model = model.fold_batchnorm()
    assert model.fingerprint == prov["model_fingerprint"], (
        f"{path.name}: the recorded command builds model {model.fingerprint}, the searches used "
        f"{prov['model_fingerprint']}")


def test_every_shipped_member_round_trips_through_pillow(photo):
    import io

    from PIL import Image, JpegImagePlugin

    sampling = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
    for path in sorted(shipped_tables_dir().glob("*.json")):
        fam = load_family(path.stem)
        for q in fam.qualities:
            member = fam.get(q)
            buf = io.BytesIO()
            photo.save(buf, "JPEG", qtables=member, subsampling=member.subsampling)
            with Image.open(io.BytesIO(buf.getvalue())) as im:
                im.load()
                assert {k: list(v) for k, v in im.quantization.items()} == {0: list(member.luma),
                                                                            1: list(member.chroma)}, f"{path} q{q}"
                assert JpegImagePlugin.get_sampling(im) == sampling[member.subsampling], f"{path} q{q}"
                assert im.size == photo.size
