"""The search: the only package that imports optuna.

``run_study(spec)`` runs a study (:mod:`~sparsesearch.search.runner`); :mod:`~sparsesearch.search.space`
samples configs, :mod:`~sparsesearch.search.objective` runs one trial, :mod:`~sparsesearch.search.baseline`
trains the dense model once, :mod:`~sparsesearch.search.storage` opens Optuna's storage,
:mod:`~sparsesearch.search.early_stopping` stops hopeless trials, :mod:`~sparsesearch.search.pareto` holds
the front, hypervolume and export rules, and :mod:`~sparsesearch.search.reproduce` re-runs an exported recipe.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"Events": "sparsesearch.search.events", "StudyResult": "sparsesearch.search.events",
         "run_study": "sparsesearch.search.runner"}


def __getattr__(name: str) -> Any:  # lazy: reading a study (``show``) must not load torch
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sparsesearch.search' has no attribute {name!r}")


__all__ = ["Events", "StudyResult", "run_study"]
