"""Evaluations kept in a folder, so a rerun of a long job reads them instead of running the model again.

:class:`EvaluationStore` wraps an evaluator. Its :meth:`~EvaluationStore.evaluate` returns the stored
:class:`~dnnjpeg.evaluation.evaluate.Result` when the same table (its steps and subsampling, and the encoder that
writes it) or the same encoder object was evaluated on the same images by the same model, data, protocol,
device, batch size and software versions; otherwise it evaluates and stores the Result, per image, as one
JSON file named by the hash of all that. Everything else is the wrapped evaluator's.

The model is deterministic for a given set-up (see :mod:`dnnjpeg.evaluation.evaluate`), so a stored Result is the
Result an evaluation would return, bit for bit; a file that cannot be read or that belongs to another
set-up is evaluated again and replaced. ``dnnjpeg family`` keeps its evaluations (standard JPEG's curve,
held-out folds, members, other encoders) in ``WORKDIR/evaluations/``, beside its journals: a family run
resumed after an interruption, or rerun on finished journals, only reads them.

Example:
    >>> import tempfile
    >>> from dnnjpeg.search.psnr import PSNREvaluator, synthetic_photos
    >>> folder = tempfile.mkdtemp()
    >>> store = EvaluationStore(folder, PSNREvaluator(synthetic_photos(2, 32), "two"))
    >>> first = store.evaluate(50)
    >>> again = store.evaluate(50)                 # read from the folder
    >>> bool((again.bytes == first.bytes).all()), store.n_evaluated, store.n_read
    (True, 1, 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..search.runner import evaluator_identity
from .codec import as_qtable, is_encoder
from .evaluate import Result

__all__ = ["EvaluationStore"]

FORMAT = "dnnjpeg-evaluation"
#: Distributions whose versions can change an evaluation (absent ones are recorded as ``None``).
_SOFTWARE = ("dnnjpeg", "pillow", "numpy", "torch", "torchvision", "timm", "jpeglib", "opencv-python-headless")


def _software() -> dict[str, Any]:
    from PIL import features

    out: dict[str, Any] = {}
    for dist in _SOFTWARE:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["libjpeg"] = features.version("jpg")
    return out


def _steps(table: dict[str, Any]) -> dict[str, Any]:
    """What of a ``QTable.to_dict()`` decides the JPEG: steps and subsampling."""
    return {k: table.get(k) for k in ("luma", "chroma", "subsampling")}


class EvaluationStore:
    """An evaluator whose evaluations are kept in ``folder`` (see the module docstring).

    Args:
        folder: where the Results go (created on the first write).
        evaluator: a :class:`~dnnjpeg.evaluation.evaluate.Evaluator` (or anything with its ``evaluate`` and a dataset
            fingerprint, e.g. :class:`~dnnjpeg.search.psnr.PSNREvaluator`).

    Attributes:
        n_evaluated, n_read: evaluations run and read from the folder by this object.
    """

    def __init__(self, folder: str | os.PathLike[str], evaluator: Any) -> None:
        self.folder = Path(folder)
        self.inner = evaluator
        self.setup = {
            **evaluator_identity(evaluator),
            "device": str(getattr(evaluator, "device", "")),
            "batch_size": getattr(evaluator, "batch_size", None),
            "software": _software(),
        }
        self.n_evaluated = 0
        self.n_read = 0

    def _what(self, table: Any) -> Any:
        """What is evaluated: an encoder's description, or the steps and the encoder that writes them."""
        if is_encoder(table):
            described = table.to_dict()
            if isinstance(described.get("table"), dict):  # the steps it writes, not the table's name or dates
                described = {**described, "table": _steps(described["table"])}
            return {"encoder": described}
        qt = as_qtable(table)
        if qt is None:
            return None  # the uncompressed reference
        writer_for = getattr(self.inner, "writer_for", None)
        return {**_steps(qt.to_dict()), "writer": writer_for(qt) if callable(writer_for) else None}

    def _indices(self, indices: Sequence[int] | np.ndarray | None) -> np.ndarray:
        if indices is None:
            return np.arange(int(self.inner.n), dtype=np.int64)
        return np.asarray(indices, dtype=np.int64).reshape(-1)

    def path_for(self, table: Any, indices: Sequence[int] | np.ndarray | None = None) -> tuple[Path, dict[str, Any]]:
        """The file that holds (or will hold) ``table``'s evaluation on ``indices``, and its key."""
        idx = self._indices(indices)
        key = {"setup": self.setup, "what": self._what(table),
               "indices": hashlib.sha256(idx.tobytes()).hexdigest(), "n": int(idx.size)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:40]
        return self.folder / f"{digest}.json", key

    def _read(self, path: Path, key: dict[str, Any], idx: np.ndarray) -> Any:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("format") != FORMAT or stored.get("key") != json.loads(json.dumps(key)):
                return None
            res = Result.from_dict(stored["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable or from another set-up: evaluated again and replaced
        if not np.array_equal(res.indices, idx):
            return None
        return res

    def evaluate(self, table: Any = None, indices: Sequence[int] | np.ndarray | None = None) -> Any:
        """The wrapped evaluator's ``evaluate(table, indices)``, read from the folder when it is there.

        A Result read from the folder is the stored one, ``table`` description and ``seconds`` included
        (the same steps and writer; a name or provenance given to the table since is not in it)."""
        idx = self._indices(indices)
        path, key = self.path_for(table, idx)
        if path.is_file():
            res = self._read(path, key, idx)
            if res is not None:
                self.n_read += 1
                return res
        res = self.inner.evaluate(table, indices=indices)
        self.n_evaluated += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": FORMAT, "key": key, "result": res.to_dict(per_image=True)})
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)  # atomic: concurrent runs sharing a workdir write identical files
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return res

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "__getstate__", "__setstate__") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"<EvaluationStore {self.folder} of {self.inner!r}>"
