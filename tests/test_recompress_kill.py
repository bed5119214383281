"""Killing a run (SIGKILL) and resuming it: every file finished exactly once, nothing lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.batch.testing import make_jpeg_tree

MANIFEST = ".dnnjpeg-recompress.jsonl"
REPO = Path(dnnjpeg.__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _file_lines(manifest: Path) -> list[dict]:
    out = []
    if not manifest.exists():
        return out
    for line in manifest.read_bytes().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "file":
            out.append(rec)
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _check_complete(src: Path, dst: Path, rels: list[str], table_name: str = "resnet50") -> None:
    table = dnnjpeg.load(table_name)
    for rel in rels:
        im = Image.open(dst / rel)
        assert im.quantization[0] == list(table.luma), rel
        im.load()
    leftovers = [p for p in dst.rglob(".dnnjpeg-tmp-*")]
    assert not leftovers, leftovers
    recs = _file_lines(dst / MANIFEST)
    paths = [r["path"] for r in recs]
    assert sorted(set(paths)) == sorted(rels)
    assert len(paths) == len(set(paths)), "a file was finished twice"
    assert all(r["status"] == "ok" for r in recs)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 240, size=(256, 192), classes=6)
    cmd = [sys.executable, "-m", "dnnjpeg", "recompress", str(src), str(dst), "--table", "resnet50"]
    proc = subprocess.Popen(
        cmd + ["--workers", "2", "--batch-size", "1"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while len(_file_lines(dst / MANIFEST)) < 30 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)  # the parent only, like the OOM killer or `kill -9 PID`
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert workers, "no pool workers seen"
    done_before = len(_file_lines(dst / MANIFEST))
    if done_before >= len(rels):
        pytest.skip("the run finished before it could be killed")
    assert done_before >= 30
    # Orphaned workers notice and exit instead of writing on.
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "pool workers outlived their parent"

    # Simulate a line cut short as well (a crash inside write()).
    with open(dst / MANIFEST, "ab") as f:
        f.write(b'{"type":"file","path":"class_00/img_00000.jpg","status":"ok","src_si')
    resumed = subprocess.run(
        cmd + ["--workers", "2"], env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "incomplete manifest line" in resumed.stdout
    assert f"({done_before} handled by an earlier run)" in resumed.stdout
    _check_complete(src, dst, rels)


def test_incomplete_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 8)
    dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    manifest = dst / MANIFEST
    lines = manifest.read_bytes().splitlines(keepends=True)
    # Drop the last two records, leaving the first half of the last one (no newline).
    cut = lines[-1][: len(lines[-1]) // 2]
    manifest.write_bytes(b"".join(lines[:-2]) + cut)
    s = dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert s.bad_manifest_lines == 1
    assert s.processed == 2 and s.resumed == 6
    _check_complete(src, dst, rels)
    # The next run reads a clean manifest: the cut line stays on its own line, ignored.
    s = dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert s.processed == 0 and s.bad_manifest_lines == 1


def test_stale_temporary_files_are_removed_on_resume(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 4)
    dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    stale = dst / "class_00" / ".dnnjpeg-tmp-all-12345-deadbeef0000"
    stale.write_bytes(b"half a jpeg")
    other_shard = dst / "class_00" / ".dnnjpeg-tmp-s1of2-12345-deadbeef0000"
    other_shard.write_bytes(b"another shard's work in progress")
    dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert not stale.exists() and other_shard.exists()
    other_shard.unlink()
    _check_complete(src, dst, rels)


CRASHING_RUN = """
import os, sys
import dnnjpeg.batch.worker as w
real = w._process_image
def crash_on_some(src, dst_root, task, opts, record):
    if "crash" in task.rel:
        os._exit(7)  # like a segfault inside a decoder
    return real(src, dst_root, task, opts, record)
w._process_image = crash_on_some  # the forked pool workers inherit it
import dnnjpeg
s = dnnjpeg.recompress(sys.argv[1], sys.argv[2], "resnet50", workers=2, batch_size=3)
print(s.format())
sys.exit(s.exit_code)
"""


def _crashing_run(src: Path, dst: Path, batch_size: int = 3) -> subprocess.CompletedProcess[str]:
    """CRASHING_RUN in a fresh interpreter over src -> dst, with the given batch size."""
    code = CRASHING_RUN.replace("batch_size=3", f"batch_size={batch_size}")
    return subprocess.run(
        [sys.executable, "-c", code, str(src), str(dst)],
        check=False,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the fork start method")
def test_a_crashing_worker_fails_only_its_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 24)
    for name in ("crash_1.jpg", "crash_2.jpg"):
        (src / "class_01" / name).write_bytes((src / rels[0]).read_bytes())
    run = _crashing_run(src, dst)
    assert run.returncode == 1, run.stderr
    assert "class_01/crash_1.jpg: worker process crashed" in run.stdout
    assert "class_01/crash_2.jpg: worker process crashed" in run.stdout
    assert "24 recompressed" in run.stdout and "2 failed" in run.stdout
    for rel in rels:
        assert (dst / rel).is_file()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs the fork start method")
def test_many_crashing_workers_never_stop_the_run(tmp_path: Path) -> None:
    # Each crash breaks the pool while the parent may be submitting the next batch (the
    # pool can notice the dead worker before the parent sees the failed future): every
    # crash must still end as that one file's failure, never as an exception of the run.
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 48, size=(32, 24), classes=4)
    crashers = [f"class_{i % 4:02d}/crash_{i}.jpg" for i in range(8)]
    for rel in crashers:
        (src / rel).write_bytes((src / rels[0]).read_bytes())
    for _ in range(3):
        shutil.rmtree(dst, ignore_errors=True)
        run = _crashing_run(src, dst, batch_size=2)
        assert run.returncode == 1, run.stderr
        assert f"{len(rels)} recompressed" in run.stdout and f"{len(crashers)} failed" in run.stdout, run.stdout
        for rel in crashers:
            assert f"{rel}: worker process crashed" in run.stdout


def _descendants(pid: int) -> list[int]:
    kids = _children(pid)
    return kids + [d for k in kids for d in _descendants(k)]


def _wait_until_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``seconds`` for them to exit."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if _alive(p)]


def _kill_when_started(cmd: list[str], dst: Path) -> tuple[list[int], int]:
    """Start ``cmd``, wait until its manifest records a file, ``kill -9`` it (the parent only,
    like the OOM killer); return its descendants seen just before and the file lines then."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _file_lines(dst / MANIFEST) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        family = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return family, len(_file_lines(dst / MANIFEST))


