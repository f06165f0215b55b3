"""The sparsesearch recipe: what a user takes home from a study, as strict, versioned YAML.

A recipe holds the pruning groups (the engine's own :class:`~sparsesearch.pruning.config.PruningConfig`,
not a copy of its keys), the training settings needed to reproduce the result, and where it came from
(study, trial, tracking run, achieved metrics, sparsesearch version, time). Apply it in a few lines::

    pruner = pruner_from_recipe(model, "recipe.yaml")        # then the usual callbacks
    # which checks the model against the recipe first, like:
    recipe = load_recipe("recipe.yaml")
    match = match_model(recipe, model)                       # errors for unknown layer names
    pruner = Pruner(model, recipe.pruning_for(model), steps_per_epoch=recipe.steps_per_epoch)

Reading is strict (unknown keys with the closest valid key, types, ranges; errors carry file, line and key
path such as ``pruning.groups[1].pattern``) and safe (plain YAML only, nothing is imported or run).
``write_recipe`` then ``load_recipe`` then ``write_recipe`` gives identical text.

Format version 1::

    version: 1
    pruning:
      groups: [...]                  # PruningGroup keys: pruning_type, pattern, target_sparsity, ...
    selection:                       # optional, model-dependent layer rules (INC's behaviour)
      exclude_classifier_head: false
      skip_incompatible_layers: false
    training: {...}                  # optional: task, epochs, steps_per_epoch, batch_size, optimizer, lr, ...
    provenance: {...}                # optional: study, trial, run_id, metrics, sparsesearch_version, created
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsesearch import __version__, schema
from sparsesearch.errors import ConfigError
from sparsesearch.pruning.config import PruningConfig, PruningGroup, Schedule
from sparsesearch.yamlio import YamlDocument, dump_yaml, read_yaml, write_text_safely

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
"""The recipe format this sparsesearch writes and the newest it reads."""

SUPPORTED_VERSIONS = (1,)
OPTIMIZERS = ("adam", "adamw", "sgd")
INITS = ("dense", "scratch")


@dataclass(frozen=True)
class Selection:
    """Layer rules that need the model, resolved by :meth:`Recipe.pruning_for` when the recipe is applied.

    ``exclude_classifier_head``: never prune the model's last module when it is a Linear or Conv2d layer
    (INC's rule: registration order, Dropout ignored; nothing is excluded when the last module is anything
    else). ``skip_incompatible_layers``: leave out selected layers whose weight shape the group's pattern
    cannot cut into blocks (INC warns and skips them); without it such a layer is an error.
    """

    exclude_classifier_head: bool = False
    skip_incompatible_layers: bool = False


@dataclass(frozen=True)
class TrainingSettings:
    """What reproducing the result needs beyond the pruning config (names as in a study's budget)."""

    task: str | None = schema.spec(None, doc="built-in task name or 'package.module:callable'")
    task_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = schema.spec(0, ge=0)
    init: str = schema.spec("dense", choices=INITS, doc="dense: from the trained dense model; scratch: from init")
    epochs: int = schema.spec(1, ge=1)
    finetune_epochs: int = schema.spec(0, ge=0, doc="last epochs: mask-locked fine-tuning")
    steps_per_epoch: int | None = schema.spec(None, gt=0, doc="needed by epoch-based schedules")
    batch_size: int = schema.spec(32, ge=1)
    optimizer: str = schema.spec("sgd", choices=OPTIMIZERS)
    lr: float = schema.spec(0.01, gt=0.0)
    momentum: float = schema.spec(0.9, ge=0.0, lt=1.0, doc="SGD momentum")
    weight_decay: float = schema.spec(0.0, ge=0.0)

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.finetune_epochs >= self.epochs and self.finetune_epochs:
            raise ConfigError(f"finetune_epochs must be fewer than epochs ({self.epochs})", key="finetune_epochs",
                              value=self.finetune_epochs, allowed=f"0 .. {self.epochs - 1}")


@dataclass(frozen=True)
class Metrics:
    """Achieved results; sparsities are counted from the weights, accuracies are in [0, 1]."""

    val_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0)
    test_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0)
    sparsity: float | None = schema.spec(None, ge=0.0, le=1.0, doc="over the pruned layers' weights")
    total_sparsity: float | None = schema.spec(None, ge=0.0, le=1.0, doc="over all parameters")
    dense_val_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0, doc="the dense baseline")
    dense_test_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0, doc="the dense baseline")

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class Provenance:
    """Where the recipe came from."""

    study: str | None = None
    trial: int | None = schema.spec(None, ge=0)
    run_id: str | None = schema.spec(None, doc="tracking (MLflow) run id of the trial")
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    sparsesearch_version: str | None = None
    created: str | None = schema.spec(None, doc="ISO 8601 time, e.g. 2025-01-31T12:00:00+00:00")
    imported_from: str | None = schema.spec(None, doc="the format of a converted file: inc or lpot")
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.created is not None:
            try:
                _dt.datetime.fromisoformat(self.created)
            except ValueError:
                raise ConfigError("not an ISO 8601 time", key="created", value=self.created,
                                  allowed="a time such as 2025-01-31T12:00:00+00:00") from None


