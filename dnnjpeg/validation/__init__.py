"""Validation and statistics: is a table (or family) better than standard JPEG on images it never saw?

Modules: :mod:`~dnnjpeg.validation.validate` (``dnnjpeg validate``: a table against standard JPEG at equal
size), :mod:`~dnnjpeg.validation.crossval` (class-disjoint cross-validation of search methods),
:mod:`~dnnjpeg.validation.family_compare` (two tuned families on their held-out classes),
:mod:`~dnnjpeg.validation.stats` (paired statistics), :mod:`~dnnjpeg.validation.bd_bootstrap`
(bootstrap intervals of BD-rate) and :mod:`~dnnjpeg.validation.report` (report folders and plots).

Example:
    >>> from dnnjpeg.validation import bootstrap_bd, compare_families
    >>> callable(compare_families) and callable(bootstrap_bd)
    True

The functions named like their modules are reached through them: ``dnnjpeg.validation.validate.validate``
and ``dnnjpeg.validation.crossval.crossval``.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Validation": ".validate", "ValidationError": ".validate", "ValidateOptions": ".validate", "compare": ".validate",
    "CrossValidation": ".crossval", "CrossvalError": ".crossval", "CrossvalOptions": ".crossval",
    "FamilyComparison": ".family_compare", "compare_families": ".family_compare",
    "PairedComparison": ".stats", "StatsError": ".stats",
    "BDInterval": ".bd_bootstrap", "bootstrap_bd": ".bd_bootstrap",
    "write_report": ".report",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
