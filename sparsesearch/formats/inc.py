"""Intel Neural Compressor (INC) and LPOT pruning configs: import to a recipe, export a recipe to INC.

Users of INC's ``WeightPruningConfig`` (also used by Intel Extension for Transformers) and of the older
LPOT YAML ``pruning:`` section can bring their configs: :func:`import_inc` and :func:`import_lpot` build a
:class:`~sparsesearch.recipes.Recipe` and list, in ``recipe.provenance.notes``, every point where the
result differs from what INC or LPOT would have done. :func:`export_inc` goes the other way where the
recipe can be expressed, and lists what could not be. ``sparsesearch convert`` and ``sparsesearch
validate`` use them. The behaviour reproduced here was read from INC's source
(``neural_compressor/compression/pruner``: ``utils.process_and_check_config``, ``utils.parse_to_prune``,
``pruners/__init__.get_pruner``, ``pruners/base.py``, ``schedulers.py``, ``regs.py``,
``model_slim/pattern_analyzer.ClassifierHeadSearcher``) and LPOT's (``lpot/policy/policy.py``,
``lpot/policy/magnitude.py``).

INC ``WeightPruningConfig``
---------------------------
Keys: ``pruning_configs`` (a list of per-group dicts) plus the global keys ``target_sparsity``,
``pruning_type``, ``pattern``, ``op_names``, ``excluded_op_names``, ``start_step``, ``end_step``,
``pruning_scope``, ``pruning_frequency``, ``min_sparsity_ratio_per_op``, ``max_sparsity_ratio_per_op``,
``sparsity_decay_type``, ``pruning_op_types``, and the extras ``reg_type``, ``parameters: {reg_coeff}``,
``reg_coeff``, ``criterion_reduce_type`` (``resume_from_pruned_checkpoint``, ``low_memory_usage``,
``criterion_type``, ``lock_init_sparsity`` and ``backend`` are accepted, noted where they matter, and ignored). A group key overrides the global key; a missing or null key
takes the global value, then INC's default. An empty ``pruning_configs`` (or none) means one group made of
the global keys. INC's 2.x YAML form ``pruning: approach: weight_compression_v2: {..., pruners: [...]}``
is read the same way (``pruners``, tagged ``!PrunerV2``, as plain mappings).

INC's defaults, which differ from sparsesearch's own: ``pruning_type: snip_momentum``, ``pattern: 4x1``,
``pruning_scope: global``, ``sparsity_decay_type: exp``, ``target_sparsity: 0.9``, ``start_step: 0``,
``end_step: 0``, ``pruning_frequency: 1``, ``min_sparsity_ratio_per_op: 0.0``,
``max_sparsity_ratio_per_op: 0.98``, ``pruning_op_types: [Conv, Linear]``, ``reg_coeff: 0.0``.

Surprising points, all reproduced unless said otherwise:

* **Tagged YAML.** INC 2.x files tag every pruner ``!PrunerV2`` (INC 1.x and LPOT ``!Pruner``); the safe reader
  reads these two tags as plain mappings and runs nothing (``formats/safe_yaml.py``).
* **The last layer is never pruned, nor any layer whose name contains its name.** INC's
  ``ClassifierHeadSearcher`` takes the last module in registration order (Dropout ignored) when its class is
  exactly ``Linear`` or ``Conv2d``, and ``utils.parse_to_prune`` appends its name to ``excluded_op_names``, a
  regular expression searched in every layer name: a head ``classifier`` also protects DistilBERT's
  ``pre_classifier``, a head ``fc`` also ``fc1``. It needs the model, so an imported recipe carries
  ``selection.exclude_classifier_head: true`` with ``classifier_head_match: search`` and the layers are
  resolved when the recipe is applied (each extra protected layer is logged).
* **Layers a pattern does not divide are skipped**, with a warning, in INC (``check_layer_validity``);
  imported recipes keep that (``selection.skip_incompatible_layers: true``: each skipped layer is named with
  its shape). A native recipe makes it an error naming the layer, its shape and why.
* **Unknown keys are warnings.** INC logs "X is not supported for config" and goes on (its tests pass
  ``false_key`` on purpose); the import does the same, with the closest valid key, and notes it. Native
  recipes keep rejecting unknown keys.
* **op_names are searched, not matched**: ``"fc"`` selects ``fc1`` and ``decoder.fc``; sparsesearch's
  engine does the same, so the expressions are kept as written. A group's own ``op_names`` or
  ``excluded_op_names`` replaces the global list; it is not added to it.
* **pruning_op_types match class names by substring** in INC: ``"Conv"`` also took ``ConvTranspose2d``
  and Hugging Face's ``Conv1D``, ``"Linear"`` any class with Linear in its name, ``"Attention"`` nothing with a
  weight. The import maps each entry to the Linear / Conv1d/2d/3d classes it contains and notes what else INC
  matched; a group whose types match none of them prunes nothing in INC and is dropped, with a note.
* **The target is capped at max_sparsity_ratio_per_op** (INC's scheduler: "legacy issue"), in local
  scope too: ``target_sparsity: 0.99`` with the default max 0.98 prunes 0.98. The import writes the capped
  target. For N:M patterns INC also lowers the max to N/M.
* **Schedule.** Masks update at ``start_step`` and every ``pruning_frequency`` steps while the step is at
  most ``end_step``; the k-th update of K uses progress k/K, so the first update (at ``start_step``) prunes
  nothing unless start == end (one-shot at ``start_step``). When ``end_step - start_step`` is not a
  multiple of the frequency, INC's last update (and the target) comes at the last multiple before
  ``end_step``; the import moves ``end_step`` there so every update prunes exactly what INC's would.
* **Float steps** (INC's torchvision examples compute ``start_step``/``end_step`` from fractions of an epoch)
  are accepted as INC takes them: updates fall on the whole steps s with ``start <= s <= end`` and
  ``int(s - start)`` a multiple of the frequency, so the first is ``start`` rounded up; INC counts its updates
  from the unrounded values, and where it stops short of its target the import lowers the target to what INC
  reaches (exactly, for the exp, linear and cube decays).
* **Decay types**: ``exp`` (INC's default; density shrinks by a constant factor per update), ``linear``,
  ``cos`` (1 − cos(p·π/2): slow early, fast late) and ``cube``: s0 + (st − s0)·p³, *back-loaded* — the
  mirror image of Zhu & Gupta's cubic (sparsesearch's ``cubic``, fast early). Little is pruned until late
  in a ``cube`` schedule.
* **Gradient types need end_step > 0** (``gradient``, ``snip``, ``snip_momentum``): INC asserts it, and
  so does the import. INC's default config (snip_momentum, end_step 0) is therefore not runnable as is. INC
  recomputes their masks from the scores at every update, so a pruned block can come back; sparsesearch
  never un-prunes (noted).
* **``_progressive`` types** (``magnitude_progressive``, ``snip_progressive``,
  ``snip_momentum_progressive``, ``gradient_progressive``) map to the base type. What is lost: INC's mask
  interpolation, which between two updates zeroes the newly pruned blocks in 4 sub-steps instead of at
  once (INC itself falls back to plain pruning when ``end_step - start_step <= 4``).
* **reg_type: group_lasso** is, in INC, a decoupled shrinkage (after each optimizer step every block is
  scaled down by α/‖block gradient‖) added to the pruning type's own criterion. sparsesearch's
  ``group_lasso`` is a pruning type: α·Σ‖block‖₂ added to the loss, blocks pruned by norm. With
  ``reg_coeff > 0`` the import uses sparsesearch's ``group_lasso`` (the original criterion is dropped and
  noted); with INC's default ``reg_coeff: 0`` the regulariser does nothing in INC either and is dropped.
  INC allows group lasso with NxM patterns only, and so does the import.
* **N:M with global scope** (INC's own 2:4 BERT examples): INC ranks the M-groups of all layers together
  and prunes N of M in the lowest ``target / (N/M)`` share. At ``target == N/M`` that is every group, the same
  masks as local scope, so the group runs as local (noted: while the schedule ramps INC spreads the
  intermediate sparsity unevenly); ``pattern_lock`` ignores the scope. Below N/M the result would differ
  (sparsesearch's N:M is local only) and the import says so and how to get either behaviour.
* **Global budgets** are counted in blocks (``int(blocks · target)``, rounded down); for ``channelx1`` and
  ``1xchannel`` every channel is one unit whatever its length, where sparsesearch's budget is a share of
  weights (noted). ``min_sparsity_ratio_per_op`` in INC never lifts a layer: it holds sparsity back from the
  other layers (``patterns/base.py adjust_ratio``), noted.
* **pattern_lock** in INC locks zeros at the pattern's granularity from ``start_step`` on (NxM: only blocks
  whose weights sum to zero; N:M: every group with at most N non-zeros is zeroed whole) and runs one-shot
  only; sparsesearch keeps exactly the model's zeros. Kept as the native behaviour, noted.
* Unsupported INC types are errors naming why: ``snip_momentum_block``/``block_mask``,
  ``retrain_free``, ``sparse_gpt``, ``wanda`` (post-training or mask-parameter methods) and ``mha`` (head)
  patterns.
* ``snip_momentum`` scores as INC does: score ← 0.9·score + |w·g| before every optimizer step.

INC 1.x and LPOT 1.4-1.6 YAML (``weight_compression``, ``weight_compression_pytorch``) are read by
:mod:`sparsesearch.formats.inc1`; the rules shared by both importers live in
:mod:`sparsesearch.formats.inc_rules`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError, closest
from sparsesearch.formats.inc_rules import (
    dedupe,
    drop_unknown_keys,
    inc3_updates,
    op_types_by_substring,
    schedule_for,
    with_source,
)
from sparsesearch.formats.safe_yaml import YamlDocument, dump_yaml
from sparsesearch.records import schema
from sparsesearch.records.names import CRITERIA, REDUCE_TYPES, SCOPES
from sparsesearch.records.patterns import parse_pattern
from sparsesearch.records.pruning import PruningConfig, PruningGroup
from sparsesearch.records.recipe import Recipe, Selection, exact_name_regex, make_recipe

log = logging.getLogger(__name__)

#: INC's global defaults (``process_and_check_config``), in its key order.
INC_DEFAULTS: dict[str, Any] = {
    "target_sparsity": 0.9,
    "pruning_type": "snip_momentum",
    "pattern": "4x1",
    "op_names": [],
    "excluded_op_names": [],
    "start_step": 0,
    "end_step": 0,
    "pruning_scope": "global",
    "pruning_frequency": 1,
    "min_sparsity_ratio_per_op": 0.0,
    "max_sparsity_ratio_per_op": 0.98,
    "sparsity_decay_type": "exp",
    "pruning_op_types": ["Conv", "Linear"],
    "reg_type": None,
    "criterion_reduce_type": "mean",
    "reg_coeff": 0.0,
}
INC_TYPES = ("magnitude", "gradient", "snip", "snip_momentum", "pattern_lock")
INC_DECAYS = ("exp", "cos", "linear", "cube")
_GRADIENT_TYPES = ("gradient", "snip", "snip_momentum")
_PROGRESSIVE = "_progressive"
_UNSUPPORTED_TYPES = {
    "snip_momentum_block": "INC's block-mask pruning learns mask parameters through the model's forward",
    "block_mask": "INC's block-mask pruning learns mask parameters through the model's forward",
    "retrain_free": "INC's retrain-free pruning is a post-training method with its own data pass",
    "sparse_gpt": "SparseGPT is a post-training, layer-by-layer reconstruction method",
    "sparsegpt": "SparseGPT is a post-training, layer-by-layer reconstruction method",
    "wanda": "Wanda is a post-training method that needs activation statistics",
}
_SUPPORTED_TYPE_NAMES = (*INC_TYPES, *(t + _PROGRESSIVE for t in INC_TYPES if t != "pattern_lock"),
                         *(t for t in CRITERIA if t not in INC_TYPES))


#: keys WeightPruningConfig takes besides the pruning keys, and keys INC reads although its key check does not
#: list them (``lock_init_sparsity``: ``pruners/basic.py``; ``backend``: ``config.WeightPruningConfig``)
_EXTRA_KEYS = ("lock_init_sparsity", "backend")


@dataclass(frozen=True)
class _IncParameters:
    reg_coeff: float | None = schema.spec(None, ge=0.0)


@dataclass(frozen=True)
class _IncSettings:
    """One INC key set (the globals or one group); None = not given (INC treats null the same way)."""

    target_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    pruning_type: str | None = None
    pattern: str | None = None
    op_names: tuple[str, ...] | None = None
    excluded_op_names: tuple[str, ...] | None = None
    start_step: float | None = schema.spec(None, ge=0, doc="INC accepts floats (its examples compute them)")
    end_step: float | None = schema.spec(None, ge=0, doc="INC accepts floats (its examples compute them)")
    pruning_scope: str | None = schema.spec(None, choices=SCOPES)
    pruning_frequency: int | None = schema.spec(None, gt=0)
    min_sparsity_ratio_per_op: float | None = schema.spec(None, ge=0.0, lt=1.0)
    max_sparsity_ratio_per_op: float | None = schema.spec(None, ge=0.0, lt=1.0)
    sparsity_decay_type: str | None = schema.spec(None, choices=(*INC_DECAYS, "cubic"))
    pruning_op_types: tuple[str, ...] | None = None
    reg_type: str | None = schema.spec(None, choices=("group_lasso",))
    criterion_reduce_type: str | None = schema.spec(None, choices=REDUCE_TYPES)
    parameters: _IncParameters | None = None
    reg_coeff: float | None = schema.spec(None, ge=0.0)
    resume_from_pruned_checkpoint: bool | None = None
    low_memory_usage: bool | None = None
    criterion_type: str | None = None
    lock_init_sparsity: bool | None = None
    backend: str | None = None


@dataclass(frozen=True)
class _IncConfig(_IncSettings):
    pruning_configs: tuple[_IncSettings, ...] | None = None


_GROUP_KEYS = tuple(schema.field_names(_IncSettings))
_GLOBAL_KEYS = tuple(schema.field_names(_IncConfig))


def WeightPruningConfig(pruning_configs: Sequence[Mapping[str, Any]] | None = None, **kwargs: Any) -> dict[str, Any]:  # noqa: N802
    """INC's ``WeightPruningConfig(...)`` call as plain data, so INC code ports verbatim::

        conf = WeightPruningConfig([{"start_step": 0, "end_step": 2}], target_sparsity=0.9,
                                   pruning_scope="local", pruning_type="magnitude")
        recipe = import_inc(conf)
    """
    data: dict[str, Any] = {"pruning_configs": [dict(c) for c in (pruning_configs if pruning_configs is not None
                                                                 else [{}])]}
    data.update(kwargs)
    return data


# ------------------------------------------------------------------------------------------ INC import


def _object_to_data(config: Any) -> Any:
    """INC's own WeightPruningConfig object (if the user has INC) as plain data."""
    if hasattr(config, "weight_compression") and hasattr(config, "pruning_configs"):
        data = {k: v for k, v in dict(config.weight_compression).items()}
        data["pruning_configs"] = [dict(c) for c in (config.pruning_configs or [])]
        return data
    return config


