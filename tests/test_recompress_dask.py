"""``--scheduler``: the same job on a real Dask cluster (scheduler and worker processes on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dnnjpeg
from dnnjpeg.batch.testing import make_jpeg_tree, make_sample_tree
from dnnjpeg.cli import main

distributed = pytest.importorskip("distributed")

REPO = Path(dnnjpeg.__file__).resolve().parents[1]
MANIFEST = ".dnnjpeg-recompress.jsonl"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dask scheduler`` and a ``dask worker`` (2 processes) on 127.0.0.1, random free ports."""
    base = tmp_path_factory.mktemp("dask")
    sched_file = base / "scheduler.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    log = open(base / "dask.log", "wb")  # noqa: SIM115 - outlives this block: the processes write to it
    dask = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base,
    )  # fmt: skip
    procs = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            assert scheduler.poll() is None, (base / "dask.log").read_text()
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [*dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--memory-limit", "0", "--local-directory", str(base / "work")],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=base,
        )  # fmt: skip
        procs.append(worker)
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)
        log.close()


def _statuses(dst: Path) -> dict[str, str]:
    out = {}
    for line in (dst / MANIFEST).read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "file":
            out[rec["path"]] = rec["status"]
    return out


@pytest.mark.slow
def test_dask_run_matches_local(dask_scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    expected = make_sample_tree(src, tmp_path / "outside")
    code = main(["recompress", str(src), str(tmp_path / "d_dask"), "--table", "resnet50", "--scheduler", dask_scheduler,
                 "--report-json", str(tmp_path / "r.json")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and "dask worker" in out, err
    local = dnnjpeg.recompress(src, tmp_path / "d_local", "resnet50", workers=2)
    assert _statuses(tmp_path / "d_dask") == _statuses(tmp_path / "d_local")
    for rel, status in expected.items():
        if status in ("ok", "kept", "copied"):
            assert (tmp_path / "d_dask" / rel).read_bytes() == (tmp_path / "d_local" / rel).read_bytes(), rel
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["failures"]) == local.failed
    assert report["summary"]["backend"] == "dask"


@pytest.mark.slow
def test_dask_resumes_the_same_manifest(dask_scheduler: str, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 30)
    first = dnnjpeg.recompress(src, dst, "resnet50", workers=0, shard="0/2")  # part of the work, locally
    assert 0 < first.processed < len(rels)
    # Dask reads every manifest in DST and does only the rest...
    second = dnnjpeg.recompress(src, dst, "resnet50", scheduler=dask_scheduler, batch_size=4)
    assert second.processed == len(rels) - first.processed
    assert second.resumed == first.processed and second.exit_code == 0
    # ...and a Dask rerun has nothing left to do.
    third = dnnjpeg.recompress(src, dst, "resnet50", scheduler=dask_scheduler)
    assert third.processed == 0 and third.ok == len(rels)
    by_dask = set(_statuses(dst))
    by_shard = {
        json.loads(x)["path"] for x in (dst / ".dnnjpeg-recompress.shard-0-of-2.jsonl").read_text().splitlines()[1:]
    }
    assert by_dask | by_shard == set(rels) and not by_dask & by_shard
