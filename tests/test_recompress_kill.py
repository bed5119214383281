"""Killing a run (SIGKILL) and resuming it: every file finished exactly once, nothing lost."""

from __future__ import annotations

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


def _check_complete(src: Path, dst: Path, rels: list[str]) -> None:
    table = dnnjpeg.load("resnet50")
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