def import_inc(config: Any, *, doc: YamlDocument | None = None, source: str | None = None,
               origins: dict[str, str] | None = None) -> Recipe:
    """A recipe from an INC ``WeightPruningConfig`` (dict, YAML data, or INC's own object), or from an INC
    pruning YAML: 2.x ``weight_compression_v2``, or 1.x / LPOT 1.4-1.6 ``weight_compression`` and
    ``weight_compression_pytorch`` (see :mod:`sparsesearch.formats.inc1`).

    The recipe carries INC's model-dependent rules in ``selection`` and every difference from INC in
    ``provenance.notes`` (also logged). ``doc`` locates errors in the YAML file they came from;
    ``origins``, when given, is filled with the INC key path behind each recipe key path (see
    :func:`translate_key`), so later errors can point into the INC file.
    """
    data = _object_to_data(config)
    origins = origins if origins is not None else {}
    try:
        if isinstance(data, Mapping) and isinstance(data.get("pruning"), Mapping) and "approach" in data["pruning"]:
            recipe = _import_inc_yaml(data, origins)
        else:
            recipe = _import_inc_parts(data, "", "pruning_configs", origins)
    except ConfigError as exc:
        raise (doc.locate(exc) if doc is not None else exc) from None
    return _with_source(recipe, "inc", source)


