"""The search: the only package that imports optuna.

``run_study(spec)`` runs a study (see :mod:`sparsesearch.search.study`); :mod:`~sparsesearch.search.space`
samples configs, :mod:`~sparsesearch.search.early_stopping` stops hopeless trials,
:mod:`~sparsesearch.search.pareto` holds the front, hypervolume and export rules, and
:mod:`~sparsesearch.search.reproduce` re-runs an exported recipe.
"""

from __future__ import annotations

from sparsesearch.search.study import Events, StudyResult, run_study

__all__ = ["Events", "StudyResult", "run_study"]
