"""Packed datasets: crops carried to another machine keep the source's identity and pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dnnjpeg.cli import main
from dnnjpeg.evaluation.data import DataError, load_dataset
from dnnjpeg.evaluation.pack import PACK_MANIFEST, pack_dataset


@pytest.fixture()
def photos(tmp_path, photo):
    """Six labelled photos of different sizes and modes, cut from a real photograph."""
    src = tmp_path / "src"
    src.mkdir()
    rows = ["file,class_index"]
    for i, (w, h) in enumerate([(300, 260), (512, 400), (260, 300), (400, 512), (333, 287), (256, 256)]):
        im = photo.crop((i * 10, i * 7, i * 10 + w // 2, i * 7 + h // 2)).resize((w, h))
        name = f"p{i}.png" if i % 2 else f"p{i}.jpg"
        (im.convert("L") if i == 5 else im).save(src / name)
        rows.append(f"{name},{i * 3}")
    (src / "labels.csv").write_text("\n".join(rows) + "\n")
    return src


def test_pack_keeps_pixels_labels_name_and_fingerprint(photos, tmp_path):
    out = pack_dataset(photos, tmp_path / "pack")
    a, b = load_dataset(photos), load_dataset(out)
    assert b.packed and not a.packed
    assert b.name == a.name
    assert b.fingerprint("crop224") == a.fingerprint("crop224")
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.crops(), a.crops())
    sub = b.subset([4, 1])
    assert sub.packed
    np.testing.assert_array_equal(sub.crops(), a.crops()[[4, 1]])
    assert sub.fingerprint("crop224") == a.subset([4, 1]).fingerprint("crop224")
    assert load_dataset(out, limit=2).fingerprint() == load_dataset(photos, limit=2).fingerprint()


def test_pack_never_overwrites_and_refuses_packs(photos, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not an empty folder"):
        pack_dataset(photos, busy)
    assert (busy / "keep.txt").read_text() == "mine"
    out = pack_dataset(photos, tmp_path / "pack")
    with pytest.raises(DataError, match="already a packed dataset"):
        pack_dataset(out, tmp_path / "again")


def test_packed_dataset_has_no_native_protocol(photos, tmp_path):
    ds = load_dataset(pack_dataset(photos, tmp_path / "pack"))
    with pytest.raises(DataError, match="native protocol"):
        ds.native_images()


def test_bad_packs_name_the_file(photos, tmp_path):
    out = pack_dataset(photos, tmp_path / "pack")
    Image.new("RGB", (100, 224)).save(out / "00002.webp", "WEBP", lossless=True)
    with pytest.raises(DataError, match=r"00002\.webp.*shape"):
        load_dataset(out).crops()
    (out / "00003.webp").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"00003\.webp"):
        load_dataset(out).subset([3]).crops()
    manifest = json.loads((out / PACK_MANIFEST).read_text())
    manifest["files"][0]["file"] = "../escape.webp"
    (out / PACK_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="bad file name"):
        load_dataset(out)
    (out / PACK_MANIFEST).write_text("{}")
    with pytest.raises(DataError, match="format"):
        load_dataset(out)


def test_unlabelled_folder_packs_and_loads_unlabelled(photos, tmp_path):
    (photos / "labels.csv").unlink()
    out = pack_dataset(photos, tmp_path / "pack")
    b = load_dataset(out)
    assert b.packed and not b.labelled
    assert (b.labels == -1).all() and len(b) == 6


def test_pack_labels_are_checked(photos, tmp_path):
    out = pack_dataset(photos, tmp_path / "pack")
    rows = (out / "labels.csv").read_text().splitlines()
    rows[3] = rows[3].rsplit(",", 1)[0] + ",-2"
    (out / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"labels\.csv:4: class_index -2 is negative"):
        load_dataset(out)
    (out / "labels.csv").write_text("name,label\n")
    with pytest.raises(DataError, match="header must have 'file' and 'class_index'"):
        load_dataset(out)


def test_cli_pack(photos, tmp_path, capsys):
    assert main(["pack", str(photos), str(tmp_path / "p"), "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert "packed 3 crops" in out and load_dataset(photos, limit=3).fingerprint("crop224") in out