_APPROACHES = ("weight_compression_v2", "weight_compression", "weight_compression_pytorch")


def _import_inc_yaml(data: Mapping[str, Any], origins: dict[str, str]) -> Recipe:
    approach = data["pruning"].get("approach")
    base = "pruning.approach"
    if not isinstance(approach, Mapping) or not any(k in approach for k in _APPROACHES):
        first = next(iter(approach), "") if isinstance(approach, Mapping) else ""
        raise ConfigError("not an INC pruning approach", key=base,
                          value=list(approach) if isinstance(approach, Mapping) else approach,
                          allowed="pruning.approach.weight_compression_v2 (INC 2.x), weight_compression or "
                          "weight_compression_pytorch (INC 1.x, LPOT 1.4-1.6), or WeightPruningConfig keys at the "
                          "top level", suggestion=closest(first, _APPROACHES))
    if "weight_compression_v2" not in approach:
        from sparsesearch.formats.inc1 import import_weight_compression

        return import_weight_compression(data, origins)
    section = approach["weight_compression_v2"]
    path = f"{base}.weight_compression_v2"
    if not isinstance(section, Mapping):
        raise ConfigError("expected a mapping of pruning keys", key=path, value=section,
                          allowed="WeightPruningConfig keys and a pruners list")
    notes: list[str] = []
    others = [k for k in approach if k != "weight_compression_v2"]
    if others:
        notes.append(f"{base}: {', '.join(map(str, others))} ignored; INC 2.x prunes with weight_compression_v2 only")
    ignored = [str(k) for k in data if k != "pruning"]
    if ignored:
        log.info("INC import: sections other than pruning ignored: %s", ", ".join(ignored))
    if "pruning_configs" in section:
        raise ConfigError("unknown key", key=schema.join(path, "pruning_configs"),
                          allowed="pruners (INC's YAML name for the group list)", suggestion="pruners")
    renamed = {("pruning_configs" if k == "pruners" else k): v for k, v in section.items()}
    return _import_inc_parts(renamed, path, schema.join(path, "pruners"), origins, notes)


