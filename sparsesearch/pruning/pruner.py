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

``step`` counts completed optimizer steps from 0. A loop that skips a callback, or stops before the
schedule ends, gets a :class:`PruningWarning` at ``on_train_end`` and the same text in :meth:`Pruner.report`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.callbacks import Callbacks
from sparsesearch.pruning.criteria import CRITERIA, OBSERVE_POLICIES, Criterion
from sparsesearch.pruning.masks import MaskedLayer, MaskKeeper
from sparsesearch.pruning.patterns import Pattern, build_pattern, from_2d, to_2d
from sparsesearch.pruning.report import SparsityReport, sparsity_report
from sparsesearch.pruning.schedules import is_update_step, sparsity_at, update_steps
from sparsesearch.pruning.select import choose_lowest
from sparsesearch.pruning.targets import select_layers
from sparsesearch.records.names import DATA_FREE_TYPES
from sparsesearch.records.pruning import PruningConfig, PruningGroup, Schedule, coerce_config

log = logging.getLogger(__name__)

STATE_FORMAT = 1
_EPS = 1e-9


class PruningWarning(UserWarning):
    """A pruning run that probably does not do what was meant (a callback never called, a schedule longer
    than the training, a target clipped by a per-layer bound)."""


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

    @property
    def updates(self) -> bool:
        """Whether this group's masks change during training (pattern_lock's never do)."""
        return not self.criterion.locks_pattern

    def target_at(self, layer: int, step: int) -> float:
        return sparsity_at(self.schedule, self.targets[layer], step)

    def last_update(self) -> int:
        return self.schedule.end_step

    def sparsity(self) -> float:
        total = sum(layer.numel for layer in self.layers)
        return sum(layer.pruned_count() for layer in self.layers) / total if total else 0.0


