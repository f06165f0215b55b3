"""INC 1.x / 2.x and LPOT 1.4-1.6 pruning YAML: ``pruning: approach: weight_compression`` and
``weight_compression_pytorch``, imported as recipes.

Both sections list their pruners under ``pruners``, each tagged ``!Pruner`` (read as a plain mapping; see
:mod:`sparsesearch.formats.safe_yaml`), over global keys of the same names. INC ran them with two different
engines, and so does this importer; the rules were read from INC 1.14.2 and 2.6 (their last versions with
these sections) and LPOT 1.6:

``weight_compression`` (INC ``pruners/`` and ``pruner_legacy/``, LPOT ``lpot/pruners/``): epoch-based
    ``prune_type`` ``basic_magnitude`` (per-layer magnitude), ``pattern_lock`` (keep the zeros, weight by
    weight), ``group_lasso`` (``parameters: {alpha}``), ``gradient_sensitivity`` (without ``parameters``:
    accumulated |w·g|; with them, head pruning, which has no equivalent here). Masks are computed at the start
    of every epoch from ``start_epoch`` to ``end_epoch``; the sparsity of epoch e is INC's staircase
    ``initial + (target - initial) · ((e - start + 1) // f) · f / (end - start + 1)`` (LPOT 1.4-1.6:
    ``(e - start) // f · f / (end - start)``, and ``initial_sparsity`` when start == end). The importer finds the
    epochs where that value changes and writes the linear epoch schedule through them. ``names`` are exact
    parameter names; none means every 2-D and 4-D parameter. A pruner's value overrides the global one only
    when it is truthy (``if local_config.start_epoch:``), so a pruner's ``start_epoch: 0`` takes the global.
``weight_compression_pytorch`` (``experimental/pytorch_pruner``): step-based
    ``prune_type`` ``magnitude``, ``snip``, ``snip_momentum`` (and ``pattern_lock`` in 2.x), ``pattern``
    (``tile_pattern_4x1``, ``ic_pattern_4x1``: the part after the last ``_``), ``prune_domain`` global or local,
    ``names`` / ``excluded_names`` / ``extra_excluded_names`` regular expressions searched in module names,
    ``prune_layer_type`` exact class names, ``start_step`` / ``end_step`` / ``update_frequency_on_step``,
    ``sparsity_decay_type``, ``max_sparsity_ratio_per_layer``. INC counts ``(end - start + 1) // frequency``
    updates but makes one fewer, so with a frequency of 1 it stops short of its target: the importer lowers the
    target to what INC reaches. A pruner that does not set ``pattern`` prunes 1x1: INC's ``Pruner`` class
    defaults it, which hides the global ``pattern``.

Neither engine protects a classifier head. Every other difference is listed in the recipe's notes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError, closest
from sparsesearch.formats.inc_rules import (
    dedupe,
    inc1_updates,
    op_types_by_name,
    schedule_for,
    with_source,
)
from sparsesearch.formats.safe_yaml import YamlDocument
from sparsesearch.records import schema
from sparsesearch.records.names import SCOPES
from sparsesearch.records.patterns import parse_pattern
from sparsesearch.records.pruning import PruningConfig, PruningGroup
from sparsesearch.records.recipe import Recipe, Selection, exact_name_regex, make_recipe

log = logging.getLogger(__name__)

FLAVORS = ("inc", "lpot")
_DECAYS = ("exp", "cos", "linear", "cube")
_LEGACY_TYPES = ("basic_magnitude", "pattern_lock", "group_lasso", "gradient_sensitivity")
_PYTORCH_TYPES = ("magnitude", "snip", "snip_momentum", "pattern_lock")


@dataclass(frozen=True)
class _Pruner:
    """One ``!Pruner`` entry: the keys of INC 1.x's ``conf.config.Pruner`` (None = not given)."""

    start_epoch: int | None = schema.spec(None, ge=0)
    end_epoch: int | None = schema.spec(None, ge=0)
    initial_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    target_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    update_frequency: float | None = schema.spec(None, gt=0)
    method: str | None = schema.spec(None, choices=("per_tensor", "per_channel"))
    prune_type: str | None = None
    start_step: int | None = schema.spec(None, ge=0)
    end_step: int | None = schema.spec(None, ge=0)
    update_frequency_on_step: int | None = schema.spec(None, gt=0)
    prune_domain: str | None = schema.spec(None, choices=SCOPES)
    sparsity_decay_type: str | None = schema.spec(None, choices=_DECAYS)
    pattern: str | None = None
    names: tuple[str, ...] | None = None
    extra_excluded_names: tuple[str, ...] | None = None
    exclude_names: tuple[str, ...] | None = schema.spec(None, doc="INC 1.14.0's name of extra_excluded_names")
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Section:
    """A ``weight_compression`` / ``weight_compression_pytorch`` mapping (INC's ``weight_compression_schema``)."""

    initial_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    target_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    max_sparsity_ratio_per_layer: float | None = schema.spec(None, ge=0.0, lt=1.0)
    prune_type: str | None = None
    start_epoch: int | None = schema.spec(None, ge=0)
    end_epoch: int | None = schema.spec(None, ge=0)
    start_step: int | None = schema.spec(None, ge=0)
    end_step: int | None = schema.spec(None, ge=0)
    update_frequency: float | None = schema.spec(None, gt=0)
    update_frequency_on_step: int | None = schema.spec(None, gt=0)
    excluded_names: tuple[str, ...] | None = None
    not_to_prune_names: tuple[str, ...] | None = schema.spec(None, doc="INC 1.14.0's name of excluded_names")
    exclude_names: tuple[str, ...] | None = schema.spec(None, doc="INC 1.14.0's name of extra_excluded_names")
    prune_domain: str | None = schema.spec(None, choices=SCOPES)
    names: tuple[str, ...] | None = None
    extra_excluded_names: tuple[str, ...] | None = None
    prune_layer_type: tuple[str, ...] | None = None
    sparsity_decay_type: str | None = schema.spec(None, choices=_DECAYS)
    pattern: str | None = None
    pruners: tuple[_Pruner, ...] | None = None