@dataclass(frozen=True)
class Recipe:
    """A versioned recipe: pruning groups, layer rules, training settings and provenance."""

    version: int
    pruning: PruningConfig
    selection: Selection = dataclasses.field(default_factory=Selection)
    training: TrainingSettings | None = None
    provenance: Provenance = dataclasses.field(default_factory=Provenance)

    def __post_init__(self) -> None:
        check_version(self.version)

    def pruning_for(self, model: nn.Module) -> PruningConfig:
        """The pruning config with the model-dependent :class:`Selection` rules applied to ``model``."""
        return resolve_selection(self.pruning, self.selection, model)

    @property
    def steps_per_epoch(self) -> int | None:
        return self.training.steps_per_epoch if self.training else None


def check_version(version: Any, key: str = "version") -> None:
    """A clear error for a missing, malformed, or newer recipe format version."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError("expected the recipe format version as an integer", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
    if version > RECIPE_VERSION:
        raise ConfigError(f"recipe format version {version} is newer than this sparsesearch ({__version__}) "
                          f"can read; upgrade sparsesearch", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError("unknown recipe format version", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))


# ------------------------------------------------------------------------------------------- reading


def recipe_from_data(data: Any, doc: YamlDocument | None = None) -> Recipe:
    """Strictly build a Recipe from plain data; errors located in ``doc`` (file, line) when given."""
    try:
        if not isinstance(data, Mapping):
            raise ConfigError("expected a recipe mapping", value=data,
                              allowed="keys " + ", ".join(schema.field_names(Recipe)))
        if "version" not in data:
            hint = _foreign_format_hint(data)
            if hint:
                raise ConfigError(f"this is not a sparsesearch recipe: it looks like {hint}", key="version",
                                  allowed="a recipe (version: 1, pruning: ...); convert the file with "
                                  "`sparsesearch convert FILE --to sparsesearch -o recipe.yaml`")
            raise ConfigError("missing required key", key="version",
                              allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
        check_version(data["version"])
        return schema.load(Recipe, data)
    except ConfigError as exc:
        raise (doc.locate(exc) if doc is not None else exc) from None


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe YAML file strictly and safely."""
    doc = read_yaml(path)
    return recipe_from_data(doc.data, doc)


def _foreign_format_hint(data: Mapping[str, Any]) -> str | None:
    """A name for a known non-recipe format, for a helpful error."""
    from sparsesearch.inc import detect_format  # the INC/LPOT module depends on this one, not the reverse

    kind = detect_format(data)
    return {"inc": "an INC WeightPruningConfig", "inc-yaml": "an INC pruning YAML", "lpot": "an LPOT pruning YAML",
            "pruning": "a bare pruning config (groups only)"}.get(kind or "")


# ------------------------------------------------------------------------------------------- writing


def _plain(obj: Any) -> Any:
    """Plain data for YAML in schema order; optional keys left at their None default are omitted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        epoch_based = isinstance(obj, Schedule) and obj.epoch_based
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            if value is None and f.default is None:
                continue
            if epoch_based and f.name in _STEP_KEYS:
                continue  # an epoch-based schedule leaves the step keys at their defaults
            plain = _plain(value)
            if plain == {} and dataclasses.is_dataclass(value):
                continue  # a nested block with nothing set (e.g. no metrics yet)
            out[f.name] = plain
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


_STEP_KEYS = ("start_step", "end_step", "pruning_frequency")


def recipe_to_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data in schema order."""
    return _plain(recipe)


_HEADER = ("sparsesearch recipe (format version {version}).\n"
           "Apply: sparsesearch.recipes.pruner_from_recipe(model, PATH), then the pruner's callbacks.\n"
           "Check: sparsesearch validate PATH [--task NAME | --model package.module:callable]")


