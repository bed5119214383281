"""One conformance suite for every registered search method, in every kind of search space.

The value of a table is measured for real: a photo is JPEG-encoded with it by libjpeg (Pillow),
decoded, and scored by PSNR minus a size penalty (multi-objective methods get (PSNR, bytes)).
"""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from dnnjpeg import QTable
from dnnjpeg.search import SearchContext, SearchError, available_methods, make_method, method_class, tune
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos

SPACES = ["single", "separate", "single+subsampling"]
STEPS = 7  # with budget 7: start-up, model phase and (for bayes) the final grid all run
SNAPSHOT = 4


def _photo() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return np.ascontiguousarray(skimage_data.astronaut()[::8, ::8])  # 64x64 RGB


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo()


def measure(table: QTable, img: np.ndarray, n_objectives: int) -> float | tuple[float, float]:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **table.save_options())
    size = buf.tell()
    buf.seek(0)
    dec = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)
    mse = float(np.mean((dec - img.astype(np.float64)) ** 2))
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-9))
    if n_objectives == 2:
        return float(psnr), float(size)
    return float(psnr - size / 400.0)


@functools.cache
def tiny_classifier():
    """A small seeded CNN: methods that differentiate the model (``fisher``) get a real one to work on."""
    import torch

    from dnnjpeg.evaluation.models import Classifier

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 5))
    return Classifier.from_module(net, device="cpu", name="tiny")


def new(name: str, space: str, seed: int, img: np.ndarray):
    return make_method(name, space, seed=seed, budget=STEPS,
                       context=SearchContext(images=img[None], classifier=tiny_classifier()))


def drive(method, img: np.ndarray, steps: int) -> list[QTable]:
    out = []
    for _ in range(steps):
        t = method.ask()
        method.tell(t, measure(t, img, method.n_objectives))
        out.append(t)
    return out


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", available_methods())
def test_method_conformance(name: str, space: str, photo: np.ndarray) -> None:
    # same seed -> same proposals; every proposal a valid baseline table of the space
    a = new(name, space, 11, photo)
    first = drive(a, photo, SNAPSHOT)
    snapshot = pickle.dumps(a)
    rest = drive(a, photo, STEPS - SNAPSHOT)
    run_a = first + rest
    for t in run_a:
        assert isinstance(t, QTable) and t.is_baseline
        assert all(1 <= v <= 255 for v in t.luma + t.chroma)
        assert a.space.contains(t)
        if space == "single" or space == "single+subsampling":
            assert t.luma == t.chroma
        if "+subsampling" not in space:
            assert t.subsampling == "4:2:0"
    b = new(name, space, 11, photo)
    assert drive(b, photo, STEPS) == run_a

    # pickled mid-run, the copy continues identically
    c = pickle.loads(snapshot)
    assert drive(c, photo, STEPS - SNAPSHOT) == rest

    # a fresh method replaying the history (what a resumed run does) continues identically
    d = new(name, space, 11, photo)
    for t in first:
        d.replay(t, measure(t, photo, d.n_objectives))
    assert d.n_asked == SNAPSHOT and d.n_told == SNAPSHOT
    assert drive(d, photo, STEPS - SNAPSHOT) == rest


@pytest.mark.parametrize("name", available_methods())
def test_pickled_between_ask_and_tell_continues_identically(name: str, photo: np.ndarray) -> None:
    """A method pickled with a proposal outstanding (and pickled again from the copy) still
    continues as the original does: the locks and caches of the libraries behind it are rebuilt."""
    a = new(name, "single", 5, photo)
    drive(a, photo, 2)
    pending = a.ask()
    snapshot = pickle.dumps(a)
    a.tell(pending, measure(pending, photo, a.n_objectives))
    rest = drive(a, photo, STEPS - 3)
    c = pickle.loads(pickle.dumps(pickle.loads(snapshot)))
    c.tell(pending, measure(pending, photo, c.n_objectives))
    assert drive(c, photo, STEPS - 3) == rest
    assert c.n_told == a.n_told == STEPS
    a.close()
    c.close()


