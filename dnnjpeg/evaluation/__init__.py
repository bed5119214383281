"""The evaluation engine: classifiers, datasets, the codec, the evaluator and the standard-JPEG curve.

Modules: :mod:`~dnnjpeg.evaluation.models` (classifiers with their exact preprocessing),
:mod:`~dnnjpeg.evaluation.data` (datasets, the ``crop224``/``native`` protocols, class-disjoint splits),
:mod:`~dnnjpeg.evaluation.pack` (datasets packed to carry to another machine),
:mod:`~dnnjpeg.evaluation.codec` (parallel JPEG encode/decode), :mod:`~dnnjpeg.evaluation.evaluate`
(compress a dataset with a table, classify it, measure rate and accuracy),
:mod:`~dnnjpeg.evaluation.store` (evaluations kept on disk), :mod:`~dnnjpeg.evaluation.curve`
(the standard-JPEG rate-accuracy curve and BD-rate), :mod:`~dnnjpeg.evaluation.batchnorm` and
:mod:`~dnnjpeg.evaluation.runtime` (CPU inference speed-ups).

Example:
    >>> from dnnjpeg.evaluation import load_dataset, StandardCurve
    >>> callable(load_dataset)
    True
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Classifier": ".models", "ModelError": ".models", "get": ".models", "available": ".models", "register_model": ".models",
    "DataError": ".data", "Dataset": ".data", "load_dataset": ".data", "class_disjoint_folds": ".data",
    "pack_dataset": ".pack", "load_packed": ".pack",
    "Codec": ".codec", "roundtrip": ".codec",
    "EvaluationError": ".evaluate", "Evaluator": ".evaluate", "Result": ".evaluate",
    "EvaluationStore": ".store",
    "StandardCurve": ".curve", "bd_rate": ".curve", "DEFAULT_QUALITIES": ".curve",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