def recipe_to_yaml(recipe: Recipe) -> str:
    """Deterministic YAML text of ``recipe``."""
    return dump_yaml(recipe_to_data(recipe), header=_HEADER.format(version=recipe.version))


def write_recipe(recipe: Recipe, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``recipe`` as YAML (atomically; an existing file is kept unless ``overwrite``)."""
    return write_text_safely(path, recipe_to_yaml(recipe), overwrite=overwrite)


def make_recipe(pruning: Any, *, training: TrainingSettings | Mapping[str, Any] | None = None,
                provenance: Provenance | Mapping[str, Any] | None = None,
                selection: Selection | Mapping[str, Any] | None = None, stamp: bool = True) -> Recipe:
    """A recipe for ``pruning`` (anything :meth:`PruningConfig.from_dict` accepts).

    With ``stamp`` the provenance gets this sparsesearch version and the current UTC time when unset.
    """
    config = PruningConfig.from_dict(pruning)
    prov = schema.load(Provenance, provenance or {}, "provenance")
    if stamp:
        prov = dataclasses.replace(
            prov,
            sparsesearch_version=prov.sparsesearch_version or __version__,
            created=prov.created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        )
    return Recipe(
        version=RECIPE_VERSION,
        pruning=config,
        selection=schema.load(Selection, selection or {}, "selection"),
        training=None if training is None else schema.load(TrainingSettings, training, "training"),
        provenance=prov,
    )


# ------------------------------------------------------------------------------- applying to a model


def classifier_head(model: nn.Module) -> str | None:
    """INC's classifier head: the model's last module if it is a Linear or Conv2d layer, else None.

    As INC's ``ClassifierHeadSearcher``: modules in registration order (``named_modules``), Dropout
    ignored, class names compared exactly (so a Linear subclass or a Conv1d is never the head).
    """
    modules = [(name, type(m).__name__) for name, m in model.named_modules() if type(m).__name__ != "Dropout"]
    if not modules:
        return None
    name, kind = modules[-1]
    return name if name and kind in ("Linear", "Conv2d") else None


def exact_name_regex(name: str) -> str:
    """A regular expression that selects exactly the module ``name`` (op_names are searched, not matched)."""
    return f"^{re.escape(name)}$"


def resolve_selection(config: PruningConfig, selection: Selection, model: nn.Module) -> PruningConfig:
    """``config`` with the :class:`Selection` rules applied to ``model`` (excluded names added per group)."""
    if not (selection.exclude_classifier_head or selection.skip_incompatible_layers):
        return config
    from sparsesearch.pruning.patterns import parse_pattern
    from sparsesearch.pruning.targets import prunable_layers

    head = classifier_head(model) if selection.exclude_classifier_head else None
    groups = []
    for group in config.groups:
        drop: list[str] = []
        if head is not None:
            drop.append(head)
        if selection.skip_incompatible_layers:
            pattern = parse_pattern(group.pattern)
            for name, module in prunable_layers(model, group.op_types):
                try:
                    pattern.check(name, module.weight.shape)
                except ConfigError:
                    drop.append(name)
                    log.info("pattern %s does not fit layer %s %s: skipped (INC's behaviour)", group.pattern, name,
                             tuple(module.weight.shape))
        if not drop:
            groups.append(group)
            continue
        if group.layer_targets:
            kept = {k: v for k, v in group.layer_targets.items() if k not in drop}
            groups.append(dataclasses.replace(group, layer_targets=kept) if kept else group)
            continue
        extra = tuple(exact_name_regex(n) for n in drop if exact_name_regex(n) not in group.excluded_op_names)
        groups.append(dataclasses.replace(group, excluded_op_names=group.excluded_op_names + extra))
    return PruningConfig(tuple(groups))


@dataclass(frozen=True)
class LayerPlan:
    """One layer a group prunes."""

    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    target: float


@dataclass(frozen=True)
class GroupPlan:
    """What one group does on a model."""

    index: int
    group: PruningGroup
    layers: tuple[LayerPlan, ...]


@dataclass(frozen=True)
class ModelMatch:
    """A recipe or pruning config checked against a model.

    ``unpruned`` are the model's prunable (Linear and Conv) layers no group selects: reported, not an
    error, since leaving layers dense is often intended (a classifier head, an embedding projection).
    """

    config: PruningConfig
    groups: tuple[GroupPlan, ...]
    unpruned: tuple[str, ...]
    excluded_head: str | None = None

    @property
    def pruned_params(self) -> int:
        return sum(layer.params for g in self.groups for layer in g.layers)


def _check_names_exist(group: PruningGroup, index: int, model: nn.Module) -> None:
    """Every exact layer name and every op_names expression must find a layer; else list the nearest."""
    import difflib

    from sparsesearch.pruning.targets import prunable_layers

    names = [n for n, _ in prunable_layers(model, group.op_types)]
    everything = [n for n, _ in prunable_layers(model)]
    for i, regex in enumerate(group.op_names):
        if any(re.search(regex, n) for n in names):
            continue
        literal = _literal_of(regex)
        near = difflib.get_close_matches(literal, everything, n=3, cutoff=0.4)
        raise ConfigError(f"matches no prunable layer of types {list(group.op_types)} in the model"
                          + (f"; nearest layer names: {', '.join(near)}" if near else ""),
                          key=f"groups[{index}].op_names[{i}]", value=regex,
                          allowed=_listing(names or everything),
                          suggestion=exact_name_regex(near[0]) if near and literal != regex else (
                              near[0] if near else None))


def _literal_of(regex: str) -> str:
    """The plain name inside ``^name$`` (escaped) expressions, for nearest-name hints."""
    body = regex.removeprefix("^").removesuffix("$")
    return re.sub(r"\\(.)", r"\1", body)


def _listing(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def match_model(source: Recipe | PruningConfig, model: nn.Module, *,
                steps_per_epoch: int | None = None) -> ModelMatch:
    """Check ``source`` against ``model``: which layers each group prunes, at what target, and which
    prunable layers stay dense. Unknown layer names are a ConfigError listing the nearest names.

    The engine itself is built once (and thrown away) so that everything it checks is checked here too:
    pattern shapes, overlapping groups, gradient schedules.
    """
    from sparsesearch.pruning import Pruner
    from sparsesearch.pruning.targets import prunable_layers, select_layers

    if isinstance(source, Recipe):
        config = source.pruning_for(model)
        head = classifier_head(model) if source.selection.exclude_classifier_head else None
        steps_per_epoch = steps_per_epoch or source.steps_per_epoch
        prefix = "pruning"
    else:
        config, head, prefix = source, None, None
    try:
        plans = []
        for gi, group in enumerate(config.groups):
            if not group.layer_targets:
                _check_names_exist(group, gi, model)
            try:
                chosen = select_layers(model, group)
            except ConfigError as exc:
                raise exc.located(prefix=f"groups[{gi}]") from None
            layers = tuple(
                LayerPlan(name, type(m).__name__, tuple(m.weight.shape), m.weight.numel(),
                          group.layer_targets.get(name, group.target_sparsity) if group.layer_targets
                          else group.target_sparsity)
                for name, m in chosen)
            plans.append(GroupPlan(gi, group, layers))
        # the real engine checks the rest (pattern shapes, overlaps); a placeholder step count is enough here
        probe = Pruner(model, config, steps_per_epoch=steps_per_epoch or 1)
        probe.on_train_end()  # releases the gradient hooks a pattern_lock group registers
    except ConfigError as exc:
        raise (exc.located(prefix=prefix) if prefix else exc) from None
    chosen_names = {layer.name for g in plans for layer in g.layers}
    unpruned = tuple(n for n, _ in prunable_layers(model) if n not in chosen_names)
    if unpruned:
        log.info("prunable layers no group prunes (they stay dense): %s", ", ".join(unpruned))
    return ModelMatch(config, tuple(plans), unpruned, head)


def pruner_from_recipe(model: nn.Module, recipe: Recipe | str | os.PathLike[str], *,
                       steps_per_epoch: int | None = None) -> Any:
    """A :class:`~sparsesearch.pruning.Pruner` for ``model`` from a recipe (object or YAML path).

    The model is checked against the recipe first (:func:`match_model`: unknown layer names are an error
    listing the nearest ones), the recipe's layer rules are applied (INC's classifier head, ...), and the
    steps per epoch default to ``training.steps_per_epoch``. Prunable layers the recipe leaves dense are
    logged as a warning, apart from a classifier head the recipe excludes on purpose.
    """
    from sparsesearch.pruning import Pruner

    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    spe = steps_per_epoch or loaded.steps_per_epoch
    match = match_model(loaded, model, steps_per_epoch=spe)
    dense = [name for name in match.unpruned if name != match.excluded_head]
    if dense:
        log.warning("the recipe leaves these prunable layers dense: %s", ", ".join(dense))
    return Pruner(model, match.config, steps_per_epoch=spe)
