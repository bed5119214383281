"""Rate control's building blocks: ladders (real libjpeg, mozjpeg, jpegli), the criterion, the options,
and the exhaustive table ``evaluate_rungs`` (a tiny real torch model; Lite0 on the dev photos when present)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from dnnjpeg.evaluation.evaluate import _metrics
from dnnjpeg.ratecontrol import (
    DEFAULT_LADDER,
    DEFAULT_QUALITIES,
    Criterion,
    RateControl,
    evaluate_rungs,
    get_ladder,
    kl_divergence,
    ladders,
)
from dnnjpeg.testing import synthetic_image, tiny_classifier


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return synthetic_image(3, (160, 120))


@pytest.fixture(scope="module")
def tiny():
    return tiny_classifier(input_size=64)


# -- ladders ---------------------------------------------------------------------------------
def test_quality_ladders_default_to_qualities_10_to_95():
    lad = get_ladder("standard")
    assert lad.labels == tuple(f"q{q}" for q in range(10, 96, 5)) and DEFAULT_QUALITIES == tuple(range(10, 96, 5))
    assert [r.quality for r in lad] == list(range(10, 96, 5))
    assert set(ladders()) >= {"standard", "mozjpeg", "trellis", "jpegli", "family"}


@pytest.mark.parametrize("kind", ["standard", "mozjpeg", "trellis", "jpegli"])
def test_list_and_range_specs_for_every_quality_kind(kind):
    assert get_ladder(f"{kind}:50,20,30").labels == ("q20", "q30", "q50")
    assert get_ladder(f"{kind}:10-40:15").labels == ("q10", "q25", "q40")
    assert get_ladder(f"{kind}:90-92").labels == ("q90", "q91", "q92")


@pytest.mark.parametrize("spec,words", [
    ("nope", "unknown ladder"), ("standard:0,50", "1..100"), ("standard:50,50", "distinct"),
    ("standard:x", "list like"), ("standard:60-20", "bad quality range"), ("family", "family name"),
    ("family:no_such_family", "unknown table"), ("family:efficientnet_lite0:35", "no member"), ("", "spec string"),
])
def test_bad_ladder_specs_raise_value_error(spec, words):
    with pytest.raises(ValueError, match=words):
        get_ladder(spec)


def test_standard_rungs_are_pillows_quality_bytes(image):
    for rung in get_ladder("standard:10,50,95"):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=rung.quality)
        assert rung.encode(image) == buf.getvalue()


@pytest.mark.parametrize("spec", ["standard:20,60,90", "mozjpeg:20,60,90", "trellis:20,60,90", "jpegli:20,60,90",
                                  "family:efficientnet_lite0:30,60,90"])
def test_rungs_grow_with_quality_and_are_coded_as_the_ladder_says(spec, photo):
    lad = get_ladder(spec)
    sizes = []
    for rung in lad:
        data = rung.encode(photo)
        im = _open(data)
        assert im.format == "JPEG" and im.size == photo.size and im.mode == "RGB"
        assert ("progressive" in im.info) == lad.progressive, rung.label
        assert "exif" not in im.info and "icc_profile" not in im.info
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_progressive_flags():
    assert {k: get_ladder(k if k != "family" else "family:efficientnet_lite0").progressive for k in ladders()} == {
        "standard": False, "mozjpeg": True, "trellis": False, "jpegli": False, "family": False}


def test_family_ladder_is_its_members_in_quality_order(photo):
    import dnnjpeg

    lad = get_ladder("family:efficientnet_lite0")
    fam = dnnjpeg.load_family("efficientnet_lite0")
    assert [r.quality for r in lad] == fam.qualities
    im = _open(lad[0].encode(photo))
    assert im.quantization[0] == list(fam.members[fam.qualities[0]].luma)


def test_gray_and_rgba_images_are_encoded(image):
    for lad in (get_ladder("standard:50"), get_ladder("jpegli:50")):
        assert _open(lad[0].encode(image.convert("L"))).size == image.size
        assert _open(lad[0].encode(image.convert("RGBA"))).mode == "RGB"


def test_jpegli_missing_is_a_clear_error(image, monkeypatch):
    import sys

    rung = get_ladder("jpegli:50")[0]   # building the ladder does not need the package
    monkeypatch.setitem(sys.modules, "pyjpegli", None)
    with pytest.raises(ImportError, match=r"pip install pyjpegli"):
        rung.encode(image)


def test_min_quality_restricts_to_a_suffix():
    lad = get_ladder("standard")
    assert lad.restrict(None) is lad
    assert lad.restrict(83).labels == ("q85", "q90", "q95")
    with pytest.raises(ValueError, match="min_quality=96 leaves no rung"):
        lad.restrict(96)


# -- criterion -------------------------------------------------------------------------------
def test_kl_is_the_evaluators_kl():
    rng = np.random.default_rng(0)
    ref, cand = rng.normal(0, 3, (6, 20)).astype(np.float32), rng.normal(0, 3, (6, 20)).astype(np.float32)
    want = _metrics(cand, ref, ref.argmax(axis=1))["kl"]
    assert np.allclose(kl_divergence(ref, cand), want, rtol=1e-12, atol=0)
    assert np.all(kl_divergence(ref, ref) == 0)


def test_criterion_kl_top1_and_top_k():
    ref = np.array([[5.0, 4.0, 1.0, 0.0]] * 3)
    cand = np.array([[5.0, 4.0, 1.0, 0.0],     # identical
                     [4.0, 5.0, 1.0, 0.0],     # top-1 swapped, same top-2 set
                     [5.0, 1.0, 4.0, 0.0]])    # same top-1, other top-2 set
    kl = kl_divergence(ref, cand)
    loose = Criterion(max_kl=10.0)
    assert loose.check(ref, cand)[0].tolist() == [True, True, True]
    assert Criterion(10.0, keep_top1=True).check(ref, cand)[0].tolist() == [True, False, True]
    assert Criterion(10.0, top_k=2).check(ref, cand)[0].tolist() == [True, True, False]
    assert Criterion(10.0, keep_top1=True, top_k=2).check(ref, cand)[0].tolist() == [True, False, False]
    tight = Criterion(max_kl=float(kl[1]))
    assert tight.check(ref, cand)[0].tolist() == [True, True, bool(kl[2] <= kl[1])]
    assert Criterion(0.0).check(ref, cand)[0].tolist() == [True, False, False]


@pytest.mark.parametrize("kwargs,option", [
    ({"max_kl": -0.1}, "max_kl"), ({"max_kl": float("nan")}, "max_kl"), ({"max_kl": "0.05"}, "max_kl"),
    ({"max_kl": True}, "max_kl"), ({"max_kl": 0.05, "keep_top1": "yes"}, "keep_top1"),
    ({"max_kl": 0.05, "top_k": 0}, "top_k"), ({"max_kl": 0.05, "top_k": 2.5}, "top_k"),
])
def test_bad_criterion_raises_value_error_naming_the_option(kwargs, option):
    with pytest.raises(ValueError, match=f"^{option} "):
        Criterion(**kwargs)


# -- options ---------------------------------------------------------------------------------
def test_rate_control_defaults_pickle_and_dict():
    rc = RateControl(models=["efficientnet_lite0", "efficientnet_lite1"], criterion=Criterion(0.02, top_k=5),
                     ladder="mozjpeg:20-90:10", min_quality=40, device="cpu", batch_size=8)
    assert rc.models == ("efficientnet_lite0", "efficientnet_lite1")
    assert pickle.loads(pickle.dumps(rc)) == rc
    assert rc.to_dict() == {"models": ["efficientnet_lite0", "efficientnet_lite1"],
                            "criterion": {"max_kl": 0.02, "keep_top1": False, "top_k": 5},
                            "ladder": "mozjpeg:20-90:10", "min_quality": 40, "device": "cpu", "batch_size": 8}
    assert rc.get_ladder().labels == ("q40", "q50", "q60", "q70", "q80", "q90")
    default = RateControl()
    assert default.models == ("efficientnet_lite0",) and default.criterion == Criterion(0.05)
    assert default.ladder == DEFAULT_LADDER == "trellis" and default.min_quality is None and default.device is None
    assert default.validate() is default


@pytest.mark.parametrize("kwargs,option", [
    ({"models": ()}, "models"), ({"models": ("no_such_model",)}, "models"), ({"models": (3,)}, "models"),
    ({"models": ("efficientnet_lite0", "efficientnet_lite0")}, "models"), ({"criterion": 0.05}, "criterion"),
    ({"ladder": "nope"}, "ladder"), ({"min_quality": 0}, "min_quality"), ({"min_quality": 99}, "min_quality"),
    ({"device": 3}, "device"), ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.0}, "batch_size"),
])
def test_bad_rate_control_raises_value_error_naming_the_option(kwargs, option):
    with pytest.raises(ValueError, match=f"^{option}"):
        RateControl(**kwargs)


def test_rate_control_with_a_classifier_pickles(tiny):
    rc = RateControl(models=(tiny,), criterion=Criterion(0.01))
    back = pickle.loads(pickle.dumps(rc))
    assert back.model_names == (tiny.name,) and back.criterion == rc.criterion


# -- the exhaustive table ----------------------------------------------------------------------
def test_evaluate_rungs_native_matches_one_candidate_by_hand(tiny):
    imgs = [synthetic_image(i, (150, 110)) for i in range(3)]
    lad = get_ladder("standard:10,40,90")
    t = evaluate_rungs(imgs, lad, [tiny], batch_size=2)
    assert t.labels == lad.labels and t.protocol == "native"
    assert t.nbytes.shape == (3, 3) and t.kl[tiny.name].shape == (3, 3) and t.top1[tiny.name].shape == (3, 3)
    assert t.nbytes[1].tolist() == [len(r.encode(imgs[1])) for r in lad]
    ref = tiny(np.stack([tiny.transform(imgs[1])])).numpy()
    cand = tiny(np.stack([tiny.transform(_open(lad[1].encode(imgs[1])))])).numpy()
    assert t.kl[tiny.name][1, 1] == pytest.approx(float(kl_divergence(ref, cand)[0]), rel=1e-4, abs=1e-9)
    assert t.ref_top1[tiny.name][1] == ref.argmax() and t.top1[tiny.name][1, 1] == cand.argmax()
    assert t.topk[tiny.name].shape == (3, 3, 5) and t.ref_topk[tiny.name].shape == (3, 5)


def test_evaluate_rungs_crop224_encodes_the_crop(tiny):
    from dnnjpeg.evaluation.data import crop224

    imgs = [synthetic_image(7, (300, 260))]
    t = evaluate_rungs(imgs, "standard:30", [tiny], protocol="crop224")
    assert t.nbytes[0, 0] == len(get_ladder("standard:30")[0].encode(crop224(imgs[0])))
    ref = tiny(crop224(imgs[0])[None]).numpy()
    assert t.ref_top1[tiny.name][0] == ref.argmax()
    with pytest.raises(ValueError, match="protocol"):
        evaluate_rungs(imgs, "standard:30", [tiny], protocol="bogus")


def test_rung_table_held_and_smallest_holding(tiny):
    imgs = [synthetic_image(i, (150, 110)) for i in range(4)]
    t = evaluate_rungs(imgs, "standard:10-90:20", [tiny])
    kl = t.kl[tiny.name]
    tau = float(np.median(kl))
    held = t.held(Criterion(tau))
    assert np.array_equal(held, kl <= tau)
    best = t.smallest_holding(Criterion(tau))
    size = np.where(held, t.nbytes, np.iinfo(np.int64).max)
    assert np.array_equal(best, np.where(held.any(axis=1), size.argmin(axis=1), -1))
    assert t.smallest_holding(Criterion(0.0)).tolist() == [-1] * 4
    top1 = t.held(Criterion(10.0, keep_top1=True))
    assert np.array_equal(top1, t.top1[tiny.name] == t.ref_top1[tiny.name][:, None])
    with pytest.raises(ValueError, match="top 5 classes only"):
        t.held(Criterion(1.0, top_k=6))
