"""Rules shared by the INC and LPOT importers, read from INC's and LPOT's own code (torch-free).

Every function here reproduces one thing INC (or LPOT) did, so that an imported recipe prunes what INC
pruned, and says in a note where sparsesearch cannot do the same. The source of each rule is cited where
it is reproduced.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparsesearch.errors import closest
from sparsesearch.records import schema
from sparsesearch.records.recipe import Recipe

log = logging.getLogger(__name__)


def dedupe(notes: Iterable[str]) -> list[str]:
    """``notes`` in order, each once."""
    return list(dict.fromkeys(notes))


def with_source(recipe: Recipe, kind: str, source: str | None) -> Recipe:
    """``recipe`` with a first note naming the file it was converted from."""
    if source is None:
        return recipe
    notes = (f"converted from {kind.upper()} file {Path(source).name}",) + recipe.provenance.notes
    return dataclasses.replace(recipe, provenance=dataclasses.replace(recipe.provenance, notes=notes))


# ------------------------------------------------------------------------------------------ unknown keys


def drop_unknown_keys(data: Any, allowed: Iterable[str], path: str, notes: list[str], who: str = "INC") -> Any:
    """``data`` without the keys ``who`` ignores, each one warned about and noted with the closest valid key.

    INC only logs "X is not supported for config" for a key it does not know (``utils.check_key_validity``;
    its own tests pass ``false_key`` on purpose) and goes on with its defaults, so an INC import does the same,
    loudly. Native recipes keep rejecting unknown keys.
    """
    if not isinstance(data, Mapping):
        return data
    allowed = list(allowed)
    kept = {}
    for key, value in data.items():
        if isinstance(key, str) and key in allowed:
            kept[key] = value
            continue
        hint = closest(str(key), allowed)
        message = (f"{schema.join(path, str(key))}: unknown key ignored, as {who} does ('{key} is not supported "
                   f"for config'), so its value {value!r} has no effect"
                   + (f"; did you mean {hint!r}?" if hint else ""))
        log.warning("%s import: %s", who, message)
        notes.append(message)
    return kept


# ------------------------------------------------------------------------------------------ decay types


def inc_decay(kind: str, target: float, progress: float, init: float = 0.0) -> float:
    """INC's scheduled sparsity at ``progress`` (``schedulers.IterativeScheduler.update_sparsity_ratio``)."""
    if kind == "cos":
        value = (target - init) * (1.0 - math.cos(progress * math.pi / 2)) + init
    elif kind == "exp":
        value = 1.0 - (1.0 - init) * ((1.0 - target) / (1.0 - init)) ** progress
    elif kind == "linear":
        value = (target - init) * progress + init
    elif kind == "cube":
        value = (target - init) * progress**3 + init
    else:  # sparsesearch's own cubic, kept by the importer under its name
        value = target + (init - target) * (1.0 - progress) ** 3
    return min(target, value)


#: decay types whose curve, stopped at progress r, is the same curve to a lower target: decay(t, r·p) ==
#: decay(decay(t, r), p). For them a schedule INC stops early is reproduced exactly.
SELF_SIMILAR_DECAYS = ("exp", "linear", "cube")


# ------------------------------------------------------------------------------------------ update steps


@dataclass(frozen=True)
class UpdatePlan:
    """When INC updates masks: ``count`` updates at ``first``, ``first + freq``, ..., ``last``.

    ``progress`` is the schedule progress INC reaches at the last update (1.0: the full target). ``count``
    is 0 when INC never updates (no whole step in [start, end]).
    """

    first: int
    last: int
    freq: int
    count: int
    progress: float
    one_shot: bool = False


