"""The study spec: what a search study prunes, how long it trains, what it searches and where it records.

A study spec is YAML (``studies/*.yaml``) loaded strictly through :mod:`sparsesearch.records.schema`, like a recipe:
unknown keys get the closest valid key, values are checked against their types and ranges, and every error
names the key path. The names it accepts for pruning types, patterns, scopes and ramps are the pruning
engine's own registries, so the spec and the engine cannot disagree.

Everything except ``name`` and ``task`` has a default that gives a zero-config local run: Optuna on
``sqlite:///sparsesearch.db`` and MLflow on ``sqlite:///mlflow.db`` (artifacts in ``mlartifacts/`` beside
it), both in the working directory.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError, unknown_name
from sparsesearch.records import schema
from sparsesearch.records.names import (
    ALLOCATIONS,
    CRITERIA,
    INITS,
    LR_SCHEDULES,
    OBJECTIVES,
    OP_TYPES,
    OPTIMIZERS,
    RAMPS,
    RULES,
    SAMPLERS,
    SCOPES,
    SEARCHABLE_TYPES,
)
from sparsesearch.records.patterns import parse_pattern
from sparsesearch.records.pruning import check_layer_regexes
from sparsesearch.records.urls import mask_secrets

DEFAULT_STORAGE = "sqlite:///sparsesearch.db"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def _range(obj: Any, key: str, *, integer: bool = False) -> None:
    """Normalise a ``[lo, hi]`` range field (a single number means fixed) and check lo <= hi."""
    value = getattr(obj, key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ConfigError("expected a range [low, high] or one number", key=key, value=list(value),
                          allowed="[low, high] with low <= high, or a single number for a fixed value")
    lo, hi = value
    if lo > hi:
        raise ConfigError("the low end of a range must not exceed the high end", key=key, value=list(value),
                          allowed=f"[low, high] with low <= high, e.g. [{hi}, {lo}]")
    if integer:
        value = (int(lo), int(hi))
    object.__setattr__(obj, key, value)


@dataclass(frozen=True)
class Budget:
    """How long and how each model trains. Unset values come from the task's budget hints."""

    epochs: int | None = schema.spec(None, gt=0, doc="training epochs of each trial")
    dense_epochs: int | None = schema.spec(None, gt=0, doc="epochs of the dense baseline (trained once)")
    batch_size: int | None = schema.spec(None, gt=0)
    optimizer: str | None = schema.spec(None, choices=OPTIMIZERS)
    lr: float | None = schema.spec(None, gt=0.0, doc="learning rate of the trials")
    dense_lr: float | None = schema.spec(None, gt=0.0, doc="learning rate of the dense baseline")
    weight_decay: float = schema.spec(0.0, ge=0.0)
    momentum: float = schema.spec(0.9, ge=0.0, lt=1.0, doc="SGD momentum")
    lr_schedule: str = schema.spec("constant", choices=LR_SCHEDULES,
                                   doc="learning rate over each run: constant, or cosine/linear decay to zero")
    init: str = schema.spec("dense", choices=INITS,
                            doc="dense: fine-tune from the trained dense baseline; scratch: train from init")
    checkpoint: str | None = schema.spec(
        None, doc="a state_dict file of your trained model: trials start from it and the dense metrics are "
        "measured, not trained")

    def __post_init__(self) -> None:
        schema.validate_fields(self)

    def resolved(self, hints: Mapping[str, Any]) -> Budget:
        """This budget with unset values taken from the task's hints (and then built-in defaults)."""
        fallback = {"epochs": 10, "dense_epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 1e-3}
        values = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                v = hints.get(f.name, fallback.get(f.name))
            values[f.name] = v
        if values["dense_lr"] is None:
            values["dense_lr"] = values["lr"]
        return Budget(**values)


@dataclass(frozen=True)
class ScheduleSpace:
    """Schedule knobs. Ranges are ``[low, high]``; a single value is fixed.

    Training is ``epochs`` long; its last ``finetune_epochs`` are a mask-locked fine-tune stage. Pruning
    ramps from ``start`` to ``end``, both fractions of the training before that stage, updating masks every
    ``frequency`` optimizer steps.
    """

    ramps: tuple[str, ...] = schema.spec(("cubic",), choices=RAMPS)
    start: tuple[float, float] = schema.spec((0.0, 0.0), ge=0.0, le=1.0)
    end: tuple[float, float] = schema.spec((0.6, 0.6), ge=0.0, le=1.0)
    frequency: tuple[int, int] = schema.spec((1, 1), gt=0, doc="optimizer steps between mask updates")
    finetune_epochs: tuple[int, int] = schema.spec((0, 0), ge=0)

    def __post_init__(self) -> None:
        for key in ("start", "end", "frequency", "finetune_epochs"):
            _range(self, key, integer=key in ("frequency", "finetune_epochs"))
        schema.validate_fields(self)
        if not self.ramps:
            raise ConfigError("needs at least one ramp", key="ramps", value=[], allowed=sorted(RAMPS))
        if self.start[1] > self.end[0]:
            raise ConfigError(f"pruning must start before it ends: the start range's high end ({self.start[1]}) "
                              f"is after the end range's low end ({self.end[0]})", key="start", value=list(self.start),
                              allowed=f"a range ending at or before {self.end[0]}")


@dataclass(frozen=True)
class SearchSpace:
    """What each trial samples.

    ``sparsity`` is the overall target over the pruned layers (parameter-weighted), sampled log-uniformly in
    density so 99% and 99.5% are explored as well as 80% and 90%. Under local scope each layer gets its own
    target: a base allocation (``uniform``, or ``erk``: denser for small layers) times a per-layer factor in
    ``[2**-layer_freedom, 2**layer_freedom]``, rescaled so the overall target is met exactly, within
    ``layer_bounds``. ``layer_freedom: 0`` gives every layer the same target.
    """

    pruning_types: tuple[str, ...] = ("magnitude",)
    patterns: tuple[str, ...] = ("1x1",)
    scopes: tuple[str, ...] = schema.spec(("local", "global"), choices=SCOPES)
    sparsity: tuple[float, float] = schema.spec((0.5, 0.99), ge=0.0, lt=1.0)
    layer_freedom: float = schema.spec(2.0, ge=0.0, le=10.0, doc="log2 of the largest per-layer density factor")
    allocations: tuple[str, ...] = schema.spec(("uniform", "erk"), choices=ALLOCATIONS)
    layer_bounds: tuple[float, float] = schema.spec((0.0, 0.999), ge=0.0, lt=1.0)
    op_types: tuple[str, ...] = schema.spec(("Linear", "Conv"), choices=OP_TYPES)
    op_names: tuple[str, ...] = ()
    excluded_op_names: tuple[str, ...] = ()
    lr: tuple[float, float] | None = schema.spec(None, gt=0.0, doc="learning-rate range (log); null: budget.lr")
    reg_coeff: tuple[float, float] = schema.spec((1e-5, 1e-3), gt=0.0, doc="group_lasso strength range (log)")
    schedule: ScheduleSpace = dataclasses.field(default_factory=ScheduleSpace)

    def __post_init__(self) -> None:
        for key in ("sparsity", "layer_bounds", "reg_coeff") + (("lr",) if self.lr is not None else ()):
            _range(self, key)
        schema.validate_fields(self)
        for key in ("pruning_types", "patterns", "scopes", "allocations"):
            if not getattr(self, key):
                raise ConfigError("needs at least one value", key=key, value=[])
        for i, name in enumerate(self.pruning_types):
            if name not in SEARCHABLE_TYPES:
                if name in CRITERIA:
                    raise ConfigError("pattern_lock prunes nothing new (it keeps an existing pattern), so a search "
                                      "cannot sample it", key=f"pruning_types[{i}]", value=name,
                                      allowed=SEARCHABLE_TYPES)
                raise unknown_name(f"pruning_types[{i}]", name, SEARCHABLE_TYPES)
        lo_sparsity = self.sparsity[0]
        for i, text in enumerate(self.patterns):
            pattern = parse_pattern(text, key=f"patterns[{i}]")
            if pattern.max_sparsity < 1.0 and pattern.max_sparsity < lo_sparsity:
                raise ConfigError(f"the {text} pattern can prune at most {pattern.max_sparsity:g} of a layer, below "
                                  f"the lowest overall sparsity searched ({lo_sparsity:g}), so every trial with it "
                                  "would be rejected", key=f"patterns[{i}]", value=text,
                                  allowed=f"patterns reaching {lo_sparsity:g}, or a sparsity range starting at or "
                                  f"below {pattern.max_sparsity:g}")
        check_layer_regexes(self)
        lo, hi = self.layer_bounds
        if self.sparsity[1] > hi or self.sparsity[0] < lo:
            raise ConfigError(f"the overall sparsity range {list(self.sparsity)} must lie within the per-layer bounds "
                              f"{list(self.layer_bounds)}", key="sparsity", value=list(self.sparsity),
                              allowed=f"a range within [{lo}, {hi}]")


@dataclass(frozen=True)
class Constraints:
    """Trials breaking a constraint are infeasible: never on the front, steered away from by the sampler.

    ``max_drop`` is how much worse than dense the objective metric may get, in the metric's own units (0.05 =
    5 points of accuracy), or with ``relative`` as a share of the dense value (0.05 = 5 % of the dense
    perplexity). Its direction follows the metric. ``null`` turns the constraint off.
    """

    max_drop: float | None = schema.spec(0.05, ge=0.0, doc="largest drop of the metric from dense; null: none")
    relative: bool = False
    max_accuracy_drop: float | None = schema.spec(None, ge=0.0, le=1.0, doc="older spelling of max_drop")

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.max_accuracy_drop is not None:
            object.__setattr__(self, "max_drop", self.max_accuracy_drop)
            object.__setattr__(self, "max_accuracy_drop", None)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop a trial whose intermediate results show it cannot reach the front (PRUNED in Optuna).

    Checked at each epoch end once ``min_epochs`` have passed and the trial's sparsity has reached its
    target. ``floor``: the validation accuracy is more than ``margin`` below the constraint's accuracy floor
    for ``patience`` epochs in a row. ``dominated``: a completed trial had, at the same epoch, at least this
    sparsity and more than ``margin`` higher accuracy, for ``patience`` epochs in a row.
    """

    enabled: bool = True
    rules: tuple[str, ...] = schema.spec(("floor", "dominated"), choices=("floor", "dominated"))
    min_epochs: int = schema.spec(2, ge=0)
    patience: int = schema.spec(2, gt=0)
    margin: float = schema.spec(0.01, ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class Tracking:
    """Where trials are recorded. ``uri: null`` turns tracking off."""

    uri: str | None = DEFAULT_TRACKING_URI
    experiment: str | None = schema.spec(None, doc="MLflow experiment; default: the study name")
    artifact_root: str | None = schema.spec(
        None, doc="where new experiments keep artifacts (s3://..., a shared path) so every worker reads them; "
        "default: beside a SQLite store, or the tracking server's own store")


@dataclass(frozen=True)
class Export:
    """How ``sparsesearch export`` picks one trial from the front.

    ``max_sparsity_within_drop``: the sparsest front trial within ``max_drop`` of the dense validation
    metric (``relative``: a share of the dense value). ``knee``: the front trial farthest from the line
    joining the front's ends (normalised objectives). ``max_accuracy_at_sparsity``: the front trial with the
    best metric and sparsity at least ``min_sparsity``.
    """

    rule: str = schema.spec("max_sparsity_within_drop", choices=RULES)
    max_drop: float = schema.spec(0.01, ge=0.0)
    relative: bool = False
    min_sparsity: float = schema.spec(0.9, ge=0.0, lt=1.0)

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class Seeds:
    """Separate seeds for the parts of a study (each defaults to the spec's ``seed``), so a study's variance
    can be measured on a fixed data split, or the data varied with everything else fixed."""

    data: int | None = schema.spec(None, ge=0, doc="the data split and augmentation")
    model: int | None = schema.spec(None, ge=0, doc="the model's initial weights")
    sampler: int | None = schema.spec(None, ge=0, doc="the search's sampler")
    training: int | None = schema.spec(None, ge=0, doc="batch order and other randomness of each run")

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class StudySpec:
    """One search study: a task, a budget, a space, objectives and where it all goes."""

    name: str
    task: str = schema.spec(doc='a built-in task such as "digits-mlp", or "package.module:callable"')
    task_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = schema.spec(0, ge=0, doc="data split, dense baseline, sampler and trial seeds derive from it")
    seeds: Seeds = dataclasses.field(default_factory=Seeds)
    budget: Budget = dataclasses.field(default_factory=Budget)
    space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    objectives: tuple[str, ...] = schema.spec(OBJECTIVES, choices=OBJECTIVES)
    constraints: Constraints = dataclasses.field(default_factory=Constraints)
    early_stopping: EarlyStopping = dataclasses.field(default_factory=EarlyStopping)
    warm_start: tuple[float, ...] = schema.spec(
        (0.9, 0.95, 0.98, 0.99), ge=0.0, lt=1.0,
        doc="sparsities at which a new study first tries the classic baseline (global magnitude, cubic)")
    sampler: str = schema.spec("tpe", choices=SAMPLERS)
    n_startup_trials: int = schema.spec(10, ge=0, doc="random trials before the sampler models the front")
    n_trials: int | None = schema.spec(40, gt=0, doc="finished trials the study should have (all workers)")
    timeout: float | None = schema.spec(None, gt=0.0, doc="seconds this run may start trials for")
    storage: str = DEFAULT_STORAGE
    tracking: Tracking = dataclasses.field(default_factory=Tracking)
    export: Export = dataclasses.field(default_factory=Export)
    num_threads: int | None = schema.spec(None, gt=0, doc="torch CPU threads; default: min(cores, 4)")

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if not _NAME.match(self.name):
            raise ConfigError("a study name is letters, digits, '_', '.' and '-' (at most 100, not starting with a "
                              "symbol)", key="name", value=self.name, allowed="e.g. quickstart or resnet-sweep.v2")
        if tuple(self.objectives) != OBJECTIVES:
            raise ConfigError("a study maximises validation accuracy and sparsity together (both, in this order)",
                              key="objectives", value=list(self.objectives), allowed=list(OBJECTIVES))
        if not self.task or not isinstance(self.task, str):
            raise ConfigError("names the task to search", key="task", value=self.task,
                              allowed='a built-in task such as "digits-mlp", or "package.module:callable"')

    def seed_of(self, part: str) -> int:
        """The seed of ``part`` (data, model, sampler, training): its own, else the spec's ``seed``."""
        own = getattr(self.seeds, part)
        return self.seed if own is None else int(own)

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    def with_overrides(self, **changes: Any) -> StudySpec:
        """A copy with top-level fields replaced (values None are left as they are)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        return schema.dump(self)

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with every URL credential masked: what is stored, logged and shown."""
        return mask_secrets(self.to_dict())


def load_spec(data: Any, path: str | None = None) -> StudySpec:
    """Strictly load a study spec from plain data (``path`` is the file, for messages)."""
    try:
        return schema.load(StudySpec, data)
    except ConfigError as exc:
        raise exc.located(file=path) from None