KILL_LOOPS = 10


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_then_an_immediate_rerun_resumes_every_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue #28: the workers of a killed run kept the manifest's lock for a while, and an
    # immediate rerun failed about one time in two with "another dnnjpeg recompress run is
    # writing this manifest".  The rerun runs in this process, already started: it asks for
    # the lock a few milliseconds after the kill, sooner than a new interpreter could.
    from dnnjpeg.cli import main

    src = tmp_path / "src"
    rels = make_jpeg_tree(src, 200, size=(160, 120), classes=5)
    mid_run = 0
    for i in range(KILL_LOOPS):
        dst = tmp_path / f"dst{i}"
        args = ["recompress", str(src), str(dst), "--table", "standard", "--workers", "2", "--no-progress"]
        family, recorded = _kill_when_started([sys.executable, "-m", "dnnjpeg", *args], dst)
        code = main(args)  # at once
        out, err = capsys.readouterr()
        assert code == 0, f"rerun {i}: {err}"
        assert f"({recorded} handled by an earlier run)" in out, out
        assert family, "no pool workers seen"
        assert not _wait_until_gone(family), "pool workers outlived their run"
        mid_run += recorded < len(rels)
        _check_complete(src, dst, rels, "standard")
    assert mid_run, "every run finished before it could be killed"


FORKSERVER_RUN = """
import sys, threading
threading.Thread(target=threading.Event().wait, daemon=True).start()  # threaded: the pool uses the forkserver
from dnnjpeg.cli import main
sys.exit(main(["recompress", *sys.argv[1:]]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_stops_forkserver_workers_too(tmp_path: Path) -> None:
    # With the forkserver the workers' parent is the fork server, which outlives the run:
    # they must watch the run itself (they used to wait for work forever).
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 120, size=(160, 120), classes=4)
    cmd = [sys.executable, "-c", FORKSERVER_RUN, str(src), str(dst), "--table", "standard", "--workers", "2"]
    family, recorded = _kill_when_started(cmd + ["--batch-size", "2"], dst)
    rerun = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({recorded} handled by an earlier run)" in rerun.stdout, rerun.stdout
    assert len(family) >= 3, family  # the fork server and its workers (and the resource tracker)
    assert not _wait_until_gone(family), "processes of the killed run are still alive"
    _check_complete(src, dst, rels, "standard")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_does_not_keep_the_manifest_lock(tmp_path: Path) -> None:
    from dnnjpeg.batch.manifest import ManifestWriter

    path = str(tmp_path / MANIFEST)
    writer = ManifestWriter(path)
    to_child_r, to_child_w = os.pipe()
    to_parent_r, to_parent_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: like a pool worker, it must neither write the manifest nor hold its lock
        code = 1
        try:
            os.close(to_child_w)
            try:
                writer.append({"type": "from the child"})
            except OSError as exc:
                code = 0 if exc.errno == errno.EBADF else 2
            os.write(to_parent_w, b"r")  # running (its copy was closed as it started)
            os.read(to_child_r, 1)  # until the parent is done
        finally:
            os._exit(code)
    try:
        os.close(to_child_r)
        os.close(to_parent_w)
        assert os.read(to_parent_r, 1) == b"r"
        writer.close()
        with ManifestWriter(path) as again:  # the child is alive: the lock must be free
            again.append({"type": "run", "n": 2})
    finally:
        os.close(to_child_w)
        os.close(to_parent_r)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert Path(path).read_text() == '{"type":"run","n":2}\n'


INIT_WORKER = """
import ctypes, os, sys
from dnnjpeg.batch.worker import init_pool_worker
init_pool_worker(int(sys.argv[1]) if sys.argv[1] != "parent" else os.getppid())
sig = ctypes.c_int(-1)
ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
print("running, death signal", sig.value)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_pool_worker_dies_with_its_run() -> None:
    def start(run: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", INIT_WORKER, run], env=_env(), capture_output=True, text=True, timeout=60
        )

    ok = start("parent")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"running, death signal {int(signal.SIGKILL)}"
    gone = start("-1")  # its run is not its parent (nor its fork server's parent): the run died
    assert gone.returncode == 3 and gone.stdout == "", (gone.returncode, gone.stdout, gone.stderr)