def _import_inc_parts(data: Any, path: str, groups_path: str, origins: dict[str, str],
                      notes: list[str] | None = None) -> Recipe:
    notes = notes if notes is not None else []
    yaml_form = groups_path.endswith("pruners")
    if isinstance(data, Mapping):
        allowed = [k for k in (*_GLOBAL_KEYS, *_EXTRA_KEYS) if not (yaml_form and k == "pruning_configs")]
        allowed += ["pruning_configs"] if yaml_form else []
        data = dict(drop_unknown_keys(data, allowed, path, notes))
        groups_data = data.get("pruning_configs")
        if isinstance(groups_data, Sequence) and not isinstance(groups_data, (str, bytes)):
            data["pruning_configs"] = [drop_unknown_keys(_params_known(g, schema.join(groups_path, i), notes),
                                                         _GROUP_KEYS, schema.join(groups_path, i), notes)
                                       for i, g in enumerate(groups_data)]
        data = _params_known(data, path, notes)
    try:
        parsed = schema.load(_IncConfig, data, path)
    except ConfigError as exc:
        if yaml_form and exc.key and ".pruning_configs" in exc.key:
            exc = ConfigError(exc.problem, key=exc.key.replace(".pruning_configs", ".pruners"), value=exc.value,
                              allowed=exc.allowed, suggestion=exc.suggestion)
        raise exc from None
    locals_ = list(parsed.pruning_configs) if parsed.pruning_configs else []
    groups: list[PruningGroup] = []
    entries = [(parsed, _IncSettings(), None)] if not locals_ else [
        (parsed, local, schema.join(groups_path, i)) for i, local in enumerate(locals_)]
    for glob, local, local_path in entries:
        group = _inc_group(glob, local, path, local_path, notes, origins, len(groups))
        if group is not None:
            groups.append(group)
    if not groups:
        raise ConfigError("no group selects a layer type sparsesearch can prune, so INC would prune nothing either",
                          key=schema.join(path, "pruning_op_types"), allowed="pruning_op_types naming Linear or Conv "
                          "layers (INC's default: [Conv, Linear])")
    notes.append("INC never prunes the model's last layer when it is a Linear or Conv2d (its classifier head), nor any "
                 "layer whose name contains the head's name (INC excludes it with re.search, so a head 'classifier' "
                 "also protects 'pre_classifier'): kept as selection.exclude_classifier_head with "
                 "classifier_head_match: search, resolved when the recipe is applied to a model")
    notes.append("INC skips, with a warning, layers whose shape its pattern does not divide: kept as "
                 "selection.skip_incompatible_layers (each skipped layer is named with its shape when applied)")
    for note in notes:
        log.info("INC import: %s", note)
    return make_recipe(PruningConfig(tuple(groups)),
                       selection=Selection(exclude_classifier_head=True, classifier_head_match="search",
                                           skip_incompatible_layers=True),
                       provenance={"imported_from": "inc", "notes": _dedupe(notes)})


def _params_known(data: Any, path: str, notes: list[str]) -> Any:
    """``data`` with unknown keys inside ``parameters`` dropped (INC copies them into the config, unused)."""
    if isinstance(data, Mapping) and isinstance(data.get("parameters"), Mapping):
        data = dict(data)
        data["parameters"] = drop_unknown_keys(data["parameters"], ("reg_coeff",), schema.join(path, "parameters"),
                                               notes)
    return data


def _dedupe(notes: list[str]) -> list[str]:
    return dedupe(notes)


# a recipe key (under pruning.groups[i]) -> the INC key it came from
_INC_TO_OURS = {
    "pruning_type": "pruning_type", "pattern": "pattern", "pruning_scope": "pruning_scope",
    "target_sparsity": "target_sparsity", "op_types": "pruning_op_types", "op_names": "op_names",
    "excluded_op_names": "excluded_op_names", "min_sparsity_ratio_per_op": "min_sparsity_ratio_per_op",
    "max_sparsity_ratio_per_op": "max_sparsity_ratio_per_op", "criterion_reduce_type": "criterion_reduce_type",
    "schedule.start_step": "start_step", "schedule.end_step": "end_step",
    "schedule.pruning_frequency": "pruning_frequency", "schedule.ramp": "sparsity_decay_type",
}

# map a PruningGroup error key to the INC key that produced the value
_OUR_TO_INC = {
    "schedule.start_step": "start_step", "schedule.end_step": "end_step",
    "schedule.pruning_frequency": "pruning_frequency", "schedule.ramp": "sparsity_decay_type",
    "schedule.init_sparsity": "target_sparsity", "op_types": "pruning_op_types",
}


def _steps_text(value: float) -> str:
    return f"{value:g}"