def import_inc1(data: Any, *, flavor: str = "inc", doc: YamlDocument | None = None, source: str | None = None,
                origins: dict[str, str] | None = None) -> Recipe:
    """A recipe from an INC 1.x or LPOT 1.4-1.6 pruning YAML (the whole file's data).

    ``flavor`` picks whose epoch schedule a ``weight_compression`` section follows: ``inc`` (INC 1.x/2.x, the
    default) or ``lpot`` (LPOT 1.4-1.6, which ramped one epoch later and stopped at ``initial_sparsity`` when
    start and end epoch were equal). ``origins`` as for :func:`sparsesearch.formats.inc.import_inc`.
    """
    if flavor not in FLAVORS:
        raise ConfigError("unknown flavor", key="flavor", value=flavor, allowed=FLAVORS, suggestion=closest(flavor,
                                                                                                        FLAVORS))
    try:
        recipe = import_weight_compression(data, origins if origins is not None else {}, flavor=flavor)
    except ConfigError as exc:
        raise (doc.locate(exc) if doc is not None else exc) from None
    return with_source(recipe, flavor, source)


def import_weight_compression(data: Mapping[str, Any], origins: dict[str, str], *, flavor: str = "inc") -> Recipe:
    """The recipe for ``pruning.approach.weight_compression`` and/or ``weight_compression_pytorch``."""
    approach = data["pruning"]["approach"] if isinstance(data.get("pruning"), Mapping) else None
    if not isinstance(approach, Mapping):
        raise ConfigError("expected a mapping of pruning approaches", key="pruning.approach", value=approach,
                          allowed="weight_compression or weight_compression_pytorch")
    notes: list[str] = []
    groups: list[PruningGroup] = []
    kinds = []
    for name in ("weight_compression", "weight_compression_pytorch"):
        if name not in approach:
            continue
        path = f"pruning.approach.{name}"
        section = schema.load(_Section, approach[name] if approach[name] is not None else {}, path)
        if not section.pruners:
            raise ConfigError(f"INC's {name} needs a pruners list (INC 1.x iterates it and fails without one)",
                              key=f"{path}.pruners", value=None, allowed="a list of !Pruner mappings, e.g. "
                              "pruners: [!Pruner {prune_type: basic_magnitude}]")
        make = _legacy_group if name == "weight_compression" else _pytorch_group
        for i, pruner in enumerate(section.pruners):
            group = make(section, pruner, path, f"{path}.pruners[{i}]", notes, origins, len(groups), flavor)
            if group is not None:
                groups.append(group)
        kinds.append(name)
    others = [str(k) for k in approach if k not in ("weight_compression", "weight_compression_pytorch")]
    if others:
        notes.append(f"pruning.approach: {', '.join(others)} ignored")
    if not groups:
        raise ConfigError("no pruner selects a layer sparsesearch can prune", key="pruning.approach",
                          allowed="pruners naming Linear or Conv layers")
    if "weight_compression" in kinds:
        _exclusive_catch_all(groups, notes)
        notes.append("weight_compression schedules are in epochs: give the Pruner steps_per_epoch "
                     "(training.steps_per_epoch in a recipe)")
    notes.append("INC 1.x never protected a classifier head: every selected layer is pruned")
    if "weight_compression_pytorch" in kinds:
        notes.append("weight_compression_pytorch skips, with a warning, layers its pattern does not divide: kept as "
                     "selection.skip_incompatible_layers")
    for note in notes:
        log.info("INC 1.x import: %s", note)
    selection = Selection(skip_incompatible_layers="weight_compression_pytorch" in kinds)
    return make_recipe(PruningConfig(tuple(groups)), selection=selection,
                       provenance={"imported_from": "lpot" if flavor == "lpot" else "inc", "notes": dedupe(notes)})