@pytest.mark.parametrize("name", available_methods())
def test_different_seeds_differ_and_foreign_results_are_accepted(name: str, photo: np.ndarray) -> None:
    a = drive(new(name, "single", 1, photo), photo, 3)
    b = drive(new(name, "single", 2, photo), photo, 3)
    assert (a != b) == method_class(name).stochastic
    m = new(name, "single", 1, photo)
    other = QTable.standard(50)
    other = QTable(other.luma)  # single space: one table for all components
    m.tell(other, measure(other, photo, m.n_objectives))  # a table it never proposed (another worker's)
    m.tell(m.ask(), None)  # a pruned / failed evaluation
    assert m.n_told == 2 and m.space.contains(m.ask())


@pytest.mark.parametrize("name", available_methods())
def test_budget_respected(name: str, tmp_path) -> None:
    ev = PSNREvaluator(synthetic_photos(2, 32, seed=3))
    # a PSNR evaluator has no model to differentiate: Fisher-weighted methods design for squared error
    opts = {"weights": "mse"} if method_class(name).defaults.get("weights") == "fisher" else None
    res = tune(ev, name, budget=5, objective="fitness-ce", storage=str(tmp_path / "s.journal"), curve_qualities=(20, 50, 80),
               options=opts)
    assert len(res.trials) == 5 and res.n_complete == 5
    assert [t["number"] for t in res.trials] == [0, 1, 2, 3, 4]
    res2 = tune(ev, name, budget=5, objective="fitness-ce", storage=str(tmp_path / "s.journal"), curve_qualities=(20, 50, 80),
                options=opts)
    assert len(res2.trials) == 5  # nothing more to do


def study_tables(storage: str, study: str) -> list[QTable]:
    from dnnjpeg.search.study import load_study, trial_table

    trials = load_study(storage, study).get_trials(deepcopy=False)
    return [trial_table(t) for t in sorted(trials, key=lambda t: t.number)]


@pytest.mark.parametrize("name", [n for n in available_methods() if not method_class(n).schedules_by_budget])
def test_extending_the_budget_equals_a_fresh_run(name: str, tmp_path) -> None:
    """What lets a budget-30 family's journals be continued to budget 100 (docs/family.md)."""
    ev = PSNREvaluator(synthetic_photos(2, 32, seed=3))
    opts = {"weights": "mse"} if method_class(name).defaults.get("weights") == "fisher" else None
    kw = {"objective": "fitness-ce", "curve_qualities": (20, 50, 80), "options": opts}
    extended, fresh = str(tmp_path / "extended.journal"), str(tmp_path / "fresh.journal")
    tune(ev, name, budget=3, storage=extended, **kw)
    longer = tune(ev, name, budget=7, storage=extended, **kw)
    once = tune(ev, name, budget=7, storage=fresh, **kw)
    assert longer.n_complete == once.n_complete == 7
    assert study_tables(extended, longer.study_name) == study_tables(fresh, once.study_name)


@pytest.mark.parametrize("name", [n for n in available_methods() if method_class(n).schedules_by_budget])
def test_budget_scheduled_methods_propose_by_budget(name: str, photo: np.ndarray) -> None:
    context = SearchContext(images=photo[None], classifier=tiny_classifier())
    short, long = (make_method(name, "single", seed=0, budget=b, context=context) for b in (8, 400))
    assert drive(short, photo, 8) != drive(long, photo, 8)


@pytest.mark.parametrize("name", available_methods())
def test_bad_values_and_options_are_rejected(name: str, photo: np.ndarray) -> None:
    m = new(name, "single", 0, photo)
    t = m.ask()
    with pytest.raises(SearchError):
        m.tell(t, float("nan") if m.n_objectives == 1 else (1.0,))
    with pytest.raises(SearchError, match="unknown option"):
        make_method(name, "single", seed=0, context=SearchContext(images=photo[None], classifier=tiny_classifier()),
                    no_such_option=1)
    with pytest.raises(SearchError, match="seed"):
        make_method(name, "single", seed=-1, context=SearchContext(images=photo[None], classifier=tiny_classifier()))
    assert method_class(name).name == name