def _inc_group(glob: _IncSettings, local: _IncSettings, path: str, local_path: str | None,
               notes: list[str], origins: dict[str, str], index: int) -> PruningGroup | None:
    """Merge one INC group over the globals and INC's defaults, check it as INC does, and convert it.

    None when the group selects no layer type sparsesearch prunes (INC itself prunes nothing with it).
    """
    label = local_path or "the global config"

    def value(key: str) -> Any:
        for settings in (local, glob):
            v = getattr(settings, key)
            if v is not None:
                return v
        return INC_DEFAULTS.get(key)

    def where(key: str) -> str:
        if local_path is not None and getattr(local, key) is not None:
            return schema.join(local_path, key)
        if getattr(glob, key) is not None:
            return schema.join(path, key)
        return schema.join(local_path or path, key)

    def given(key: str) -> bool:
        return getattr(local, key) is not None or getattr(glob, key) is not None

    # pruning type (INC strips "_progressive" and picks a pruner class by name: pruners/__init__.get_pruner)
    raw_type = value("pruning_type")
    if not isinstance(raw_type, str):
        raise ConfigError("expected a pruning type name", key=where("pruning_type"), value=raw_type,
                          allowed=", ".join(_SUPPORTED_TYPE_NAMES))
    ptype = raw_type
    if ptype.endswith(_PROGRESSIVE) and ptype[: -len(_PROGRESSIVE)] in INC_TYPES and ptype != "pattern_lock" + _PROGRESSIVE:
        ptype = ptype[: -len(_PROGRESSIVE)]
        notes.append(f"{label}: pruning_type {raw_type!r} imported as {ptype!r}; lost: INC's progressive mask "
                     "interpolation (newly pruned blocks zeroed in 4 sub-steps between updates instead of at once)")
    if ptype in _UNSUPPORTED_TYPES or "mha" in ptype:
        reason = _UNSUPPORTED_TYPES.get(ptype, "multi-head-attention pruning removes whole heads")
        raise ConfigError(f"INC pruning type {raw_type!r} is not supported by sparsesearch ({reason})",
                          key=where("pruning_type"), value=raw_type, allowed=", ".join(_SUPPORTED_TYPE_NAMES))
    if ptype not in CRITERIA:
        raise ConfigError("unknown pruning_type", key=where("pruning_type"), value=raw_type,
                          allowed=", ".join(_SUPPORTED_TYPE_NAMES), suggestion=closest(raw_type, _SUPPORTED_TYPE_NAMES))
    if ptype not in INC_TYPES:
        notes.append(f"{label}: pruning_type {ptype!r} is sparsesearch's own; INC does not have it")

    # pattern (INC keeps only the part after the last "_", e.g. tile_pattern_4x1 -> 4x1: patterns.get_pattern)
    raw_pattern = value("pattern")
    if not isinstance(raw_pattern, str):
        raise ConfigError("expected a pattern string", key=where("pattern"), value=raw_pattern,
                          allowed="1x1, NxM such as 4x1, N:M such as 2:4, channelx1, 1xchannel")
    if "mha" in raw_pattern:
        raise ConfigError("INC's mha (multi-head attention) pattern prunes whole heads; sparsesearch does not "
                          "support it", key=where("pattern"), value=raw_pattern,
                          allowed="1x1, NxM such as 4x1, N:M such as 2:4, channelx1, 1xchannel")
    pattern_text = raw_pattern.split("_")[-1]
    if pattern_text != raw_pattern:
        notes.append(f"{label}: pattern {raw_pattern!r} read as {pattern_text!r} (INC ignores the prefix)")
    try:
        pattern = parse_pattern(pattern_text, key=where("pattern"))
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=where("pattern"), value=raw_pattern, allowed=exc.allowed,
                          suggestion=exc.suggestion) from None

    # schedule, as INC's BasePruner counts it (pruners/base.py, schedulers.py)
    start, end, freq = value("start_step"), value("end_step"), value("pruning_frequency")
    if end < start:
        raise ConfigError(f"end_step must not be before start_step ({_steps_text(start)}) (INC: 'end_step should be "
                          "greater than start_step')", key=where("end_step"), value=end,
                          allowed=f">= {_steps_text(start)}")
    if ptype in _GRADIENT_TYPES and end == 0:
        raise ConfigError(f"pruning_type {raw_type!r} scores weights with gradients, so INC requires end_step > 0 "
                          "('please set end_step > 0 for gradient based criterion')", key=where("end_step"),
                          value=end, allowed="an end_step of 1 or more (training steps)")
    if ptype == "pattern_lock" and start != end:
        raise ConfigError("INC's pattern_lock runs one-shot only ('pattern_lock pruner only supports one shot "
                          "mode'), so start_step and end_step must be equal", key=where("end_step"), value=end,
                          allowed=f"{_steps_text(start)} (the start_step)")
    floats = [(k, v) for k, v in (("start_step", start), ("end_step", end)) if float(v) != int(v)]
    if floats:
        given_text = ", ".join(f"{k} {v:g}" for k, v in floats)
        notes.append(f"{label}: {given_text}: INC updates masks on whole steps s with start_step <= s <= end_step "
                     "and int(s - start_step) a multiple of pruning_frequency, so the first update is start_step "
                     "rounded up and the last one at most end_step rounded down; the schedule uses those steps")
    start = int(start) if float(start) == int(start) else start
    end = int(end) if float(end) == int(end) else end
    decay = value("sparsity_decay_type")
    if decay == "cubic":
        notes.append(f"{label}: sparsity_decay_type 'cubic' is sparsesearch's Zhu & Gupta ramp (fast early), not "
                     "INC's back-loaded 'cube'")
    elif decay == "cube":
        notes.append(f"{label}: INC's 'cube' decay is back-loaded (s0 + (st - s0)·p³: little is pruned until late), "
                     "the mirror of Zhu & Gupta's cubic; kept as 'cube'")

    # sparsity bounds: INC caps the target at max_sparsity_ratio_per_op, and N:M at N/M (utils.check_config)
    target = value("target_sparsity")
    max_ratio = value("max_sparsity_ratio_per_op")
    min_ratio = value("min_sparsity_ratio_per_op")
    scope = value("pruning_scope")
    if pattern.kind == "n_in_m":
        if target > pattern.max_sparsity + 1e-12 and ptype != "pattern_lock":
            raise ConfigError(f"in the {pattern_text} pattern the largest sparsity is N/M = {pattern.max_sparsity:g} "
                              f"(INC: 'in N:M pattern, the max sparsity is N/M={pattern.max_sparsity}')",
                              key=where("target_sparsity"), value=target, allowed=f"0 .. {pattern.max_sparsity:g}")
        max_ratio = min(max_ratio, pattern.max_sparsity)
        if scope == "global":
            scope = _nm_scope(ptype, target, pattern_text, pattern.max_sparsity, label, where, given, notes)
    if min_ratio > max_ratio:
        raise ConfigError(f"min_sparsity_ratio_per_op must not exceed max_sparsity_ratio_per_op ({max_ratio:g})",
                          key=where("min_sparsity_ratio_per_op"), value=min_ratio, allowed=f"0 .. {max_ratio:g}")
    if ptype == "pattern_lock":
        target = min(target, max_ratio, pattern.max_sparsity)  # pattern_lock prunes nothing; the target is unused
        plan = inc3_updates(start, end, freq)
        schedule = {"start_step": plan.first, "end_step": plan.first, "pruning_frequency": freq, "ramp": decay}
        notes.append(f"{label}: pattern_lock: INC locks zeros at the pattern's granularity, at step "
                     f"{plan.first} (its start_step) and not before: with an NxM pattern only blocks whose "
                     "weights sum to zero (all-zero blocks) become pruned blocks and zeros inside other blocks may "
                     "grow back; with N:M every group of M with at most N non-zeros is zeroed whole. sparsesearch "
                     "keeps exactly the zeros the model has when the pruner is built, weight by weight")
    else:
        if target > max_ratio:
            notes.append(f"{label}: target_sparsity {target:g} capped at max_sparsity_ratio_per_op {max_ratio:g}, as "
                         "INC's scheduler does")
            target = max_ratio
        plan = inc3_updates(start, end, freq)
        if plan.count and not plan.one_shot and plan.progress >= 1.0 and plan.last != end:
            notes.append(f"{label}: INC's last update (and the target) comes at step {plan.last}, the last multiple "
                         f"of pruning_frequency {freq} after start_step {_steps_text(start)} before end_step "
                         f"{_steps_text(end)}; end_step set to {plan.last}")
        schedule, target = schedule_for(plan, target, decay, label, notes)
        if ptype in _GRADIENT_TYPES and target > 0 and schedule["start_step"] == schedule["end_step"] == 0:
            raise ConfigError(f"pruning_type {raw_type!r} scores weights with gradients, but INC would prune at step "
                              "0, before any backward pass (it ranks all-zero scores there)", key=where("end_step"),
                              value=end, allowed="an end_step of 1 or more whole steps after start_step")

    # regulariser and the rest
    reg_type = value("reg_type")
    params = value("parameters")
    reg_coeff = value("reg_coeff")
    if params is not None and params.reg_coeff is not None:
        reg_coeff = params.reg_coeff
    extra: dict[str, Any] = {}
    if reg_type == "group_lasso":
        if "x" not in pattern_text:
            raise ConfigError("INC's group lasso works with NxM block patterns only ('group lasso only supports NXM "
                              "pattern')", key=where("reg_type"), value=reg_type, allowed="null with an N:M pattern")
        if reg_coeff > 0:
            notes.append(f"{label}: reg_type group_lasso (reg_coeff {reg_coeff:g}) imported as sparsesearch's "
                         f"group_lasso pruning type; lost: the {ptype!r} criterion (blocks are pruned by norm) and INC's "
                         "decoupled form (here α·Σ‖block‖₂ is added to the loss). INC's step (regs.GroupLasso) "
                         "scales each block by α/‖its gradient‖, which explodes where gradients are small: in the "
                         "parity benchmark INC's weights reach NaN and its model ends unpruned")
            ptype = "group_lasso"
            extra["reg_coeff"] = reg_coeff
        else:
            notes.append(f"{label}: reg_type group_lasso with reg_coeff 0 does nothing in INC; dropped")
    if value("resume_from_pruned_checkpoint"):
        notes.append(f"{label}: resume_from_pruned_checkpoint ignored (load your checkpoint before applying)")
    if value("low_memory_usage"):
        notes.append(f"{label}: low_memory_usage ignored (scores are float32)")
    if value("lock_init_sparsity"):
        notes.append(f"{label}: lock_init_sparsity: INC locks the zeros the model has at start_step (at the "
                     "pattern's granularity) and ramps on from that sparsity; sparsesearch ramps from 0, and existing "
                     "zeros are pruned first only where the criterion scores them lowest (magnitude does)")
    if value("backend"):
        notes.append(f"{label}: backend {value('backend')!r} ignored")
    op_key = where("pruning_op_types") if given("pruning_op_types") else "pruning_op_types (INC's default)"
    op_types = op_types_by_substring(value("pruning_op_types"), op_key, notes)
    if not op_types:
        message = (f"{label}: pruning_op_types {list(value('pruning_op_types'))} select no Linear or Conv layer: INC "
                   "hooks no layer with this group ('one pruner hooks no layers') and prunes nothing; group dropped")
        log.warning("INC import: %s", message)
        notes.append(message)
        return None
    if scope == "global" and ptype != "pattern_lock":
        _global_notes(label, pattern, min_ratio, notes)
    if ptype in _GRADIENT_TYPES:
        notes.append(f"{label}: INC recomputes the masks from the scores at every update and keeps no record of what "
                     f"it pruned, so with {ptype} scores a pruned block whose score rises above the threshold is kept "
                     "again and its weights restart from zero (for a while they still count as zeros); sparsesearch "
                     "never un-prunes, so per-layer sparsities can differ from INC's by a few blocks")
    kwargs = dict(
        pruning_type=ptype,
        pattern=pattern_text,
        pruning_scope=scope,
        target_sparsity=target,
        op_types=op_types,
        op_names=tuple(value("op_names")),
        excluded_op_names=tuple(value("excluded_op_names")),
        min_sparsity_ratio_per_op=min_ratio,
        max_sparsity_ratio_per_op=max_ratio,
        criterion_reduce_type=value("criterion_reduce_type"),
        schedule=schedule,
        **extra,
    )
    origins[f"pruning.groups[{index}]"] = local_path or path
    for ours, inc_key in _INC_TO_OURS.items():
        origins[f"pruning.groups[{index}].{ours}"] = where(inc_key)
    try:
        return schema.load(PruningGroup, kwargs)
    except ConfigError as exc:
        key = exc.key or ""
        inc_key = _OUR_TO_INC.get(key, key.split(".")[0] if key else "pruning_type")
        raise ConfigError(exc.problem, key=where(inc_key) if inc_key in INC_DEFAULTS else schema.join(
            local_path or path, key), value=exc.value, allowed=exc.allowed, suggestion=exc.suggestion) from None


