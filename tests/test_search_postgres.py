"""Several workers share one study on a real PostgreSQL server; a killed worker resumes there too.

CI (``.ci/run``) starts PostgreSQL on 127.0.0.1 and exports ``DNNJPEG_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

URL = os.environ.get("DNNJPEG_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not URL, reason="DNNJPEG_TEST_POSTGRES_URL is not set (CI starts a PostgreSQL server and sets it)"
)

HERE = Path(__file__).parent
WORKER = HERE / "_search_worker.py"


def _resume_module():
    spec = importlib.util.spec_from_file_location("_search_resume_tests", HERE / "test_search_resume.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_workers_at_once_share_the_budget() -> None:
    pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    from optuna.trial import TrialState

    from dnnjpeg.search.study import trial_stream, trial_table

    res = _resume_module()
    study = f"pg-two-{uuid.uuid4().hex[:8]}"
    budget = 30
    cmd = [sys.executable, str(WORKER), "bandit", str(budget), URL, study]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    trials = res.load_trials(URL, study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget
    streams = {trial_stream(t) for t in complete}
    assert streams == {0, 1}, "both workers evaluated tables (each owns one stream)"
    keys = [(trial_stream(t), t.user_attrs["dnnjpeg.ask"]["seq"]) for t in complete]
    assert len(set(keys)) == budget
    assert len({trial_table(t) for t in complete}) == budget
    over = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs["dnnjpeg.failed"].startswith("over budget") for t in over)
    res.check_resumed(URL, study, budget)
    assert any(t.user_attrs["dnnjpeg.ask"]["observed"] for t in complete), "streams saw each other's results"

    # both workers again with a larger budget: each replays its stream, including what it observed
    cmd[3] = str(budget + 10)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    res.check_resumed(URL, study, budget + 10)


def test_sigkill_on_postgres_resumes_exactly() -> None:
    res = _resume_module()
    mod = res.worker_module()
    study = f"pg-kill-{uuid.uuid4().hex[:8]}"
    budget = 24
    reference = mod.run("bandit", budget, None, None)
    expected = [res.trial_table_from_row(r) for r in sorted(reference.trials, key=lambda r: r["seq"])]
    cmd = [sys.executable, str(WORKER), "bandit", str(budget), URL, study]
    in_flight = res.start_and_kill(cmd, URL, study, min_complete=budget // 3)
    rerun = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    res.check_resumed(URL, study, budget, expected, in_flight)


def test_workers_option_starts_processes_on_postgres() -> None:
    res = _resume_module()
    mod = res.worker_module()
    study = f"pg-workers-{uuid.uuid4().hex[:8]}"
    out = mod.run("sorted", 12, URL, study, workers=2)
    from dnnjpeg.search.storage import parse_storage

    assert out.n_complete == 12 and out.storage == parse_storage(URL).display  # password masked
    res.check_resumed(URL, study, 12)
