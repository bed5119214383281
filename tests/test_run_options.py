"""TuneOptions, CrossvalOptions and ValidateOptions: the options object and the keyword arguments
from before it give the same results; bad values and contradictions are ValueErrors naming them.

Searches are real libjpeg round trips scored by PSNR; crossval and validate run the tiny
classifier of :mod:`dnnjpeg.testing` on generated photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dnnjpeg.search import SearchError, TuneOptions, tune
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos
from dnnjpeg.testing import without_dates
from dnnjpeg.validation.crossval import CrossvalError, CrossvalOptions, crossval, obtain_table
from dnnjpeg.validation.validate import ValidateOptions, ValidationError, validate

CURVE = (20, 50, 80)


def timeless(obj: Any) -> Any:
    """``obj`` without dates and wall times (what two runs of the same computation differ in)."""
    obj = without_dates(obj)
    if isinstance(obj, dict):
        return {k: timeless(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [timeless(v) for v in obj]
    return obj


def outcome(res: Any) -> dict[str, Any]:
    """Everything a TuneResult holds but wall times and dates."""
    return timeless({
        "table": res.table.to_dict(), "value": res.value, "metrics": res.metrics, "trial": res.trial,
        "study": res.study_name, "counts": [res.n_complete, res.n_pruned, res.n_failed],
        "pareto": [t.to_dict() for t in res.pareto], "trials": res.trials, "curve": res.curve.to_dict(),
        "config": res.config,
    })


@pytest.fixture(scope="module")
def ev() -> PSNREvaluator:
    return PSNREvaluator(synthetic_photos(4, 48, seed=2), "synthetic")


@pytest.fixture(scope="module")
def classifier_ev(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("torch")
    from dnnjpeg.evaluation.evaluate import Evaluator
    from dnnjpeg.testing import make_image_folder, tiny_classifier

    folder = make_image_folder(tmp_path_factory.mktemp("photos"), n=8, classes=[0, 1, 2, 3], size=(240, 232))
    return Evaluator(tiny_classifier(num_classes=4, seed=3), folder, device="cpu", cache=False, workers=1)


@pytest.mark.parametrize("method, kw", [
    ("bandit", {"objective": "fitness-ce", "seed": 2}),
    ("nsga2", {"objective": "fitness-kl", "seed": 1, "space": "separate"}),
    ("sorted", {"objective": "fitness-ce", "quality": 50, "fidelity": "2:2"}),
])
def test_tune_options_object_and_keywords_give_the_same_search(ev, method: str, kw: dict) -> None:
    by_keywords = tune(ev, method, budget=5, curve_qualities=CURVE, **kw)
    opts = TuneOptions(method, budget=5, curve_qualities=CURVE, **kw)
    by_object = tune(ev, options=opts)
    assert outcome(by_object) == outcome(by_keywords)
    # keywords that agree with the object are allowed
    again = tune(ev, method, budget=5, options=opts, curve_qualities=list(CURVE))
    assert outcome(again) == outcome(by_keywords)


def test_tune_options_mapping_is_still_the_methods_options(ev) -> None:
    old = tune(ev, "bandit", budget=4, objective="fitness-ce", options={}, curve_qualities=CURVE)
    new = tune(ev, options=TuneOptions("bandit", budget=4, objective="fitness-ce", method_options={},
                                       curve_qualities=CURVE))
    assert outcome(old) == outcome(new)
    with pytest.raises(ValueError, match="one setting; give it once"):
        tune(ev, "bandit", options={}, method_options={})


def test_tune_options_contradictions_and_bad_values(ev) -> None:
    opts = TuneOptions("sorted", budget=3, curve_qualities=CURVE)
    with pytest.raises(ValueError, match=r"budget=4 contradicts options.budget=3; give the setting in one place"):
        tune(ev, budget=4, options=opts)
    with pytest.raises(ValueError, match="method='bandit' contradicts options.method='sorted'"):
        tune(ev, "bandit", options=opts)
    with pytest.raises(TypeError, match="unknown tune option 'budgett'"):
        tune(ev, "sorted", budgett=3)
    bad = [
        ({"budget": 0}, "budget must be a positive integer, got 0"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"workers": 2}, "workers > 1 need a persistent storage"),
        ({"quality": 101}, "quality must be an integer in 1..100, got 101"),
        ({"project": True}, "project=True needs quality"),
        ({"method": "nope"}, "unknown search method 'nope'"),
        ({"objective": "best"}, "unknown objective 'best'"),
        ({"space": "cube"}, "cube"),
        ({"method": "nsga2", "fidelity": "2:3"}, "multi-objective"),
        ({"method_options": [1]}, r"method_options must be a mapping .*got \[1\]"),
        ({"curve_qualities": ["x"]}, "curve_qualities must be integers, got"),
    ]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            TuneOptions(**kw)
    with pytest.raises(SearchError, match="budget must be a positive integer"):  # and still a SearchError
        TuneOptions(budget=0)


def test_obtain_table_old_keywords_and_tune_options_agree(ev) -> None:
    old = obtain_table("search", "bandit", None, ev, budget=4, objective="fitness-ce", seed=3, target_quality=50,
                       space="single", options={})
    opts = CrossvalOptions(budget=4, objective="fitness-ce", search_seed=1, target_quality=50)
    new = obtain_table("search", "bandit", None, ev, options=opts.tune_options("bandit", fold=2))
    assert timeless(new.to_dict()) == timeless(old.to_dict())
    assert new.meta["provenance"]["seed"] == 3
    assert obtain_table("fixed", "standard", 50, None) == obtain_table("fixed", "standard", 50, None, budget=1)


def test_crossval_options_object_and_keywords_give_the_same_numbers(classifier_ev, tmp_path: Path) -> None:
    methods = ["fixed:standard@50", "sorted"]
    kw = {"k": 2, "fold_seed": 1, "qualities": [20, 50, 80], "budget": 2, "objective": "fitness-ce",
          "search_seed": 2, "resamples": 100, "seed": 5}
    by_keywords = crossval(classifier_ev, methods, table_dir=tmp_path / "a", **kw)
    opts = CrossvalOptions(table_dir=tmp_path / "b", **kw)
    by_object = crossval(classifier_ev, methods, options=opts)
    assert timeless(by_object.to_dict()) == timeless(by_keywords.to_dict())
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(p.name for p in (tmp_path / "a").iterdir())
    with pytest.raises(ValueError, match="k=3 contradicts options.k=2"):
        crossval(classifier_ev, methods, options=opts, k=3)
    for bad, message in [({"k": 1}, "k must be an integer >= 2, got 1"),
                         ({"budget": 0}, "budget must be an integer >= 1, got 0"),
                         ({"target_quality": 0}, "target_quality must be an integer in 1..100, got 0"),
                         ({"objective": "best"}, "unknown objective 'best'"),
                         ({"qualities": [50, 200]}, "qualities must be integers in 1..100, got 200"),
                         ({"confidence": 1.5}, r"confidence must be a number in \(0, 1\), got 1.5"),
                         ({"resamples": 0}, "resamples must be an integer >= 1, got 0")]:
        with pytest.raises(CrossvalError, match=message):
            CrossvalOptions(**bad)
        with pytest.raises(ValueError, match=message):
            crossval(classifier_ev, methods, **bad)


def test_validate_options_object_and_keywords_give_the_same_numbers(classifier_ev) -> None:
    kw = {"qualities": [30, 50, 75], "encoders": ["libjpeg-opt"], "resamples": 100, "confidence": 0.9, "seed": 4}
    by_keywords = validate(classifier_ev, "efficientnet_lite0", indices=np.arange(6), **kw)
    opts = ValidateOptions(**kw)
    by_object = validate(classifier_ev, "efficientnet_lite0", options=opts, indices=np.arange(6))
    assert timeless(by_object.to_dict()) == timeless(by_keywords.to_dict())
    assert by_object.to_dict()["qualities"] == [30, 50, 75] and by_object.settings["qualities"] == [30, 50, 75]
    with pytest.raises(ValueError, match="seed=5 contradicts options.seed=4"):
        validate(classifier_ev, "resnet50", options=opts, seed=5)
    for bad, message in [({"qualities": [50]}, r"need at least 2 standard qualities to interpolate, got \[50\]"),
                         ({"encoders": "mozjpeg"}, "encoders must be a sequence of encoder names, got 'mozjpeg'"),
                         ({"encoders": ["jpeg2000"]}, "unknown encoder 'jpeg2000'"),
                         ({"seed": -1}, "seed must be a non-negative integer, got -1")]:
        with pytest.raises(ValidationError, match=message):
            ValidateOptions(**bad)
        with pytest.raises(ValueError, match=message):
            validate(classifier_ev, "resnet50", **bad)
