"""The conditional search space: one trial's sample becomes a complete, valid pruning config.

What is sampled, in order (names are Optuna parameter names):

- ``pruning_type``, ``pattern``; ``scope`` only when the pattern allows global scope (N:M is local);
- the overall target sparsity as a log-uniform density (``density``; ``density|N:M`` for N:M patterns, whose
  range is capped at N/M so every sample is reachable);
- under local scope with ``layer_freedom > 0``: the base ``allocation`` and a factor ``layer:<name>`` per
  layer, turned into per-layer targets by :func:`allocate` so the parameter-weighted overall sparsity is the
  sampled target exactly (within one pattern group per layer; one weight for unstructured pruning);
- schedule knobs (``ramp``, ``start``, ``end``, ``frequency``, ``finetune_epochs``), and ``lr`` and
  ``reg_coeff`` (group_lasso only) when the spec gives ranges.

A knob whose range is a single value is fixed and not sampled. :meth:`Space.check` validates the whole
space against the task's model before any trial runs, so no trial is wasted on a config the engine would
reject (a block that does not divide a layer, for example).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.patterns import Pattern, build_pattern
from sparsesearch.pruning.targets import select_layers
from sparsesearch.records.names import CRITERIA
from sparsesearch.records.pruning import PruningConfig, PruningGroup, Schedule
from sparsesearch.records.study import Budget, SearchSpace


class Suggest(Protocol):
    """The part of ``optuna.Trial`` the space uses (``optuna.trial.FixedTrial`` works too)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Layer:
    """A prunable layer as the allocator sees it: ``units`` groups of ``unit`` weights each can be pruned."""

    name: str
    numel: int
    shape: tuple[int, ...]

    def units(self, pattern: Pattern) -> tuple[int, int]:
        """(weights pruned per group, number of groups) of this layer under ``pattern``."""
        shape2d = torch.Size((self.shape[0], self.numel // self.shape[0]))
        return pattern.group_size(shape2d), pattern.group_count(shape2d)

    def erk(self) -> float:
        """Erdős–Rényi-kernel density preference: (sum of dims) / (product of dims); denser for small layers."""
        return sum(self.shape) / self.numel


@dataclass(frozen=True)
class TrialPlan:
    """Everything one trial needs: the pruning config and the training settings it runs with."""

    pruning: PruningConfig
    epochs: int
    steps_per_epoch: int
    lr: float
    target_sparsity: float
    finetune_epochs: int
    summary: dict[str, Any]

    @property
    def group(self) -> PruningGroup:
        return self.pruning.groups[0]


def allocate(layers: Sequence[Layer], pattern: Pattern, target: float, preference: Sequence[float],
             bounds: tuple[float, float]) -> dict[str, int]:
    """Weights to prune per layer so the total is ``round(target * N)`` (to within one group per layer).

    Layer densities follow ``preference`` (relative kept fraction, > 0) scaled by one common factor, clipped
    to ``bounds`` (per-layer sparsity); the factor is found by bisection, then counts are rounded to whole
    pattern groups, distributing the remainder by largest fractional part. Raises ConfigError when the
    bounds cannot meet the target.
    """
    units = [layer.units(pattern) for layer in layers]
    n = [layer.numel for layer in layers]
    total = sum(n)
    budget = round(target * total)
    lo_b, hi_b = bounds
    kmin = [math.ceil(lo_b * ni / g - 1e-9) for ni, (g, _) in zip(n, units)]
    kmax = [min(u, math.floor(hi_b * ni / g + 1e-9)) for ni, (g, u) in zip(n, units)]
    reach_lo = sum(k * g for k, (g, _) in zip(kmin, units))
    reach_hi = sum(k * g for k, (g, _) in zip(kmax, units))
    if not reach_lo <= budget <= reach_hi:
        raise ConfigError(f"an overall sparsity of {target:.4g} cannot be met within the per-layer bounds "
                          f"{list(bounds)} with the {pattern.name} pattern (reachable: {reach_lo / total:.4g} .. "
                          f"{reach_hi / total:.4g})", key="space.sparsity", value=target,
                          allowed=f"[{reach_lo / total:.4g}, {reach_hi / total:.4g}]")

    def pruned_units(c: float) -> list[float]:
        out = []
        for ni, (g, _), pref, k0, k1 in zip(n, units, preference, kmin, kmax):
            kept_density = min(1.0, c * pref)
            out.append(min(max((1.0 - kept_density) * ni / g, k0), k1))
        return out

    def pruned(c: float) -> float:
        return sum(k * g for k, (g, _) in zip(pruned_units(c), units))

    lo_c, hi_c = 1e-12, 1.0 / min(preference) + 1.0
    for _ in range(200):  # pruned(c) decreases as c grows
        mid = math.sqrt(lo_c * hi_c)
        if pruned(mid) > budget:
            lo_c = mid
        else:
            hi_c = mid
        if hi_c / lo_c < 1 + 1e-15:
            break
    exact = pruned_units(hi_c)
    counts = [int(math.floor(k + 1e-9)) for k in exact]
    remainder = budget - sum(k * g for k, (g, _) in zip(counts, units))
    order = sorted(range(len(layers)), key=lambda i: exact[i] - counts[i], reverse=True)
    progress = True
    while remainder > 0 and progress:
        progress = False
        for i in order:
            g = units[i][0]
            if counts[i] < kmax[i] and 2 * remainder > g:  # adding one group brings the total closer
                counts[i] += 1
                remainder -= g
                progress = True
                if remainder <= 0:
                    break
    return {layer.name: k * units[i][0] for i, (layer, k) in enumerate(zip(layers, counts))}


class Space:
    """The study's search space bound to the task's model and budget."""

    def __init__(self, space: SearchSpace, budget: Budget, model: nn.Module, steps_per_epoch: int,
                 seed: int = 0) -> None:
        self.space = space
        self.budget = budget
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.layers = self._select(model)
        self.patterns = {p: build_pattern(p) for p in space.patterns}
        self.check(model)

    def _select(self, model: nn.Module) -> list[Layer]:
        probe = PruningGroup(op_types=self.space.op_types, op_names=self.space.op_names,
                             excluded_op_names=self.space.excluded_op_names)
        try:
            chosen = select_layers(model, probe)
        except ConfigError as exc:
            raise exc.located(prefix="space") from None
        weights = [(name, m.get_parameter("weight")) for name, m in chosen]
        return [Layer(name, w.numel(), tuple(w.shape)) for name, w in weights]

    @property
    def total_weights(self) -> int:
        return sum(layer.numel for layer in self.layers)

    def check(self, model: nn.Module) -> None:
        """Reject, before any trial, a space with configs the engine would refuse on this model."""
        modules = dict(model.named_modules())
        for i, (text, pattern) in enumerate(self.patterns.items()):
            for layer in self.layers:
                try:
                    pattern.check(layer.name, modules[layer.name].weight.shape)
                except ConfigError as exc:
                    raise ConfigError(f"{exc.problem}; every pattern searched must fit every selected layer",
                                      key=f"space.patterns[{i}]", value=text,
                                      allowed="patterns that fit all selected layers (e.g. 1x1, or 1xM blocks "
                                      "whose M divides every input size), or exclude the layer with "
                                      "space.excluded_op_names") from None
        for i, (text, pattern) in enumerate(self.patterns.items()):
            if not pattern.supports_global and "local" not in self.space.scopes:
                raise ConfigError(f"the {text} pattern is local by nature, but the space searches only global scope",
                                  key=f"space.patterns[{i}]", value=text,
                                  allowed="add local to space.scopes, or drop the N:M pattern")
        epochs = self.budget.epochs or 1
        if self.space.schedule.finetune_epochs[1] >= epochs:
            raise ConfigError(f"the mask-locked fine-tune stage must leave epochs to prune in (budget.epochs is "
                              f"{epochs})", key="space.schedule.finetune_epochs",
                              value=list(self.space.schedule.finetune_epochs), allowed=f"at most {epochs - 1}")
        if len(self.layers) == 0:
            raise ConfigError("selects no layer", key="space.op_names", value=list(self.space.op_names))

    # ------------------------------------------------------------------ sampling
    def sample(self, trial: Suggest) -> TrialPlan:
        """Sample a complete, valid trial plan."""
        sp = self.space
        ptype = _choice(trial, "pruning_type", sp.pruning_types)
        pattern_name = _choice(trial, "pattern", sp.patterns)
        pattern = self.patterns[pattern_name]
        # N:M is local by nature: its trials sample no scope (check() made sure local is allowed)
        scope = _choice(trial, "scope", sp.scopes) if pattern.supports_global else "local"

        lo, hi = sp.sparsity
        capped = pattern.max_sparsity < 1.0 and pattern.max_sparsity < hi
        hi = min(hi, pattern.max_sparsity)
        name = f"density|{pattern_name}" if capped else "density"
        if lo == hi:
            target = lo
        else:
            target = 1.0 - trial.suggest_float(name, 1.0 - hi, 1.0 - lo, log=True)
        target = min(max(target, lo), hi)

        layer_targets: dict[str, float] = {}
        allocation = "global" if scope == "global" else "uniform"
        if scope == "local" and len(self.layers) > 1 and (sp.layer_freedom > 0 or "erk" in sp.allocations):
            allocation = _choice(trial, "allocation", sp.allocations)
            prefs = []
            for layer in self.layers:
                base = layer.erk() if allocation == "erk" else 1.0
                factor = 0.0
                if sp.layer_freedom > 0:
                    factor = trial.suggest_float(f"layer:{layer.name}", -sp.layer_freedom, sp.layer_freedom)
                prefs.append(base * 2.0**factor)
            counts = allocate(self.layers, pattern, target, prefs, sp.layer_bounds)
            layer_targets = {layer.name: counts[layer.name] / layer.numel for layer in self.layers}
        elif scope == "local" and pattern.max_sparsity < 1.0:
            target = min(target, pattern.max_sparsity)

        sched = sp.schedule
        ramp = _choice(trial, "ramp", sched.ramps)
        start = _float(trial, "start", sched.start)
        end = _float(trial, "end", sched.end)
        frequency = _int(trial, "frequency", sched.frequency, log=True)
        finetune = _int(trial, "finetune_epochs", sched.finetune_epochs)
        lr = float(self.budget.lr or 1e-3) if sp.lr is None else _float(trial, "lr", sp.lr, log=True)
        reg_coeff = _float(trial, "reg_coeff", sp.reg_coeff, log=True) if ptype == "group_lasso" else 1e-4

        epochs = int(self.budget.epochs or 1)
        window = (epochs - finetune) * self.steps_per_epoch
        start_step = int(round(start * window))
        end_step = min(int(round(end * window)), window)
        if CRITERIA[ptype].needs_grad:
            start_step = max(start_step, 1)  # a gradient criterion needs one backward pass before its first update
        end_step = max(end_step, start_step)
        schedule = Schedule(start_step=start_step, end_step=end_step, pruning_frequency=frequency, ramp=ramp)
        bounds_lo, bounds_hi = sp.layer_bounds
        group = PruningGroup(
            pruning_type=ptype,
            pattern=pattern_name,
            pruning_scope=scope,
            target_sparsity=round(target, 12),
            layer_targets=layer_targets,
            op_types=sp.op_types,
            op_names=sp.op_names,
            excluded_op_names=sp.excluded_op_names,
            min_sparsity_ratio_per_op=bounds_lo,
            max_sparsity_ratio_per_op=max(bounds_hi, target),
            reg_coeff=reg_coeff,
            seed=self.seed,
            schedule=schedule,
        )
        summary = {
            "pruning_type": ptype, "pattern": pattern_name, "scope": scope, "allocation": allocation,
            "target_sparsity": target, "ramp": ramp, "start_step": start_step, "end_step": end_step,
            "frequency": frequency, "finetune_epochs": finetune, "lr": lr,
        }
        return TrialPlan(PruningConfig((group,)), epochs, self.steps_per_epoch, float(lr), float(target), finetune,
                         summary)

    def warm_start(self, levels: Sequence[float]) -> list[tuple[dict[str, Any], str]]:
        """Optuna params for the classic baseline at each sparsity level: global (else uniform local)
        magnitude pruning, unstructured, cubic ramp over the first 2/3 of training, and the top of the
        learning-rate range (fine-tuning a heavily pruned model recovers faster with a large step: on
        digits-mlp at 99 %, 8e-3 beat 3e-3 by 2-5 points). A study enqueues them first, so its front starts
        no worse than what one would try by hand. Levels outside the space are skipped."""
        sp, sched = self.space, self.space.schedule
        ptype = "magnitude" if "magnitude" in sp.pruning_types else sp.pruning_types[0]
        pattern_name = "1x1" if "1x1" in sp.patterns else sp.patterns[0]
        pattern = self.patterns[pattern_name]
        scope = "global" if "global" in sp.scopes and pattern.supports_global else "local"
        lo, hi = sp.sparsity
        capped = pattern.max_sparsity < 1.0 and pattern.max_sparsity < hi
        hi = min(hi, pattern.max_sparsity)
        out = []
        for level in levels:
            if not lo <= level <= hi:
                continue
            p: dict[str, Any] = {}
            if len(sp.pruning_types) > 1:
                p["pruning_type"] = ptype
            if len(sp.patterns) > 1:
                p["pattern"] = pattern_name
            if pattern.supports_global and len(sp.scopes) > 1:
                p["scope"] = scope
            if lo != hi:
                p[f"density|{pattern_name}" if capped else "density"] = 1.0 - level
            if scope == "local" and len(self.layers) > 1 and (sp.layer_freedom > 0 or "erk" in sp.allocations):
                if len(sp.allocations) > 1:
                    p["allocation"] = "uniform" if "uniform" in sp.allocations else sp.allocations[0]
                if sp.layer_freedom > 0:
                    p.update({f"layer:{layer.name}": 0.0 for layer in self.layers})
            if len(sched.ramps) > 1:
                p["ramp"] = "cubic" if "cubic" in sched.ramps else sched.ramps[0]
            for key, bounds in (("start", sched.start), ("end", sched.end)):
                if bounds[0] != bounds[1]:
                    p[key] = bounds[0] if key == "start" else min(max(2.0 / 3.0, bounds[0]), bounds[1])
            for key, bounds in (("frequency", sched.frequency), ("finetune_epochs", sched.finetune_epochs)):
                if bounds[0] != bounds[1]:
                    p[key] = bounds[0]
            if sp.lr is not None and sp.lr[0] != sp.lr[1]:
                p["lr"] = sp.lr[1]  # a pruned model recovers faster with a large step (measured on digits-mlp)
            if ptype == "group_lasso" and sp.reg_coeff[0] != sp.reg_coeff[1]:
                p["reg_coeff"] = math.sqrt(sp.reg_coeff[0] * sp.reg_coeff[1])
            out.append((p, f"{scope} {ptype} {pattern_name} at {level:g}"))
        return out


def _choice(trial: Suggest, name: str, choices: Sequence[Any]) -> Any:
    choices = list(choices)
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, choices)


def _float(trial: Suggest, name: str, bounds: tuple[float, float], *, log: bool = False) -> float:
    lo, hi = bounds
    return float(lo) if lo == hi else float(trial.suggest_float(name, lo, hi, log=log))


def _int(trial: Suggest, name: str, bounds: tuple[int, int], *, log: bool = False) -> int:
    lo, hi = bounds
    return int(lo) if lo == hi else int(trial.suggest_int(name, lo, hi, log=log and lo > 0))