def _nm_scope(ptype: str, target: float, pattern_text: str, max_sparsity: float, label: str, where: Any,
              given: Any, notes: list[str]) -> str:
    """The scope an N:M group with INC's global scope runs with here, or a ConfigError where it would differ.

    INC's global N:M (``patterns/ninm.py`` ``get_masks_global``) ranks the M-groups of all layers together and
    prunes N of M in the lowest ``target / (N/M)`` share of them. At ``target == N/M`` that share is every
    group, which is what local scope does; ``pattern_lock`` ignores the scope.
    """
    if ptype == "pattern_lock":
        notes.append(f"{label}: pruning_scope global with pattern_lock: the scope plays no part (nothing new is "
                     "pruned); run as local")
        return "local"
    if abs(target - max_sparsity) <= 1e-9:
        notes.append(f"{label}: pattern {pattern_text} with global scope at target N/M = {max_sparsity:g}: INC prunes "
                     "N of every M weights in every layer, as local scope does, so the final masks are the same; it "
                     "runs as local. While the schedule ramps, INC's global ranking spreads the intermediate sparsity "
                     "unevenly over the layers, where local gives every layer the scheduled value")
        return "local"
    ratio = target / max_sparsity
    raise ConfigError(f"INC's global {pattern_text} at target {target:g} prunes N of M in the {ratio:.0%} of M-groups "
                      f"with the lowest scores across all layers together, so layers end at different sparsities "
                      f"(0 .. {max_sparsity:g}); sparsesearch's N:M pattern is local only (every layer exactly at the "
                      "target). The result would differ", key=where("pruning_scope"), value="global",
                      allowed=f"local (every layer at {target:g}), or global with target_sparsity {max_sparsity:g} "
                      "(identical to INC)")


