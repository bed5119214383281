"""Evaluator(writer=...): tables written by another encoder (trellis), standard JPEG still libjpeg's."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import dnnjpeg
from dnnjpeg.encoders import EncoderError, make_encoder
from dnnjpeg.evaluation.evaluate import Evaluator
from dnnjpeg.search import SearchError, tune
from dnnjpeg.testing import make_image_folder, tiny_classifier

CURVE = (30, 60, 90)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("writer-data"), n=6)


def _evaluator(folder, writer=None) -> Evaluator:
    return Evaluator(tiny_classifier(), folder, device="cpu", batch_size=4, cache=False, writer=writer)


def test_writer_writes_every_table_but_the_standard_anchor(folder):
    plain, written = _evaluator(folder), _evaluator(folder, "trellis")
    table = dnnjpeg.load("efficientnet_lite0")
    expected = plain.evaluate(make_encoder("trellis", table=table))
    got = written.evaluate(table)
    assert np.array_equal(got.bytes, expected.bytes) and np.array_equal(got.kl, expected.kl)
    assert np.array_equal(written.sizes(table), expected.bytes)
    assert got.bytes.sum() < plain.evaluate(table).bytes.sum()  # trellis: fewer bytes for the same table
    a, b = plain.evaluate_standard(50), written.evaluate_standard(50)
    assert np.array_equal(a.bytes, b.bytes) and np.array_equal(a.kl, b.kl)
    assert np.array_equal(plain.sizes(dnnjpeg.QTable.standard(50)), written.sizes(dnnjpeg.QTable.standard(50)))
    assert written.subset([0, 1]).writer == "trellis"
    assert pickle.loads(pickle.dumps(written)).writer == "trellis"
    assert "writer=trellis" in repr(written)


def test_unknown_writer_names_the_known_ones(folder):
    with pytest.raises(EncoderError, match="'bogus'.*trellis"):
        _evaluator(folder, "bogus")


def test_tune_records_the_writer_and_will_not_resume_with_another(folder, tmp_path):
    journal = str(tmp_path / "s.journal")
    res = tune(_evaluator(folder, "trellis"), "sorted", budget=2, objective="fitness-ce", seed=1, storage=journal,
               curve_qualities=CURVE)
    assert res.table.meta["provenance"]["writer"] == "trellis"
    with pytest.raises(SearchError, match="writer: study has 'trellis', this run has None"):
        tune(_evaluator(folder), "sorted", budget=2, objective="fitness-ce", seed=1, storage=journal,
             curve_qualities=CURVE)
    plain = tune(_evaluator(folder), "sorted", budget=2, objective="fitness-ce", seed=1,
                 storage=str(tmp_path / "plain.journal"), curve_qualities=CURVE)
    assert "writer" not in plain.table.meta["provenance"]


@pytest.mark.parametrize(
    ("writer", "used", "expected"),
    [
        (None, None, None),
        (None, "trellis", None),  # libjpeg-tuned tables written with trellis: the documented win, no note
        ("trellis", "trellis", None),
        ("trellis", None, "pass --writer trellis"),
        ("trellis", "libjpeg", "pass --writer trellis"),
        ("mozjpeg", None, "written by the mozjpeg encoder; this writes it with libjpeg"),
        ("mozjpeg", "trellis", "written by the mozjpeg encoder; this writes it with trellis"),
    ],
)
def test_compress_notes_a_table_tuned_for_another_writer(tmp_path, writer, used, expected):
    from dnnjpeg.cli.compress import writer_note
    from dnnjpeg.families import tuned_writer

    prov = {"method": "sorted", **({"writer": writer} if writer else {})}
    path = tmp_path / "t.json"
    dnnjpeg.QTable.standard(50).replace(meta={"provenance": prov}).to_json(path)
    assert tuned_writer(dnnjpeg.load(path)) == writer
    note = writer_note(str(path), None, used)
    assert note is None if expected is None else expected in note
    assert writer_note(str(tmp_path / "missing.json"), None, used) is None  # the command's own error names it
