"""Whole runs through the CLI and the API: safety of SRC, manifest, resume, retries, modes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.batch.testing import make_jpeg_tree, make_sample_tree, smooth_rgb
from dnnjpeg.cli import main

MANIFEST = ".dnnjpeg-recompress.jsonl"


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: type, mode, size, mtime and content hash (links not followed)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, digest)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("other", st.st_mode, st.st_mtime_ns if stat.S_ISDIR(st.st_mode) else 0)
    return out


def file_records(dst: Path, name: str = MANIFEST) -> list[dict]:
    lines = (dst / name).read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "file"]


def test_cli_run_never_touches_src_or_outside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    expected = make_sample_tree(src, outside)
    before_src, before_outside = snapshot(src), snapshot(outside)
    code = main(
        [
            "recompress",
            str(src),
            str(dst),
            "--table",
            "resnet50",
            "--workers",
            "2",
            "--report-json",
            str(tmp_path / "r.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1  # the sample tree has broken files
    n_failed = sum(1 for s in expected.values() if s == "failed")
    assert f"{n_failed} failed" in out and "bad/empty.jpg: empty file" in out
    assert "ratio" in out and "MB" in out
    assert snapshot(src) == before_src
    assert snapshot(outside) == before_outside
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["exit_code"] == 1 and len(report["failures"]) == n_failed
    # Every non-skipped input is in DST under its own name.
    for rel, status in expected.items():
        if status in ("ok", "kept", "copied"):
            assert (dst / rel).is_file(), rel


def test_resume_skips_finished_work_and_retry_redoes_failures(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    expected = make_sample_tree(src)
    first = dnnjpeg.recompress(src, dst, "resnet50", workers=2)
    n = len(file_records(dst))
    assert first.processed == n
    mtimes = {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file() and p.name != MANIFEST}
    inodes = {p: p.stat().st_ino for p in mtimes}

    again = dnnjpeg.recompress(src, dst, "resnet50", workers=2)
    assert again.processed == 0 and again.resumed == n
    assert (again.ok, again.kept, again.copied, again.failed) == (first.ok, first.kept, first.copied, first.failed)
    assert again.exit_code == 1  # the failures are still there
    assert len(file_records(dst)) == n
    assert {p: p.stat().st_ino for p in mtimes} == inodes  # nothing rewritten

    retry = dnnjpeg.recompress(src, dst, "resnet50", workers=2, retry_failed=True)
    n_failed = sum(1 for s in expected.values() if s == "failed")
    assert retry.processed == n_failed and retry.failed == n_failed

    # Fix a broken file: a rerun with --retry-failed picks it up.
    smooth_rgb(10, 10).save(src / "bad" / "empty.jpg", "JPEG")
    fixed = dnnjpeg.recompress(src, dst, "resnet50", workers=0, retry_failed=True)
    assert fixed.failed == n_failed - 1
    # A changed source file is redone without any flag.
    smooth_rgb(12, 12).save(src / "cls_a" / "img 01.jpg", "JPEG", quality=70)
    changed = dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert changed.processed == 2  # the file and the symlink to it
    assert Image.open(dst / "cls_a" / "img 01.jpg").size == (12, 12)


def test_other_settings_are_refused_unless_restart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_jpeg_tree(src, 6)
    assert main(["recompress", str(src), str(dst), "--table", "resnet50", "--workers", "0"]) == 0
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--quality", "50"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--quality", "50", "--restart"]) == 0
    table = dnnjpeg.load("standard", 50)
    for p in (dst).rglob("*.jpg"):
        assert Image.open(p).quantization[0] == list(table.luma)
    # Now the new settings are the ones DST holds.
    assert main(["recompress", str(src), str(dst), "--table", "standard", "--quality", "50"]) == 0


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    make_jpeg_tree(src, 2)
    assert main(["recompress", str(src), str(src / "out"), "--table", "resnet50"]) == 2
    assert "inside SRC" in capsys.readouterr().err
    assert main(["recompress", str(src), str(src), "--table", "resnet50"]) == 2
    assert main(["recompress", str(src), "--table", "resnet50"]) == 2
    assert main(["recompress", str(src), str(tmp_path / "d"), "--table", "nope"]) == 2
    assert main(["recompress", str(src), str(tmp_path / "d"), "--table", "resnet50", "--shard", "2/2"]) == 2
    assert not (src / "out").exists()


def test_images_only_and_extension_rule(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_sample_tree(src)
    s = dnnjpeg.recompress(src, tmp_path / "d1", "resnet50", workers=0, images_only=True)
    assert s.copied == 0 and not (tmp_path / "d1" / "labels.csv").exists()
    assert (tmp_path / "d1" / "modes" / "rgba.png").is_file()
    s = dnnjpeg.recompress(src, tmp_path / "d2", "resnet50", workers=0, extension="replace")
    assert (tmp_path / "d2" / "modes" / "rgba.jpg").is_file()
    assert not (tmp_path / "d2" / "modes" / "rgba.png").exists()
    assert (tmp_path / "d2" / "modes" / "lossless.jpg").is_file()
    recs = {r["path"]: r for r in file_records(tmp_path / "d2")}
    assert recs["modes/rgba.png"]["out"] == "modes/rgba.jpg"
    # gray.png -> gray.jpg collides with the real gray.jpg: reported, the JPEG untouched.
    reasons = {f["path"]: f["reason"] for f in s.failures}
    assert "collides" in reasons["modes/gray.png"]
    assert Image.open(tmp_path / "d2" / "modes" / "gray.jpg").size == Image.open(src / "modes" / "gray.jpg").size
    s2 = dnnjpeg.recompress(src, tmp_path / "d2", "resnet50", workers=0, extension="replace")
    assert s2.processed == 0 and s2.failed == s.failed


def test_in_place(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    expected = make_sample_tree(src, outside)
    before = snapshot(src)
    before_outside = snapshot(outside)
    assert main(["recompress", str(src), "--table", "resnet50", "--in-place", "--workers", "2"]) == 1
    after = snapshot(src)
    assert snapshot(outside) == before_outside
    for rel, status in expected.items():
        if status == "ok" and not os.path.islink(src / rel):
            assert after[rel] != before[rel], rel
            q = Image.open(src / rel).quantization
            assert q[0] == list(dnnjpeg.load("resnet50").luma)
            assert after[rel][3] == before[rel][3]  # mtime kept
        elif status in ("copied", "kept", "failed", "skipped"):
            assert after[rel] == before[rel], rel
    # Links are left alone (their target was recompressed at its own path).
    assert after["links/inside.jpg"] == before["links/inside.jpg"]
    # A rerun recompresses nothing a second time.
    assert main(["recompress", str(src), str(src), "--table", "resnet50", "--in-place"]) == 1
    again = snapshot(src)
    assert {k: v for k, v in again.items() if k != MANIFEST} == {k: v for k, v in after.items() if k != MANIFEST}
    assert not any(".dnnjpeg-tmp" in k for k in again)


def test_shards_cover_the_tree_once(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 40)
    total = 0
    for i in range(3):
        assert (
            main(["recompress", str(src), str(dst), "--table", "resnet50", "--shard", f"{i}/3", "--workers", "0"]) == 0
        )
        recs = file_records(dst, f".dnnjpeg-recompress.shard-{i}-of-3.jsonl")
        assert recs, f"shard {i} got nothing"
        total += len(recs)
    assert total == len(rels)
    for rel in rels:
        assert Image.open(dst / rel).quantization[0] == list(dnnjpeg.load("resnet50").luma)
    # An unsharded rerun reads every shard's manifest: nothing left to do.
    s = dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert s.processed == 0 and s.resumed == len(rels)


def test_manifest_is_locked_against_a_second_run(tmp_path: Path) -> None:
    from dnnjpeg.batch.manifest import ManifestWriter

    src, dst = tmp_path / "src", tmp_path / "dst"
    make_jpeg_tree(src, 2)
    dst.mkdir()
    with ManifestWriter(str(dst / MANIFEST)), pytest.raises(dnnjpeg.DnnjpegError, match="another"):
        dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert dnnjpeg.recompress(src, dst, "resnet50", workers=0).ok == 2


def test_odd_names_round_trip_through_the_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [
        "new\nline.jpg",
        "tab\there.jpg",
        'quote"s and \\backslash.jpg',
        os.fsdecode(b"latin1-\xe9t\xe9.jpg"),
        "emoji 📷.png",
        " leading space.jpg",
    ]
    (src / "d ir\nx").mkdir(parents=True)
    for name in names:
        smooth_rgb(16, 16).save(src / "d ir\nx" / name, "JPEG")
    (src / "d ir\nx" / "broken\nname.jpg").write_bytes(b"nope")
    assert main(["recompress", str(src), str(dst), "--table", "resnet50", "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "d ir\\x0ax/broken\\x0aname.jpg: not an image" in out  # printed on one line
    for name in names:
        assert Image.open(dst / "d ir\nx" / name).quantization[0] == list(dnnjpeg.load("resnet50").luma)
    s = dnnjpeg.recompress(src, dst, "resnet50", workers=0)
    assert s.processed == 0 and s.resumed == len(names) + 1


def test_pool_from_a_threaded_caller_uses_forkserver(tmp_path: Path) -> None:
    import threading

    from dnnjpeg.batch import runner

    src = tmp_path / "src"
    rels = make_jpeg_tree(src, 12)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert runner._mp_context().get_start_method() in ("forkserver", "spawn")  # forking threads is unsafe
        s = dnnjpeg.recompress(src, tmp_path / "dst", "resnet50", workers=2)
    finally:
        stop.set()
        t.join()
    assert s.ok == len(rels) and s.backend == "process"


def test_pool_batches_shrink_towards_the_end() -> None:
    from dnnjpeg.batch.plan import Task
    from dnnjpeg.batch.runner import _guided_chunks

    tasks = [Task(f"{i}.jpg", f"{i}.jpg", "image", 1, 0, False) for i in range(500)]
    chunks = list(_guided_chunks(tasks, workers=2, cap=16))
    assert [t for c in chunks for t in c] == tasks  # every task once, in order
    sizes = [len(c) for c in chunks]
    assert max(sizes) == 16 and sizes[0] == 16
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-4:] == [1, 1, 1, 1]  # the workers run out of work together
    assert [len(c) for c in _guided_chunks(tasks[:3], workers=4, cap=16)] == [1, 1, 1]
