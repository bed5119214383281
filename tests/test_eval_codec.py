"""dnnjpeg.codec: exact tables, byte-identical standard JPEG, parallel backends."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dnnjpeg.evaluation.codec import Codec, as_qtable, decode, encode, roundtrip
from dnnjpeg.qtable import QTable
from dnnjpeg.testing import synthetic_image


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([np.asarray(synthetic_image(i, (64, 48))) for i in range(6)])


def test_standard_quality_is_byte_identical_to_pillow(images: np.ndarray) -> None:
    for q in (5, 50, 95):
        buf = io.BytesIO()
        Image.fromarray(images[0]).save(buf, "JPEG", quality=q)
        assert encode(images[0], q) == buf.getvalue() == encode(images[0], QTable.standard(q))


def test_custom_table_is_written_unscaled(images: np.ndarray) -> None:
    qt = QTable(list(range(1, 65)), [40] * 64, subsampling="4:4:4")
    data = encode(images[1], qt)
    with Image.open(io.BytesIO(data)) as im:
        assert list(im.quantization[0]) == list(range(1, 65))
        assert list(im.quantization[1]) == [40] * 64
    dec, n = roundtrip(images[1], qt)
    assert n == len(data) and dec.shape == images[1].shape and np.array_equal(dec, decode(data))


def test_as_qtable() -> None:
    assert as_qtable(None) is None
    assert as_qtable(50) == QTable.standard(50)
    with pytest.raises(TypeError):
        as_qtable("50")


@pytest.mark.parametrize(("workers", "backend"), [(1, "thread"), (3, "thread"), (2, "process")])
def test_backends_agree(images: np.ndarray, workers: int, backend: str) -> None:
    expected = [roundtrip(im, 30) for im in images]
    with Codec(workers, backend) as codec:
        dec, nbytes = codec.roundtrip_batch(images, 30)
        assert isinstance(dec, np.ndarray) and dec.shape == images.shape
        assert nbytes.tolist() == [n for _, n in expected]
        assert all(np.array_equal(d, e) for d, (e, _) in zip(dec, expected))
        as_list, _ = codec.roundtrip_batch(list(images), 30)
        assert isinstance(as_list, list) and np.array_equal(as_list[2], dec[2])
        assert codec.sizes(images, 30).tolist() == nbytes.tolist()


def test_none_table_passes_through(images: np.ndarray) -> None:
    out, nbytes = Codec(2).roundtrip_batch(images, None)
    assert out is images and nbytes.tolist() == [0] * len(images)


def test_sixteen_bit_tables_are_refused(images: np.ndarray) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qt = QTable([300] * 64, allow_16bit=True)
    with pytest.raises(ValueError, match="255"):
        encode(images[0], qt)


def test_encoder_objects(images: np.ndarray) -> None:
    class Optimized:
        name = "optimized"

        @property
        def meta(self) -> dict:
            return {"name": "optimized", "quality": 50}

        def to_dict(self) -> dict:
            return {"name": self.name}

        def encode(self, img: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "JPEG", optimize=True, **QTable.standard(50).save_options())
            return buf.getvalue()

    dec, nbytes = Codec(2).roundtrip_batch(images, Optimized())
    assert (nbytes < Codec(2).sizes(images, 50)).all()
    assert np.array_equal(dec, Codec(1).roundtrip_batch(images, 50)[0])  # same table: same pixels
