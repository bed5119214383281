"""Bits of baseline JPEG (dnnjpeg.search.design.jpegbits) against the files libjpeg writes through Pillow."""

from __future__ import annotations

import numpy as np
import pytest

from dnnjpeg import QTable
from dnnjpeg.evaluation.codec import encode
from dnnjpeg.search.design.fisher_weights import block_coefficients
from dnnjpeg.search.design.jpegbits import block_bits, coefficient_bits, standard_code_lengths
from dnnjpeg.search.design.rdopt import rd_curves


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return skimage_data.astronaut()[:256, :192]


def _scan_bytes(jpeg: bytes) -> int:
    """Entropy-coded bytes of a single-scan JPEG without the 0x00 stuffed after each 0xFF."""
    i = 2
    while jpeg[i + 1] != 0xDA:
        i += 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
    start = i + 2 + int.from_bytes(jpeg[i + 2 : i + 4], "big")
    scan = jpeg[start : jpeg.rindex(b"\xff\xd9")]
    return len(scan) - scan.count(b"\xff\x00")


def test_code_lengths_are_the_standard_tables() -> None:
    lengths = standard_code_lengths()
    # ITU-T T.81 tables K.3 and K.4: DC code lengths by size category
    assert lengths["dc", "luma"].tolist() == [2, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 9]
    assert lengths["dc", "chroma"].tolist() == [2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    # tables K.5 and K.6: EOB, ZRL and the shortest AC codes
    luma, chroma = lengths["ac", "luma"], lengths["ac", "chroma"]
    assert (luma[0x00], luma[0xF0], luma[0x01], luma[0x02], luma[0x03]) == (4, 11, 2, 2, 3)
    assert (chroma[0x00], chroma[0xF0], chroma[0x01], chroma[0x02]) == (2, 10, 2, 3)
    # a complete prefix code over the 162 symbols of each table (Kraft sum 1 minus the all-ones code)
    for table in (luma, chroma):
        assert (table > 0).sum() == 162
        assert float((2.0 ** -table[table > 0]).sum()) == pytest.approx(1 - 2.0**-16)


@pytest.mark.parametrize("table", [QTable.standard(10), QTable.standard(50), QTable.standard(95),
                                   QTable(np.random.default_rng(0).integers(1, 60, 64), np.random.default_rng(1)
                                          .integers(1, 99, 64))], ids=["q10", "q50", "q95", "random"])
def test_block_bits_are_the_entropy_coded_size_libjpeg_writes(photo: np.ndarray, table: QTable, tmp_path) -> None:
    jpeglib = pytest.importorskip("jpeglib")
    table = table.replace(subsampling="4:4:4")  # one block per component per MCU: the DC order is raster order
    jpeg = encode(photo, table)  # what the evaluator writes: Pillow, libjpeg's standard Huffman tables
    (tmp_path / "x.jpg").write_bytes(jpeg)
    levels = jpeglib.read_dct(str(tmp_path / "x.jpg"))  # libjpeg's own quantized levels (its DCT rounds differently)
    bits = 0.0
    for plane, steps, component in ((levels.Y, table.luma, "luma"), (levels.Cb, table.chroma, "chroma"),
                                    (levels.Cr, table.chroma, "chroma")):  # each with its own DC predictor
        coefficients = plane.reshape(-1, 64).astype(np.float64) * np.asarray(steps)  # rows of 8x8 blocks, natural
        bits += block_bits(coefficients, steps, component).sum()
    # the scan is padded with 1 bits to a whole byte
    assert _scan_bytes(jpeg) == int(np.ceil(bits / 8))


def test_coefficient_bits_at_the_reference_are_the_block_bits_without_eob(photo: np.ndarray) -> None:
    y, _ = block_coefficients(photo[None])
    for reference in (QTable.standard(20).luma, QTable.standard(80).luma):
        per_step = coefficient_bits(y, reference, "luma", steps=np.arange(1, 256), max_blocks=None)
        at_reference = per_step[np.arange(64), np.asarray(reference) - 1].sum()
        ends_on_zero = np.rint(y[:, 63] / reference[63]) == 0
        eobs = standard_code_lengths()["ac", "luma"][0x00] * ends_on_zero.sum()
        assert at_reference == pytest.approx(block_bits(y, reference, "luma").sum() - eobs)


def test_runs_make_isolated_coefficients_dear(photo: np.ndarray) -> None:
    # a coefficient after a long run of zeros costs more than the same level right after the DC
    coef = np.zeros((2, 64), np.float32)
    coef[0, 1], coef[1, 63] = 30.0, 30.0
    bits = coefficient_bits(coef, [10] * 64, "luma", steps=[10])
    assert bits[63, 0] > 3 * bits[1, 0]  # 3 ZRLs and a run-14 symbol against a run-0 symbol


def test_rd_curves_with_a_reference_price_in_huffman_bits(photo: np.ndarray) -> None:
    y, _ = block_coefficients(photo[None])
    ref = QTable.standard(40).luma
    curves = rd_curves(y, np.ones(64), steps=np.array([2, 9, 40]), reference=ref, max_blocks=None)
    np.testing.assert_allclose(curves.rate, coefficient_bits(y, ref, "luma", steps=[2, 9, 40], max_blocks=None))
    with pytest.raises(ValueError, match="component must be one of luma, chroma"):
        rd_curves(y, np.ones(64), reference=ref, component="cb")


def test_bad_input_names_the_value() -> None:
    coef = np.zeros((3, 64), np.float32)
    with pytest.raises(ValueError, match="reference must be 64 steps"):
        coefficient_bits(coef, [8] * 63, steps=[1, 2])
    with pytest.raises(ValueError, match="steps must be steps >= 1"):
        coefficient_bits(coef, [8] * 64, steps=[0, 2])
    with pytest.raises(ValueError, match="coefficients must be"):
        block_bits(np.zeros((3, 63)), [8] * 64)
    with pytest.raises(ValueError, match="component must be one of"):
        block_bits(coef, [8] * 64, "cr")
