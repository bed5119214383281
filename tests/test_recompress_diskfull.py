"""A full disk stops a run cleanly: the file being written is named, finished work is in
the manifest, no temporary file is left, and rerunning once there is space resumes.

The disk is a real one: a small tmpfs mounted by the test (needs root; skipped otherwise).
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.batch.runner import DiskFull
from dnnjpeg.batch.testing import make_jpeg_tree
from dnnjpeg.cli import main

MANIFEST = ".dnnjpeg-recompress.jsonl"
FULL = re.compile(
    r"dnnjpeg recompress: error: (?P<path>.+): no space left on device while writing it; "
    r"(?P<finished>\d+) of (?P<files>\d+) files finished; free space and rerun the same command to resume\n"
)

Mount = Callable[..., None]


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture()
def mount() -> Iterator[Mount]:
    """``mount(*args, target)``: mount for this test (unmounted afterwards); skips if not possible."""
    if not sys.platform.startswith("linux"):
        pytest.skip("fills a tmpfs: Linux only")
    if os.geteuid() != 0:
        pytest.skip("fills a small tmpfs, and mounting one needs root")
    mounted: list[Path] = []

    def do(*args: str | Path) -> None:
        target = Path(args[-1])
        result = _mount(*map(str, args))
        if result.returncode != 0:
            pytest.skip(f"cannot mount ({' '.join(map(str, args))}): {result.stderr.strip()}")
        mounted.append(target)

    yield do
    for target in reversed(mounted):
        if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _resize(target: Path, size: str) -> None:
    """Free space: the tmpfs at ``target`` grows to ``size``."""
    result = _mount("-o", f"remount,size={size}", str(target))
    assert result.returncode == 0, result.stderr


def _file_records(manifest: Path) -> list[dict]:
    data = manifest.read_bytes()
    assert not data or data.endswith(b"\n"), "a line was left cut short"
    recs = [json.loads(line) for line in data.splitlines()]  # every line is whole
    return [r for r in recs if r["type"] == "file"]


def _check_complete(dst: Path, rels: list[str]) -> None:
    luma = list(dnnjpeg.load("standard").luma)
    for rel in rels:
        with Image.open(dst / rel) as im:
            assert im.quantization[0] == luma, rel
            im.load()
    assert not list(dst.rglob(".dnnjpeg-tmp-*"))
    recs = _file_records(dst / MANIFEST)
    paths = [r["path"] for r in recs]
    assert sorted(paths) == sorted(rels), "each file recorded exactly once"
    assert all(r["status"] == "ok" for r in recs)


def _check_stopped(dst: Path, rels: list[str], finished: int) -> set[str]:
    """What a run stopped by a full disk leaves: ``finished`` whole files, all recorded; no
    temporary file; no file recorded as failed.  Returns the recorded paths."""
    recs = _file_records(dst / MANIFEST)
    recorded = {r["path"] for r in recs}
    assert len(recs) == len(recorded) == finished
    assert all(r["status"] == "ok" for r in recs), [r for r in recs if r["status"] != "ok"][:1]
    luma = list(dnnjpeg.load("standard").luma)
    for rel in recorded:
        with Image.open(dst / rel) as im:
            assert im.quantization[0] == luma, rel
            im.load()
    assert not list(dst.rglob(".dnnjpeg-tmp-*"))
    assert recorded <= set(rels)
    return recorded


def test_disk_full_stops_the_run_and_the_same_command_resumes(
    tmp_path: Path, mount: Mount, capsys: pytest.CaptureFixture[str]
) -> None:
    src, disk = tmp_path / "src", tmp_path / "disk"
    rels = make_jpeg_tree(src, 120, size=(256, 192), classes=4)  # about 8 kB each once recompressed
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", disk)
    dst = disk / "dst"
    args = ["recompress", str(src), str(dst), "--table", "standard", "--workers", "2", "--no-progress"]

    assert main(args) == 2
    out, err = capsys.readouterr()
    m = FULL.fullmatch(err)
    assert m, err
    assert out == ""
    finished = int(m["finished"])
    assert int(m["files"]) == len(rels) and 0 < finished < len(rels)
    recorded = _check_stopped(dst, rels, finished)
    # The file named is the output that did not fit; the manifest keeps room for its lines.
    assert m["path"] in {str(dst / rel) for rel in rels if rel not in recorded}, m["path"]

    _resize(disk, "16m")
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert f"{len(rels)} files: {len(rels)} recompressed" in out
    assert f"({finished} handled by an earlier run)" in out, out
    _check_complete(dst, rels)


def test_disk_full_in_process_raises_disk_full(tmp_path: Path, mount: Mount) -> None:
    src, disk = tmp_path / "src", tmp_path / "disk"
    rels = make_jpeg_tree(src, 60, size=(256, 192), classes=3)
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=384k", "tmpfs", disk)
    dst = disk / "dst"
    with pytest.raises(DiskFull) as info:
        dnnjpeg.recompress(src, dst, "standard", workers=0)
    exc = info.value
    assert exc.errno == errno.ENOSPC and exc.files == len(rels)
    assert 0 < exc.finished < len(rels)
    recorded = _check_stopped(dst, rels, exc.finished)
    assert exc.path in {str(dst / rel) for rel in rels if rel not in recorded}
    assert str(exc) == (
        f"{exc.path}: no space left on device while writing it; {exc.finished} of {len(rels)} files finished; "
        "free space and rerun the same command to resume"
    )
    assert exc.summary is not None and exc.summary.interrupted and exc.summary.processed == exc.finished

    _resize(disk, "16m")
    s = dnnjpeg.recompress(src, dst, "standard", workers=0)
    assert s.exit_code == 0 and s.resumed == exc.finished and s.ok == len(rels)
    _check_complete(dst, rels)


def test_a_manifest_that_does_not_fit_stops_the_run_cleanly(
    tmp_path: Path, mount: Mount, capsys: pytest.CaptureFixture[str]
) -> None:
    # Outputs have room, the manifest does not: DST/.dnnjpeg-recompress.jsonl is a file of
    # a tmpfs too small for the writer's reserve, bind-mounted into DST.
    src, small, dst = tmp_path / "src", tmp_path / "small", tmp_path / "dst"
    rels = make_jpeg_tree(src, 120, size=(64, 48), classes=4)
    small.mkdir()
    dst.mkdir()
    mount("-t", "tmpfs", "-o", "size=16k", "tmpfs", small)
    (small / MANIFEST).touch()
    (dst / MANIFEST).touch()
    mount("--bind", small / MANIFEST, dst / MANIFEST)
    args = ["recompress", str(src), str(dst), "--table", "standard", "--workers", "2", "--batch-size", "4"]

    assert main(args) == 2
    _, err = capsys.readouterr()
    m = FULL.fullmatch(err)
    assert m, err
    assert m["path"] == str(dst / MANIFEST)
    finished = int(m["finished"])
    assert int(m["files"]) == len(rels) and 0 < finished < len(rels)
    _check_stopped(dst, rels, finished)  # whole lines only: the failed write was cut back

    _resize(small, "1m")
    assert main(args) == 0
    out, _ = capsys.readouterr()
    assert f"({finished} handled by an earlier run)" in out, out
    _check_complete(dst, rels)
