"""Planning: path safety, the extension rule, symlinks, sharding (nothing is written)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dnnjpeg.batch.plan import (
    Collision,
    Skipped,
    Task,
    check_paths,
    in_shard,
    output_name,
    parse_shard,
    walk,
)
from dnnjpeg.batch.testing import NON_UTF8_NAME, make_sample_tree
from dnnjpeg.errors import DnnjpegError


def _plan(src: Path, **kw):
    items = list(walk(os.path.realpath(src), **kw))
    tasks = {i.rel: i for i in items if isinstance(i, Task)}
    skipped = {i.rel: i.reason for i in items if isinstance(i, Skipped)}
    collisions = {i.rel: i for i in items if isinstance(i, Collision)}
    folders = [i for i in items if isinstance(i, str)]
    return tasks, skipped, collisions, folders


def test_dst_must_not_overlap_src(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    with pytest.raises(DnnjpegError, match="DST is SRC"):
        check_paths(src, src, in_place=False)
    with pytest.raises(DnnjpegError, match="inside SRC"):
        check_paths(src, src / "sub" / "out", in_place=False)
    with pytest.raises(DnnjpegError, match="contains SRC"):
        check_paths(src, tmp_path, in_place=False)
    # Through a symlink that resolves into SRC.
    (tmp_path / "alias").symlink_to(src)
    with pytest.raises(DnnjpegError, match="DST is SRC"):
        check_paths(src, tmp_path / "alias", in_place=False)
    with pytest.raises(DnnjpegError, match="inside SRC"):
        check_paths(src, tmp_path / "alias" / "new", in_place=False)
    with pytest.raises(DnnjpegError, match="DST is required"):
        check_paths(src, None, in_place=False)
    with pytest.raises(DnnjpegError, match="not a directory"):
        check_paths(tmp_path / "missing", tmp_path / "out", in_place=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DnnjpegError, match="not a directory"):
        check_paths(src, tmp_path / "file", in_place=False)
    assert check_paths(src, tmp_path / "out", in_place=False) == (str(src.resolve()), str((tmp_path / "out").resolve()))
    # In place: DST omitted or SRC itself, nothing else.
    assert check_paths(src, None, in_place=True) == (str(src.resolve()),) * 2
    assert check_paths(src, src, in_place=True)[1] == str(src.resolve())
    with pytest.raises(DnnjpegError, match="in-place"):
        check_paths(src, tmp_path / "out", in_place=True)


def test_extension_rule() -> None:
    assert output_name("a.JPG", "replace") == "a.JPG"  # JPEGs always keep their name
    assert output_name("a.png") == "a.png"
    assert output_name("a.png", "replace") == "a.jpg"
    assert output_name("a.tiff", "append") == "a.tiff.jpg"
    assert output_name("labels.csv", "replace") == "labels.csv"
    with pytest.raises(DnnjpegError):
        output_name("a.png", "rename")


def test_extension_collisions_are_failures(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "a.jpg", "b.bmp", "b.png", "c.webp"):
        (src / name).write_bytes(b"x")
    tasks, _, collisions, _ = _plan(src, extension="replace")
    assert tasks["a.jpg"].out == "a.jpg"
    assert "a.png" in collisions and "a.jpg" in collisions["a.png"].reason
    # b.bmp sorts first and takes b.jpg; b.png collides with it.
    assert tasks["b.bmp"].out == "b.jpg" and "b.png" in collisions
    assert tasks["c.webp"].out == "c.jpg"
    tasks, _, collisions, _ = _plan(src, extension="keep")
    assert not collisions and all(t.out == t.rel for t in tasks.values())


def test_walk_classifies_everything(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    expected = make_sample_tree(src, outside)
    tasks, skipped, collisions, folders = _plan(src)
    assert not collisions
    assert set(tasks) | set(skipped) == set(expected)
    for rel, status in expected.items():
        if status == "skipped":
            assert rel in skipped, rel
        else:
            assert rel in tasks, rel
            assert tasks[rel].kind == ("copy" if status == "copied" else "image")
    assert "outside" in skipped["links/outside.jpg"]
    assert "outside" in skipped["links/outside_dir"]
    assert "fifo" in skipped["links/fifo.jpg"]
    assert tasks["links/inside.jpg"].link
    assert f"cls_a/{NON_UTF8_NAME}" in tasks
    assert "empty_dir" in folders and "cls_a/deep/er" in folders
    # Deterministic order.
    assert [i for i in walk(os.path.realpath(src))] == [i for i in walk(os.path.realpath(src))]


def test_images_only_and_follow_symlinks(tmp_path: Path) -> None:
    src, outside = tmp_path / "src", tmp_path / "outside"
    make_sample_tree(src, outside)
    tasks, skipped, _, _ = _plan(src, images_only=True)
    assert "labels.csv" not in tasks and "not an image" in skipped["labels.csv"]
    tasks, skipped, _, _ = _plan(src, follow_symlinks=True)
    assert "links/outside.jpg" in tasks
    assert "links/outside_dir/secret.txt" in tasks
    assert "links/dir_inside/img 01.jpg" in tasks
    assert "links/broken.jpg" in skipped


def test_symlink_loops_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("x")
    os.symlink("..", src / "a" / "up")
    tasks, skipped, _, _ = _plan(src, follow_symlinks=True)
    assert list(tasks) == ["a/x.txt"]
    assert "loop" in skipped["a/up"]


def test_in_place_leaves_links_and_other_files_alone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_sample_tree(src, tmp_path / "outside")
    (src / ".dnnjpeg-recompress.jsonl").write_text("")
    (src / "cls_a" / ".dnnjpeg-tmp-all-1-abc").write_bytes(b"x")
    tasks, skipped, _, _ = _plan(src, in_place=True)
    assert "links/inside.jpg" in skipped and "labels.csv" not in tasks
    assert not any(".dnnjpeg" in r for r in list(tasks) + list(skipped))
    # Not in place, a manifest inside SRC is reported, never copied over DST's own.
    tasks, skipped, _, _ = _plan(src)
    assert ".dnnjpeg-recompress.jsonl" in skipped and ".dnnjpeg-recompress.jsonl" not in tasks


def test_shards_partition_the_tree(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}.txt").write_text(str(i))
    everything = set(_plan(src)[0])
    parts = [set(_plan(src, shard=(i, 4))[0]) for i in range(4)]
    assert set().union(*parts) == everything
    assert sum(map(len, parts)) == len(everything)
    assert all(parts), "60 files over 4 shards: none should be empty"
    # Deterministic: a pure function of the relative path.
    assert in_shard("d0/f0.txt", (1, 4)) == in_shard("d0/f0.txt", (1, 4))
    assert [in_shard(f"x/{i}", (0, 2)) for i in range(8)] == [in_shard(f"x/{i}", (0, 2)) for i in range(8)]


def test_parse_shard() -> None:
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard("3/4") == (3, 4)
    assert parse_shard(None) is None
    for bad in ("4/4", "-1/4", "1/0", "a/b", "1"):
        with pytest.raises(DnnjpegError):
            parse_shard(bad)


def test_follow_symlinks_never_walks_into_dst(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("x")
    (dst / "old").mkdir(parents=True)
    (dst / "old" / "out.txt").write_text("y")
    os.symlink(dst, src / "to_dst")
    os.symlink(tmp_path, src / "to_parent")  # reaches DST (and SRC: a loop) one level down
    tasks, skipped, _, _ = _plan(src, follow_symlinks=True, exclude=str(dst.resolve()))
    assert not any("out.txt" in r for r in tasks)
    assert "into DST" in skipped["to_dst"] and "into DST" in skipped["to_parent/dst"]
    assert "loop" in skipped["to_parent/src"]