def _exclusive_catch_all(groups: list[PruningGroup], notes: list[str]) -> None:
    """A pruner without ``names`` next to pruners with them: INC masked the shared layers twice; here the
    catch-all group leaves the listed layers to their own pruner (a layer belongs to one group)."""
    listed = sorted({name for g in groups for name in g.layer_targets})
    if not listed:
        return
    for i, group in enumerate(groups):
        if group.layer_targets or group.op_names:
            continue
        extra = tuple(exact_name_regex(n) for n in listed if exact_name_regex(n) not in group.excluded_op_names)
        groups[i] = schema.load(PruningGroup, {**schema.dump(group), "excluded_op_names": group.excluded_op_names + extra})
        notes.append(f"groups[{i}]: a pruner without names takes every layer except those other pruners list "
                     f"({', '.join(listed)}); INC applied both pruners' masks to those")


def _pick(pruner: _Pruner, section: _Section, key: str, default: Any, *, truthy: bool = False) -> Any:
    """The pruner's value of ``key``, else the section's, else ``default``.

    ``truthy``: INC's legacy pruners (``pruners/pruner.py``) test ``if local_config.key:``, so a falsy pruner
    value (0, an empty list) falls back to the global one too.
    """
    own = getattr(pruner, key, None)
    if own is not None and (own or not truthy):
        return own
    shared = getattr(section, key, None)
    return default if shared is None else shared


# ------------------------------------------------------------------------------------------ weight_compression


