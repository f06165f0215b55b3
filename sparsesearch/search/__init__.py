"""The search: the only package that imports optuna.

``run_study(spec)`` runs a study (:mod:`~sparsesearch.search.runner`); :mod:`~sparsesearch.search.space`
samples configs, :mod:`~sparsesearch.search.objective` runs one trial, :mod:`~sparsesearch.search.baseline`
trains the dense model once, :mod:`~sparsesearch.search.storage` opens Optuna's storage,
:mod:`~sparsesearch.search.early_stopping` stops hopeless trials, :mod:`~sparsesearch.search.pareto` holds
the front, hypervolume and export rules, and :mod:`~sparsesearch.search.reproduce` re-runs an exported recipe.
"""

from __future__ import annotations

from sparsesearch.search.events import Events, StudyResult
from sparsesearch.search.runner import run_study

__all__ = ["Events", "StudyResult", "run_study"]
