"""The search (``choose``, ``encode_for_model``): real encoders and real torch models (a tiny random net for the
mechanics; EfficientNet-Lite0 on the dev photos, marked slow, for the real thing)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dnnjpeg.ratecontrol import Criterion, RateControl, choose, encode_for_model, evaluate_rungs, get_ladder
from dnnjpeg.testing import synthetic_image, tiny_classifier

LADDER = "standard:10-90:10"


@pytest.fixture(scope="module")
def tiny():
    return tiny_classifier(num_classes=10, input_size=64)


@pytest.fixture(scope="module")
def tiny2():
    return tiny_classifier(num_classes=10, seed=1, input_size=48)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [synthetic_image(i, (140 + 4 * i, 110)) for i in range(10)]


@pytest.fixture(scope="module")
def table(images, tiny, tiny2):
    """One image per model call, as in the searches below with ``batch_size=1``: bit-identical logits (a CPU
    convolution's last bits can depend on the batch, and top-k sets of a random net have near-ties)."""
    return evaluate_rungs(images, LADDER, [tiny, tiny2], batch_size=1)


def _tau(table, model) -> float:
    return float(np.median(table.kl[model]))


def _verified(choice, held_row: np.ndarray, ladder: str = LADDER) -> bool:
    """Held: the chosen rung held and the rung below it (if any) failed, both evaluated.  Not held: the
    top rung was evaluated and failed."""
    labels = get_ladder(ladder).labels
    j = choice.index
    if not choice.held:
        return choice.rung == labels[-1] and labels[-1] in choice.tried and not held_row[-1]
    below_failed = j == 0 or (not held_row[j - 1] and labels[j - 1] in choice.tried)
    return bool(held_row[j]) and choice.rung in choice.tried and below_failed


def _monotone(row: np.ndarray) -> bool:
    """Fails up to some rung, holds from there on."""
    return bool(np.all(row[1:] >= row[:-1]))


def test_choose_returns_verified_boundaries_and_counts_evaluations(images, tiny, table):
    crit = Criterion(_tau(table, tiny.name))
    rc = RateControl(models=(tiny,), criterion=crit, ladder=LADDER, batch_size=4)
    choices = choose(images, rc, classifiers=[tiny])
    held = evaluate_rungs(images, LADDER, [tiny]).held(crit)
    assert len(choices) == len(images)
    assert all(c.evaluations == 1 + len(c.tried) == 1 + c.search_evaluations for c in choices)
    assert all(c.nbytes == len(c.data) and not c.kept_original for c in choices)
    assert all(c.data == get_ladder(LADDER)[c.index].encode(im) for c, im in zip(choices, images))
    assert all(_verified(c, row) for c, row in zip(choices, held))
    monotone = [k for k, row in enumerate(held) if _monotone(row)]
    assert len(monotone) >= 3
    lowest = np.where(held.any(axis=1), held.argmax(axis=1), -1)
    assert [choices[k].index if choices[k].held else -1 for k in monotone] == [int(lowest[k]) for k in monotone]


def test_no_rung_holds_keeps_the_top_rung_or_the_smaller_original(images, tiny):
    rc = RateControl(models=(tiny,), criterion=Criterion(0.0), ladder=LADDER)
    top = get_ladder(LADDER)[-1]
    c = choose(images[:1], rc, classifiers=[tiny])[0]
    assert (c.rung, c.held, c.kept_original, c.data) == ("q90", False, False, top.encode(images[0]))
    small = io.BytesIO()
    images[0].save(small, "JPEG", quality=5)
    kept = choose(images[:1], rc, classifiers=[tiny], sources=[small.getvalue()])[0]
    assert (kept.rung, kept.kept_original, kept.data, kept.held) == (None, True, small.getvalue(), True)
    assert kept.kl == {tiny.name: 0.0} and kept.evaluations == 1 + kept.search_evaluations
    assert kept.search_evaluations == 0  # every rung is larger than the source: no model pass spent on one


def test_a_large_source_does_not_change_the_choice(images, tiny, table):
    rc = RateControl(models=(tiny,), criterion=Criterion(_tau(table, tiny.name)), ladder=LADDER)
    big = [b"\xff" * 10**6] * 3
    assert [c.rung for c in choose(images[:3], rc, classifiers=[tiny], sources=big)] == [
        c.rung for c in choose(images[:3], rc, classifiers=[tiny])]


def test_no_images_and_mismatched_arguments(images, tiny):
    rc = RateControl(models=(tiny,), criterion=Criterion(0.05), ladder=LADDER)
    assert choose([], rc, classifiers=[tiny]) == []
    with pytest.raises(ValueError, match="^sources"):
        choose(images[:2], rc, classifiers=[tiny], sources=[None])
    with pytest.raises(ValueError, match="^classifiers"):
        choose(images[:2], rc, classifiers=[tiny, tiny])


def test_min_quality_floor(images, tiny):
    rc = RateControl(models=(tiny,), criterion=Criterion(10.0), ladder=LADDER, min_quality=55)
    choices = choose(images[:3], rc, classifiers=[tiny], workers=1)
    assert [(c.rung, c.index) for c in choices] == [("q60", 5)] * 3


def test_every_model_must_hold(images, tiny, tiny2, table):
    crit = Criterion(min(_tau(table, tiny.name), _tau(table, tiny2.name)))
    rc = RateControl(models=(tiny, tiny2), criterion=crit, ladder=LADDER, batch_size=1)
    held = table.held(crit)
    choices = choose(images, rc, classifiers=[tiny, tiny2])
    assert all(set(c.kl) == {tiny.name, tiny2.name} for c in choices)
    assert all(_verified(c, row) for c, row in zip(choices, held))
    assert all(v <= crit.max_kl for c in choices if c.held for v in c.kl.values())
    assert all(len(c.tried) + 2 <= c.evaluations <= 2 * (len(c.tried) + 1) for c in choices)
    # a second model only runs where the first held: fewer passes than two per candidate
    assert sum(c.evaluations for c in choices) < sum(2 * (len(c.tried) + 1) for c in choices)


def test_keep_top1_and_top_k(images, tiny, table):
    for crit in (Criterion(10.0, keep_top1=True), Criterion(10.0, top_k=3)):
        rc = RateControl(models=(tiny,), criterion=crit, ladder=LADDER, batch_size=1)
        held = table.held(crit, [tiny.name])
        choices = choose(images, rc, classifiers=[tiny])
        assert all(_verified(c, row) for c, row in zip(choices, held))


def test_encode_for_model_and_record(images, tiny, table):
    c = encode_for_model(images[0], tiny, max_kl=_tau(table, tiny.name), ladder=LADDER)
    rec = c.to_record()
    assert "data" not in rec and rec["rung"] == c.rung and rec["evaluations"] == c.evaluations
    assert rec["tried"] == list(c.tried)
    import json

    json.dumps(rec)


# -- the search itself, replayed on tables (no model) ------------------------------------------
def _monotone_table(n: int, r: int, seed: int):
    from dnnjpeg.ratecontrol import RungTable

    rng = np.random.default_rng(seed)
    start = rng.uniform(-6, 3, (n, 1))                       # log KL at the bottom rung
    slope = rng.uniform(0.1, 1.2, (n, 1))
    steps = np.cumsum(rng.uniform(0.2, 1.8, (n, r)), axis=1)  # irregular but decreasing log KL
    kl = np.exp(start - slope * steps)
    nbytes = np.cumsum(rng.integers(100, 900, (n, r)), axis=1)
    zeros = np.zeros((n, r), dtype=np.int64)
    return RungTable(tuple(f"q{q}" for q in range(r)), nbytes, {"m": kl}, {"m": zeros}, {"m": np.zeros(n, int)})


@pytest.mark.parametrize("strategy", ["bisect", "gallop", "predict"])
@pytest.mark.parametrize("seed", [0, 1])
def test_search_equals_exhaustive_when_kl_falls_with_quality(strategy, seed):
    from dnnjpeg.ratecontrol._simulate import answers, simulate

    table = _monotone_table(300, 18, seed)
    for tau in (0.001, 0.05, 0.3):
        crit = Criterion(tau)
        states = simulate(table, crit, strategy=strategy, window=16)
        assert np.array_equal(answers(states), table.smallest_holding(crit))
        assert max(len(s.tried) for s in states) <= 18


def test_predict_needs_fewer_evaluations_than_bisection_on_smooth_tables():
    from dnnjpeg.ratecontrol._simulate import simulate

    table = _monotone_table(400, 18, 2)
    mean = {s: np.mean([len(st.tried) for st in simulate(table, Criterion(0.05), strategy=s)])
            for s in ("bisect", "predict")}
    assert mean["predict"] < mean["bisect"]


def test_search_skips_rungs_not_smaller_than_the_source():
    from dnnjpeg.ratecontrol._simulate import answers, simulate

    table = _monotone_table(50, 18, 3)
    src = table.nbytes[:, 9] + 1                 # rungs 10.. are not smaller than the source
    states = simulate(table, Criterion(0.05), sources_nbytes=src.tolist())
    assert all(max(s.tried, default=0) <= 9 for s in states)   # no model pass on a rung >= the source
    held = table.held(Criterion(0.05))[:, :10]
    want = np.where(held.any(axis=1), held.argmax(axis=1), -1)
    assert np.array_equal(answers(states), want)


# -- EfficientNet-Lite0 on real photos ---------------------------------------------------------
@pytest.fixture(scope="module")
def lite0():
    from dnnjpeg.ratecontrol import load_classifiers

    return load_classifiers(RateControl(device="cpu"))[0]


@pytest.fixture(scope="module")
def dev_photos(dev_data):
    from dnnjpeg.evaluation.data import load_dataset

    files = load_dataset(dev_data).files[::125][:4]
    return [Image.open(f).convert("RGB") for f in files], [f.read_bytes() for f in files]


@pytest.mark.slow
@pytest.mark.needs_data
def test_lite0_search_on_dev_photos_matches_exhaustive(lite0, dev_photos):
    images, _ = dev_photos
    crit = Criterion(0.05)
    ladder = "standard:10-90:20"
    rc = RateControl(criterion=crit, ladder=ladder, device="cpu", batch_size=1)
    choices = choose(images, rc, classifiers=[lite0])
    held = evaluate_rungs(images, ladder, [lite0], batch_size=1).held(crit)
    assert all(_verified(c, row, ladder) for c, row in zip(choices, held))
    monotone = [k for k, row in enumerate(held) if _monotone(row)]
    lowest = np.where(held.any(axis=1), held.argmax(axis=1), -1)
    assert [choices[k].index if choices[k].held else -1 for k in monotone] == [int(lowest[k]) for k in monotone]
    assert all(c.evaluations == 1 + len(c.tried) for c in choices)
    assert np.mean([c.evaluations for c in choices]) < 1 + len(get_ladder(ladder))


@pytest.mark.slow
@pytest.mark.needs_data
def test_lite0_encode_for_model_with_the_source_jpeg(lite0, dev_photos):
    images, sources = dev_photos
    c = encode_for_model(images[0], lite0, max_kl=0.05, source=sources[0], device="cpu")
    assert c.nbytes <= len(sources[0]) and c.nbytes == len(c.data)
    decoded = Image.open(io.BytesIO(c.data))
    assert decoded.size == images[0].size and "progressive" not in decoded.info
    assert c.kept_original or (c.held and c.kl[lite0.name] <= 0.05)


def test_kl_model_learns_an_additive_log_kl():
    from dnnjpeg.ratecontrol import KLModel

    rng = np.random.default_rng(4)
    f = -0.4 * np.arange(10) + 0.3 * np.sin(np.arange(10))
    model = KLModel([10 * (i + 1) for i in range(10)])
    for _ in range(300):
        c, x = rng.normal(0, 1), rng.normal(0, 1)
        rungs = rng.choice(10, 3, replace=False)
        model.add(x, [(int(r), 2.0 + 1.5 * x + c * 0.3 + f[r] + rng.normal(0, 0.2)) for r in rungs], [])
    model.fit()
    assert np.allclose(model.f - model.f.mean(), f - f.mean(), atol=0.1)
    assert model.b == pytest.approx(1.5, abs=0.15) and np.all(model.sd < 0.4)
    mu, var = model.posterior(0.0, [(5, 2.0 + f[5])])
    assert model.p_hold(mu, var, 9, 2.0 + f[9] + 1.0) > 0.9 > 0.1 > model.p_hold(mu, var, 0, 2.0 + f[0] - 1.0)


def test_a_kl_model_passed_to_successive_calls_keeps_learning(images, tiny, table):
    from dnnjpeg.ratecontrol import KLModel

    rc = RateControl(models=(tiny,), criterion=Criterion(_tau(table, tiny.name)), ladder=LADDER, batch_size=4)
    model = KLModel()
    choose(images[:5], rc, classifiers=[tiny], kl_model=model)   # a model of another length: replaced, not used
    assert model.images == []
    model = KLModel([r.quality for r in get_ladder(LADDER)])
    choose(images[:5], rc, classifiers=[tiny], kl_model=model)
    choose(images[5:], rc, classifiers=[tiny], kl_model=model)
    assert len(model.images) == len(images)


def test_stop_threshold_trades_bytes_for_evaluations():
    from dnnjpeg.ratecontrol._policy import Thresholds
    from dnnjpeg.ratecontrol._simulate import answers, simulate

    table = _monotone_table(300, 18, 5)
    crit = Criterion(0.05)
    verified = simulate(table, crit)
    eager = simulate(table, crit, thresholds=Thresholds(stop=0.5))
    assert np.array_equal(answers(verified), table.smallest_holding(crit))
    assert sum(len(s.tried) for s in eager) < sum(len(s.tried) for s in verified)
    assert np.all(answers(eager) >= answers(verified))  # it only ever stops higher, on a rung that held


def test_unknown_strategy():
    from dnnjpeg.ratecontrol._policy import Policy

    with pytest.raises(ValueError, match="strategy must be one of"):
        Policy(5, 0.05, "random")


@pytest.mark.parametrize("strategy", ["bisect", "gallop", "predict"])
def test_on_noisy_tables_the_answer_is_a_verified_boundary_in_few_probes(strategy):
    from dnnjpeg.ratecontrol import RungTable
    from dnnjpeg.ratecontrol._simulate import simulate

    rng = np.random.default_rng(6)
    n, r = 400, 18
    kl = np.exp(rng.normal(-3, 2.5, (n, r)) - 0.2 * np.arange(r))    # KL far from monotone in the rung
    zeros = np.zeros((n, r), dtype=np.int64)
    table = RungTable(tuple(f"q{q}" for q in range(r)), np.cumsum(np.full((n, r), 100), axis=1), {"m": kl},
                      {"m": zeros}, {"m": np.zeros(n, int)})
    held = table.held(Criterion(0.05))
    states = simulate(table, Criterion(0.05), strategy=strategy, window=8)
    found = [s for s in states if s.hi < r]
    assert all(held[i, s.hi] and s.hi in s.tried for i, s in enumerate(states) if s.hi < r)
    assert all(s.hi == 0 or (s.hi - 1 in s.tried and s.lo == s.hi - 1) for s in found)
    assert all(s.lo == r - 1 and r - 1 in s.tried for s in states if s.hi == r)   # nothing held: top rung failed
    assert max(len(s.tried) for s in states) <= 4 + 2 * int(np.ceil(np.log2(r + 1)))
