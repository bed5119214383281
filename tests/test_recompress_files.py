"""Per-file behaviour: every kind of input is re-encoded with the table, kept, copied or reported."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

import dnnjpeg
from dnnjpeg.batch.plan import Task, walk
from dnnjpeg.batch.testing import BOMB_MAX_PIXELS, ICC, XMP, make_jpeg_tree, make_sample_tree, smooth_rgb
from dnnjpeg.batch.worker import Options, process, process_batch

TABLE = dnnjpeg.load("resnet50")


def _records(dst: Path) -> dict[str, dict]:
    out = {}
    for line in (dst / ".dnnjpeg-recompress.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["type"] == "file":
            out[rec["path"]] = rec
    return out


def _assert_table(path: Path, table: dnnjpeg.QTable = TABLE) -> Image.Image:
    im = Image.open(path)
    assert im.format == "JPEG"
    q = im.quantization
    assert q[0] == list(table.luma)
    if im.mode != "L":
        assert q[1] == list(table.chroma)
    else:
        assert set(q) == {0}
    im.load()  # decodes completely
    return im


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("sample")
    src, dst = base / "src", base / "dst"
    expected = make_sample_tree(src, base / "outside")
    summary = dnnjpeg.recompress(src, dst, "resnet50", workers=2, report=base / "report.json")
    return src, dst, expected, summary, json.loads((base / "report.json").read_text())


def test_every_input_gets_its_expected_outcome(sample_run) -> None:
    _, dst, expected, summary, report = sample_run
    records = _records(dst)
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    for rel, status in expected.items():
        if status == "skipped":
            assert rel in skipped, rel
            assert not os.path.lexists(dst / rel), rel
        else:
            assert records[rel]["status"] == status, (rel, records[rel])
    assert summary.failed == sum(1 for s in expected.values() if s == "failed")
    assert summary.exit_code == 1
    # The report lists every failure with its reason.
    failed = {f["path"]: f["reason"] for f in report["failures"]}
    assert set(failed) == {r for r, s in expected.items() if s == "failed"}
    assert "empty" in failed["bad/empty.jpg"]
    assert "truncated" in failed["bad/truncated.jpg"]
    assert "not an image" in failed["bad/text.jpg"]
    assert "not an image" in failed["bad/gif_named.jpg"]
    assert "decompression bomb" in failed["bombs/header_bomb.png"]
    assert report["summary"]["failed"] == len(failed)


def test_recompressed_outputs_decode_and_carry_the_table(sample_run) -> None:
    src, dst, expected, _, _ = sample_run
    records = _records(dst)
    for rel, status in expected.items():
        if status != "ok":
            continue
        out = dst / rel
        assert out.is_file() and not out.is_symlink(), rel
        im = _assert_table(out)
        with Image.open(src / rel) as orig:
            assert im.size == orig.size, rel
        rec = records[rel]
        data = out.read_bytes()
        assert rec["dst_size"] == len(data) and rec["dst_sha256"] == hashlib.sha256(data).hexdigest()
        assert rec["src_sha256"] == hashlib.sha256((src / rel).read_bytes()).hexdigest()
    # Modes follow the documented rule.
    assert Image.open(dst / "modes/cmyk.jpg").mode == "CMYK"
    assert Image.open(dst / "modes/gray.jpg").mode == "L"
    assert Image.open(dst / "modes/sixteen_bit.png").mode == "L"
    assert Image.open(dst / "modes/bilevel.BMP").mode == "L"
    assert Image.open(dst / "modes/rgba.png").mode == "RGB"
    assert Image.open(dst / "modes/palette_transparent.png").mode == "RGB"
    # Names are kept: a re-encoded PNG keeps its .png name and holds JPEG data.
    assert (dst / "modes/rgba.png").read_bytes()[:2] == b"\xff\xd8"


def test_copies_kept_files_and_layout(sample_run) -> None:
    src, dst, expected, _, _ = sample_run
    for rel, status in expected.items():
        if status in ("copied", "kept"):
            assert (dst / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert (dst / "empty_dir").is_dir()
    assert (dst / "cls_a/deep/er/nested.jpe").is_file()
    # Nothing but regular files and folders in DST; no temporary files left.
    for root, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = Path(root) / name
            assert not p.is_symlink(), p
            assert not name.startswith(".dnnjpeg-tmp-"), p
    # Source mtimes are carried over.
    assert (dst / "labels.csv").stat().st_mtime_ns == (src / "labels.csv").stat().st_mtime_ns


def test_metadata_kept_by_default(sample_run) -> None:
    _, dst, _, _, _ = sample_run
    for rel in ("meta/full.jpg", "meta/full.png"):
        im = Image.open(dst / rel)
        exif = im.getexif()
        assert exif[0x0112] == 6, rel
        assert exif[0x010F] == "dnnjpeg-test-camera", rel
        assert im.info["icc_profile"] == ICC, rel
        assert im.info["xmp"] == XMP, rel
    assert Image.open(dst / "meta/full.jpg").info["comment"] == b"a comment"
    # WebP keeps its EXIF (see pillow_plugin._source_metadata).
    assert Image.open(dst / "modes/lossless.webp").getexif()[0x0112] == 3
    # Pillow applies a TIFF's orientation to the pixels when reading it (and drops the tag):
    # the JPEG holds the pixels Pillow-based loaders saw, with no orientation to apply twice.
    out = Image.open(dst / "modes/oriented.tif")
    assert out.size == (40, 50) and 0x0112 not in out.getexif()
    assert out.info["xmp"] == XMP


def test_strip_drops_metadata_but_orientation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_sample_tree(src)
    dst = tmp_path / "dst"
    dnnjpeg.recompress(src, dst, TABLE, workers=0, strip=True)
    im = Image.open(dst / "meta/full.jpg")
    assert dict(im.getexif()) == {0x0112: 6}
    for key in ("icc_profile", "xmp", "comment"):
        assert key not in im.info, key
    assert not Image.open(dst / "cls_a/img 01.jpg").getexif()


def test_keep_smaller_keeps_original_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    buf = io.BytesIO()
    smooth_rgb(64, 64, 1).save(buf, "JPEG", quality=5)  # already smaller than the table gives
    (src / "tiny.jpg").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    smooth_rgb(64, 64, 2).save(buf, "JPEG", quality=100)
    (src / "big.jpg").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    smooth_rgb(64, 64, 3).save(buf, "PNG")
    (src / "lossless.png").write_bytes(buf.getvalue())
    s = dnnjpeg.recompress(src, tmp_path / "dst", TABLE, workers=0, keep_smaller=True)
    assert (s.ok, s.kept, s.failed) == (2, 1, 0)
    assert (tmp_path / "dst/tiny.jpg").read_bytes() == (src / "tiny.jpg").read_bytes()
    _assert_table(tmp_path / "dst/big.jpg")
    _assert_table(tmp_path / "dst/lossless.png")  # not a JPEG input: always re-encoded
    rec = _records(tmp_path / "dst")["tiny.jpg"]
    assert rec["status"] == "kept" and "not smaller" in rec["reason"]


def test_max_pixels_reports_bombs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_sample_tree(src)
    s = dnnjpeg.recompress(src, tmp_path / "dst", TABLE, workers=0, max_pixels=BOMB_MAX_PIXELS)
    reasons = {f["path"]: f["reason"] for f in s.failures}
    assert "decompression bomb" in reasons["bombs/big.png"]
    assert "exceeds the limit of 30000" in reasons["bombs/big.png"]
    assert not (tmp_path / "dst/bombs/big.png").exists()
    assert Image.MAX_IMAGE_PIXELS == 89478485 or Image.MAX_IMAGE_PIXELS is not None  # untouched global


def test_unreadable_and_vanished_files_are_failures(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    opts = Options(encode=dnnjpeg.EncodeOptions(TABLE))
    rec = process(str(src), str(dst), Task("gone.jpg", "gone.jpg", "image", 10, 0, False), opts)
    assert rec["status"] == "failed" and rec["reason"].startswith("cannot read")
    rec = process(str(src), str(dst), Task("gone.txt", "gone.txt", "copy", 10, 0, False), opts)
    assert rec["status"] == "failed" and rec["reason"].startswith("cannot read")
    assert not any(dst.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_a_failure(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    opts = Options(tables=Options.table_values(TABLE))
    p = src / "locked.jpg"
    smooth_rgb(8, 8).save(p, "JPEG")
    p.chmod(0)
    st = p.stat()
    rec = process(str(src), str(dst), Task("locked.jpg", "locked.jpg", "image", st.st_size, st.st_mtime_ns, False), opts)
    assert rec["status"] == "failed" and "Permission denied" in rec["reason"]


def test_symlinked_dst_folder_is_refused(tmp_path: Path) -> None:
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    (src / "a").mkdir(parents=True)
    smooth_rgb(8, 8).save(src / "a" / "x.jpg", "JPEG")
    dst.mkdir()
    elsewhere.mkdir()
    (dst / "a").symlink_to(elsewhere)
    with pytest.raises(dnnjpeg.DnnjpegError, match="symlink"):
        dnnjpeg.recompress(src, dst, TABLE, workers=0)
    assert not any(elsewhere.iterdir())
    # The worker refuses too, should the folder be swapped for a link mid-run.
    opts = Options(encode=dnnjpeg.EncodeOptions(TABLE))
    st = (src / "a" / "x.jpg").stat()
    rec = process(str(src), str(dst), Task("a/x.jpg", "a/x.jpg", "image", st.st_size, st.st_mtime_ns, False), opts)
    assert rec["status"] == "failed" and "unsafe destination" in rec["reason"]
    assert not any(elsewhere.iterdir())


@pytest.mark.needs_data
def test_dev_images(tmp_path: Path, dev_data: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = sorted(dev_data.glob("*.JPEG"))[:6]
    for p in files:
        os.symlink(p, src / p.name)  # links out of SRC: only read with follow_symlinks
    s = dnnjpeg.recompress(src, tmp_path / "dst", "resnet50", workers=2, follow_symlinks=True)
    assert (s.ok, s.failed) == (len(files), 0)
    assert s.ratio > 1.5
    for p in files:
        _assert_table(tmp_path / "dst" / p.name)


def _tasks(src: Path) -> list[Task]:
    return [t for t in walk(str(src)) if isinstance(t, Task)]


_SAME_FIELDS = ("status", "reason", "src_size", "src_sha256", "dst_size", "dst_sha256", "format", "mode", "out")


@pytest.mark.parametrize("pending_bytes", [1, 1 << 30], ids=["write-each", "write-at-end"])
def test_batch_gives_the_records_and_outputs_of_single_files(tmp_path: Path, pending_bytes: int) -> None:
    # process_batch encodes every image of the batch before writing the outputs (grouped
    # writes); the records and files must be exactly those of one-file-at-a-time processing.
    src = tmp_path / "src"
    make_sample_tree(src, tmp_path / "outside")
    tasks = _tasks(src)
    assert len(tasks) > 20
    opts = Options(encode=dnnjpeg.EncodeOptions(TABLE))
    (tmp_path / "one").mkdir()
    (tmp_path / "batch").mkdir()
    singles = [process(str(src), str(tmp_path / "one"), t, opts) for t in tasks]
    batch = process_batch(str(src), str(tmp_path / "batch"), tasks, opts, pending_bytes=pending_bytes)
    assert [r["path"] for r in batch] == [t.rel for t in tasks]
    statuses = {r["status"] for r in batch}
    assert {"ok", "kept", "copied", "failed"} <= statuses
    for one, many in zip(singles, batch):
        assert {k: one.get(k) for k in _SAME_FIELDS} == {k: many.get(k) for k in _SAME_FIELDS}, one["path"]
        assert many["seconds"] >= 0
        if many["dst_size"] is not None:
            out = tmp_path / "batch" / many.get("out", many["path"])
            assert out.read_bytes() == (tmp_path / "one" / one.get("out", one["path"])).read_bytes()
    leftovers = [p for p in (tmp_path / "batch").rglob(".dnnjpeg-tmp-*")]
    assert not leftovers


def test_a_bad_destination_fails_only_its_files_in_a_batch(tmp_path: Path) -> None:
    src, dst, elsewhere = tmp_path / "src", tmp_path / "dst", tmp_path / "elsewhere"
    rels = make_jpeg_tree(src, 8, classes=2)  # class_00 and class_01 alternate
    dst.mkdir()
    elsewhere.mkdir()
    (dst / "class_01").symlink_to(elsewhere)  # swapped for a link after planning
    opts = Options(encode=dnnjpeg.EncodeOptions(TABLE))
    records = process_batch(str(src), str(dst), _tasks(src), opts)
    by_path = {r["path"]: r for r in records}
    for rel in rels:
        if rel.startswith("class_01/"):
            assert by_path[rel]["status"] == "failed" and "unsafe destination" in by_path[rel]["reason"], rel
            assert by_path[rel]["src_sha256"] == hashlib.sha256((src / rel).read_bytes()).hexdigest()
        else:
            assert by_path[rel]["status"] == "ok", rel
            _assert_table(dst / rel)
    assert not any(elsewhere.iterdir())


def test_outputs_carry_the_source_permissions_and_mtime(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    rels = make_jpeg_tree(src, 3, classes=1)
    (src / "notes.txt").write_text("copied as is")
    for i, rel in enumerate([*rels, "notes.txt"]):
        p = src / rel
        p.chmod(0o640 if i % 2 else 0o604)
        os.utime(p, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321 + i))
    s = dnnjpeg.recompress(src, dst, TABLE, workers=2)
    assert (s.ok, s.copied) == (3, 1)
    for rel in [*rels, "notes.txt"]:
        a, b = (src / rel).stat(), (dst / rel).stat()
        assert stat.S_IMODE(b.st_mode) == stat.S_IMODE(a.st_mode), rel
        assert b.st_mtime_ns == a.st_mtime_ns, rel
