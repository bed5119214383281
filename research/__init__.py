"""Research kept apart from the product: studies whose results are written up here, not shipped.

Nothing in ``dnnjpeg`` imports this package.  Run its scripts from the repository root as modules, e.g.
``python -m research.gradient_family --help`` (see research/README.md).
"""
