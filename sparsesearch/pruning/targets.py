"""Which tensors are pruned: module types plus regular expressions on dotted module names."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from torch import nn

from sparsesearch.errors import ConfigError

_MODULE_TYPES: dict[str, tuple[type[nn.Module], ...]] = {
    "Linear": (nn.Linear,),
    "Conv1d": (nn.Conv1d,),
    "Conv2d": (nn.Conv2d,),
    "Conv3d": (nn.Conv3d,),
    "Conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
}


def prunable_layers(model: nn.Module, op_types: Iterable[str] = ("Linear", "Conv")) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) of every module of ``op_types`` that has a weight, in model order."""
    types = tuple(t for name in op_types for t in _MODULE_TYPES[name])
    return [(name, module) for name, module in model.named_modules()
            if name and isinstance(module, types) and isinstance(getattr(module, "weight", None), nn.Parameter)]


def _listing(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def select_layers(model: nn.Module, group: Any) -> list[tuple[str, nn.Module]]:
    """The layers a pruning group selects; ConfigError listing the model's prunable layers if none match.

    ``op_names`` and ``excluded_op_names`` are regular expressions searched in the dotted module name (as
    INC does): ``"fc"`` matches ``fc1`` and ``encoder.fc2``; anchor with ``^...$`` for an exact name. A
    per-layer target map (``layer_targets``) selects exactly the layers it names.
    """
    candidates = prunable_layers(model, group.op_types)
    names = [n for n, _ in candidates]
    if group.layer_targets:
        by_name = dict(candidates)
        everything = [n for n, _ in prunable_layers(model, ("Linear", "Conv"))]
        for name in group.layer_targets:
            if name not in by_name:
                near = difflib.get_close_matches(name, everything, n=3, cutoff=0.4)
                hint = f"; nearest: {', '.join(near)}" if near else ""
                raise ConfigError(f"the model has no prunable layer of types {list(group.op_types)} named "
                                  f"{name!r}{hint}", key=f"layer_targets.{name}", value=name,
                                  allowed=_listing(names or everything),
                                  suggestion=near[0] if near else None)
        return [(n, by_name[n]) for n in group.layer_targets]
    include = [re.compile(p) for p in group.op_names]
    exclude = [re.compile(p) for p in group.excluded_op_names]
    chosen = [(n, m) for n, m in candidates
              if (not include or any(p.search(n) for p in include)) and not any(p.search(n) for p in exclude)]
    if not chosen:
        raise ConfigError(
            f"selects no layer (op_types={list(group.op_types)}, op_names={list(group.op_names)}, "
            f"excluded_op_names={list(group.excluded_op_names)})",
            key="op_names", value=list(group.op_names),
            allowed="regular expressions matching some of the model's prunable layers: "
            + (_listing(names) if names else "(the model has no layers of these types)"))
    return chosen