class Pruner(Callbacks):
    """Prunes ``model`` in place as training runs, according to ``config``.

    ``config`` may be a :class:`PruningConfig`, a :class:`PruningGroup`, a list of groups, or plain data
    (validated strictly). ``steps_per_epoch`` is needed only by epoch-based schedules.

    Scope. Local scope prunes ``round(s·n)`` weights of each layer (``round(round(s·n) / g)`` groups of ``g``
    weights for a structured pattern), with each layer's target clipped into
    [``min_sparsity_ratio_per_op``, ``max_sparsity_ratio_per_op``] (a clipped target is a warning). Global scope
    prunes exactly ``round(s·N)`` of the group's N weights (counted in groups, ``round(round(s·N) / g)``, when
    all layers share the group size g, as INC counts blocks; to within half the largest group otherwise), the
    lowest-scored ones under the per-layer bounds: one threshold, each layer's count clipped into its bounds,
    solved so the total is exact (water-filling). The minimum follows the ramp (see :meth:`_global_bounds`); a
    target the bounds cannot reach is a ConfigError when the Pruner is built.

    Pruned weights are put back to exactly zero after every optimizer step, so momentum, Adam moments and
    weight decay never revive them. Their gradients are zeroed too only with ``mask_gradients=True``: set it
    when the loop reads gradients between ``on_before_optimizer_step`` and ``optimizer.step()`` (gradient
    clipping by norm, logging gradient norms), so pruned weights add nothing there. Without it, optimizer
    state for pruned weights may hold non-zero values; it never reaches the weights, since masks never
    un-prune.

    Modules sharing one Parameter (tied weights) share one mask: the first module's name is the layer name,
    later ones are aliases (:attr:`masks` lists both, the report counts the weight once). A weight replaced
    after the pruner was built (``model.load_state_dict(sd, assign=True)``, ``model.to(...)``) is followed:
    the mask is re-bound to the new Parameter and applied to it at the next callback.
    """

    def __init__(self, model: nn.Module, config: Any, *, steps_per_epoch: int | None = None,
                 mask_gradients: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError("expected a PyTorch model", key="model", value=model, allowed="a torch.nn.Module")
        self.model = model
        self.config: PruningConfig = coerce_config(config)
        self.steps_per_epoch = steps_per_epoch
        self.mask_gradients = bool(mask_gradients)
        self.step = 0
        self._updated_at: int | None = None
        self._zero = torch.zeros(())
        self._groups: list[_Group] = []
        self._notes: list[str] = []
        self._by_weight: dict[int, tuple[int, MaskedLayer]] = {}
        owner: dict[str, int] = {}
        for gi, group in enumerate(self.config.groups):
            try:
                bound = self._bind(gi, group)
            except ConfigError as exc:
                raise exc.located(prefix=f"groups[{gi}]") from None
            for layer in bound.layers:
                for name in layer.names:
                    if name in owner:
                        raise ConfigError(f"layer {name!r} is selected by groups[{owner[name]}] and "
                                          f"groups[{gi}]; a layer may belong to one group only",
                                          key=f"groups[{gi}].op_names", value=list(group.op_names),
                                          allowed="patterns that do not overlap (use excluded_op_names)")
                    owner[name] = gi
            self._groups.append(bound)
        self._all_layers = [layer for g in self._groups for layer in g.layers]
        self._place = {id(layer): (g, i) for g in self._groups for i, layer in enumerate(g.layers)}
        self._keeper = MaskKeeper(self._all_layers)
        self._last_change = self.end_step
        self._regularizers = [g.criterion for g in self._groups
                              if type(g.criterion).regularization is not Criterion.regularization]
        self._observers = [g for g in self._groups if g.criterion.observes != "never"]
        # what the loop has called, for the warnings at on_train_end
        self._begin_calls = 0
        self._after_calls = 0
        self._last_begin_step = -1
        self._oneshot = False
        self._warned: list[str] = []
        for note in self._notes:
            warnings.warn(note, PruningWarning, stacklevel=2)

    def _bind(self, index: int, group: PruningGroup) -> _Group:
        schedule = group.schedule.in_steps(self.steps_per_epoch)
        pattern = build_pattern(group.pattern)
        masked: list[MaskedLayer] = []
        targets: list[float] = []
        for name, module in select_layers(self.model, group):
            pattern.check(name, module.get_parameter("weight").shape)
            target = group.layer_targets.get(name, group.target_sparsity) if group.layer_targets \
                else group.target_sparsity
            seen = self._by_weight.get(id(module.weight))
            if seen is not None:  # a weight shared with an earlier module: one mask, the name is an alias
                owner_group, layer = seen
                if owner_group != index and name in layer.names:
                    raise ConfigError(f"layer {name!r} is selected by groups[{owner_group}] and groups[{index}]; a "
                                      "layer may belong to one group only", key="op_names",
                                      value=list(group.op_names),
                                      allowed="patterns that do not overlap (use excluded_op_names)")
                if owner_group != index:
                    raise ConfigError(f"layer {name!r} shares its weight with layer {layer.name!r} of "
                                      f"groups[{owner_group}]; a shared weight may belong to one group only",
                                      key="op_names", value=list(group.op_names),
                                      allowed="groups that select tied layers together, or exclude one of them")
                if target != targets[masked.index(layer)]:
                    raise ConfigError(f"layers {layer.name!r} and {name!r} share one weight but have different "
                                      "targets", key=f"layer_targets.{name}", value=target,
                                      allowed=f"{targets[masked.index(layer)]} (the target of {layer.name!r})")
                layer.aliases.append((name, module))
                continue
            layer = MaskedLayer(name, module)
            self._by_weight[id(module.weight)] = (index, layer)
            masked.append(layer)
            targets.append(target)
        if group.pruning_scope == "local":
            targets = [self._clip_local(group, layer.name, t) for layer, t in zip(masked, targets)]
        policy = CRITERIA[group.pruning_type].observes
        if policy not in OBSERVE_POLICIES:
            raise ConfigError(f"criterion {group.pruning_type!r} declares an unknown observe policy",
                              key="pruning_type", value=policy, allowed=", ".join(OBSERVE_POLICIES))
        criterion = CRITERIA[group.pruning_type].from_group([layer.weight for layer in masked], group, pattern)
        bound = _Group(index, group, schedule, pattern, criterion, masked, targets)
        initial = criterion.initial_mask()
        if initial is not None:
            for layer, keep in zip(masked, initial):
                layer.set_mask(keep)
        if group.pruning_scope == "global" and bound.updates:
            self._global_bounds(bound, schedule.end_step)  # the final target must be reachable
        return bound

    def _clip_local(self, group: PruningGroup, name: str, target: float) -> float:
        """Local scope: the layer's target clipped into [min_sparsity_ratio_per_op, max_sparsity_ratio_per_op]
        (INC caps local targets at the maximum the same way); a clipped target is noted as a warning."""
        lo, hi = group.min_sparsity_ratio_per_op, group.max_sparsity_ratio_per_op
        clipped = min(max(target, lo), hi)
        if clipped != target and group.pruning_type != "pattern_lock":
            bound = "max_sparsity_ratio_per_op" if clipped < target else "min_sparsity_ratio_per_op"
            self._notes.append(f"layer {name!r}: target sparsity {target:g} clipped to {bound} {clipped:g}")
        return clipped

    # ------------------------------------------------------------------ information
    @property
    def layer_names(self) -> list[str]:
        """Dotted names of the pruned weights (one per weight: a tied weight's first module), in group then
        model order."""
        return [layer.name for layer in self._all_layers]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Boolean keep-masks (True = kept) by layer name; aliases of a tied weight map to the same mask."""
        out = {}
        for layer in self._all_layers:
            mask = layer.mask
            for name in layer.names:
                out[name] = mask
        return out

    @property
    def end_step(self) -> int:
        """The last step at which any mask changes."""
        return max((g.last_update() for g in self._groups if g.updates), default=0)

    def update_steps(self) -> list[int]:
        """All steps at which some mask is recomputed."""
        steps = {s for g in self._groups if g.updates for s in update_steps(g.schedule)}
        return sorted(steps)

    def target_sparsities(self, step: int | None = None) -> dict[str, float]:
        """What each layer's sparsity should be at ``step`` (default: the end) under its local target
        (clipped into the per-layer bounds in local scope)."""
        out = {}
        for g in self._groups:
            for i, layer in enumerate(g.layers):
                out[layer.name] = g.targets[i] if step is None else g.target_at(i, step)
        return out

    def report(self) -> SparsityReport:
        """Sparsity counted from the weights of the pruned layers (and of the whole model), with warnings."""
        self._check_bindings()
        report = sparsity_report(self.model, self.layer_names)
        found = self._notes + self._warned + [m for m in self._diagnose(final=False) if m not in self._warned]
        return dataclasses.replace(report, warnings=tuple(found))

    # ------------------------------------------------------------------ callbacks
    def on_train_begin(self) -> None:
        """Zero what the masks prune (e.g. after loading a state)."""
        self._check_bindings()
        self._keeper.mask_weights()

    def on_epoch_begin(self, epoch: int | None = None) -> None:
        """Nothing to do: schedules are in steps. Present so loops can call every callback."""

    def on_step_begin(self, step: int | None = None) -> None:
        """Update masks when ``step`` (default: the pruner's own count) is an update step."""
        if step is not None:
            self.step = step
        self._begin_calls += 1
        if self.step > self._last_begin_step:
            self._last_begin_step = self.step
        self._check_bindings()   # a Parameter replaced between steps is masked before this step's forward
        if self._updated_at == self.step or self.step > self._last_change:
            return
        due = [g for g in self._groups if g.updates and is_update_step(g.schedule, self.step)
               and (any(layer.pruned for layer in g.layers)
                    or any(g.target_at(i, self.step) > 0 for i in range(len(g.layers))))]
        for g in due:
            self._update(g, self.step)
        if due:
            self._keeper.refresh()
        self._updated_at = self.step

    def regularization(self) -> torch.Tensor:
        """The term to add to the loss (group lasso: α·Σ‖group‖₂); a zero tensor when no group has one."""
        total: torch.Tensor | None = None
        for criterion in self._regularizers:
            term = criterion.regularization()
            if term is not None:
                total = term if total is None else total + term
        return self._zero if total is None else total

    def on_before_optimizer_step(self) -> None:
        """Let gradient criteria read the gradients; with ``mask_gradients``, zero those of pruned weights.

        Call it right after ``loss.backward()`` (before gradient clipping).
        """
        for g in self._observers:
            if self.step >= g.last_update():
                continue
            if g.criterion.observes == "every_step" or is_update_step(g.schedule, self.step + 1):
                g.criterion.observe()
        if self.mask_gradients:
            self._check_bindings()
            self._keeper.mask_grads()

    def on_after_optimizer_step(self) -> None:
        """Put pruned weights back to exactly zero and count the step."""
        self._check_bindings()
        self._keeper.mask_weights()
        self.step += 1
        self._after_calls += 1

    def on_epoch_end(self) -> None:
        """Nothing to do; present for symmetry."""

    def on_train_end(self) -> None:
        """Apply the masks a last time; warn (once) about callbacks never called or a target not reached."""
        self._check_bindings()
        self._keeper.mask_weights()
        for message in self._diagnose(final=True):
            if message not in self._warned:
                self._warned.append(message)
                warnings.warn(message, PruningWarning, stacklevel=2)

    def _diagnose(self, *, final: bool) -> list[str]:
        """What looks like misuse so far; ``final`` once training has ended."""
        out = []
        updating = [g for g in self._groups if g.updates and max(g.targets, default=0.0) > 0]
        if updating and self._last_begin_step < 0 and (final or self._after_calls > 0):
            out.append("on_step_begin() was never called, so the masks were never updated and the model was not "
                       "pruned; call pruner.on_step_begin() at the start of every training step")
        if self._after_calls == 0 and (self._begin_calls > 0 or (final and updating and not self._oneshot)):
            out.append(f"on_after_optimizer_step() was never called, so pruned weights were not put back to zero "
                       f"after optimizer steps and the step count stayed at {self.step}; call "
                       "pruner.on_after_optimizer_step() right after optimizer.step()")
        if final and self._last_begin_step >= 0:
            for g in updating:
                if self._last_begin_step < g.schedule.end_step:
                    target = max(g.targets)
                    out.append(f"groups[{g.index}]: the schedule ends at step {g.schedule.end_step} but training "
                               f"stopped after {self.step} steps, so the target sparsity {target:g} was not reached "
                               f"(sparsity {g.sparsity():.4f}); end the schedule earlier or train longer")
        return out

    # ------------------------------------------------------------------ binding
    def _check_bindings(self) -> None:
        """Follow Parameters replaced since the last callback (cheap: an identity test per layer)."""
        for layer in self._all_layers:
            if not layer.bound():
                break
        else:
            return
        stale = [layer for layer in self._all_layers if not layer.bound()]
        for layer in stale:
            new = layer.module._parameters.get("weight")
            if not isinstance(new, torch.Tensor):
                raise ConfigError(f"layer {layer.name!r} no longer holds a weight Parameter (something replaced or "
                                  "re-parametrized it after the Pruner was built)", key="model", value=layer.name,
                                  allowed="a model whose pruned layers keep a 'weight' Parameter")
            if tuple(new.shape) != tuple(layer.keep.shape):
                raise ConfigError(f"layer {layer.name!r} now has a weight of shape {tuple(new.shape)}; its mask has "
                                  f"shape {tuple(layer.keep.shape)}", key="model", value=layer.name,
                                  allowed="replacing weights by ones of the same shape, or a new Pruner")
            for alias, module in layer.aliases:
                if module._parameters.get("weight") is not new:
                    raise ConfigError(f"layers {layer.name!r} and {alias!r} shared one weight and now hold different "
                                      "ones (loading with assign=True unties weights)", key="model", value=alias,
                                      allowed="re-tie the weights, or build a new Pruner")
            layer.rebind(new)
            g, i = self._place[id(layer)]
            g.criterion.weights[i] = new
            log.info("layer %s: weight replaced after the pruner was built; mask re-bound and applied", layer.name)
        self._keeper = MaskKeeper(self._all_layers)

    # ------------------------------------------------------------------ mask updates
    def _global_bounds(self, g: _Group, step: int) -> tuple[int, list[int], list[int]]:
        """Global scope at ``step``: the budget in weights and each layer's lower/upper count in groups.

        The upper bound is ``max_sparsity_ratio_per_op`` at every step. The lower bound follows the ramp:
        ``min_sparsity_ratio_per_op · current target / final target``, so a layer is not pushed to the final
        minimum at the first update. (INC never raises a layer to the minimum during the ramp; it only holds
        back layers above the final target so that the minimum stays reachable. Scaling the minimum with the
        ramp keeps that spirit and gives a bound the exact water-filling select can honour at every step.)
        Bounds are ceil/floor of ratio × weights in groups; where that rounding alone makes the budget
        unreachable, the bound is relaxed by one group per layer. A target the bounds cannot reach is a
        ConfigError naming the numbers.
        """
        cfg = g.config
        final = cfg.target_sparsity
        current = sparsity_at(g.schedule, final, step)
        total = sum(layer.numel for layer in g.layers)
        budget = round(current * total)
        min_ratio = cfg.min_sparsity_ratio_per_op * (current / final if final > 0 else 0.0)
        max_ratio = cfg.max_sparsity_ratio_per_op
        sizes, counts, lo, hi, lo_soft, hi_soft = [], [], [], [], [], []
        for layer in g.layers:
            shape2d = to_2d(layer.keep).shape
            size, groups = g.pattern.group_size(shape2d), g.pattern.group_count(shape2d)
            sizes.append(size)
            counts.append(groups)
            lo.append(min(groups, math.ceil(min_ratio * layer.numel / size - _EPS)))
            lo_soft.append(min(groups, math.floor(min_ratio * layer.numel / size + _EPS)))
            hi.append(min(groups, math.floor(max_ratio * layer.numel / size + _EPS)))
            hi_soft.append(min(groups, math.ceil(max_ratio * layer.numel / size - _EPS)))
        equal = len(set(sizes)) == 1
        unit = sizes[0] if equal else 1
        need = round(budget / unit) if equal else budget   # in groups when all layers share a group size
        slack = 0 if equal else max(sizes) // 2

        def weight(counts_: list[int]) -> int:
            return sum(c * (1 if equal else s) for c, s in zip(counts_, sizes))

        for i in range(len(lo)):  # rounding only: relax one group at a time
            if weight(lo) <= need + slack:
                break
            lo[i] = lo_soft[i]
        for i in range(len(hi)):
            if weight(hi) >= need - slack:
                break
            hi[i] = hi_soft[i]
        n_layers = len(g.layers)
        if weight(hi) < need - slack:
            most = weight(hi) * (unit if equal else 1)
            raise ConfigError(f"global target {final:g} prunes {budget} of the group's {total} weights at step {step}, "
                              f"but max_sparsity_ratio_per_op {max_ratio:g} lets its {n_layers} layers prune at most "
                              f"{most} together", key="max_sparsity_ratio_per_op", value=max_ratio,
                              allowed=f"a larger maximum, or target_sparsity at most {most / total:.4f}")
        if weight(lo) > need + slack:
            least = weight(lo) * (unit if equal else 1)
            raise ConfigError(f"global target {final:g} prunes {budget} of the group's {total} weights at step {step}, "
                              f"but min_sparsity_ratio_per_op {cfg.min_sparsity_ratio_per_op:g} makes its {n_layers} "
                              f"layers prune at least {least} together", key="min_sparsity_ratio_per_op",
                              value=cfg.min_sparsity_ratio_per_op,
                              allowed=f"at most the target sparsity ({final:g})")
        return budget, lo, hi

    @torch.no_grad()
    def _update(self, g: _Group, step: int) -> None:
        group_scores, sizes, pruned = [], [], []
        score2d = []
        for layer, score in zip(g.layers, g.criterion.scores()):
            if layer.pruned:  # what is pruned stays pruned: it goes first, and counts as a lower bound
                score.masked_fill_(~layer.keep, float("-inf"))
            s2 = to_2d(score)
            gs = g.pattern.group_scores(s2, g.config.criterion_reduce_type)
            score2d.append(s2)
            group_scores.append(gs)
            sizes.append(g.pattern.group_size(s2.shape))
            pruned.append(int(torch.isneginf(gs).sum()) if layer.pruned else 0)
        if g.config.pruning_scope == "global":
            budget, lo, hi = self._global_bounds(g, step)
            lo = [max(a, b) for a, b in zip(lo, pruned)]
            choices = choose_lowest(group_scores, sizes, budget, lower=lo, upper=[max(a, b) for a, b in zip(hi, lo)])
        else:
            choices = [choose_lowest([gs], [size], round(g.target_at(i, step) * layer.numel), lower=[done])[0]
                       for i, (layer, gs, size, done) in enumerate(zip(g.layers, group_scores, sizes, pruned))]
        for layer, choice, s in zip(g.layers, choices, score2d):
            layer.set_mask(from_2d(g.pattern.expand(choice, s), layer.weight.shape))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step %d: group %d updated to %s", step, g.index,
                      {layer.name: round(layer.pruned_count() / layer.numel, 4) for layer in g.layers})

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Masks, criterion state (scores, RNG) and step: everything needed to resume mid-pruning."""
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "updated_at": self._updated_at,
            "masks": {layer.name: layer.mask for layer in self._all_layers},
            "criteria": [g.criterion.state_dict() for g in self._groups],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a pruner with the same config on the same model.

        Any mismatch is a ConfigError (a ValueError) naming what differs.
        """
        if not isinstance(state, Mapping):
            raise ConfigError("expected a pruner state (a mapping from Pruner.state_dict())", key="state",
                              value=type(state).__name__, allowed="the dict Pruner.state_dict() returns")
        if state.get("format") != STATE_FORMAT:
            raise ConfigError("unsupported pruner state format", key="format", value=state.get("format"),
                              allowed=str(STATE_FORMAT))
        masks, criteria = state.get("masks"), state.get("criteria")
        if not isinstance(masks, Mapping) or not isinstance(criteria, (list, tuple)) \
                or not isinstance(state.get("step"), int):
            raise ConfigError("the pruner state lacks masks, criteria or step", key="state",
                              value=sorted(state), allowed="format, step, updated_at, masks, criteria")
        names = set(masks)
        if names != set(self.layer_names) or len(criteria) != len(self._groups):
            missing = sorted(set(self.layer_names) - names)
            extra = sorted(names - set(self.layer_names))
            raise ConfigError(f"pruner state does not match this pruner: layers missing {missing}, unexpected "
                              f"{extra}, {len(criteria)} criteria for {len(self._groups)} groups",
                              key="masks", value=sorted(names),
                              allowed="a state from a Pruner built with the same config and model")
        for layer in self._all_layers:
            mask = masks[layer.name]
            if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(layer.keep.shape):
                got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise ConfigError(f"mask of layer {layer.name!r} has shape {got}; the layer's weight has shape "
                                  f"{tuple(layer.keep.shape)}", key=f"masks.{layer.name}", value=got,
                                  allowed=str(tuple(layer.keep.shape)))
        saved = [g.criterion.state_dict() for g in self._groups]
        try:
            for g, crit_state in zip(self._groups, criteria):
                g.criterion.load_state_dict(crit_state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            for g, mine in zip(self._groups, saved):
                g.criterion.load_state_dict(mine)
            raise ConfigError(f"criterion state does not fit: {exc}", key="criteria",
                              allowed="a state from a Pruner built with the same config and model") from None
        self.step = int(state["step"])
        self._updated_at = state.get("updated_at")
        self._check_bindings()
        for layer in self._all_layers:
            layer.set_mask(masks[layer.name].to(device=layer.keep.device, dtype=torch.bool))
        self._keeper.refresh()


def prune(model: nn.Module, config: Any) -> Pruner:
    """One-shot: prune ``model`` in place to each group's target now, with a data-free criterion.

    Returns the pruner (masks, :meth:`Pruner.report`). To keep the zeros while fine-tuning, run the
    returned pruner's callbacks in the loop (no further updates happen) or use ``pattern_lock``.
    """
    pruner = Pruner(model, config)
    for g in pruner._groups:
        if not g.updates:
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
    pruner._last_begin_step = pruner.step
    pruner._oneshot = True
    return pruner