def _global_notes(label: str, pattern: Any, min_ratio: float, notes: list[str]) -> None:
    """What INC's global scope does that the recipe's global scope may not (``patterns/nxm.py``,
    ``patterns/base.py`` ``update_residual_cnt`` and ``adjust_ratio``)."""
    if pattern.kind == "block" and (pattern.rows is None or pattern.cols is None):
        notes.append(f"{label}: INC's global {pattern.name} budget counts channels: int(channels · target) whole "
                     "rows/columns across the layers, each channel one unit whatever its length; sparsesearch's "
                     "budget is a share of weights, so where the layers' channels differ in length the split over "
                     "layers and the weight sparsity reached can differ from INC's")
    elif pattern.kind == "block" and not pattern.unstructured:
        notes.append(f"{label}: INC's global budget is int(blocks · target) {pattern.name} blocks (rounded down, "
                     "ties at the threshold pruned too); sparsesearch counts the same blocks, rounded to nearest")
    if min_ratio > 0:
        notes.append(f"{label}: min_sparsity_ratio_per_op {min_ratio:g}: INC does not lift a layer to it at once; it "
                     "holds back sparsity from the other layers so that the layers below it could reach it within the "
                     "group's scheduled target, so early in the schedule a layer can sit far below it (INC's own "
                     "'mixed' BERT example has q/k/v near 6 % at step 280 with a bound of 0.5)")


def _with_source(recipe: Recipe, kind: str, source: str | None) -> Recipe:
    return with_source(recipe, kind, source)


# ------------------------------------------------------------------------------------------ INC export


#: the export remark that depends on the model's layer classes
OP_TYPE_REMARK = ("if the model has such layers: INC matches pruning_op_types as substrings of class names, so "
                  "'Conv' also takes ConvTranspose and Hugging Face Conv1D (GPT-2) layers and 'Linear' any class with "
                  "Linear in its name, which INC then prunes too")


