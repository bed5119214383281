"""The ``fisher`` search method: what it proposes, and that a real tuning run differentiates the real model."""

from __future__ import annotations

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.search import SearchContext, SearchError, make_method, tune
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos


def photos() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return np.stack([skimage_data.astronaut()[:128, :128], skimage_data.chelsea()[:128, :128]])


def test_standard_tables_first_then_the_design_at_three_rate_prices() -> None:
    m = make_method("fisher", "separate+subsampling", seed=0, context=SearchContext(images=photos()), weights="mse")
    first = [m.ask() for _ in range(6)]
    assert [t.subsampling for t in first[:3]] == list(m.space.subsampling)
    assert all(t.luma == QTable.standard(50).luma and t.chroma == QTable.standard(50).chroma for t in first[:3])
    mid, fine, coarse = first[3:]
    assert {t.subsampling for t in (mid, fine, coarse)} == {"4:2:0"}
    y = [np.array(t.luma) for t in (fine, mid, coarse)]
    assert (y[0] <= y[1]).all() and (y[1] <= y[2]).all() and (y[0] < y[2]).any()


def test_fisher_weights_need_the_model() -> None:
    with pytest.raises(SearchError, match="needs the model.*weights='mse'"):
        make_method("fisher", "separate", context=SearchContext(images=photos()))
    with pytest.raises(SearchError, match="weights must be"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), weights="psnr")
    with pytest.raises(SearchError, match="option rate must be one of 'huffman', 'proxy'"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), weights="mse", rate="bits")
    with pytest.raises(SearchError, match="option fisher_at must be one of"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), fisher_at="midpoint")
    with pytest.raises(SearchError, match="rate_passes"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), weights="mse", rate_passes=0)
    with pytest.raises(SearchError, match="max_images"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), weights="mse", max_images=0)
    # tune() checks before it evaluates anything: a PSNR evaluator has no model
    with pytest.raises(SearchError, match="needs the model"):
        tune(PSNREvaluator(synthetic_photos(2, 32)), "fisher", budget=2, objective="fitness-ce", curve_qualities=(20, 80))


@pytest.mark.slow
def test_tuning_run_designs_from_the_real_model(dev_data) -> None:
    from dnnjpeg.evaluation.evaluate import Evaluator

    ev = Evaluator("efficientnet_lite0", dev_data, limit=6, workers=1)
    res = tune(ev, "fisher", budget=5, objective="size-matched-kl:50", quality=50, project=True, space="separate",
               curve_qualities=(30, 50, 80), options={"max_images": 6})
    assert res.n_complete == 5 and np.isfinite(res.value)
    # the designs come from the model's Fisher weights: squared-error weights give other tables
    ctx = SearchContext(images=ev.images, classifier=ev.classifier)
    by_model = make_method("fisher", "separate", context=ctx, max_images=6)
    by_mse = make_method("fisher", "separate", context=ctx, max_images=6, weights="mse")
    a = [by_model.ask() for _ in range(2)][1]
    b = [by_mse.ask() for _ in range(2)][1]
    assert a != b and a.chroma != QTable.standard(50).chroma


def first_design(**kwargs) -> QTable:
    quality = kwargs.pop("quality", None)
    m = make_method("fisher", "separate", seed=0, context=SearchContext(images=photos(), quality=quality),
                    weights="mse", **kwargs)
    return [m.ask() for _ in range(2)][1]


def test_huffman_rate_designs_for_the_size_it_will_be_matched_to() -> None:
    # the Huffman rate takes its zero runs from standard JPEG at the projected quality (base_quality without one)
    assert first_design(quality=20) != first_design(quality=90)
    assert first_design() == first_design(quality=50)
    assert first_design(rate="proxy", quality=20) == first_design(rate="proxy", quality=90)
    assert first_design(rate="proxy") != first_design()
    # the second pass takes the runs from the design that spends standard JPEG's modeled bits
    assert first_design(rate_passes=1, quality=30) != first_design(rate_passes=2, quality=30)


def test_tune_tells_the_method_the_projected_quality() -> None:
    from dnnjpeg.search.projection import SizeProjectedEvaluator

    ev = PSNREvaluator(photos())
    res = tune(ev, "fisher", budget=2, objective="fitness-ce", quality=20, project=True, space="separate",
               curve_qualities=(10, 20, 80), options={"weights": "mse"})
    design = next(t for t in res.trials if t["seq"] == 1)["metrics"]
    projected = SizeProjectedEvaluator(ev, 20)
    for quality, same in ((20, True), (90, False)):  # the design for q20 was evaluated, not the one for q90
        expected = projected.evaluate(first_design(quality=quality)).summary()
        assert (design["ce"], design["bytes_mean"]) == (expected["ce"], expected["bytes_mean"]) if same else \
            (design["ce"], design["bytes_mean"]) != (expected["ce"], expected["bytes_mean"])


def test_fisher_each_designs_at_every_subsampling_first() -> None:
    ctx = SearchContext(images=photos())
    plain = make_method("fisher", "separate+subsampling", seed=0, context=ctx, weights="mse")
    each = make_method("fisher-each", "separate+subsampling", seed=0, context=ctx, weights="mse")
    assert each.options["first_designs"] == "each" and plain.options["first_designs"] == "main"
    p = [plain.ask() for _ in range(7)]
    e = [each.ask() for _ in range(9)]
    subs = list(plain.space.subsampling)
    assert e[:3] == p[:3]  # standard JPEG at each subsampling
    # the lam-1 design at 4:2:0 (as fisher's), then at the other subsamplings, then fisher's other first designs
    assert [t.subsampling for t in e[3:6]] == ["4:2:0"] + [s for s in subs if s != "4:2:0"]
    assert e[3] == p[3] and e[6:9] == p[4:7]
    assert e[4].chroma != e[3].chroma  # chroma designed for its own resolution
    # one subsampling only: nothing to visit, the same schedule as fisher's
    a = make_method("fisher-each", "separate", seed=0, context=ctx, weights="mse")
    b = make_method("fisher", "separate", seed=0, context=ctx, weights="mse")
    assert [a.ask() for _ in range(8)] == [b.ask() for _ in range(8)]


def test_first_designs_option_is_checked() -> None:
    with pytest.raises(SearchError, match="option first_designs must be one of 'main', 'each'"):
        make_method("fisher", "separate", context=SearchContext(images=photos()), weights="mse", first_designs="all")