def inc3_updates(start: float, end: float, freq: int) -> UpdatePlan:
    """INC 2.x/3.x ``compression/pruner`` update steps.

    ``pruners/base.py`` ``BasePruner``: ``total_prune_cnt = (end - start + freq) // freq - 1`` (when 0 it is
    1 and the first update counts as done); ``check_is_pruned_step`` updates at step s when
    ``start <= s <= end`` and ``int(s - start) % freq == 0``; the k-th update uses progress k/total
    (``schedulers.py``); ``start == end`` is the one-shot scheduler. Steps may be floats (INC's examples
    compute them): the updates then fall on whole steps from ``ceil(start)``.
    """
    if start == end:
        first = math.ceil(start)
        if first != start:  # a float start == end: no whole step is ever an update step
            return UpdatePlan(first, first, freq, 0, 0.0, one_shot=True)
        return UpdatePlan(first, first, freq, 1, 1.0, one_shot=True)
    first = math.ceil(start)
    if first > end:
        return UpdatePlan(first, first, freq, 0, 0.0)
    steps_after = int((math.floor(end) - first) // freq)
    total = (end - start + freq) // freq - 1
    done_at_first = 0
    if total == 0:
        total, done_at_first = 1, 1
    progress = min(1.0, (steps_after + done_at_first) / total)
    return UpdatePlan(first, first + steps_after * freq, freq, steps_after + 1, progress)


def inc1_updates(start: int, end: int, freq: int) -> UpdatePlan:
    """INC 1.x/2.x ``experimental/pytorch_pruner`` (``weight_compression_pytorch``) update steps.

    ``pruner.py`` ``Pruner._init``: ``total_prune_cnt = (end - start + 1) // update_frequency_on_step``; updates
    at ``start + k * freq <= end`` with progress k/total; ``start == end`` is one-shot. With a frequency of 1
    INC therefore stops one update short of its target (k/total reaches total-1/total).
    """
    if start == end:
        return UpdatePlan(start, start, freq, 1, 1.0, one_shot=True)
    total = (end - start + 1) // freq
    steps_after = (end - start) // freq
    progress = steps_after / total if total else 0.0
    return UpdatePlan(start, start + steps_after * freq, freq, steps_after + 1, min(1.0, progress))


def schedule_for(plan: UpdatePlan, target: float, decay: str, label: str, notes: list[str]) -> tuple[dict[str, Any], float]:
    """A sparsesearch schedule (as data) and target that update when INC does and reach what INC reaches.

    Where INC stops short of its target (``plan.progress < 1``) the target is lowered to what INC reaches;
    for the decay types in :data:`SELF_SIMILAR_DECAYS` every update then prunes exactly what INC's does.
    """
    if plan.count == 0:
        notes.append(f"{label}: no whole training step lies where INC would update masks, so INC prunes nothing; "
                     "imported with target 0")
        return {"start_step": plan.first, "end_step": plan.first, "pruning_frequency": plan.freq, "ramp": decay}, 0.0
    reached = target if plan.progress >= 1.0 else inc_decay(decay, target, plan.progress)
    if plan.count == 1 and not plan.one_shot:
        # a single iterative update: at progress 0 INC prunes nothing, at progress 1 everything at once
        notes.append(f"{label}: INC updates masks only once, at step {plan.first}, where its schedule asks for "
                     f"{reached:g}; imported as one-shot at that step")
        return {"start_step": plan.first, "end_step": plan.first, "pruning_frequency": plan.freq,
                "ramp": decay}, reached
    if plan.progress < 1.0:
        exact = decay in SELF_SIMILAR_DECAYS
        notes.append(f"{label}: INC's last update (step {plan.last}) comes at schedule progress {plan.progress:.4g}, "
                     f"so INC never reaches target {target:g} but {reached:.4g}; the target is set to that"
                     + ("" if exact else f" (the '{decay}' curve in between differs slightly from INC's)"))
    return {"start_step": plan.first, "end_step": plan.last, "pruning_frequency": plan.freq, "ramp": decay}, reached


# ------------------------------------------------------------------------------------------ layer types

#: torch.nn (and Hugging Face) classes with a ``weight``, by name: what INC's substring match on class names
#: can select. The first four are the ones sparsesearch prunes.
PRUNABLE_CLASSES = ("Linear", "Conv1d", "Conv2d", "Conv3d")
OTHER_WEIGHTED_CLASSES = ("Bilinear", "ConvTranspose1d",
                          "ConvTranspose2d", "ConvTranspose3d", "Conv1D", "Embedding", "EmbeddingBag", "LayerNorm",
                          "GroupNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d",
                          "InstanceNorm2d", "InstanceNorm3d", "PReLU")


def op_types_by_substring(types: Iterable[str], path: str, notes: list[str]) -> tuple[str, ...]:
    """sparsesearch ``op_types`` for INC's ``pruning_op_types``, which INC matches as substrings of class names.

    ``utils.parse_to_prune``: a module is taken when ``layer_type in type(module).__name__`` and it has a
    ``weight``. So ``"Conv"`` means Conv1d/2d/3d (and ConvTranspose, and Hugging Face's Conv1D), ``"Attention"``
    matches no class with a weight. The result is empty when nothing prunable matches.
    """
    chosen: list[str] = []
    for i, kind in enumerate(types):
        ours = [c for c in PRUNABLE_CLASSES if kind in c]
        others = [c for c in OTHER_WEIGHTED_CLASSES if kind in c]
        where = f"{path}[{i}]"
        if not ours:
            what = (f"classes sparsesearch does not prune ({', '.join(others)})" if others
                    else "no layer class that has a weight")
            notes.append(f"{where}: pruning_op_types {kind!r} matches {what} by INC's substring rule; it selects "
                         "nothing here")
            continue
        if others:
            notes.append(f"{where}: pruning_op_types {kind!r} also matched {', '.join(others)} in INC (a substring "
                         f"of their class names); sparsesearch prunes only {', '.join(ours)} with it")
        chosen.extend(c for c in ours if c not in chosen)
    if {"Conv1d", "Conv2d", "Conv3d"} <= set(chosen):  # all three convolutions: sparsesearch's "Conv"
        merged: list[str] = []
        for c in chosen:
            c = "Conv" if c.startswith("Conv") else c
            if c not in merged:
                merged.append(c)
        chosen = merged
    return tuple(chosen)


def op_types_by_name(types: Iterable[str], path: str, notes: list[str]) -> tuple[str, ...]:
    """sparsesearch ``op_types`` for INC 1.x's ``prune_layer_type``: exact class names (``pytorch_pruner/
    prune_utils.parse_to_prune``: ``type(module).__name__ in prune_layer_type``)."""
    chosen: list[str] = []
    for i, kind in enumerate(types):
        if kind in PRUNABLE_CLASSES:
            if kind not in chosen:
                chosen.append(kind)
            continue
        notes.append(f"{path}[{i}]: prune_layer_type {kind!r} is not a layer type sparsesearch prunes (Linear, "
                     "Conv1d, Conv2d, Conv3d); its layers stay dense")
    return tuple(chosen)


__all__ = ["SELF_SIMILAR_DECAYS", "UpdatePlan", "dedupe", "drop_unknown_keys", "inc1_updates", "inc3_updates",
           "inc_decay", "op_types_by_name", "op_types_by_substring", "schedule_for", "with_source"]
