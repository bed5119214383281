"""dnnjpeg.evaluate: Result aggregates and per-image signals, determinism, subsets, caches, protocols."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dnnjpeg.evaluation.data import load_dataset
from dnnjpeg.evaluation.evaluate import EvaluationError, Evaluator, Result
from dnnjpeg.qtable import QTable
from dnnjpeg.testing import make_image_folder, tiny_classifier


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DNNJPEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    # labels chosen so the tiny model gets some right: its own predictions on the originals
    return make_image_folder(tmp_path / "data", n=10)


@pytest.fixture()
def ev(folder: Path) -> Evaluator:
    return Evaluator(tiny_classifier(), folder, batch_size=4, workers=2, device="cpu")


def test_reference_result(ev: Evaluator) -> None:
    ref = ev.evaluate()
    assert ref.n == 10 and ref.table is None and ref.quality is None
    assert ref.agreement == 1.0 and np.all(ref.kl == 0)
    assert np.all(ref.bytes == 150582) and ref.cr == pytest.approx(1.0)
    assert ref.bpp == pytest.approx(8 * 150582 / 50176)
    assert ref.top1 == pytest.approx(ref.correct.mean())


def test_compressed_result_fields(ev: Evaluator) -> None:
    r = ev.evaluate(QTable.standard(20))
    assert r.quality == 20 and r.table["luma"] == list(QTable.standard(20).luma)
    for name in ("correct", "correct5", "agree", "ce", "kl", "bytes", "pixels", "bmp_bytes", "indices"):
        assert getattr(r, name).shape == (10,), name
    assert r.correct.dtype == bool and r.ce.dtype == np.float64 and r.bytes.dtype == np.int64
    assert r.cr == pytest.approx(150582 / r.bytes.mean())
    assert r.bpp == pytest.approx(8 * r.bytes.sum() / (10 * 224 * 224))
    assert r.bytes_mean == pytest.approx(r.bytes.mean())
    assert np.all(r.correct5 >= r.correct) and np.all(r.kl >= 0) and np.all(r.ce > 0)
    assert r.kl.mean() > 0  # q20 changes the predictions' distribution
    assert r.bytes.tolist() == ev.sizes(20).tolist()
    # the per-image signals are consistent with logits computed by hand
    dec, _ = ev.codec.roundtrip_batch(ev.images, 20)
    with torch.inference_mode():
        logp = torch.log_softmax(ev.classifier(dec).double(), 1).numpy()
    labels = ev.labels
    assert np.allclose(r.ce, -logp[np.arange(10), labels], atol=1e-4)
    assert np.array_equal(r.correct, logp.argmax(1) == labels)


def test_summary_and_json(ev: Evaluator) -> None:
    r = ev.evaluate_standard(50)
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("top1", "top5", "agreement", "bytes_mean", "cr", "bpp", "n", "ce", "kl"):
        assert key in d
    assert "per_image" not in d
    full = json.loads(r.to_json(per_image=True))
    back = Result.from_dict(full)
    assert back.summary() == pytest.approx(r.summary())
    assert np.array_equal(back.correct, r.correct) and np.allclose(back.kl, r.kl)


def test_deterministic(folder: Path) -> None:
    a = Evaluator(tiny_classifier(), folder, batch_size=4, device="cpu").evaluate(40)
    b = Evaluator(tiny_classifier(), folder, batch_size=4, device="cpu", prefetch=False, workers=1).evaluate(40)
    for name in ("correct", "ce", "kl", "bytes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_indices_and_subsets(ev: Evaluator) -> None:
    full = ev.evaluate(30)
    idx = [7, 2, 5]
    part = ev.evaluate(30, indices=idx)
    assert part.indices.tolist() == idx
    sub = full.subset(idx)
    assert sub.indices.tolist() == idx and sub.bytes.tolist() == part.bytes.tolist()
    assert np.array_equal(sub.correct, part.correct) and np.allclose(sub.ce, part.ce, atol=1e-4)
    mask = np.zeros(10, bool)
    mask[[1, 3]] = True
    assert full.subset(mask).indices.tolist() == [1, 3]
    with pytest.raises(EvaluationError):
        part.subset([0])
    small = ev.subset(idx)
    assert small.n == 3 and small.evaluate(30).bytes.tolist() == part.bytes.tolist()
    with pytest.raises(EvaluationError):
        ev.evaluate(30, indices=[10])


def test_unlabelled_data_scores_agreement(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "u", n=6, layout="unlabelled")
    ev = Evaluator(tiny_classifier(), root, device="cpu", batch_size=4)
    ref = ev.evaluate()
    assert not ref.labelled and ref.top1 == 1.0
    r = ev.evaluate(10)
    assert r.top1 == r.agreement and np.array_equal(r.correct, r.agree)


def test_reference_cached_on_disk(folder: Path, _cache: Path) -> None:
    Evaluator(tiny_classifier(), folder, device="cpu").reference()
    files = list((_cache / "reference").glob("*.npy"))
    assert len(files) == 1
    fresh = Evaluator(tiny_classifier(), folder, device="cpu")
    calls = []
    fresh.classifier.module.register_forward_hook(lambda *a: calls.append(1))
    ref = fresh.reference()
    assert not calls and ref.logits.shape == (10, 1000)  # read from disk: the model never ran
    fresh.evaluate(50)
    assert calls  # (the hook does see real work)
    # another model (other weights) gets its own entry
    Evaluator(tiny_classifier(seed=1), folder, device="cpu").reference()
    assert len(list((_cache / "reference").glob("*.npy"))) == 2
    # cache off: nothing more written
    Evaluator(tiny_classifier(seed=2), folder, device="cpu", cache=False).reference()
    assert len(list((_cache / "reference").glob("*.npy"))) == 2


def test_native_protocol_reports_bits_per_pixel(folder: Path) -> None:
    ev = Evaluator(tiny_classifier(input_size=64), folder, protocol="native", device="cpu", batch_size=4)
    ds = load_dataset(folder)
    shapes = [im.shape for im in ds.native_images()]
    r = ev.evaluate(50)
    assert r.pixels.tolist() == [h * w for h, w, _ in shapes]
    assert r.bpp == pytest.approx(8 * r.bytes.sum() / r.pixels.sum())
    assert r.bmp_bytes[0] == 54 + shapes[0][0] * ((shapes[0][1] * 3 + 3) // 4 * 4)
    assert r.protocol == "native" and 0 < r.bpp < 8


def test_pickles(ev: Evaluator) -> None:
    r = ev.evaluate(50)
    again = pickle.loads(pickle.dumps(r))
    assert again.summary() == r.summary()
    ev2 = pickle.loads(pickle.dumps(ev))
    assert np.array_equal(ev2.evaluate(50).ce, r.ce)


def test_bad_arguments(folder: Path) -> None:
    with pytest.raises(EvaluationError, match="protocol"):
        Evaluator(tiny_classifier(), folder, protocol="crop256")
    with pytest.raises(EvaluationError, match="out of range"):
        Evaluator(tiny_classifier(num_classes=5), folder)


@pytest.mark.slow
def test_lite0_on_dev_subset(dev_data: Path) -> None:
    ev = Evaluator("efficientnet_lite0", dev_data, limit=16, device="cpu")
    assert ev.classifier.config["batchnorm_folded"] == 49  # the evaluator runs a folded copy by default
    ref = ev.evaluate()
    assert ref.top1 >= 0.75  # 89% on all 500
    r = ev.evaluate_standard(50)
    assert 16 < r.cr < 25 and r.agreement >= 0.6 and r.kl_mean > 0
    exact = Evaluator("efficientnet_lite0", dev_data, limit=16, device="cpu", fold_batchnorm=False)
    assert "batchnorm_folded" not in exact.classifier.config
    assert exact.classifier.fingerprint != ev.classifier.fingerprint  # separate reference caches
    r_exact = exact.evaluate_standard(50)
    assert np.array_equal(r_exact.correct, r.correct) and np.array_equal(r_exact.bytes, r.bytes)
    assert np.allclose(r_exact.ce, r.ce, atol=1e-4)


def test_codec_chunks_keep_batch_boundaries(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dnnjpeg.evaluation.evaluate as evaluate_module

    ev = Evaluator(tiny_classifier(), folder, batch_size=3, workers=2, device="cpu")
    assert [len(c) for c in ev._chunks(np.arange(10))] == [10]  # 128 rounded up to whole batches
    chunked = ev.evaluate(30)
    monkeypatch.setattr(evaluate_module, "CODEC_CHUNK", 1)
    assert [len(c) for c in ev._chunks(np.arange(10))] == [3, 3, 3, 1]
    per_batch = ev.evaluate(30)
    for name in ("ce", "kl", "bytes", "correct"):
        assert np.array_equal(getattr(chunked, name), getattr(per_batch, name)), name


@pytest.mark.slow
@pytest.mark.needs_data
def test_lite0_uncompressed_top1_above_0_80(dev_data: Path) -> None:
    ref = Evaluator("efficientnet_lite0", dev_data, device="cpu").evaluate()
    assert ref.n == 500
    assert ref.top1 > 0.80
