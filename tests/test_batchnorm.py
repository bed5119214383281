"""dnnjpeg.batchnorm and Classifier.fold_batchnorm: folded models compute the same function, faster."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dnnjpeg.evaluation.batchnorm import fold_batchnorm
from dnnjpeg.evaluation.models import Classifier, get
from dnnjpeg.testing import synthetic_image, tiny_classifier


def _with_statistics(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
    return net.eval()


def _convnet() -> nn.Module:
    """A stem conv with a bias, a depthwise conv and a pointwise conv, each followed by a norm."""
    return _with_statistics(
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8, eps=1e-3), nn.ReLU6(),
            nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        )
    )


class _NormBeforeConv(nn.Module):
    """Declares conv then norm, but normalises *before* convolving: must not be folded."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.bn(x)))


def test_folding_keeps_the_function() -> None:
    net = _convnet()
    x = torch.randn(4, 3, 16, 16)
    with torch.inference_mode():
        before = net(x)
    assert fold_batchnorm(net) == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with torch.inference_mode():
        after = net(x)
    assert torch.allclose(after, before, atol=1e-5, rtol=1e-5)
    assert fold_batchnorm(net) == 0  # nothing left to fold


def test_what_is_not_folded() -> None:
    training = _convnet().train()
    assert fold_batchnorm(training) == 0  # batch statistics, not running ones
    apart = _with_statistics(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4)))
    assert fold_batchnorm(apart) == 0  # an activation in between

    class FancyNorm(nn.BatchNorm2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    subclass = _with_statistics(nn.Sequential(nn.Conv2d(3, 4, 1), FancyNorm(4)))
    assert fold_batchnorm(subclass) == 0  # an unknown subclass may do more than normalise


def test_timm_norm_act_keeps_its_activation() -> None:
    timm = pytest.importorskip("timm")
    net = _with_statistics(timm.create_model("test_efficientnet", pretrained=False, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        before = net(x)
    n = fold_batchnorm(net)
    assert n > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with torch.inference_mode():
        assert torch.allclose(net(x), before, atol=1e-4, rtol=1e-4)


def test_classifier_copy_is_checked_and_renamed() -> None:
    clf = Classifier.from_module(_convnet(), device="cpu", input_size=32, name="conv")
    fast = clf.fold_batchnorm()
    assert fast is not clf and fast.config["batchnorm_folded"] == 3
    assert fast.fingerprint is not None and fast.fingerprint != clf.fingerprint
    assert any(isinstance(m, nn.BatchNorm2d) for m in clf.module.modules())  # the original is untouched
    batch = np.stack([np.asarray(synthetic_image(i, (32, 32))) for i in range(3)])
    assert torch.allclose(fast(batch), clf(batch), atol=1e-5, rtol=1e-5)
    # nothing to fold, or a pair that only looks like conv -> norm: the classifier itself comes back
    tiny = tiny_classifier(seed=1)
    assert tiny.fold_batchnorm() is tiny
    assert fold_batchnorm(_with_statistics(_NormBeforeConv())) == 1  # the pair is folded, wrongly...
    impostor = Classifier.from_module(_with_statistics(_NormBeforeConv()), device="cpu", input_size=16)
    with pytest.warns(RuntimeWarning, match="changed the logits"):
        assert impostor.fold_batchnorm() is impostor  # ...and the check catches it, saying so


@pytest.mark.slow
def test_lite0_folded_agrees_and_pickles_by_name() -> None:
    lite0 = get("efficientnet_lite0", device="cpu")
    fast = lite0.fold_batchnorm()
    assert fast.config["batchnorm_folded"] == 49
    batch = np.stack([np.asarray(synthetic_image(i, (224, 224))) for i in range(4)])
    want, got = lite0(batch), fast(batch)
    assert (got - want).abs().max() < 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))
    state = pickle.dumps(fast)
    assert len(state) < 100_000  # travels by name and is folded again on arrival
    again = pickle.loads(state)
    assert again.config["batchnorm_folded"] == 49 and torch.equal(again(batch), got)


def test_fold_check_runs_without_tf32_and_restores_the_settings() -> None:
    from dnnjpeg.evaluation.models import _without_tf32

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with _without_tf32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 == before[1]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before[0]
