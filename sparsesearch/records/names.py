"""The name tables every file format and the engine agree on, torch-free.

A study spec or a recipe is checked against these tables when it is loaded, so a typo is rejected (with the
closest valid name) without importing torch. The engine's registries (criteria in
:mod:`sparsesearch.pruning.criteria`, ramps in :mod:`sparsesearch.pruning.schedules`) are keyed by the same
names; a test asserts that the two never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CriterionTraits:
    """What the loader needs to know about a criterion without building it."""

    needs_grad: bool = False
    #: keeps the zeros a model already has and prunes nothing new (pattern_lock)
    locks_pattern: bool = False


#: pruning types (criteria) by name; the engine registers one class per name
CRITERIA: dict[str, CriterionTraits] = {
    "magnitude": CriterionTraits(),
    "gradient": CriterionTraits(needs_grad=True),
    "snip": CriterionTraits(needs_grad=True),
    "snip_momentum": CriterionTraits(needs_grad=True),
    "movement": CriterionTraits(needs_grad=True),
    "random": CriterionTraits(),
    "group_lasso": CriterionTraits(),
    "pattern_lock": CriterionTraits(locks_pattern=True),
}

#: sparsity ramps of a schedule (the formulas are in :mod:`sparsesearch.pruning.schedules`)
RAMPS = ("cubic", "linear", "exp", "cos", "cube")
SCOPES = ("local", "global")
REDUCE_TYPES = ("mean", "sum", "max")
#: module type names accepted in ``op_types``; "Conv" means any of Conv1d/2d/3d (INC spells it so).
OP_TYPES = ("Linear", "Conv", "Conv1d", "Conv2d", "Conv3d")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "linear")
INITS = ("dense", "scratch", "pretrained")
ALLOCATIONS = ("uniform", "erk")
SAMPLERS = ("tpe", "random", "nsga2")
OBJECTIVES = ("val_accuracy", "sparsity")
#: export rules: how one trial is picked from the front
RULES = ("max_sparsity_within_drop", "knee", "max_accuracy_at_sparsity")

#: pruning types a search may sample: every criterion that prunes a dense model
SEARCHABLE_TYPES = tuple(name for name, traits in CRITERIA.items() if not traits.locks_pattern)
#: pruning types that can prune without data (one-shot ``prune``)
DATA_FREE_TYPES = tuple(name for name, traits in CRITERIA.items() if not traits.needs_grad)
