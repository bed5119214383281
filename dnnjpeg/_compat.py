"""Old module paths (before the 0.x reshape into subpackages) keep importing, with a DeprecationWarning.

``import dnnjpeg.models`` still works and gives :mod:`dnnjpeg.evaluation.models` itself (same module object,
so ``isinstance`` and pickles agree); the warning names the new path.  Removed in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

#: old path -> new path, every module that moved.
MOVED: dict[str, str] = {
    "dnnjpeg.models": "dnnjpeg.evaluation.models",
    "dnnjpeg.data": "dnnjpeg.evaluation.data",
    "dnnjpeg.pack": "dnnjpeg.evaluation.pack",
    "dnnjpeg.codec": "dnnjpeg.evaluation.codec",
    "dnnjpeg.evaluate": "dnnjpeg.evaluation.evaluate",
    "dnnjpeg.batchnorm": "dnnjpeg.evaluation.batchnorm",
    "dnnjpeg.runtime": "dnnjpeg.evaluation.runtime",
    "dnnjpeg.evaluation_store": "dnnjpeg.evaluation.store",
    "dnnjpeg.curve": "dnnjpeg.evaluation.curve",
    "dnnjpeg.stats": "dnnjpeg.validation.stats",
    "dnnjpeg.bd_bootstrap": "dnnjpeg.validation.bd_bootstrap",
    "dnnjpeg.validate": "dnnjpeg.validation.validate",
    "dnnjpeg.crossval": "dnnjpeg.validation.crossval",
    "dnnjpeg.report": "dnnjpeg.validation.report",
    "dnnjpeg.family_compare": "dnnjpeg.validation.family_compare",
    "dnnjpeg.family_tune": "dnnjpeg.search.family",
    "dnnjpeg.rdopt": "dnnjpeg.search.design.rdopt",
    "dnnjpeg.jpegbits": "dnnjpeg.search.design.jpegbits",
    "dnnjpeg.fisher": "dnnjpeg.search.design.fisher_weights",
    "dnnjpeg.standard": "dnnjpeg._standard",
    "dnnjpeg.zigzag": "dnnjpeg._zigzag",
    "dnnjpeg.jpegmarkers": "dnnjpeg._jpegmarkers",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: D102
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> ModuleType:  # noqa: D102
        warnings.warn(f"{spec.name} has moved to {MOVED[spec.name]}; the old path works until the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:  # noqa: D102  (already executed under its new name)
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
