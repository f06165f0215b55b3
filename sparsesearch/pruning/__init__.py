"""The pruning engine: imports torch only (never optuna, mlflow, yaml or pandas).

``Pruner`` composes, per group of layers, a criterion (what matters), a pattern (which weights fall
together), a schedule (how much, when) and a scope (one threshold per layer or across layers). The typed
configuration it reads lives, torch-free, in :mod:`sparsesearch.records`.
"""

from __future__ import annotations

from sparsesearch.pruning.callbacks import Callbacks
from sparsesearch.pruning.criteria import CRITERIA
from sparsesearch.pruning.matching import ModelMatch, match_model, pruner_from_recipe
from sparsesearch.pruning.pruner import Pruner, PruningWarning, prune
from sparsesearch.pruning.report import LayerSparsity, SparsityReport, sparsity_report
from sparsesearch.pruning.schedules import RAMPS, is_update_step, sparsity_at, update_steps
from sparsesearch.pruning.targets import prunable_layers, select_layers
from sparsesearch.records.pruning import PruningConfig, PruningGroup, Schedule

__all__ = [
    "CRITERIA",
    "RAMPS",
    "Callbacks",
    "LayerSparsity",
    "ModelMatch",
    "Pruner",
    "PruningWarning",
    "PruningConfig",
    "PruningGroup",
    "Schedule",
    "SparsityReport",
    "is_update_step",
    "match_model",
    "prunable_layers",
    "prune",
    "pruner_from_recipe",
    "select_layers",
    "sparsity_at",
    "sparsity_report",
    "update_steps",
]
