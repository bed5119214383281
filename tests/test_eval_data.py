"""dnnjpeg.data: folder layouts, the crop224 protocol, the crop cache and splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnnjpeg.evaluation.data import (
    BMP_BYTES_224,
    DataError,
    bmp_size,
    cache_dir,
    class_disjoint_folds,
    class_disjoint_split,
    crop224,
    imagenet_wnids,
    kfold,
    load_dataset,
)
from dnnjpeg.testing import make_image_folder, synthetic_image


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_labels_csv_layout(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "d", n=5, classes=[7, 3])
    ds = load_dataset(root)
    assert len(ds) == 5 and ds.labelled
    assert ds.labels.tolist() == [7, 3, 7, 3, 7]
    assert [f.name for f in ds.files] == [f"img{i:03d}.png" for i in range(5)]
    sub = load_dataset(root, limit=2)
    assert len(sub) == 2 and sub.source_indices.tolist() == [0, 1] and sub.name.endswith("[:2]")


def test_wnid_and_integer_image_folders(tmp_path: Path) -> None:
    wn = load_dataset(make_image_folder(tmp_path / "w", n=4, layout="wnid", classes=[0, 999, 2]))
    assert sorted(wn.labels.tolist()) == [0, 0, 2, 999]
    assert imagenet_wnids()[0] == "n01440764" and len(imagenet_wnids()) == 1000
    ints = load_dataset(make_image_folder(tmp_path / "i", n=4, layout="int", classes=[5, 12]))
    assert sorted(ints.labels.tolist()) == [5, 5, 12, 12]


def test_unlabelled_folder(tmp_path: Path) -> None:
    ds = load_dataset(make_image_folder(tmp_path / "u", n=3, layout="unlabelled"))
    assert not ds.labelled and ds.labels.tolist() == [-1, -1, -1]


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("name,label\na.png,1\n")
    with pytest.raises(DataError, match="'file' and 'class_index'"):
        load_dataset(bad)
    (bad / "labels.csv").write_text("file,class_index\nnope.png,1\n")
    with pytest.raises(DataError, match="not found"):
        load_dataset(bad)
    mixed = tmp_path / "mixed"
    for name in ("n01440764", "cats"):
        (mixed / name).mkdir(parents=True)
        synthetic_image(0, (40, 40)).save(mixed / name / "a.png")
    with pytest.raises(DataError, match="wnids"):
        load_dataset(mixed)


def test_crop224_matches_torchvision() -> None:
    T = pytest.importorskip("torchvision.transforms")
    tv = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)])
    for size in ((500, 375), (333, 500), (256, 256), (301, 257)):
        img = synthetic_image(size[0], size)
        ours = crop224(img)
        assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8
        assert np.array_equal(ours, np.asarray(tv(img)))


def test_crop224_converts_modes() -> None:
    for mode in ("L", "CMYK", "RGBA", "P"):
        out = crop224(synthetic_image(1, (300, 260), mode=mode))
        assert out.shape == (224, 224, 3)


def test_bmp_size() -> None:
    assert bmp_size(224, 224) == BMP_BYTES_224 == 150582
    assert bmp_size(2, 3) == 54 + 2 * 12  # rows padded to 4 bytes


def test_crop_cache_is_keyed_by_content(tmp_path: Path, _cache: Path) -> None:
    root = make_image_folder(tmp_path / "d", n=3)
    ds = load_dataset(root)
    crops = ds.crops()
    assert crops.shape == (3, 224, 224, 3)
    files = sorted((_cache / "crops").rglob("*.npy"))
    assert len(files) == 3 and cache_dir() == _cache
    assert not list((_cache / "crops").rglob(".tmp-*"))  # atomic writes leave no temporaries
    # the cache is read: plant a marker in image 0's entry
    h = ds.content_hashes()[0]
    (entry,) = [f for f in files if f.stem == h]
    np.save(entry, np.full((224, 224, 3), 7, np.uint8))
    assert (load_dataset(root).crops()[0] == 7).all()
    # a renamed copy of the same bytes hits the same entry; changed bytes do not
    os.rename(root / "img000.png", root / "renamed.png")
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace("img000.png", "renamed.png"))
    assert (load_dataset(root).crops()[0] == 7).all()
    synthetic_image(99, (300, 260)).save(root / "renamed.png")
    assert not (load_dataset(root).crops()[0] == 7).all()
    assert np.array_equal(load_dataset(root).crops(cache=False)[1:], crops[1:])


def test_native_images(tmp_path: Path) -> None:
    ds = load_dataset(make_image_folder(tmp_path / "d", n=2))
    ims = ds.native_images()
    with Image.open(ds.files[1]) as im:
        assert ims[1].shape == (im.height, im.width, 3)


def test_kfold() -> None:
    folds = kfold(10, 3, seed=1)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(10))
    for f in folds:
        assert not set(f.train) & set(f.test) and len(f.train) + len(f.test) == 10
    assert [f.test.tolist() for f in kfold(10, 3, seed=1)] == [f.test.tolist() for f in folds]
    assert [f.test.tolist() for f in kfold(10, 3, seed=2)] != [f.test.tolist() for f in folds]
    with pytest.raises(DataError):
        kfold(3, 5)


def test_class_disjoint_folds() -> None:
    labels = np.repeat(np.arange(12), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3])
    folds = class_disjoint_folds(labels, k=4, seed=0)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(labels)))
    for f in folds:
        assert not set(labels[f.train]) & set(labels[f.test])
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # near-equal image counts
    again = class_disjoint_folds(labels, k=4, seed=0)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    other = class_disjoint_folds(labels, k=4, seed=1)
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other))
    # unlabelled images: each its own class
    assert len(class_disjoint_folds(np.full(6, -1), k=3)) == 3
    with pytest.raises(DataError):
        class_disjoint_folds(np.zeros(5, int), k=2)


def test_class_disjoint_split() -> None:
    labels = np.repeat(np.arange(10), 3)
    split = class_disjoint_split(labels, 0.3, seed=0)
    assert len(split.test) == 9 and not set(labels[split.train]) & set(labels[split.test])


def test_dev_data_layout(dev_data: Path) -> None:
    ds = load_dataset(dev_data)
    assert len(ds) == 500 and ds.labelled
    assert (ds.labels % 2 == 0).all()
    folds = class_disjoint_folds(ds, k=5, seed=0)
    assert [len(f.test) for f in folds] == [100] * 5
