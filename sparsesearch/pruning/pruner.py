"""The pruner: targets × criterion × pattern × schedule × scope, driven by training-loop callbacks.

Call order in a training loop (the reference loop in ``sparsesearch.training`` does exactly this)::

    pruner.on_train_begin()
    for epoch in range(epochs):
        pruner.on_epoch_begin(epoch)
        for x, y in batches:
            pruner.on_step_begin()               # masks update here on update steps
            loss = loss_fn(model(x), y) + pruner.regularization()
            optimizer.zero_grad(); loss.backward()
            pruner.on_before_optimizer_step()    # gradient criteria read the gradients
            optimizer.step()
            pruner.on_after_optimizer_step()     # pruned weights back to exactly zero; step += 1
        pruner.on_epoch_end()
    pruner.on_train_end()

``step`` counts completed optimizer steps from 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.callbacks import Callbacks
from sparsesearch.pruning.criteria import CRITERIA, Criterion
from sparsesearch.pruning.masks import MaskedLayer, MaskKeeper
from sparsesearch.pruning.patterns import Pattern, build_pattern, from_2d, safe_sqrt, to_2d
from sparsesearch.pruning.report import SparsityReport, sparsity_report
from sparsesearch.pruning.schedules import is_update_step, sparsity_at, update_steps
from sparsesearch.pruning.select import choose_lowest
from sparsesearch.pruning.targets import select_layers
from sparsesearch.records.names import DATA_FREE_TYPES
from sparsesearch.records.pruning import PruningConfig, PruningGroup, Schedule, coerce_config

log = logging.getLogger(__name__)

STATE_FORMAT = 1


@dataclass
class _Group:
    """A configured group bound to a model: its layers, schedule in steps, criterion and pattern."""

    index: int
    config: PruningGroup
    schedule: Schedule
    pattern: Pattern
    criterion: Criterion
    layers: list[MaskedLayer]
    targets: list[float]

    def target_at(self, layer: int, step: int) -> float:
        return sparsity_at(self.schedule, self.targets[layer], step)

    def last_update(self) -> int:
        return self.schedule.end_step


class Pruner(Callbacks):
    """Prunes ``model`` in place as training runs, according to ``config``.

    ``config`` may be a :class:`PruningConfig`, a :class:`PruningGroup`, a list of groups, or plain data
    (validated strictly). ``steps_per_epoch`` is needed only by epoch-based schedules.
    """

    def __init__(self, model: nn.Module, config: Any, *, steps_per_epoch: int | None = None) -> None:
        self.model = model
        self.config: PruningConfig = coerce_config(config)
        self.steps_per_epoch = steps_per_epoch
        self.step = 0
        self._updated_at: int | None = None
        self._zero = torch.zeros(())
        self._groups: list[_Group] = []
        owner: dict[str, int] = {}
        for gi, group in enumerate(self.config.groups):
            try:
                bound = self._bind(gi, group)
            except ConfigError as exc:
                raise exc.located(prefix=f"groups[{gi}]") from None
            for layer in bound.layers:
                if layer.name in owner:
                    raise ConfigError(f"layer {layer.name!r} is selected by groups[{owner[layer.name]}] and "
                                      f"groups[{gi}]; a layer may belong to one group only",
                                      key=f"groups[{gi}].op_names", value=list(group.op_names),
                                      allowed="patterns that do not overlap (use excluded_op_names)")
                owner[layer.name] = gi
            self._groups.append(bound)
        self._all_layers = [layer for g in self._groups for layer in g.layers]
        self._keeper = MaskKeeper(self._all_layers)
        self._last_change = self.end_step
        self._regularized = [g for g in self._groups if g.criterion.regularizes and g.config.reg_coeff > 0]
        self._observers = [g for g in self._groups if g.criterion.needs_grad]

    def _bind(self, index: int, group: PruningGroup) -> _Group:
        schedule = group.schedule.in_steps(self.steps_per_epoch)
        layers = select_layers(self.model, group)
        pattern = build_pattern(group.pattern)
        for name, module in layers:
            pattern.check(name, module.weight.shape)
        masked = [MaskedLayer(name, module) for name, module in layers]
        targets = [group.layer_targets.get(layer.name, group.target_sparsity) if group.layer_targets
                   else group.target_sparsity for layer in masked]
        criterion = CRITERIA[group.pruning_type]([layer.weight for layer in masked], group)
        bound = _Group(index, group, schedule, pattern, criterion, masked, targets)
        if criterion.locks_pattern:
            for layer in masked:
                layer.set_mask(layer.weight.detach() != 0)
        return bound

    # ------------------------------------------------------------------ information
    @property
    def layer_names(self) -> list[str]:
        """Dotted names of the pruned layers, in group then model order."""
        return [layer.name for layer in self._all_layers]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Boolean keep-masks (True = kept) by layer name."""
        return {layer.name: layer.mask for layer in self._all_layers}

    @property
    def end_step(self) -> int:
        """The last step at which any mask changes."""
        return max((g.last_update() for g in self._groups if not g.criterion.locks_pattern), default=0)

    def update_steps(self) -> list[int]:
        """All steps at which some mask is recomputed."""
        steps = {s for g in self._groups if not g.criterion.locks_pattern for s in update_steps(g.schedule)}
        return sorted(steps)

    def target_sparsities(self, step: int | None = None) -> dict[str, float]:
        """What each layer's sparsity should be at ``step`` (default: the end) under its local target."""
        out = {}
        for g in self._groups:
            for i, layer in enumerate(g.layers):
                out[layer.name] = g.targets[i] if step is None else g.target_at(i, step)
        return out

    def report(self) -> SparsityReport:
        """Sparsity counted from the weights of the pruned layers (and of the whole model)."""
        return sparsity_report(self.model, self.layer_names)

    # ------------------------------------------------------------------ callbacks
    def on_train_begin(self) -> None:
        """Zero what the masks prune (e.g. after loading a state)."""
        self._keeper.mask_weights()

    def on_epoch_begin(self, epoch: int | None = None) -> None:
        """Nothing to do: schedules are in steps. Present so loops can call every callback."""

    def on_step_begin(self, step: int | None = None) -> None:
        """Update masks when ``step`` (default: the pruner's own count) is an update step."""
        if step is not None:
            self.step = step
        if self._updated_at == self.step or self.step > self._last_change:
            return
        due = [g for g in self._groups if not g.criterion.locks_pattern and is_update_step(g.schedule, self.step)
               and (any(layer.pruned for layer in g.layers)
                    or any(g.target_at(i, self.step) > 0 for i in range(len(g.layers))))]
        for g in due:
            self._update(g, self.step)
        if due:
            self._keeper.refresh()
        self._updated_at = self.step

    def regularization(self) -> torch.Tensor:
        """The term to add to the loss (group lasso: α·Σ‖group‖₂); a zero tensor when no group has one."""
        if not self._regularized:
            return self._zero
        total = self._zero
        for g in self._regularized:
            for layer in g.layers:
                norms = safe_sqrt(g.pattern.group_sq_norms(to_2d(layer.weight)))
                total = total + g.config.reg_coeff * norms.sum()
        return total

    def on_before_optimizer_step(self) -> None:
        """Let gradient criteria read the gradients, then zero the gradients of pruned weights.

        Call it right after ``loss.backward()`` (before gradient clipping, so pruned weights add nothing).
        """
        for g in self._observers:
            if self.step >= g.last_update():
                continue
            before_update = is_update_step(g.schedule, self.step + 1)
            if g.criterion.accumulates or before_update:
                g.criterion.observe(before_update)
        self._keeper.mask_grads()

    def on_after_optimizer_step(self) -> None:
        """Put pruned weights back to exactly zero and count the step."""
        self._keeper.mask_weights()
        self.step += 1

    def on_epoch_end(self) -> None:
        """Nothing to do; present for symmetry."""

    def on_train_end(self) -> None:
        """Apply the masks a last time."""
        self._keeper.mask_weights()

    # ------------------------------------------------------------------ mask updates
    @torch.no_grad()
    def _update(self, g: _Group, step: int) -> None:
        score2d = []
        for layer, score in zip(g.layers, g.criterion.scores()):
            if layer.pruned:  # what is pruned stays pruned: it goes first
                score.masked_fill_(layer.keep == 0, float("-inf"))
            score2d.append(to_2d(score))
        group_scores = [g.pattern.group_scores(s, g.config.criterion_reduce_type) for s in score2d]
        sizes = [g.pattern.group_size(s.shape) for s in score2d]
        if g.config.pruning_scope == "global":
            choices = self._choose_global(g, step, group_scores, sizes)
        else:
            choices = [choose_lowest([gs], [size], round(g.target_at(i, step) * layer.numel))[0]
                       for i, (layer, gs, size) in enumerate(zip(g.layers, group_scores, sizes))]
        for layer, choice, s in zip(g.layers, choices, score2d):
            layer.set_mask(from_2d(g.pattern.expand(choice, s), layer.weight.shape))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step %d: group %d updated to %s", step, g.index,
                      {layer.name: round(1 - float(layer.keep.mean()), 4) for layer in g.layers})

    def _choose_global(self, g: _Group, step: int, group_scores: list[torch.Tensor],
                       sizes: list[int]) -> list[torch.Tensor]:
        """One threshold across the group's layers, then the per-layer min/max bounds."""
        total = sum(layer.numel for layer in g.layers)
        budget = round(sparsity_at(g.schedule, g.config.target_sparsity, step) * total)
        choices = choose_lowest(group_scores, sizes, budget)
        if budget == 0:
            return choices
        lo_ratio, hi_ratio = g.config.min_sparsity_ratio_per_op, g.config.max_sparsity_ratio_per_op
        for i, layer in enumerate(g.layers):
            pruned = int(choices[i].sum()) * sizes[i]
            lo, hi = round(lo_ratio * layer.numel), round(hi_ratio * layer.numel)
            bound = min(max(pruned, lo), hi)
            if bound != pruned:
                choices[i] = choose_lowest([group_scores[i]], [sizes[i]], bound)[0]
        return choices

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Masks, criterion state (scores, RNG) and step: everything needed to resume mid-pruning."""
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "updated_at": self._updated_at,
            "masks": {layer.name: layer.mask.clone() for layer in self._all_layers},
            "criteria": [g.criterion.state_dict() for g in self._groups],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a pruner with the same config on the same model."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported pruner state format {state.get('format')!r}; expected {STATE_FORMAT}")
        names = set(state["masks"])
        if names != set(self.layer_names) or len(state["criteria"]) != len(self._groups):
            missing = sorted(set(self.layer_names) - names)
            extra = sorted(names - set(self.layer_names))
            raise ValueError(f"pruner state does not match this pruner: layers missing {missing}, unexpected "
                             f"{extra}; build the Pruner with the same config and model it was saved from")
        self.step = int(state["step"])
        self._updated_at = state.get("updated_at")
        for layer in self._all_layers:
            layer.set_mask(state["masks"][layer.name].to(layer.keep.device))
        self._keeper.refresh()
        for g, crit_state in zip(self._groups, state["criteria"]):
            g.criterion.load_state_dict(crit_state)


def prune(model: nn.Module, config: Any) -> Pruner:
    """One-shot: prune ``model`` in place to each group's target now, with a data-free criterion.

    Returns the pruner (masks, :meth:`Pruner.report`). To keep the zeros while fine-tuning, run the
    returned pruner's callbacks in the loop (no further updates happen) or use ``pattern_lock``.
    """
    pruner = Pruner(model, config)
    for g in pruner._groups:
        if g.criterion.locks_pattern:
            continue
        if g.criterion.needs_grad:
            raise ConfigError(f"pruning_type {g.config.pruning_type!r} scores weights with gradients, so it cannot "
                              "prune in one shot without training; prune inside a training loop with the Pruner "
                              "callbacks, or use a data-free type", key=f"groups[{g.index}].pruning_type",
                              value=g.config.pruning_type,
                              allowed=", ".join(DATA_FREE_TYPES))
        pruner._update(g, g.schedule.end_step)
    pruner._keeper.refresh()
    pruner.step = pruner.end_step
    pruner._updated_at = pruner.step
    return pruner
