"""tune(): persistence in Optuna studies, budgets, reruns, workers, fidelity, Pareto fronts, size matching.

Evaluations are real libjpeg round trips scored by PSNR (:class:`dnnjpeg.search.psnr.PSNREvaluator`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.search import SearchError, tune
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos
from dnnjpeg.search.study import ASK_KEY, CONFIG_KEY, CURVE_KEY, METRICS_KEY, load_study

CURVE = (20, 40, 60, 80)


@pytest.fixture(scope="module")
def ev() -> PSNREvaluator:
    return PSNREvaluator(synthetic_photos(3, 48, seed=1), "synthetic")


def tables(res) -> list[tuple]:
    return [(tuple(t["table"]["luma"]), tuple(t["table"]["chroma"]), t["table"]["subsampling"]) for t in res.trials]


def test_trials_record_tables_metrics_and_config(ev, tmp_path) -> None:
    path = str(tmp_path / "s.journal")
    res = tune(ev, "bounded", budget=4, objective="fitness-ce", seed=3, storage=path, curve_qualities=CURVE)
    study = load_study(path, res.study_name)
    assert study.user_attrs[CONFIG_KEY]["method"] == "bounded"
    assert [p["quality"] for p in study.user_attrs[CURVE_KEY]["points"]] == list(CURVE)
    t = study.trials[0]
    assert t.user_attrs[ASK_KEY]["stream"] == 0 and t.user_attrs[ASK_KEY]["seq"] == 0
    assert set(t.user_attrs[METRICS_KEY]) >= {"top1", "ce", "kl", "cr", "bpp", "bytes_mean", "n"}
    prov = res.table.meta["provenance"]
    for key in ("method", "budget", "seed", "data_hash", "model", "objective", "study", "storage"):
        assert key in prov
    assert prov["budget"] == 4 and prov["seed"] == 3 and prov["objective"] == "fitness-ce"
    assert res.table.meta["metrics"]["objective"] == pytest.approx(res.value)
    assert res.value == max(t["value"] for t in res.trials)
    assert res.best_so_far() == sorted(res.best_so_far())


def test_larger_budget_adds_only_the_difference_and_matches_an_uninterrupted_run(ev, tmp_path) -> None:
    path = str(tmp_path / "s.journal")
    first = tune(ev, "bandit", budget=5, objective="fitness-ce", seed=2, storage=path, curve_qualities=CURVE)
    more = tune(ev, "bandit", budget=9, objective="fitness-ce", seed=2, storage=path, curve_qualities=CURVE)
    assert len(more.trials) == 9 and tables(more)[:5] == tables(first)
    straight = tune(ev, "bandit", budget=9, objective="fitness-ce", seed=2, storage=None, curve_qualities=CURVE)
    assert tables(straight)[:5] == tables(first)
    # no table is evaluated twice: a repeated proposal is answered from the study
    assert len(set(tables(more))) == 9 and len(set(tables(straight))) == 9


def test_reopening_a_study_for_another_run_is_refused(ev, tmp_path) -> None:
    path = str(tmp_path / "s.journal")
    tune(ev, "sorted", budget=2, objective="fitness-ce", storage=path, study_name="x", curve_qualities=CURVE)
    with pytest.raises(SearchError, match="method: study has 'sorted', this run has 'bounded'"):
        tune(ev, "bounded", budget=2, objective="fitness-ce", storage=path, study_name="x", curve_qualities=CURVE)
    other = PSNREvaluator(synthetic_photos(3, 48, seed=2), "synthetic")
    with pytest.raises(SearchError, match="data_fingerprint"):
        tune(other, "sorted", budget=2, objective="fitness-ce", storage=path, study_name="x", curve_qualities=CURVE)


def test_bad_arguments_have_clear_errors(ev, tmp_path) -> None:
    with pytest.raises(SearchError, match="unknown search method 'nope'"):
        tune(ev, "nope", budget=2)
    with pytest.raises(SearchError, match="budget must be a positive integer, got 0"):
        tune(ev, "sorted", budget=0)
    with pytest.raises(SearchError, match="workers > 1 need a persistent storage"):
        tune(ev, "sorted", budget=2, workers=2)
    with pytest.raises(SearchError, match="unsupported scheme 'redis'"):
        tune(ev, "sorted", budget=2, storage="redis://localhost/0")
    with pytest.raises(SearchError, match="unknown objective 'best'"):
        tune(ev, "sorted", budget=2, objective="best")
    with pytest.raises(SearchError, match="multi-objective"):
        tune(ev, "nsga2", budget=2, fidelity="1:2")
    with pytest.raises(SearchError, match="folder .* does not exist"):
        tune(ev, "sorted", budget=2, storage=str(tmp_path / "no" / "s.journal"))


def test_two_worker_processes_share_one_journal_study(tmp_path) -> None:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    ev = PSNREvaluator([skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee()], "skimage")
    res = tune(ev, "sorted", budget=10, objective="fitness-ce", storage=str(tmp_path / "w.journal"), workers=2,
               curve_qualities=CURVE)
    assert res.n_complete == 10 and len(res.trials) == 10
    keys = [(t["stream"], t["seq"]) for t in res.trials]
    assert len(set(keys)) == 10 and {s for s, _ in keys} <= {0, 1}
    assert len(set(tables(res))) == 10


def test_fidelity_prunes_on_image_subsets(tmp_path) -> None:
    ev = PSNREvaluator(synthetic_photos(18, 32, seed=4), "synthetic18")
    res = tune(ev, "sorted", budget=10, objective="fitness-ce", fidelity="2:3", storage=str(tmp_path / "f.journal"),
               curve_qualities=CURVE)
    states = [t["state"] for t in res.trials]
    assert len(states) == 10 and states.count("PRUNED") >= 1 and res.n_pruned == states.count("PRUNED")
    for t in res.trials:
        assert t["metrics"]["n"] == 18 if t["state"] == "COMPLETE" else t["metrics"]["n"] in (2, 6)
    study = load_study(tmp_path / "f.journal", res.study_name)
    for n in (2, 6):  # each partial rung is scored against standard JPEG on the same images
        assert study.user_attrs[f"{CURVE_KEY}.rung{n}"]["points"][0]["n"] == n
    full = tune(ev, "sorted", budget=10, objective="fitness-ce", curve_qualities=CURVE)
    assert tables(full) == tables(res)  # sorted ignores results: the same candidates, some pruned early
    assert res.value <= full.value + 1e-12


def test_nsga2_returns_a_pareto_front(ev) -> None:
    res = tune(ev, "nsga2", budget=8, objective="fitness-kl", curve_qualities=CURVE)
    pairs = [(t.meta["metrics"]["kl"], t.meta["metrics"]["bytes_mean"]) for t in res.pareto]
    assert pairs and [b for _, b in pairs] == sorted(b for _, b in pairs)
    for i, (k1, b1) in enumerate(pairs):
        for j, (k2, b2) in enumerate(pairs):
            assert i == j or not (k2 <= k1 and b2 <= b1 and (k2 < k1 or b2 < b1))
    assert any(t == res.table for t in res.pareto)


def test_quality_size_matches_the_result(ev) -> None:
    res = tune(ev, "sorted", budget=3, objective="fitness-ce", quality=50, curve_qualities=CURVE)
    target = float(np.mean(ev.sizes(QTable.standard(50))))
    assert res.table.meta["quality"] == 50
    assert res.metrics["bytes_mean"] <= target
    assert res.table.meta["provenance"]["size_matched"]["quality"] == 50
    assert res.metrics["bytes_mean"] > 0.8 * target


class CountingEvaluator(PSNREvaluator):
    """A real PSNR evaluator that counts the JPEG encodes asked of it."""

    calls = 0

    def sizes(self, table, indices=None):
        self.calls += 1
        return super().sizes(table, indices)

    def evaluate(self, table=None, indices=None):
        self.calls += 1
        return super().evaluate(table, indices)


def test_rerun_of_a_finished_study_reads_its_size_matched_result(tmp_path) -> None:
    # size matching encodes every image 16 times and evaluates once more (minutes with trellis):
    # a rerun of a finished study reads it from the study, for the same trial and quality only
    ev = CountingEvaluator(synthetic_photos(3, 48, seed=1), "synthetic")
    path = str(tmp_path / "m.journal")
    first = tune(ev, "sorted", budget=3, objective="fitness-ce", quality=50, storage=path, curve_qualities=CURVE)
    assert ev.calls > 16
    ev.calls = 0
    again = tune(ev, "sorted", budget=3, objective="fitness-ce", quality=50, storage=path, curve_qualities=CURVE)
    assert ev.calls == 0
    assert again.table == first.table and again.metrics == first.metrics
    assert again.table.meta["provenance"]["size_matched"]["scale"] == first.table.meta["provenance"]["size_matched"]["scale"]
    other = tune(ev, "sorted", budget=3, objective="fitness-ce", quality=70, storage=path, curve_qualities=CURVE)
    assert ev.calls > 16 and other.metrics["bytes_mean"] > first.metrics["bytes_mean"]
    ev.calls, ev.device = 0, "elsewhere"  # a machine whose model runs on another device measures its own
    moved = tune(ev, "sorted", budget=3, objective="fitness-ce", quality=50, storage=path, curve_qualities=CURVE)
    assert ev.calls > 16 and moved.table == first.table


def test_spaces_separate_and_subsampling(ev) -> None:
    res = tune(ev, "bounded", budget=6, objective="fitness-ce", space="separate+subsampling", curve_qualities=CURVE)
    subs = {t["table"]["subsampling"] for t in res.trials}
    assert subs <= {"4:4:4", "4:2:2", "4:2:0"} and len(subs) >= 2
    assert any(t["table"]["luma"] != t["table"]["chroma"] for t in res.trials)
    assert res.table.meta["provenance"]["space"] == "separate+subsampling"


def test_deepn_scales_its_statistics_table(ev) -> None:
    res = tune(ev, "deepn", budget=4, objective="fitness-ce", curve_qualities=CURVE)
    rows = [np.array(t["table"]["luma"], float) for t in res.trials]
    # every proposal is the same table shape at another overall strength
    assert rows[1].mean() < rows[0].mean() < rows[2].mean()
    assert not math.isnan(res.value)


@pytest.mark.parametrize("method", ["bandit", "bounded", "nsga2", "deepn"])
def test_rerun_with_another_budget_replays_despite_a_new_schedule(method, ev, tmp_path) -> None:
    # start-up lengths and populations follow the budget, so the replayed proposals differ from
    # the recorded ones: the recorded results are credited to them and the run goes on
    path = str(tmp_path / "s.journal")
    first = tune(ev, method, budget=6, objective="fitness-ce", storage=path, curve_qualities=CURVE)
    res = tune(ev, method, budget=30, objective="fitness-ce", storage=path, curve_qualities=CURVE)
    assert len(res.trials) == 30 and tables(res)[:6] == tables(first)
    assert len({(t["stream"], t["seq"]) for t in res.trials}) == 30


@pytest.mark.slow  # 4 worker processes start (about 20 s on 2 cores)
def test_two_workers_then_two_more_replay_their_streams(tmp_path) -> None:
    ev = PSNREvaluator(synthetic_photos(4, 64, seed=6), "synthetic")
    path = str(tmp_path / "w.journal")
    tune(ev, "bandit", budget=8, objective="fitness-ce", storage=path, workers=2, curve_qualities=CURVE)
    res = tune(ev, "bandit", budget=16, objective="fitness-ce", storage=path, workers=2, curve_qualities=CURVE)
    assert res.n_complete == 16
    assert len({(t["stream"], t["seq"]) for t in res.trials}) == 16


def test_rerun_of_a_finished_study_builds_no_method(ev, tmp_path, monkeypatch) -> None:
    # a finished study has nothing to ask: the rerun reads its trials without rebuilding the method
    # (fisher's statistics and curves take minutes on real data); a larger budget still replays it
    from dnnjpeg.search.fisher import FisherSearch

    designs = []
    curves_for = FisherSearch._curves_for
    monkeypatch.setattr(FisherSearch, "_curves_for", lambda self, sub: designs.append(sub) or curves_for(self, sub))
    path = str(tmp_path / "f.journal")
    options = {"weights": "mse"}
    first = tune(ev, "fisher", budget=6, objective="fitness-ce", storage=path, options=options, curve_qualities=CURVE)
    assert designs, "the first run designs tables"
    designs.clear()
    again = tune(ev, "fisher", budget=6, objective="fitness-ce", storage=path, options=options, curve_qualities=CURVE)
    assert designs == [] and tables(again) == tables(first) and again.value == first.value
    more = tune(ev, "fisher", budget=8, objective="fitness-ce", storage=path, options=options, curve_qualities=CURVE)
    assert designs and tables(more)[:6] == tables(first) and len(more.trials) == 8


def test_load_study_names_a_missing_study(tmp_path) -> None:
    from dnnjpeg.search import SearchError

    tune_path = tmp_path / "none.journal"
    with pytest.raises(SearchError, match="no study 'absent'"):
        load_study(tune_path, "absent")
