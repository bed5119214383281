"""dnnjpeg.transforms.functional.dnnjpeg: every input kind equals a plain Pillow round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from PIL import Image
from torchvision import tv_tensors

import dnnjpeg
from dnnjpeg import QTable
from dnnjpeg.families import Family
from dnnjpeg.transforms.functional import dnnjpeg as F_dnnjpeg
from dnnjpeg.transforms.functional import jpeg_options

RESNET50 = dnnjpeg.load("resnet50")


def pillow_roundtrip(hwc: np.ndarray, qt: QTable, subsampling: str | None = None) -> np.ndarray:
    """The reference: Pillow save with the table's qtables, Pillow load, as an HWC (or HW) array."""
    buf = io.BytesIO()
    opts = qt.save_options()
    if subsampling is not None:
        opts["subsampling"] = subsampling
    Image.fromarray(hwc).save(buf, "JPEG", **opts)
    buf.seek(0)
    return np.array(Image.open(buf))


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A 37x53 RGB image (odd size: partial MCUs) with gradients, edges and noise."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:37, 0:53]
    base = np.stack([xx * 4, yy * 6, (xx + yy) * 3], axis=-1).astype(np.float64)
    base[10:20, 15:30] = [250, 20, 90]
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))


def test_chw_uint8_equals_pillow_roundtrip(rgb):
    out = F_dnnjpeg(chw(rgb), "resnet50")
    assert out.dtype == torch.uint8 and out.shape == (3, 37, 53) and out.is_contiguous()
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, RESNET50))
    assert not torch.equal(out, chw(rgb)), "the round trip must actually change a noisy image"


def test_non_contiguous_input(rgb):
    view = torch.from_numpy(rgb).permute(2, 0, 1)  # channels-last strides
    np.testing.assert_array_equal(F_dnnjpeg(view, RESNET50).permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, RESNET50))


def test_nchw_batch_and_extra_leading_dims(rgb):
    imgs = [rgb, rgb[::-1].copy(), rgb[:, ::-1].copy(), 255 - rgb]
    batch = torch.stack([chw(a) for a in imgs])
    out = F_dnnjpeg(batch, RESNET50)
    assert out.shape == batch.shape
    for i, a in enumerate(imgs):
        np.testing.assert_array_equal(out[i].permute(1, 2, 0).numpy(), pillow_roundtrip(a, RESNET50))
    out5 = F_dnnjpeg(batch.reshape(2, 2, 3, 37, 53), RESNET50)
    assert torch.equal(out5.reshape(batch.shape), out)


def test_empty_batch():
    x = torch.zeros((0, 3, 8, 8), dtype=torch.uint8)
    assert F_dnnjpeg(x, "resnet50").shape == (0, 3, 8, 8)


def test_grayscale_tensor_is_a_one_component_jpeg(rgb):
    gray = rgb[:, :, 1].copy()
    out = F_dnnjpeg(torch.from_numpy(gray)[None], RESNET50)
    assert out.shape == (1, 37, 53)
    np.testing.assert_array_equal(out[0].numpy(), pillow_roundtrip(gray, RESNET50))


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_pil_input(rgb, mode):
    im = Image.fromarray(rgb).convert(mode)
    out = F_dnnjpeg(im, RESNET50)
    assert isinstance(out, Image.Image) and out.mode == mode and out.size == im.size
    np.testing.assert_array_equal(np.asarray(out), pillow_roundtrip(np.asarray(im), RESNET50))


def test_pil_rgba_is_flattened_by_to_jpeg_mode(rgb):
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA")
    out = F_dnnjpeg(rgba, RESNET50)
    assert out.mode == "RGB"
    flat = np.asarray(dnnjpeg.to_jpeg_mode(rgba))
    np.testing.assert_array_equal(np.asarray(out), pillow_roundtrip(flat, RESNET50))


