"""The pruning engine: imports torch only (never optuna, mlflow, yaml or pandas).

``Pruner`` composes, per group of layers, a criterion (what matters), a pattern (which weights fall
together), a schedule (how much, when) and a scope (one threshold per layer or across layers).
"""

from __future__ import annotations

from sparsesearch.pruning.config import PruningConfig, PruningGroup, Schedule
from sparsesearch.pruning.criteria import CRITERIA
from sparsesearch.pruning.pruner import Pruner, prune
from sparsesearch.pruning.report import LayerSparsity, SparsityReport, sparsity_report
from sparsesearch.pruning.schedules import RAMPS, is_update_step, sparsity_at, update_steps
from sparsesearch.pruning.targets import prunable_layers, select_layers

__all__ = [
    "CRITERIA",
    "RAMPS",
    "LayerSparsity",
    "Pruner",
    "PruningConfig",
    "PruningGroup",
    "Schedule",
    "SparsityReport",
    "is_update_step",
    "prunable_layers",
    "prune",
    "select_layers",
    "sparsity_at",
    "sparsity_report",
    "update_steps",
]
