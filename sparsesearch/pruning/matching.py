"""A recipe or pruning config checked against a real model, and the pruner it gives.

:func:`match_model` says which layers each group prunes, at what target, and which prunable layers stay
dense (unknown layer names are an error listing the nearest ones); :func:`pruner_from_recipe` builds the
:class:`~sparsesearch.pruning.pruner.Pruner` after that check, with the recipe's model-dependent layer
rules (INC's classifier head, layers a pattern does not fit) applied.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from dataclasses import dataclass

from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.patterns import build_pattern
from sparsesearch.pruning.pruner import Pruner
from sparsesearch.pruning.targets import prunable_layers, select_layers
from sparsesearch.records.pruning import PruningConfig, PruningGroup
from sparsesearch.records.recipe import Recipe, Selection, exact_name_regex

log = logging.getLogger(__name__)


def classifier_head(model: nn.Module) -> str | None:
    """INC's classifier head: the model's last module if it is a Linear or Conv2d layer, else None.

    As INC's ``ClassifierHeadSearcher`` (``compression/pruner/model_slim/pattern_analyzer.py``): modules in
    registration order (``named_modules``), Dropout ignored, class names compared exactly (so a Linear
    subclass or a Conv1d is never the head).
    """
    modules = [(name, type(m).__name__) for name, m in model.named_modules() if type(m).__name__ != "Dropout"]
    if not modules:
        return None
    name, kind = modules[-1]
    return name if name and kind in ("Linear", "Conv2d") else None


def protected_by_head(model: nn.Module, selection: Selection) -> tuple[str, ...]:
    """The layers ``selection``'s classifier-head rule leaves dense on ``model`` (empty when it is off).

    ``classifier_head_match: search`` is INC's rule: ``utils.parse_to_prune`` appends the head's name to
    ``excluded_op_names`` and drops every layer ``re.search(name, layer)`` finds, so a head ``classifier``
    also protects ``pre_classifier``.
    """
    if not selection.exclude_classifier_head:
        return ()
    head = classifier_head(model)
    if head is None:
        return ()
    if selection.classifier_head_match != "search":
        return (head,)
    try:
        regex = re.compile(head)
    except re.error:  # a module name INC could not have used as a pattern either: the head alone
        return (head,)
    return tuple(name for name, _ in model.named_modules() if name and regex.search(name))


@dataclass(frozen=True)
class Resolution:
    """A config with its :class:`Selection` rules applied to one model, and what the rules left out."""

    config: PruningConfig
    #: original group index of each group in ``config`` (groups the rules emptied are gone)
    indices: tuple[int, ...]
    head: str | None = None
    #: layers the classifier-head rule leaves dense
    protected: tuple[str, ...] = ()
    #: (layer, why) for layers skipped because the group's pattern does not divide them
    skipped: tuple[tuple[str, str], ...] = ()
    #: (original group index, why) for groups left with no layer
    emptied: tuple[tuple[int, str], ...] = ()


def pruning_for(recipe: Recipe, model: nn.Module) -> PruningConfig:
    """The recipe's pruning config with its model-dependent :class:`Selection` rules applied to ``model``."""
    return resolve_selection(recipe.pruning, recipe.selection, model)


def resolve_selection(config: PruningConfig, selection: Selection, model: nn.Module) -> PruningConfig:
    """``config`` with the :class:`Selection` rules applied to ``model`` (excluded names added per group)."""
    return resolve(config, selection, model).config


def resolve(config: PruningConfig, selection: Selection, model: nn.Module) -> Resolution:
    """Apply ``selection`` to ``model``: drop the head (INC's rule) and, where asked, the layers a pattern does
    not divide (INC warns and skips them: ``patterns/nxm.py`` ``check_layer_validity``), naming each one.

    A group the rules leave with no layer prunes nothing, as in INC ("one pruner hooks no layers"): it is
    dropped with a warning; when no group is left, a ConfigError names why.
    """
    if not (selection.exclude_classifier_head or selection.skip_incompatible_layers):
        return Resolution(config, tuple(range(len(config.groups))))
    head = classifier_head(model) if selection.exclude_classifier_head else None
    protected = set(protected_by_head(model, selection))
    groups: list[PruningGroup] = []
    indices: list[int] = []
    skipped: dict[str, str] = {}
    emptied: list[tuple[int, str]] = []
    for gi, group in enumerate(config.groups):
        chosen = _selected(model, group, gi)
        pattern = build_pattern(group.pattern) if selection.skip_incompatible_layers else None
        drop: dict[str, str] = {}
        for name, module in chosen:
            if name in protected:
                drop[name] = "classifier head" if name == head else f"its name contains the head's name {head!r}"
                continue
            if pattern is None:
                continue
            try:
                pattern.check(name, module.get_parameter("weight").shape)
            except ConfigError as exc:
                drop[name] = exc.problem
                skipped[name] = exc.problem
                log.warning("groups[%d]: layer %s, weight shape %s: pattern %s does not divide it, so it is skipped "
                            "(INC's behaviour): %s", gi, name, tuple(module.get_parameter("weight").shape), group.pattern, exc.problem)
        for name, why in drop.items():
            if name in protected and name != head:
                log.warning("groups[%d]: %s left dense by INC's classifier-head rule (%s)", gi, name, why)
        if not drop:
            groups.append(group)
            indices.append(gi)
            continue
        kept = [name for name, _ in chosen if name not in drop]
        if not kept:
            why = "; ".join(f"{name}: {reason}" for name, reason in drop.items())
            log.warning("groups[%d] prunes nothing on this model (INC: 'one pruner hooks no layers'): %s", gi, why)
            emptied.append((gi, why))
            continue
        if group.layer_targets:
            group = dataclasses.replace(group, layer_targets={k: v for k, v in group.layer_targets.items()
                                                              if k not in drop})
        else:
            extra = tuple(exact_name_regex(n) for n in drop if exact_name_regex(n) not in group.excluded_op_names)
            group = dataclasses.replace(group, excluded_op_names=group.excluded_op_names + extra)
        groups.append(group)
        indices.append(gi)
    if not groups:
        reasons = "; ".join(f"groups[{gi}]: {why}" for gi, why in emptied)
        raise ConfigError(f"no group prunes any layer of this model once the recipe's layer rules are applied "
                          f"({reasons})", key="groups", allowed="groups whose layers are not the classifier head "
                          "and fit their pattern (pick a pattern that divides the layers' shapes, or other op_names)")
    return Resolution(PruningConfig(tuple(groups)), tuple(indices), head, tuple(sorted(protected)),
                      tuple(skipped.items()), tuple(emptied))


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
    #: layers the classifier-head rule leaves dense (the head, and with INC's rule names containing it)
    protected: tuple[str, ...] = ()
    #: (layer, why) for layers skipped because their group's pattern does not divide them
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def pruned_params(self) -> int:
        return sum(layer.params for g in self.groups for layer in g.layers)