def export_inc(recipe: Recipe | PruningConfig, *, steps_per_epoch: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """An INC ``WeightPruningConfig`` (plain data: ``WeightPruningConfig(**data)``) for ``recipe``.

    Returns the data and the list of what could not be expressed exactly. A group INC cannot run at all
    (a type INC lacks, such as movement or random) is a ConfigError naming it.
    """
    if isinstance(recipe, Recipe):
        config, selection = recipe.pruning, recipe.selection
        steps_per_epoch = steps_per_epoch or recipe.steps_per_epoch
    else:
        config, selection = recipe, Selection()
    lost: list[str] = []
    out_groups: list[dict[str, Any]] = []
    for gi, group in enumerate(config.groups):
        label = f"groups[{gi}]"
        entries = _export_group(group, label, steps_per_epoch, lost)
        out_groups.extend(entries)
    if not selection.exclude_classifier_head:
        lost.append("INC always leaves the model's last layer unpruned when it is a Linear or Conv2d, and every layer "
                    "whose name contains that layer's name (it excludes the name with re.search); if a group selects "
                    "such a layer, INC will not prune it")
    elif selection.classifier_head_match != "search":
        lost.append("INC excludes the classifier head by searching its name in every layer name, so it also leaves "
                    "dense every layer whose name contains the head's name (a head 'classifier' also protects "
                    "'pre_classifier', a head 'fc' also 'fc1'); the recipe protects the head alone")
    return {"pruning_configs": out_groups}, _dedupe(lost)


def _export_group(group: PruningGroup, label: str, steps_per_epoch: int | None, lost: list[str]) -> list[dict[str, Any]]:
    ptype = group.pruning_type
    extra: dict[str, Any] = {}
    if ptype == "group_lasso":
        if ":" in group.pattern:
            raise ConfigError("INC's group lasso works with NxM block patterns only", key=f"{label}.pattern",
                              value=group.pattern, allowed="an NxM pattern for group_lasso, to export to INC")
        lost.append(f"{label}: group_lasso written as INC's magnitude criterion with reg_type group_lasso "
                    f"(reg_coeff {group.reg_coeff:g}); INC's regulariser is a decoupled shrinkage, not a loss term, "
                    "that scales each block by α/‖its gradient‖ and blows up where gradients are small (NaN weights "
                    "in the parity benchmark)")
        ptype = "magnitude"
        extra = {"reg_type": "group_lasso", "parameters": {"reg_coeff": group.reg_coeff}}
    elif ptype not in INC_TYPES:
        raise ConfigError(f"INC has no {ptype!r} pruning type, so this group cannot be exported",
                          key=f"{label}.pruning_type", value=ptype, allowed=", ".join((*INC_TYPES, "group_lasso")))
    schedule = group.schedule
    if schedule.epoch_based:
        if not steps_per_epoch:
            raise ConfigError("INC schedules are in steps: an epoch-based schedule needs the steps per epoch to "
                              "export", key=f"{label}.schedule.start_epoch", value=schedule.start_epoch,
                              allowed="training.steps_per_epoch in the recipe, or --steps-per-epoch")
        lost.append(f"{label}: epochs converted to steps with {steps_per_epoch} steps per epoch")
        schedule = schedule.in_steps(steps_per_epoch)
    start, end, freq = schedule.start_step, schedule.end_step, schedule.pruning_frequency
    if end > start and (end - start) % freq:
        last = start + (end - start) // freq * freq
        lost.append(f"{label}: INC reaches the target at step {last} (its last update), not at end_step {end}")
    ramp = schedule.ramp
    if ramp == "cubic" and end == start:
        ramp = "exp"  # one-shot: the ramp plays no part
    elif ramp == "cubic":
        lost.append(f"{label}: INC has no Zhu & Gupta cubic ramp; written as 'exp' (also fast early, slow late), "
                    "so the sparsity between start and end differs")
        ramp = "exp"
    if schedule.init_sparsity > 0 and end > start:
        lost.append(f"{label}: INC starts every schedule at sparsity 0; init_sparsity {schedule.init_sparsity:g} "
                    "is lost")
    if ptype == "snip_momentum" and group.momentum != 0.9:
        lost.append(f"{label}: INC's snip_momentum decay is fixed at 0.9; momentum {group.momentum:g} is lost")
    if ptype in _GRADIENT_TYPES and end == 0:
        raise ConfigError("INC requires end_step > 0 for gradient-based types", key=f"{label}.schedule.end_step",
                          value=end, allowed="an end_step of 1 or more")
    if ptype == "pattern_lock":
        if end != start:
            lost.append(f"{label}: INC runs pattern_lock one-shot only; written with end_step = start_step {start}")
            end = start
        lost.append(f"{label}: INC's pattern_lock locks zeros at the pattern's granularity and only from start_step "
                    f"{start} on: with {group.pattern} "
                    + ("every group of M with at most N non-zeros is zeroed whole"
                       if ":" in group.pattern else "only blocks whose weights sum to zero stay pruned; other zeros "
                       "may grow back")
                    + "; the recipe keeps exactly the zeros the model has when the pruner is built")
    if group.pruning_scope == "global" and ptype != "pattern_lock":
        spec = parse_pattern(group.pattern)
        if spec.whole_channels:
            lost.append(f"{label}: INC's global {group.pattern} budget counts channels (every row or column one unit, "
                        "whatever its length), the recipe's counts weights: where layers' channels differ in length "
                        "INC splits the sparsity over layers differently and reaches a different weight sparsity")
        if group.min_sparsity_ratio_per_op > 0:
            lost.append(f"{label}: INC does not lift layers to min_sparsity_ratio_per_op "
                        f"{group.min_sparsity_ratio_per_op:g}; it only holds back the other layers' sparsity so that "
                        "the group stays within its scheduled target, so layers can stay below the bound")
    if any(t in ("Conv", "Linear") for t in group.op_types):
        lost.append(OP_TYPE_REMARK)
    max_ratio = group.max_sparsity_ratio_per_op
    if max_ratio >= 1.0:
        max_ratio = max(0.99, group.target_sparsity)
        lost.append(f"{label}: INC requires max_sparsity_ratio_per_op < 1; written as {max_ratio:g}")
    base = {
        "pruning_type": ptype,
        "pattern": group.pattern,
        "pruning_scope": group.pruning_scope,
        "target_sparsity": group.target_sparsity,
        "op_names": list(group.op_names),
        "excluded_op_names": list(group.excluded_op_names),
        "start_step": start,
        "end_step": end,
        "pruning_frequency": freq,
        "min_sparsity_ratio_per_op": group.min_sparsity_ratio_per_op,
        "max_sparsity_ratio_per_op": max_ratio,
        "sparsity_decay_type": ramp,
        "pruning_op_types": list(group.op_types),
        "criterion_reduce_type": group.criterion_reduce_type,
        **extra,
    }
    if not group.layer_targets:
        if group.target_sparsity > max_ratio:
            lost.append(f"{label}: INC caps the target at max_sparsity_ratio_per_op ({max_ratio:g}), so it prunes "
                        f"{max_ratio:g}, not {group.target_sparsity:g}")
        return [base]
    lost.append(f"{label}: the per-layer target map became one INC group per layer (op_names anchored to the exact "
                "layer name)")
    entries = []
    for name, target in group.layer_targets.items():
        entry = dict(base, op_names=[exact_name_regex(name)], excluded_op_names=[], target_sparsity=target)
        if target > max_ratio:
            lost.append(f"{label}.layer_targets.{name}: INC caps the target at max_sparsity_ratio_per_op "
                        f"({max_ratio:g})")
        entries.append(entry)
    return entries


def export_inc_yaml(recipe: Recipe | PruningConfig, *, steps_per_epoch: int | None = None) -> tuple[str, list[str]]:
    """INC YAML text (with what was lost as comments at the top) and the list of losses."""
    data, lost = export_inc(recipe, steps_per_epoch=steps_per_epoch)
    header = ["INC WeightPruningConfig written by sparsesearch. Load it with:",
              "  WeightPruningConfig(**yaml.safe_load(open(PATH)))"]
    if lost:
        header.append("Not expressed exactly in INC:")
        header.extend(f"- {item}" for item in lost)
    return dump_yaml(data, header="\n".join(header)), lost



__all__ = ["INC_DEFAULTS", "WeightPruningConfig", "export_inc", "export_inc_yaml", "import_inc"]