def test_tv_tensor_types_kept(rgb):
    img = tv_tensors.Image(chw(rgb))
    out = F_dnnjpeg(img, RESNET50)
    assert type(out) is tv_tensors.Image
    plain = out.as_subclass(torch.Tensor)
    np.testing.assert_array_equal(plain.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, RESNET50))
    video = tv_tensors.Video(torch.stack([chw(rgb), chw(255 - rgb)]))
    vout = F_dnnjpeg(video, RESNET50)
    assert type(vout) is tv_tensors.Video and vout.shape == video.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_float_tensor_conversion(rgb, dtype):
    """Documented rule: round(clamp(x, 0, 1) * 255) -> JPEG -> y / 255 in the input dtype."""
    x = chw(rgb).to(dtype) / 255
    out = F_dnnjpeg(x, RESNET50)
    assert out.dtype == dtype and out.shape == x.shape
    expected = torch.from_numpy(pillow_roundtrip(rgb, RESNET50)).permute(2, 0, 1).to(torch.float64) / 255
    torch.testing.assert_close(out.to(torch.float64), expected.to(dtype).to(torch.float64), rtol=0, atol=0)


def test_float_values_outside_unit_range_are_clamped(rgb):
    x = chw(rgb).float() / 255
    x[:, :5] = 2.0
    x[:, 5:10] = -1.0
    ref = chw(rgb).clone()
    ref[:, :5] = 255
    ref[:, 5:10] = 0
    expected = F_dnnjpeg(ref, RESNET50).float() / 255
    assert torch.equal(F_dnnjpeg(x, RESNET50), expected)


def test_subsampling_override(rgb):
    out = F_dnnjpeg(chw(rgb), "resnet50", subsampling="4:4:4")
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, RESNET50, "4:4:4"))
    assert not torch.equal(out, F_dnnjpeg(chw(rgb), "resnet50"))


def test_family_member_and_json_path(rgb, tmp_path):
    out = F_dnnjpeg(chw(rgb), "standard", quality=30)
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, QTable.standard(30)))
    path = tmp_path / "flat.json"
    flat = QTable([12] * 64, [20] * 64, subsampling="4:2:2")
    flat.to_json(path)
    out = F_dnnjpeg(chw(rgb), str(path))
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, flat))
    fam = Family("tiny", "two members", {40: QTable.standard(40), 60: QTable.standard(60)}, 40)
    fam_path = tmp_path / "tiny.json"
    fam_path.write_text(__import__("json").dumps(fam.to_dict()))
    out = F_dnnjpeg(chw(rgb), fam_path, quality=60)
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), pillow_roundtrip(rgb, QTable.standard(60)))


def test_jpeg_options_never_pass_quality():
    opts = jpeg_options("standard", quality=75)
    assert set(opts) == {"qtables", "subsampling"}
    assert opts["qtables"] == [list(QTable.standard(75).luma), list(QTable.standard(75).chroma)]


@pytest.mark.parametrize(
    ("shape", "match"),
    [((4, 8, 8), r"\(4, 8, 8\)"), ((2, 2, 8, 8), r"\(2, 2, 8, 8\)"), ((8, 8), r"\(8, 8\)")],
)
def test_bad_shapes_name_the_shape(shape, match):
    with pytest.raises(ValueError, match=match):
        F_dnnjpeg(torch.zeros(shape, dtype=torch.uint8), "resnet50")


def test_bad_dtype_and_type():
    with pytest.raises(TypeError, match="int32"):
        F_dnnjpeg(torch.zeros((3, 8, 8), dtype=torch.int32), "resnet50")
    with pytest.raises(TypeError, match="ndarray"):
        F_dnnjpeg(np.zeros((8, 8, 3), np.uint8), "resnet50")


def test_nan_is_an_error():
    x = torch.zeros((3, 8, 8))
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        F_dnnjpeg(x, "resnet50")


def test_bad_table_arguments():
    x = torch.zeros((3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="no-such-table"):
        F_dnnjpeg(x, "no-such-table")
    with pytest.raises(ValueError, match="quality 90"):
        F_dnnjpeg(x, "resnet50", quality=90)
    with pytest.raises(ValueError, match="4:1:1"):
        F_dnnjpeg(x, "resnet50", subsampling="4:1:1")
    with pytest.warns(dnnjpeg.SixteenBitTableWarning):
        wide = QTable([300] * 64, allow_16bit=True)
    with pytest.raises(ValueError, match="above 255"):
        F_dnnjpeg(x, wide)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_returned_on_its_device(rgb):
    x = chw(rgb)
    for inp in (x, x.float() / 255, tv_tensors.Image(x)):
        out = F_dnnjpeg(inp.to("cuda"), RESNET50)
        assert out.is_cuda and out.dtype == inp.dtype and type(out) is type(inp)
        assert torch.equal(out.cpu(), F_dnnjpeg(inp, RESNET50))