def _selected(model: nn.Module, group: PruningGroup, index: int) -> list[tuple[str, nn.Module]]:
    """The layers group ``index`` selects, after checking that every name it gives exists in the model."""
    if not group.layer_targets:
        _check_names_exist(group, index, model)
    try:
        return select_layers(model, group)
    except ConfigError as exc:
        raise exc.located(prefix=f"groups[{index}]") from None


def _check_names_exist(group: PruningGroup, index: int, model: nn.Module) -> None:
    """Every exact layer name and every op_names expression must find a layer; else list the nearest."""
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
    resolution = None
    if isinstance(source, Recipe):
        steps_per_epoch = steps_per_epoch or source.steps_per_epoch
        prefix = "pruning"
    else:
        prefix = None
    try:
        if isinstance(source, Recipe):
            resolution = resolve(source.pruning, source.selection, model)
            config, indices = resolution.config, resolution.indices
        else:
            config, indices = source, tuple(range(len(source.groups)))
        plans = []
        for gi, group in zip(indices, config.groups):
            chosen = _selected(model, group, gi)
            layers = tuple(
                LayerPlan(name, type(m).__name__, tuple(m.get_parameter("weight").shape), m.get_parameter("weight").numel(),
                          group.layer_targets.get(name, group.target_sparsity) if group.layer_targets
                          else group.target_sparsity)
                for name, m in chosen)
            plans.append(GroupPlan(gi, group, layers))
        # the real engine checks the rest (pattern shapes, overlaps); a placeholder step count is enough here
        Pruner(model, config, steps_per_epoch=steps_per_epoch or 1)
    except ConfigError as exc:
        raise (exc.located(prefix=prefix) if prefix else exc) from None
    chosen_names = {layer.name for g in plans for layer in g.layers}
    unpruned = tuple(n for n, _ in prunable_layers(model) if n not in chosen_names)
    if unpruned:
        log.info("prunable layers no group prunes (they stay dense): %s", ", ".join(unpruned))
    if resolution is None:
        return ModelMatch(config, tuple(plans), unpruned)
    return ModelMatch(config, tuple(plans), unpruned, resolution.head, resolution.protected, resolution.skipped)


def pruner_from_recipe(model: nn.Module, recipe: Recipe, *, steps_per_epoch: int | None = None) -> Pruner:
    """A :class:`~sparsesearch.pruning.Pruner` for ``model`` from a recipe (read a file with
    :func:`sparsesearch.formats.recipe.load_recipe`, or call ``sparsesearch.apply(model, path)``).

    The model is checked against the recipe first (:func:`match_model`: unknown layer names are an error
    listing the nearest ones), the recipe's layer rules are applied (INC's classifier head, ...), and the
    steps per epoch default to ``training.steps_per_epoch``. Prunable layers the recipe leaves dense are
    logged as a warning, apart from a classifier head the recipe excludes on purpose.
    """
    if not isinstance(recipe, Recipe):
        raise ConfigError("expected a Recipe object", key="recipe", value=recipe,
                          allowed="sparsesearch.load_recipe(path), or sparsesearch.apply(model, path) for a file")
    loaded = recipe
    spe = steps_per_epoch or loaded.steps_per_epoch
    match = match_model(loaded, model, steps_per_epoch=spe)
    left_out = {match.excluded_head, *match.protected, *(name for name, _ in match.skipped)}
    dense = [name for name in match.unpruned if name not in left_out]
    if dense:
        log.warning("the recipe leaves these prunable layers dense: %s", ", ".join(dense))
    return Pruner(model, match.config, steps_per_epoch=spe)
