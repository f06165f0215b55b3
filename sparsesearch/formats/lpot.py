"""Import of LPOT pruning YAML files (LPOT 1.0-1.3's ``pruning:`` section), as recipes.

LPOT 1.4-1.6 files (``pruning: approach: weight_compression`` with ``!Pruner`` entries) are INC 1.x's format
and are read by :mod:`sparsesearch.formats.inc1` (``import_inc1(data, flavor="lpot")`` for LPOT's own epoch
schedule).

LPOT ``pruning:`` section
-------------------------
Pruner instances sit under the algorithm (``magnitude``, the only one) with optional ``weights`` (parameter
names such as ``layer1.0.conv1.weight``; their modules are pruned), ``target_sparsity``, ``init_sparsity``,
``start_epoch``, ``end_epoch``, ``frequency`` and ``method: per_tensor``, overriding the global keys of the
same names. An empty or absent ``weights`` list means every Linear and Conv layer. Each instance becomes
one local-scope magnitude group with a linear ramp from ``init_sparsity`` at ``start_epoch`` to
``target_sparsity`` at ``end_epoch``, updated every ``frequency`` epochs (at the start of the epoch, as
LPOT's ``on_epoch_begin``); the Pruner converts epochs to steps with ``steps_per_epoch``. Other top-level
sections of an LPOT YAML (model, quantization, tuning, ...) are ignored and listed. Where LPOT's own code
differed from its documentation, the documentation is followed and the difference noted:

* LPOT's ``MagnitudePrunePolicy`` pruned only 4-D (convolution) weights; listed Linear weights were
  silently skipped. Here every listed weight is pruned.
* LPOT read ``start_epoch``, ``end_epoch`` and ``frequency`` from the global section only; per-instance
  values (documented as overrides) were ignored. Here they override.
* With ``start_epoch == end_epoch`` LPOT pruned to ``init_sparsity`` (0 by default: nothing); here to
  ``target_sparsity``, one-shot.
* When ``end_epoch - start_epoch`` is not a multiple of ``frequency``, LPOT never reached the target; here
  the target is reached at ``end_epoch``.
* LPOT pruned floor(s·n)+1 weights (everything up to and including its threshold); here round(s·n).
* An instance without ``weights`` next to instances with ``weights``: LPOT pruned the shared layers with
  both masks; here the specific instance wins and the catch-all instance skips those layers.
* ``method: per_channel`` (a per-kernel threshold on signed values) is not supported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError
from sparsesearch.formats.inc import _dedupe, _with_source
from sparsesearch.formats.safe_yaml import YamlDocument
from sparsesearch.records import schema
from sparsesearch.records.pruning import PruningConfig, PruningGroup
from sparsesearch.records.recipe import Recipe, exact_name_regex, make_recipe

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class _LpotInstance:
    weights: tuple[str, ...] | None = None
    target_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    init_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    start_epoch: int | None = schema.spec(None, ge=0)
    end_epoch: int | None = schema.spec(None, ge=0)
    frequency: int | None = schema.spec(None, gt=0)
    method: str | None = schema.spec(None, choices=("per_tensor",))


@dataclass(frozen=True)
class _LpotPruning:
    magnitude: dict[str, _LpotInstance | None] | None = None
    start_epoch: int | None = schema.spec(None, ge=0)
    end_epoch: int | None = schema.spec(None, ge=0)
    frequency: int | None = schema.spec(None, gt=0)
    init_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)
    target_sparsity: float | None = schema.spec(None, ge=0.0, lt=1.0)


def import_lpot(data: Any, *, doc: YamlDocument | None = None, source: str | None = None,
                origins: dict[str, str] | None = None) -> Recipe:
    """A recipe from an LPOT YAML (the whole file's data, or just its ``pruning`` section).

    ``origins`` as for :func:`import_inc`.
    """
    try:
        recipe = _import_lpot(data, origins if origins is not None else {})
    except ConfigError as exc:
        raise (doc.locate(exc) if doc is not None else exc) from None
    return _with_source(recipe, "lpot", source)


def _import_lpot(data: Any, origins: dict[str, str]) -> Recipe:
    notes: list[str] = []
    if isinstance(data, Mapping) and "pruning" in data:
        ignored = [k for k in data if k != "pruning"]
        if ignored:
            notes.append(f"LPOT sections other than pruning ignored: {', '.join(map(str, ignored))}")
        section, path = data["pruning"], "pruning"
    else:
        section, path = data, ""
    lp = schema.load(_LpotPruning, section, path)
    instances = dict(lp.magnitude or {})
    if not instances:
        raise ConfigError("needs at least one pruner instance under magnitude", key=schema.join(path, "magnitude"),
                          value=lp.magnitude, allowed="a mapping of instance names to settings, e.g. "
                          "magnitude: {prune1: {weights: [layer1.0.conv1.weight]}}")
    specific: set[str] = set()
    per_instance: list[tuple[str, _LpotInstance, tuple[str, ...]]] = []
    for name, inst in instances.items():
        inst = inst or _LpotInstance()
        ipath = schema.join(schema.join(path, "magnitude"), name)
        modules: list[str] = []
        for i, weight in enumerate(inst.weights or ()):
            if not weight.endswith(".weight") or weight == ".weight":
                raise ConfigError("only the weights of Linear and Conv layers can be pruned",
                                  key=f"{ipath}.weights[{i}]", value=weight,
                                  allowed="parameter names ending in .weight, such as layer1.0.conv1.weight",
                                  suggestion=(weight.rsplit(".", 1)[0] + ".weight") if "." in weight else None)
            modules.append(weight[: -len(".weight")])
        if len(set(modules)) != len(modules):
            dup = next(m for m in modules if modules.count(m) > 1)
            raise ConfigError("a weight is listed twice", key=f"{ipath}.weights", value=dup + ".weight",
                              allowed="each weight once")
        specific.update(modules)
        per_instance.append((ipath, inst, tuple(modules)))

    groups = []
    for gi, (ipath, inst, names) in enumerate(per_instance):
        modules = list(names)
        def pick(key: str, inst: _LpotInstance = inst, ipath: str = ipath) -> tuple[Any, str]:
            """The instance's value of ``key`` or the global one, with its key path."""
            own = getattr(inst, key)
            if own is not None:
                return own, f"{ipath}.{key}"
            return getattr(lp, key), schema.join(path, key)

        target, _ = pick("target_sparsity")
        if target is None:
            raise ConfigError("missing required key: LPOT needs a target sparsity (global or per instance)",
                              key=schema.join(path, "target_sparsity"), allowed="a number in [0.0, 1.0)")
        init, ikey = pick("init_sparsity")
        init = init or 0.0
        start, _ = pick("start_epoch")
        start = 0 if start is None else start
        end, ekey = pick("end_epoch")
        end = start if end is None else end
        freq, _ = pick("frequency")
        freq = freq or 1
        if end < start:
            raise ConfigError(f"end_epoch must not be before start_epoch ({start})", key=ekey, value=end,
                              allowed=f">= {start}")
        if init > target:
            raise ConfigError(f"init_sparsity must not exceed target_sparsity ({target:g})", key=ikey, value=init,
                              allowed=f"0 .. {target:g}")
        label = ipath
        if start == end:
            notes.append(f"{label}: start_epoch == end_epoch: one-shot to target_sparsity {target:g} at epoch "
                         f"{start} (LPOT itself pruned to init_sparsity {init:g} in this case)")
        elif (end - start) % freq:
            notes.append(f"{label}: end_epoch - start_epoch is not a multiple of frequency {freq}: LPOT never reached "
                         f"the target; sparsesearch reaches {target:g} at epoch {end}")
        for key in ("start_epoch", "end_epoch", "frequency"):
            if getattr(inst, key) is not None:
                notes.append(f"{label}: per-instance {key} honoured as LPOT's documentation says (LPOT's own code "
                             "read it from the global section only)")
        schedule = {"start_epoch": start, "end_epoch": end, "frequency": freq, "init_sparsity": init,
                    "ramp": "linear"}
        group: dict[str, Any] = {"pruning_type": "magnitude", "pattern": "1x1", "pruning_scope": "local",
                                 "schedule": schedule}
        if modules:
            group["layer_targets"] = {m: target for m in modules}
            group["target_sparsity"] = target
        else:
            group["target_sparsity"] = target
            others = sorted(specific)
            if others:
                group["excluded_op_names"] = [exact_name_regex(m) for m in others]
                notes.append(f"{label}: no weights listed (all layers), except those other instances list: "
                             f"{', '.join(others)}")
        origins[f"pruning.groups[{gi}]"] = ipath
        for j, module in enumerate(modules):
            origins[f"pruning.groups[{gi}].layer_targets.{module}"] = f"{ipath}.weights[{j}]"
        try:
            groups.append(schema.load(PruningGroup, group))
        except ConfigError as exc:
            raise exc.located(prefix=ipath) from None
    notes.append("LPOT's magnitude pruner pruned only 4-D (convolution) weights; every listed (or, with no list, "
                 "every Linear and Conv) weight is pruned here")
    notes.append("schedules are in epochs: give the Pruner steps_per_epoch (training.steps_per_epoch in a recipe)")
    for note in notes:
        log.info("LPOT import: %s", note)
    return make_recipe(PruningConfig(tuple(groups)), provenance={"imported_from": "lpot", "notes": _dedupe(notes)})



__all__ = ["import_lpot"]
