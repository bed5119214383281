"""EvaluationStore: evaluations kept in a folder and read back bit for bit; another set-up evaluates again.

Real libjpeg round trips scored by PSNR (:class:`dnnjpeg.search.psnr.PSNREvaluator`); a subclass counts
the evaluations that reach it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.evaluation.evaluate import PER_IMAGE_FIELDS
from dnnjpeg.evaluation.store import EvaluationStore
from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos


class CountingEvaluator(PSNREvaluator):
    """A real PSNR evaluator that counts the evaluations asked of it."""

    calls = 0

    def evaluate(self, table=None, indices=None):
        self.calls += 1
        return super().evaluate(table, indices)


@pytest.fixture()
def ev() -> CountingEvaluator:
    return CountingEvaluator(synthetic_photos(4, 40, seed=3), "four")


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in PER_IMAGE_FIELDS) and a.summary() == b.summary()


def test_a_rerun_reads_the_stored_result_bit_for_bit(ev, tmp_path) -> None:
    table = QTable.standard(40).replace(subsampling="4:4:4")
    first = EvaluationStore(tmp_path, ev).evaluate(table, indices=[0, 2])
    again = EvaluationStore(tmp_path, ev)  # a new process would build a new store on the same folder
    read = again.evaluate(table.replace(meta={"name": "renamed"}), indices=np.array([0, 2]))
    assert ev.calls == 1 and again.n_read == 1 and again.n_evaluated == 0
    assert same(first, read)
    assert len(list(tmp_path.glob("*.json"))) == 1


@pytest.mark.parametrize("other", [
    {"table": 41}, {"indices": [2, 0]}, {"indices": [0, 1, 2, 3]}, {"table": "subsampling"}, {"table": None},
])
def test_another_table_or_other_images_evaluate_again(ev, tmp_path, other) -> None:
    store = EvaluationStore(tmp_path, ev)
    store.evaluate(40, indices=[0, 2])
    table = other.get("table", 40)
    if table == "subsampling":
        table = QTable.standard(40).replace(subsampling="4:4:4")
    res = store.evaluate(table, indices=other.get("indices", [0, 2]))
    assert ev.calls == 2 and store.n_read == 0
    assert same(res, PSNREvaluator(synthetic_photos(4, 40, seed=3), "four").evaluate(table, other.get("indices", [0, 2])))


def test_another_evaluator_does_not_read_this_ones_results(ev, tmp_path) -> None:
    EvaluationStore(tmp_path, ev).evaluate(50)
    other = CountingEvaluator(synthetic_photos(4, 40, seed=4), "four")  # same name, other pixels
    store = EvaluationStore(tmp_path, other)
    res = store.evaluate(50)
    assert other.calls == 1 and store.n_read == 0 and len(list(tmp_path.glob("*.json"))) == 2
    assert same(res, PSNREvaluator(synthetic_photos(4, 40, seed=4), "four").evaluate(50))


@pytest.mark.parametrize("damage", ["truncated", "other set-up", "other images"])
def test_a_damaged_or_foreign_file_is_evaluated_again_and_replaced(ev, tmp_path, damage) -> None:
    store = EvaluationStore(tmp_path, ev)
    first = store.evaluate(30)
    path, _ = store.path_for(30)
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        stored = json.loads(text)
        if damage == "other set-up":
            stored["key"]["setup"]["software"]["pillow"] = "0.0"
        else:
            stored["result"]["per_image"]["indices"] = [3, 2, 1, 0]
        path.write_text(json.dumps(stored))
    res = EvaluationStore(tmp_path, ev).evaluate(30)
    assert ev.calls == 2 and same(res, first)
    replaced, original = json.loads(path.read_text()), json.loads(text)
    del replaced["result"]["seconds"], original["result"]["seconds"]
    assert replaced == original  # replaced by the right one
    assert not list(tmp_path.glob(".*.tmp"))


def test_everything_else_is_the_wrapped_evaluators(ev, tmp_path) -> None:
    store = EvaluationStore(tmp_path / "not-yet", ev)
    assert store.n == ev.n and store.data_name == "four"
    assert np.array_equal(store.sizes(50), ev.sizes(50))
    assert not (tmp_path / "not-yet").exists()  # created on the first write


def test_an_encoder_is_known_by_what_it_writes(ev, tmp_path) -> None:
    pytest.importorskip("jpeglib", reason="mozjpeg comes with jpeglib (the trellis extra)")
    from dnnjpeg.encoders import make_encoder

    store = EvaluationStore(tmp_path, ev)
    table = QTable.standard(60).replace(subsampling="4:2:2")
    first = store.evaluate(make_encoder("mozjpeg", table=table))
    read = store.evaluate(make_encoder("mozjpeg", table=table.replace(meta={"name": "renamed"})))
    other = store.evaluate(make_encoder("mozjpeg", table=table.replace(subsampling="4:4:4")))
    assert ev.calls == 2 and store.n_read == 1 and same(first, read)
    assert other.bytes.sum() != first.bytes.sum()
