"""The typed pruning configuration (torch-free): schedules, layer groups, and the whole pruning config.

Defined once and used by the engine, the recipes and the search. Objects are frozen dataclasses; build them
in Python (values are checked in ``__post_init__``) or from plain data with :meth:`PruningConfig.from_dict`
(unknown keys, wrong types and out-of-range values are rejected with the key path).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError, unknown_name
from sparsesearch.records import schema
from sparsesearch.records.names import CRITERIA, OP_TYPES, RAMPS, REDUCE_TYPES, SCOPES
from sparsesearch.records.patterns import parse_pattern


def check_layer_regexes(obj: Any) -> None:
    """ConfigError for an ``op_names`` / ``excluded_op_names`` entry that is not a regular expression."""
    for key in ("op_names", "excluded_op_names"):
        for i, regex in enumerate(getattr(obj, key)):
            try:
                re.compile(regex)
            except re.error as exc:
                raise ConfigError(f"not a valid regular expression: {exc}", key=f"{key}[{i}]", value=regex,
                                  allowed="a Python regular expression searched in dotted module names"
                                  ) from None


@dataclass(frozen=True)
class Schedule:
    """When masks update and how sparse they are: a ramp from ``init_sparsity`` to the group's target.

    Steps count optimizer steps from 0. Updates happen at ``start_step``, every ``pruning_frequency`` steps
    after it, and at ``end_step``; ``start_step == end_step`` is one-shot. Epoch-based settings
    (``start_epoch``/``end_epoch``/``frequency``, as in the LPOT YAML) are converted to steps with
    :meth:`in_steps` once the steps per epoch are known.
    """

    start_step: int = schema.spec(0, ge=0)
    end_step: int = schema.spec(0, ge=0)
    pruning_frequency: int = schema.spec(1, gt=0)
    init_sparsity: float = schema.spec(0.0, ge=0.0, lt=1.0)
    ramp: str = schema.spec("cubic", choices=RAMPS)
    start_epoch: int | None = schema.spec(None, ge=0)
    end_epoch: int | None = schema.spec(None, ge=0)
    frequency: int | None = schema.spec(None, gt=0, doc="pruning frequency in epochs")

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        epoch_keys = [k for k in ("start_epoch", "end_epoch", "frequency") if getattr(self, k) is not None]
        if epoch_keys:
            if self.start_epoch is None or self.end_epoch is None:
                raise ConfigError("an epoch-based schedule needs both start_epoch and end_epoch",
                                  key=epoch_keys[0], value=getattr(self, epoch_keys[0]),
                                  allowed="start_epoch and end_epoch (and optionally frequency) together")
            if (self.start_step, self.end_step, self.pruning_frequency) != (0, 0, 1):
                raise ConfigError("give the schedule in steps or in epochs, not both", key="start_epoch",
                                  value=self.start_epoch, allowed="start_step/end_step/pruning_frequency "
                                  "or start_epoch/end_epoch/frequency")
            if self.start_epoch > self.end_epoch:
                raise ConfigError(f"start_epoch must not be after end_epoch ({self.end_epoch})",
                                  key="start_epoch", value=self.start_epoch, allowed=f"0 .. {self.end_epoch}")
        elif self.start_step > self.end_step:
            raise ConfigError(f"start_step must not be after end_step ({self.end_step})", key="start_step",
                              value=self.start_step, allowed=f"0 .. {self.end_step}")

    @property
    def epoch_based(self) -> bool:
        return self.start_epoch is not None

    def in_steps(self, steps_per_epoch: int | None) -> Schedule:
        """This schedule in optimizer steps (epoch settings multiplied by ``steps_per_epoch``)."""
        if not self.epoch_based:
            return self
        if not steps_per_epoch or steps_per_epoch <= 0:
            raise ConfigError("an epoch-based schedule needs the number of steps per epoch",
                              key="schedule.start_epoch", value=self.start_epoch,
                              allowed="pass steps_per_epoch to the Pruner (a positive integer)")
        assert self.start_epoch is not None and self.end_epoch is not None  # epoch_based, checked in __post_init__
        return Schedule(
            start_step=self.start_epoch * steps_per_epoch,
            end_step=self.end_epoch * steps_per_epoch,
            pruning_frequency=(self.frequency or 1) * steps_per_epoch,
            init_sparsity=self.init_sparsity,
            ramp=self.ramp,
        )


@dataclass(frozen=True)
class PruningGroup:
    """Layers pruned together, with one criterion, pattern, scope and schedule.

    Layers are chosen by module type (``op_types``) and by regular expressions matched against the whole
    dotted module name (``op_names``; empty means every layer of those types) minus ``excluded_op_names``.
    Either ``target_sparsity`` applies to every selected layer (``local``) or to the group as a whole
    (``global``), or ``layer_targets`` maps exact layer names to their own targets (local scope only).
    """

    pruning_type: str = "magnitude"
    pattern: str = "1x1"
    pruning_scope: str = schema.spec("local", choices=SCOPES)
    target_sparsity: float = schema.spec(0.9, ge=0.0, lt=1.0)
    layer_targets: dict[str, float] = schema.spec(default_factory=dict, ge=0.0, lt=1.0)
    op_types: tuple[str, ...] = schema.spec(("Linear", "Conv"), choices=OP_TYPES)
    op_names: tuple[str, ...] = ()
    excluded_op_names: tuple[str, ...] = ()
    min_sparsity_ratio_per_op: float = schema.spec(0.0, ge=0.0, lt=1.0)
    max_sparsity_ratio_per_op: float = schema.spec(0.98, ge=0.0, le=1.0)
    criterion_reduce_type: str = schema.spec("mean", choices=REDUCE_TYPES)
    reg_coeff: float = schema.spec(1e-4, ge=0.0, doc="group_lasso strength alpha")
    momentum: float = schema.spec(0.9, ge=0.0, lt=1.0, doc="snip_momentum score decay")
    seed: int = schema.spec(0, ge=0, doc="seed of the random criterion")
    schedule: Schedule = dataclasses.field(default_factory=Schedule)

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.pruning_type not in CRITERIA:
            raise unknown_name("pruning_type", self.pruning_type, CRITERIA)
        pattern = parse_pattern(self.pattern, key="pattern")
        check_layer_regexes(self)
        if self.min_sparsity_ratio_per_op > self.max_sparsity_ratio_per_op:
            raise ConfigError(f"min_sparsity_ratio_per_op must not exceed max_sparsity_ratio_per_op "
                              f"({self.max_sparsity_ratio_per_op})", key="min_sparsity_ratio_per_op",
                              value=self.min_sparsity_ratio_per_op, allowed=f"0 .. {self.max_sparsity_ratio_per_op}")
        if self.layer_targets and self.pruning_scope == "global":
            raise ConfigError("a per-layer target map sets each layer's sparsity, so it needs local scope",
                              key="pruning_scope", value="global", allowed="local (with layer_targets)")
        if not pattern.supports_global and self.pruning_scope == "global":
            raise ConfigError(f"the {self.pattern} pattern prunes a fixed share of every group of weights, "
                              "so it is local by nature and cannot be combined with global scope",
                              key="pruning_scope", value="global", allowed="local")
        if pattern.max_sparsity < 1.0:
            targets = [("target_sparsity", self.target_sparsity)] if not self.layer_targets else [
                (f"layer_targets.{k}", v) for k, v in self.layer_targets.items()]
            targets.append(("schedule.init_sparsity", self.schedule.init_sparsity))
            for key, value in targets:
                if value > pattern.max_sparsity + 1e-12:
                    raise ConfigError(f"the {self.pattern} pattern can prune at most {pattern.max_sparsity:g} "
                                      "of a layer", key=key, value=value, allowed=f"0 .. {pattern.max_sparsity:g}")
        if self.schedule.init_sparsity > self.target_sparsity and not self.layer_targets \
                and self.pruning_type != "pattern_lock":
            raise ConfigError(f"init_sparsity must not exceed target_sparsity ({self.target_sparsity})",
                              key="schedule.init_sparsity", value=self.schedule.init_sparsity,
                              allowed=f"0 .. {self.target_sparsity}")

        s = self.schedule
        starts_at_zero = (s.start_epoch == 0) if s.epoch_based else (s.start_step == 0)
        one_shot = (s.start_epoch == s.end_epoch) if s.epoch_based else (s.start_step == s.end_step)
        prunes_now = one_shot or s.init_sparsity > 0
        if self.uses_gradients and starts_at_zero and prunes_now and max(self.all_targets()) > 0:
            key = "schedule.start_epoch" if s.epoch_based else "schedule.start_step"
            raise ConfigError(f"pruning_type {self.pruning_type!r} scores weights with gradients, so it cannot prune "
                              "at step 0, before any backward pass", key=key, value=0,
                              allowed="a start of 1 or later (or init_sparsity 0 with start < end)")

    def all_targets(self) -> list[float]:
        """Every target sparsity this group asks for (one, or one per layer)."""
        return list(self.layer_targets.values()) if self.layer_targets else [self.target_sparsity]

    @property
    def uses_gradients(self) -> bool:
        return CRITERIA[self.pruning_type].needs_grad


@dataclass(frozen=True)
class PruningConfig:
    """A list of pruning groups; a layer may belong to at most one group."""

    groups: tuple[PruningGroup, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise ConfigError("a pruning config needs at least one group", key="groups", value=[],
                              allowed="a list of one or more pruning groups")

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> PruningConfig:
        """Strictly load ``{"groups": [...]}``, a list of group dicts, or one group dict."""
        return coerce_config(data, path)

    def to_dict(self) -> dict[str, Any]:
        return schema.dump(self)


def coerce_config(data: Any, path: str = "") -> PruningConfig:
    """Accept a PruningConfig, a PruningGroup, a list of groups (objects or dicts) or a dict."""
    if isinstance(data, PruningConfig):
        return data
    if isinstance(data, PruningGroup):
        return PruningConfig((data,))
    if isinstance(data, Mapping) and "groups" in data:
        return schema.load(PruningConfig, data, path)
    if isinstance(data, Mapping):
        return PruningConfig((schema.load(PruningGroup, data, path),))
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        groups = [g if isinstance(g, PruningGroup) else schema.load(PruningGroup, g, schema.join(path or "groups", i))
                  for i, g in enumerate(data)]
        return PruningConfig(tuple(groups))
    raise ConfigError("expected a pruning config", key=path or None, value=data,
                      allowed="a mapping with 'groups', a list of groups, or one group mapping")
