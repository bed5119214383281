"""Fisher weights (dnnjpeg.search.design.fisher_weights): the random-sign estimate against the exact Fisher diagonal, and the
coefficients against the ones libjpeg quantizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dnnjpeg.evaluation.models import Classifier
from dnnjpeg.search.design.dct import block_dct, rgb_to_ycbcr, ycbcr_to_rgb
from dnnjpeg.search.design.fisher_weights import block_coefficients, fisher_statistics, float_preprocess


def tiny_classifier(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 5, padding=2), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(96, 7))
    return Classifier.from_module(net, device="cpu", name="tiny")


def images(n: int = 2, size: int = 32) -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    photo = skimage_data.astronaut()
    return np.stack([photo[100 * i : 100 * i + size * 4 : 4, 150 : 150 + size * 4 : 4] for i in range(n)])


def exact_fisher(clf: Classifier, img: np.ndarray, factors: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_y p_y (d log p_y / d c)^2 by one backward pass per class (luma, chroma at ``factors``)."""
    fy, fx = factors
    ycc = rgb_to_ycbcr(torch.from_numpy(img[None].astype(np.float32)).permute(0, 3, 1, 2))
    y = ycc[:, 0].clone().requires_grad_(True)
    z = torch.zeros((1, 2, img.shape[0] // fy, img.shape[1] // fx), requires_grad=True)  # perturbs downsampled chroma
    up = F.interpolate(z, scale_factor=(fy, fx), mode="bilinear", align_corners=False) if (fy, fx) != (1, 1) else z
    logp = F.log_softmax(clf.module(float_preprocess(clf)(ycbcr_to_rgb(torch.cat([y[:, None], ycc[:, 1:] + up], 1)))), 1)[0]
    p = logp.detach().exp()
    fy_, fc_ = 0.0, 0.0
    for k in range(len(p)):
        gy, gz = torch.autograd.grad(logp[k], [y, z], retain_graph=True)
        fy_ = fy_ + p[k] * block_dct(gy).reshape(-1, 64) ** 2
        fc_ = fc_ + p[k] * block_dct(gz[0]).reshape(-1, 64) ** 2
    return fy_, fc_


@pytest.mark.parametrize(
    "subsampling,factors", [pytest.param("4:4:4", (1, 1), marks=pytest.mark.slow), ("4:2:0", (2, 2))]  # 4:4:4: ~11 s
)
def test_random_sign_estimate_converges_to_the_exact_fisher_diagonal(subsampling: str, factors: tuple[int, int]) -> None:
    clf = tiny_classifier()
    img = images(1)
    st = fisher_statistics(clf, img, (subsampling,), draws=400)[subsampling]
    ey, ec = exact_fisher(clf, img[0], factors)
    # per frequency, summed over blocks: 400 draws leave a few percent of noise
    np.testing.assert_allclose(st.luma_weights.sum(0), ey.sum(0).numpy(), rtol=0.25, atol=1e-3 * float(ey.sum(0).max()))
    np.testing.assert_allclose(st.chroma_weights.sum(0), ec.sum(0).numpy(), rtol=0.25, atol=1e-3 * float(ec.sum(0).max()))
    assert np.corrcoef(st.luma_weights.ravel(), ey.numpy().ravel())[0, 1] > 0.95


def test_one_pass_serves_every_subsampling_and_is_seeded() -> None:
    clf = tiny_classifier()
    imgs = images(3)
    both = fisher_statistics(clf, imgs, ("4:2:0", "4:4:4"), seed=5)
    alone = fisher_statistics(clf, imgs, ("4:2:0",), seed=5)["4:2:0"]
    np.testing.assert_allclose(both["4:2:0"].chroma_weights, alone.chroma_weights, rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(both["4:2:0"].luma_weights, both["4:4:4"].luma_weights)
    assert both["4:2:0"].chroma_weights.shape == (3 * 2 * 4, 64)  # 2 planes of 16x16 -> 2x2 blocks each
    assert both["4:4:4"].chroma_weights.shape == (3 * 2 * 16, 64)
    other = fisher_statistics(clf, imgs, ("4:2:0",), seed=6)["4:2:0"]
    assert not np.array_equal(other.luma_weights, alone.luma_weights)


def test_coefficients_are_what_libjpeg_quantizes(tmp_path) -> None:
    jpeglib = pytest.importorskip("jpeglib")
    img = images(1, 64)[0]
    path = tmp_path / "steps1.jpg"
    Image.fromarray(img).save(path, "JPEG", qtables=[[1] * 64, [1] * 64], subsampling="4:4:4")
    jpeg = jpeglib.read_dct(str(path))
    y, c = block_coefficients(img[None], "4:4:4")
    libjpeg_y = jpeg.Y.reshape(-1, 8, 8).reshape(-1, 64).astype(np.float64)
    assert np.abs(libjpeg_y - y).max() <= 2.0  # libjpeg rounds YCbCr to integers and uses a fixed-point DCT
    libjpeg_cb = jpeg.Cb.reshape(-1, 64).astype(np.float64)
    assert np.abs(libjpeg_cb - c[: len(libjpeg_cb)]).max() <= 2.0


def test_bad_input_is_named() -> None:
    clf = tiny_classifier()
    with pytest.raises(ValueError, match="subsampling"):
        fisher_statistics(clf, images(1), ("4:1:1",))
    with pytest.raises(ValueError, match="subsamplings must be"):
        fisher_statistics(clf, images(1), "4:2:0")
    with pytest.raises(ValueError, match="image 1 must be RGB"):
        fisher_statistics(clf, [images(1)[0], np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="draws"):
        fisher_statistics(clf, images(1), draws=0)
    with pytest.raises(ValueError, match="no images"):
        block_coefficients([])