def _epoch_values(s: int, e_end: int, f: float, init: float, target: float, flavor: str) -> list[tuple[int, float]]:
    """(epoch, sparsity) for every epoch the legacy pruner computes masks (``on_epoch_begin``, start..end).

    INC ``pruners/pruner.py`` ``Pruner.update_sparsity``; LPOT 1.6 ``lpot/pruners/pruner.py`` differs.
    """
    values = []
    for e in range(s, e_end + 1):
        if flavor == "lpot":
            v = init if s == e_end else init + (target - init) * ((e - s) // f) * f / (e_end - s)
        else:
            v = target if s == e_end else init + (target - init) * ((e - s + 1) // f) * f / (e_end - s + 1)
        values.append((e, float(v)))
    return values


def _epoch_schedule(values: list[tuple[int, float]], label: str, notes: list[str]) -> tuple[dict[str, Any], float]:
    """A linear epoch schedule through the epochs where the legacy sparsity changes, and its target."""
    changes: list[tuple[int, float]] = []
    previous = 0.0
    for epoch, v in values:
        if abs(v - previous) > 1e-12:
            changes.append((epoch, v))
            previous = v
    if not changes:
        notes.append(f"{label}: INC's schedule asks for sparsity 0 at every epoch, so it prunes (almost) nothing; "
                     "imported with target 0")
        first = values[0][0] if values else 0
        return {"start_epoch": first, "end_epoch": first, "frequency": 1, "ramp": "linear"}, 0.0
    if len(changes) >= 3 and changes[1][0] - changes[0][0] != changes[2][0] - changes[1][0]:
        epoch0, v0 = changes.pop(0)
        notes.append(f"{label}: INC prunes to {v0:g} from epoch {epoch0} and then follows its staircase from epoch "
                     f"{changes[0][0]}; the schedule starts at epoch {changes[0][0]} (the first {changes[0][0] - epoch0} "
                     "epoch(s) stay dense here)")
    (e0, v0), (en, vn) = changes[0], changes[-1]
    if len(changes) == 1:
        return {"start_epoch": e0, "end_epoch": e0, "frequency": 1, "ramp": "linear"}, v0
    gap = changes[1][0] - e0
    even = all(b[0] - a[0] == gap for a, b in zip(changes, changes[1:]))
    linear = all(abs(v - (v0 + (vn - v0) * (e - e0) / (en - e0))) < 1e-9 for e, v in changes)
    if not (even and linear):
        notes.append(f"{label}: INC's sparsity steps ({', '.join(f'epoch {e}: {v:.4g}' for e, v in changes)}) are "
                     f"not evenly spaced; approximated by a linear ramp from epoch {e0} to {en} every {gap} epoch(s)")
    return {"start_epoch": e0, "end_epoch": en, "frequency": gap, "init_sparsity": v0, "ramp": "linear"}, vn


def _legacy_group(section: _Section, pruner: _Pruner, path: str, ppath: str, notes: list[str],
                  origins: dict[str, str], index: int, flavor: str) -> PruningGroup | None:
    label = ppath
    who = "LPOT" if flavor == "lpot" else "INC"
    raw_type = pruner.prune_type or "basic_magnitude"  # conf.config.Pruner's default
    if raw_type not in _LEGACY_TYPES:
        raise ConfigError(f"{who}'s weight_compression pruners have no prune_type {raw_type!r} ('now only support "
                          "...')", key=f"{ppath}.prune_type", value=raw_type, allowed=", ".join(_LEGACY_TYPES),
                          suggestion=closest(raw_type, _LEGACY_TYPES))
    if pruner.method == "per_channel":
        raise ConfigError(f"{who}'s per_channel method (one threshold per kernel, on signed values) has no "
                          "sparsesearch equivalent", key=f"{ppath}.method", value="per_channel", allowed="per_tensor")
    step_keys = [k for k in ("start_step", "end_step", "update_frequency_on_step", "prune_domain",
                             "sparsity_decay_type", "extra_excluded_names", "exclude_names")
                 if getattr(pruner, k) is not None]
    if step_keys:
        notes.append(f"{label}: {', '.join(step_keys)} ignored, as {who}'s weight_compression pruners do (they "
                     "belong to weight_compression_pytorch)")
    init = _pick(pruner, section, "initial_sparsity", 0.0, truthy=True)
    target = _pick(pruner, section, "target_sparsity", 0.97, truthy=True)
    start = _pick(pruner, section, "start_epoch", 0, truthy=True)
    end = _pick(pruner, section, "end_epoch", 4, truthy=True)
    freq = _pick(pruner, section, "update_frequency", 1.0, truthy=True)
    for key, own in (("start_epoch", pruner.start_epoch), ("initial_sparsity", pruner.initial_sparsity),
                     ("target_sparsity", pruner.target_sparsity)):
        shared = getattr(section, key)
        if own is not None and not own and shared:
            notes.append(f"{label}: {key} {own} is falsy, so {who} took the global {key} {shared} instead "
                         "('if local_config.{key}:'); so does the import")
    if end < start:
        raise ConfigError(f"end_epoch must not be before start_epoch ({start})", key=f"{ppath}.end_epoch",
                          value=end, allowed=f">= {start}")
    if init > target:
        raise ConfigError(f"initial_sparsity must not exceed target_sparsity ({target:g})",
                          key=f"{ppath}.initial_sparsity", value=init, allowed=f"0 .. {target:g}")
    if float(freq) != int(freq):
        notes.append(f"{label}: update_frequency {freq:g} epochs rounded to {max(1, round(freq))}")
        freq = max(1, round(freq))
    freq = int(freq)
    values = _epoch_values(start, end, freq, init, target, flavor)
    if flavor == "lpot" and start == end:
        notes.append(f"{label}: start_epoch == end_epoch: LPOT prunes to initial_sparsity {init:g} (not to "
                     f"target_sparsity {target:g}), and so does the import")
    if raw_type == "gradient_sensitivity" and start == 0:
        values = values[1:]  # no importance has been gathered before epoch 0 begins: no mask then
        notes.append(f"{label}: gradient_sensitivity has gathered no gradients when epoch 0 begins, so INC's first "
                     "mask comes at epoch 1")
    schedule, reached = _epoch_schedule(values, label, notes)
    if flavor == "inc":
        lpot = _epoch_values(start, end, freq, init, target, "lpot")
        if [round(v, 9) for _, v in lpot] != [round(v, 9) for _, v in _epoch_values(start, end, freq, init, target,
                                                                                      "inc")]:
            notes.append(f"{label}: read with INC 1.x's epoch staircase ({', '.join(f'{v:.3g}' for _, v in values)} at "
                         f"epochs {start}..{end}); LPOT 1.4-1.6 computed {', '.join(f'{v:.3g}' for _, v in lpot)} "
                         "(import with flavor='lpot' for LPOT's)")
    pattern_text = (pruner.pattern or "tile_pattern_1x1").split("_")[-1]
    if flavor == "lpot" and pruner.pattern:
        notes.append(f"{label}: LPOT's Pruner has no pattern key (it pruned 1x1); pattern {pruner.pattern!r} used as "
                     "INC 1.x reads it")
    pattern = parse_pattern(pattern_text, key=f"{ppath}.pattern")
    if pattern.kind != "block":
        raise ConfigError(f"{who}'s weight_compression patterns are tile blocks", key=f"{ppath}.pattern",
                          value=pruner.pattern, allowed="tile_pattern_1x1, tile_pattern_2x2, tile_pattern_1x16, "
                          "tile_pattern_4x1, tile_pattern_1x2")
    if pattern.cols != 1:
        notes.append(f"{label}: {pattern_text} blocks on Conv weights: {who} cut them along (in, kh, kw) columns, "
                     "sparsesearch along (kh, kw, in) (INC 2.x's layout); Linear layers are cut the same way")
    group: dict[str, Any] = {"pattern": pattern_text, "pruning_scope": "local", "criterion_reduce_type": "sum",
                             "target_sparsity": reached, "schedule": schedule}
    if raw_type == "basic_magnitude":
        group["pruning_type"] = "magnitude"
    elif raw_type == "pattern_lock":
        group["pruning_type"] = "pattern_lock"
        group["schedule"] = {"start_epoch": start, "end_epoch": start}
    elif raw_type == "group_lasso":
        params = pruner.parameters or {}
        if "alpha" not in params:
            raise ConfigError(f"{who}'s group_lasso reads parameters.alpha", key=f"{ppath}.parameters",
                              value=pruner.parameters, allowed="parameters: {alpha: 0.0001} (the group lasso strength)")
        group["pruning_type"] = "group_lasso"
        group["reg_coeff"] = float(params["alpha"])
        notes.append(f"{label}: group_lasso: INC adds alpha·w/‖block‖ to the gradients (the gradient of "
                     "alpha·Σ‖block‖₂, which sparsesearch adds to the loss) and prunes by block magnitude; "
                     "sparsesearch's group_lasso prunes blocks by their norm")
    else:  # gradient_sensitivity
        if pruner.parameters:
            raise ConfigError(f"{who}'s gradient_sensitivity with parameters prunes attention heads by the gradients "
                              "of importance_inputs; sparsesearch has no equivalent", key=f"{ppath}.parameters",
                              value=pruner.parameters, allowed="no parameters (element-wise gradient sensitivity)")
        group["pruning_type"] = "snip_momentum"
        notes.append(f"{label}: gradient_sensitivity (element-wise) imported as snip_momentum: INC summed |w·g| over "
                     "every step without decay, sparsesearch decays the running score by 0.9 each step")
    names = pruner.names if pruner.names else section.names
    if names:
        modules = []
        for j, name in enumerate(names):
            if not name.endswith(".weight") or name == ".weight":
                notes.append(f"{label}: names[{j}] {name!r} is not a weight; {who} skipped it (only 2-D and 4-D "
                             "weights are pruned)")
                continue
            modules.append(name[: -len(".weight")])
            origins[f"pruning.groups[{index}].layer_targets.{modules[-1]}"] = f"{ppath}.names[{j}]"
        if not modules:
            notes.append(f"{label}: no weight left to prune; pruner dropped")
            return None
        group["layer_targets"] = {m: reached for m in dict.fromkeys(modules)}
    else:
        group["op_types"] = ("Linear", "Conv2d")
        notes.append(f"{label}: no names: {who} pruned every 2-D and 4-D parameter, embeddings included; sparsesearch "
                     "prunes every Linear and Conv2d layer (embeddings and other 2-D parameters stay dense)")
    if group["pruning_type"] != "pattern_lock":
        notes.append(f"{label}: {who} pruned int(blocks · sparsity) + 1 blocks per layer (everything up to and "
                     "including its threshold); sparsesearch prunes round(blocks · sparsity)")
    origins[f"pruning.groups[{index}]"] = ppath
    try:
        return schema.load(PruningGroup, group)
    except ConfigError as exc:
        raise exc.located(prefix=ppath) from None


# ------------------------------------------------------------------------------------------ weight_compression_pytorch


def _pytorch_group(section: _Section, pruner: _Pruner, path: str, ppath: str, notes: list[str],
                   origins: dict[str, str], index: int, flavor: str) -> PruningGroup | None:
    """One ``weight_compression_pytorch`` pruner (``pytorch_pruner/prune_utils.process_and_check_config``)."""
    label = ppath

    def key_of(name: str) -> str:
        return f"{ppath}.{name}" if getattr(pruner, name, None) is not None else f"{path}.{name}"

    raw_type = pruner.prune_type
    if raw_type is None:
        raw_type = section.prune_type or "basic_magnitude"
        notes.append(f"{label}: no prune_type: INC's Pruner class defaults it to 'basic_magnitude', which hides the "
                     f"global one and which weight_compression_pytorch does not have (INC fails: 'does not support "
                     f"basic_magnitude'); imported with {raw_type!r}")
    ptype = raw_type
    if ptype.endswith("_progressive"):
        ptype = ptype[: -len("_progressive")]
        notes.append(f"{label}: prune_type {raw_type!r} imported as {ptype!r} (INC 1.x's pytorch pruner has no "
                     "progressive types; INC 2.x interpolates masks between updates)")
    if ptype == "basic_magnitude":
        ptype = "magnitude"
    if ptype not in _PYTORCH_TYPES:
        raise ConfigError("weight_compression_pytorch has no such prune_type", key=key_of("prune_type"),
                          value=raw_type, allowed=", ".join(_PYTORCH_TYPES), suggestion=closest(raw_type,
                                                                                                 _PYTORCH_TYPES))
    start = _pick(pruner, section, "start_step", 0)
    end = _pick(pruner, section, "end_step", 0)
    freq = _pick(pruner, section, "update_frequency_on_step", 1)
    if end < start:
        raise ConfigError(f"end_step must not be before start_step ({start}) (INC: 'end_step should be greater than "
                          "start_step')", key=key_of("end_step"), value=end, allowed=f">= {start}")
    if ptype in ("snip", "snip_momentum") and end == 0:
        raise ConfigError(f"prune_type {raw_type!r} scores weights with gradients, so INC requires end_step > 0 "
                          "('gradient based criteria does not work on step 0')", key=key_of("end_step"), value=end,
                          allowed="an end_step of 1 or more")
    if start != end and (end - start + 1) // freq == 0:
        raise ConfigError("INC divides by its update count (end_step - start_step + 1) // update_frequency_on_step, "
                          "which is 0 here, and fails", key=key_of("update_frequency_on_step"), value=freq,
                          allowed=f"1 .. {end - start + 1}")
    decay = _pick(pruner, section, "sparsity_decay_type", "exp")
    target = _pick(pruner, section, "target_sparsity", 0.97)
    max_ratio = _pick(pruner, section, "max_sparsity_ratio_per_layer", 0.98)
    scope = _pick(pruner, section, "prune_domain", "global")
    raw_pattern = pruner.pattern or "tile_pattern_1x1"
    if pruner.pattern is None and section.pattern and section.pattern.split("_")[-1] != "1x1":
        notes.append(f"{label}: no pattern: INC's Pruner class defaults it to tile_pattern_1x1, which hides the "
                     f"global pattern {section.pattern!r}; imported as 1x1, as INC ran it")
    pattern_text = raw_pattern.split("_")[-1]
    if pattern_text != raw_pattern:
        notes.append(f"{label}: pattern {raw_pattern!r} read as {pattern_text!r} (INC ignores the prefix)")
    pattern = parse_pattern(pattern_text, key=key_of("pattern"))
    if pattern.kind == "n_in_m":
        if target > pattern.max_sparsity + 1e-12 and ptype != "pattern_lock":
            raise ConfigError(f"in the {pattern_text} pattern the largest sparsity is N/M = {pattern.max_sparsity:g}",
                              key=key_of("target_sparsity"), value=target, allowed=f"0 .. {pattern.max_sparsity:g}")
        max_ratio = min(max_ratio, pattern.max_sparsity)
        if scope == "global":
            if ptype != "pattern_lock" and abs(target - pattern.max_sparsity) > 1e-9:
                raise ConfigError(f"INC's global {pattern_text} at target {target:g} prunes N of M in the lowest-scored "
                                  "M-groups across all layers together, so layers end at different sparsities; "
                                  "sparsesearch's N:M pattern is local only. The result would differ",
                                  key=key_of("prune_domain"), value="global",
                                  allowed=f"local, or global with target_sparsity {pattern.max_sparsity:g}")
            notes.append(f"{label}: {pattern_text} with prune_domain global at N/M (or pattern_lock) gives every layer "
                         "the same masks as local scope; run as local")
            scope = "local"
    if ptype == "pattern_lock":
        if start != end:
            raise ConfigError("INC's pattern_lock runs one-shot only ('pattern_lock pruner only supports one shot "
                              "mode')", key=key_of("end_step"), value=end, allowed=f"{start} (the start_step)")
        schedule, target = {"start_step": start, "end_step": start, "ramp": decay}, min(target, max_ratio)
        notes.append(f"{label}: pattern_lock: INC 2.x locks all-zero {pattern_text} blocks (N:M: zeros in groups with "
                     "at least N zeros) from start_step on; sparsesearch keeps exactly the zeros the model has when "
                     "the pruner is built")
    else:
        if target > max_ratio:
            notes.append(f"{label}: target_sparsity {target:g} capped at max_sparsity_ratio_per_layer {max_ratio:g}, "
                         "as INC's scheduler does")
            target = max_ratio
        schedule, target = schedule_for(inc1_updates(start, end, freq), target, decay, label, notes)
    if section.initial_sparsity:
        notes.append(f"{label}: initial_sparsity ignored, as INC's weight_compression_pytorch ignores it")
    names = pruner.names if pruner.names is not None else (section.names or ())
    excluded = [*(section.excluded_names or ()), *(section.not_to_prune_names or ())]
    extra = pruner.extra_excluded_names if pruner.extra_excluded_names is not None else (
        pruner.exclude_names if pruner.exclude_names is not None else (
            section.extra_excluded_names or section.exclude_names or ()))
    layer_types = _pick(pruner, section, "prune_layer_type", ("Conv2d", "Linear"))
    op_types = op_types_by_name(layer_types, key_of("prune_layer_type"), notes)
    if not op_types:
        notes.append(f"{label}: prune_layer_type {list(layer_types)} names no layer type sparsesearch prunes; "
                     "pruner dropped")
        return None
    if ptype == "magnitude":
        notes.append(f"{label}: INC's weight_compression_pytorch 'magnitude' ranked blocks by their signed weights "
                     "(so it pruned the most negative weights first, not the smallest); sparsesearch ranks by |w|")
    notes.append(f"{label}: INC recomputed the masks from scratch at every update, so weights it had pruned could "
                 "come back; sparsesearch never un-prunes")
    if scope == "global" and ptype != "pattern_lock":
        notes.append(f"{label}: INC's global scope capped a layer above max_sparsity_ratio_per_layer without giving "
                     "its share to the other layers, so INC's group could end below its target")
    group = {"pruning_type": ptype, "pattern": pattern_text, "pruning_scope": scope, "target_sparsity": target,
             "op_types": op_types, "op_names": tuple(names), "excluded_op_names": tuple(dict.fromkeys((*excluded,
                                                                                                      *extra))),
             "max_sparsity_ratio_per_op": max_ratio, "schedule": schedule}
    origins[f"pruning.groups[{index}]"] = ppath
    origins[f"pruning.groups[{index}].op_names"] = key_of("names")
    origins[f"pruning.groups[{index}].pattern"] = key_of("pattern")
    try:
        return schema.load(PruningGroup, group)
    except ConfigError as exc:
        raise exc.located(prefix=ppath) from None


__all__ = ["FLAVORS", "import_inc1", "import_weight_compression"]
