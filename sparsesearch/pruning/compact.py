"""Compaction: pruned channels removed physically, so a channel-pruned model is really smaller and faster.

sparsesearch decides *which* channels go; Torch-Pruning's dependency graph removes them *consistently*
(the producing rows and filters, BatchNorm statistics, the matching inputs of every consumer through
residual additions, concatenations, reshapes and flattening). No dependency tracer of sparsesearch's own.

Which channels: a group of coupled channels (one Torch-Pruning group) loses a channel when dropping it
cannot change the model's outputs:

* **dead** — every consumer's input column for it is zero (``channelx1`` masks: whole input columns);
  whatever flows in the channel is multiplied by zero;
* **constant** — every producer's output row for it is zero (``1xchannel`` masks: whole output rows or
  filters). The channel then carries a value that does not depend on the input (the bias, what BatchNorm
  and the activation make of it). That value, measured on ``example_inputs``, is folded into each
  consumer's bias: exactly for a Linear consumer, and for a convolution without padding; a non-zero
  constant entering a *padded* convolution cannot be expressed by a bias (the border sees the padding), so
  that channel stays unless ``exact=False`` (then the interior value is folded and the border changes).

A group whose channels are model outputs, or pass through a layer that mixes channels (LayerNorm,
GroupNorm, attention, embeddings, grouped convolutions, LSTMs), keeps its channels. The compacted model's
outputs are compared with the masked model's on ``example_inputs``; a group that would change them beyond
the tolerance is left out, and a model that cannot be traced is returned masked, with the reason.

Only whole-structure patterns compact (:attr:`sparsesearch.records.patterns.PatternSpec.whole_channels`:
``channelx1`` and ``1xchannel``). For a convolution ``channelx1`` removes one input channel at one kernel
position, so an input channel goes only once all its kernel positions are pruned. Torch-Pruning is an
optional dependency (``pip install sparsesearch[compact]``), imported only when compaction runs.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.records.patterns import PatternSpec, parse_pattern

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install sparsesearch[compact]"
#: largest |compacted - masked| output difference accepted, relative to max(1, largest |masked output|)
TOLERANCE = 1e-5
#: how far apart two measurements of a "constant" channel may be (relative to max(1, |value|))
_CONSTANT_RTOL = 1e-6


def compacts(pattern: str | PatternSpec) -> bool:
    """Whether compaction can remove what ``pattern`` prunes (whole input columns or output rows)."""
    spec = pattern if isinstance(pattern, PatternSpec) else parse_pattern(pattern)
    return spec.whole_channels


def torch_pruning() -> Any:
    """The ``torch_pruning`` module, or a ConfigError saying how to install it."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise ConfigError("removing pruned channels physically needs the Torch-Pruning package, which is not "
                          "installed", key="compact", allowed=INSTALL_HINT) from None
    return tp


@dataclass
class Compaction:
    """What :func:`compact` did. ``model`` is the compacted model, or the masked one when nothing could go.

    ``layers`` maps each changed layer to its weight shape before and after; ``kept`` counts channels the
    masks pruned that stay (with the reasons in ``notes``); ``max_difference`` is the largest absolute
    difference between the compacted and the masked model's outputs on the example inputs.
    """

    model: nn.Module
    compacted: bool
    layers: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    removed: int = 0
    kept: int = 0
    params_before: int = 0
    params_after: int = 0
    max_difference: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """One paragraph for a user: what was removed, what was kept and why."""
        if self.compacted:
            head = (f"compacted: {self.removed} channels removed, parameters {self.params_before:,} -> "
                    f"{self.params_after:,} ({self.params_after / max(self.params_before, 1):.1%}); outputs "
                    f"within {self.max_difference:.2g} of the masked model")
        else:
            head = "not compacted: the masked model is kept"
        return "; ".join([head, *self.notes])


# ------------------------------------------------------------------------------------------ inputs and outputs


def call(model: nn.Module, inputs: Any) -> Any:
    """``model(**inputs)`` for a dict, ``model(inputs)`` otherwise (as the training loop calls it)."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every floating tensor of a model's output (tensors, tuples, lists, dicts, Hugging Face outputs)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in output_tensors(v)]
    return []


def _difference(ref: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    if len(ref) != len(got) or any(a.shape != b.shape for a, b in zip(ref, got)):
        return float("inf")
    return max((float((a.float() - b.float()).abs().max()) if a.numel() else 0.0 for a, b in zip(ref, got)),
               default=0.0)


def _scale(ref: list[torch.Tensor]) -> float:
    return max([1.0] + [float(t.float().abs().max()) for t in ref if t.numel()])


def parameter_count(model: nn.Module) -> int:
    """All parameters (a tied Parameter once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


# ------------------------------------------------------------------------------------------ masks


def _keep_masks(model: nn.Module, masks: Any) -> tuple[dict[str, torch.Tensor] | None, list[str]]:
    """Boolean keep-masks by layer name from a Pruner or a mapping (None: read zeros from the weights), and
    notes about layers left out because their pattern removes no whole structure."""
    if masks is None:
        return None, []
    notes: list[str] = []
    if isinstance(masks, Mapping):
        return {str(k): v.bool() for k, v in masks.items()}, notes
    config = getattr(masks, "config", None)
    all_masks = getattr(masks, "masks", None)
    if config is None or not isinstance(all_masks, Mapping):
        raise ConfigError("expected a Pruner or a mapping of layer names to boolean keep-masks", key="masks",
                          value=type(masks).__name__, allowed="sparsesearch.Pruner, {name: mask}, or None")
    whole = [g for g in config.groups if compacts(g.pattern)]
    if len(whole) < len(config.groups):
        other = sorted({g.pattern for g in config.groups if not compacts(g.pattern)})
        notes.append(f"pattern {', '.join(other)} prunes no whole channel (only channelx1 and 1xchannel compact); "
                     "those layers keep their shape")
    from sparsesearch.pruning.targets import select_layers

    names = {name for g in whole for name, _ in select_layers(model, g)}
    return {k: v.bool() for k, v in all_masks.items() if k in names}, notes


@torch.no_grad()
def _apply_masks(model: nn.Module, keep: Mapping[str, torch.Tensor] | None) -> None:
    if keep is None:
        return
    modules = dict(model.named_modules())
    for name, mask in keep.items():
        module = modules.get(name)
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != tuple(mask.shape):
            raise ConfigError(f"mask {name!r} does not fit the model", key=f"masks.{name}",
                              value=tuple(mask.shape), allowed="masks of this model's layers (Pruner.masks)")
        weight.mul_(mask.to(weight.device, weight.dtype))


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _zero_slices(module: nn.Module, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(output rows pruned, input channels pruned) of a Linear or Conv layer: from its keep-mask when given,
    else from its weight's zeros. For a convolution an input channel is pruned at every kernel position."""
    weight = _weight(module)
    pruned = ~keep.to(weight.device) if keep is not None else weight.detach() == 0
    other = tuple(range(1, pruned.dim()))
    rows = pruned.all(dim=other) if other else pruned
    cols = pruned.transpose(0, 1).reshape(pruned.shape[1], -1).all(dim=1) if pruned.dim() > 1 else rows
    return rows.cpu(), cols.cpu()


# ------------------------------------------------------------------------------------------ the plan


@dataclass
class _Fold:
    consumer: str
    index: int
    value: float


@dataclass
class _Plan:
    root: str
    channels: list[int]
    folds: list[_Fold]
    approximate: bool = False


def _build_graph(tp: Any, model: nn.Module, inputs: Any) -> Any:
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(
            model, example_inputs=inputs, forward_fn=call, output_transform=output_tensors, verbose=False)


def _mixing(tp: Any, node: Any) -> str | None:
    """Why a node of a group keeps its channels together (None when it maps each channel on its own)."""
    t = tp.ops.OPTYPE
    if node.type in (t.LINEAR, t.BN, t.PRELU, t.ELEMENTWISE, t.RESHAPE, t.CONCAT, t.SPLIT, t.SLICE, t.UNBIND,
                     t.EXPAND):
        return None
    if node.type == t.CONV:
        module = node.module
        return None if module.groups == 1 and not module.transposed else "a grouped or transposed convolution"
    if node.type == t.OUTPUT:
        return "its channels are outputs of the model"
    names = {t.LN: "LayerNorm", t.GN: "GroupNorm", t.IN: "InstanceNorm", t.MHA: "attention", t.EMBED: "an embedding",
             t.LSTM: "an LSTM", t.PARAMETER: "a free parameter", t.DEPTHWISE_CONV: "a depthwise convolution"}
    return f"it passes through {names.get(node.type, type(node.module).__name__)} {node.name.split(' ')[0]}"


@dataclass
class _Draft:
    """One Torch-Pruning group as analysed: per root channel, whether it is dead or constant."""

    root: str
    size: int
    why: str | None = None
    dead: list[bool] = field(default_factory=list)
    const: list[bool] = field(default_factory=list)
    consumers: list[tuple[nn.Module, list[tuple[int, int]]]] = field(default_factory=list)


def _plan(tp: Any, model: nn.Module, graph: Any, inputs: Any, keep: Mapping[str, torch.Tensor] | None,
          exact: bool) -> tuple[list[_Plan], int, list[str]]:
    """Which channels of which group go, and the constants to fold first; plus how many pruned channels
    stay and why."""
    names = {m: n for n, m in model.named_modules()}
    t = tp.ops.OPTYPE
    zero: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def slices(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        if module not in zero:
            name = names.get(module, "")
            if keep is None or name in keep:
                zero[module] = _zero_slices(module, None if keep is None else keep[name])
            else:
                n_out, n_in = _weight(module).shape[0], _weight(module).shape[1]
                zero[module] = (torch.zeros(n_out, dtype=torch.bool), torch.zeros(n_in, dtype=torch.bool))
        return zero[module]

    drafts: list[_Draft] = []
    wanted: dict[str, set[int]] = {}  # consumer name -> input channels whose value is needed
    for group in graph.get_all_groups(root_module_types=(nn.Linear, nn.modules.conv._ConvNd)):
        root = group[0].dep.target.module
        draft = _Draft(names[root], graph.get_out_channels(root))
        producers: list[tuple[nn.Module, list[tuple[int, int]]]] = []
        for item in group:
            node, handler = item.dep.target, item.dep.handler
            out_side = graph.is_out_channel_pruning_fn(handler)
            reason = _mixing(tp, node)
            if node.type == t.OUTPUT or (out_side and not node.outputs):
                draft.why = "its channels are outputs of the model"
            elif reason is not None:
                draft.why = draft.why or reason
            if node.type in (t.LINEAR, t.CONV) and reason is None:
                pairs = list(zip(item.idxs, item.root_idxs))
                (producers if out_side else draft.consumers).append((node.module, pairs))
        n = draft.size
        draft.dead = [bool(draft.consumers)] * n
        for module, pairs in draft.consumers:
            cols = slices(module)[1]
            for i, r in pairs:
                draft.dead[r] = draft.dead[r] and bool(cols[i])
        draft.const = [bool(producers)] * n
        for module, pairs in producers:
            rows = slices(module)[0]
            for i, r in pairs:
                draft.const[r] = draft.const[r] and bool(rows[i])
        if draft.why is None:
            for module, pairs in draft.consumers:
                cols = slices(module)[1]
                for i, r in pairs:
                    if draft.const[r] and not draft.dead[r] and not cols[i]:
                        wanted.setdefault(names[module], set()).add(i)
        drafts.append(draft)

    values = _measure_inputs(model, inputs, wanted)
    plans: list[_Plan] = []
    kept = 0
    notes: list[str] = []
    for draft in drafts:
        pruned = [d or c for d, c in zip(draft.dead, draft.const)]
        if draft.why is not None:
            if any(pruned):
                kept += sum(pruned)
                notes.append(f"{draft.root}: {sum(pruned)} pruned channels kept ({draft.why})")
            continue
        ok = list(pruned)
        folds: dict[int, list[_Fold]] = {}
        approximate = False
        blocked: dict[str, str] = {}
        for module, pairs in draft.consumers:
            cname = names[module]
            cols = slices(module)[1]
            for i, r in pairs:
                if draft.dead[r] or not draft.const[r] or cols[i]:
                    continue
                value = values.get((cname, i))
                if value is None:
                    ok[r] = False
                    blocked.setdefault("the value it carries depends on the input", cname)
                elif value == 0.0:
                    continue
                elif isinstance(module, nn.modules.conv._ConvNd) and _padded(module) and exact:
                    ok[r] = False
                    blocked.setdefault("a non-zero constant enters the padded convolution", cname)
                else:
                    approximate = approximate or isinstance(module, nn.modules.conv._ConvNd) and _padded(module)
                    folds.setdefault(r, []).append(_Fold(cname, i, value))
        channels = [r for r in range(draft.size) if ok[r]]
        if channels and len(channels) == draft.size:  # a layer keeps at least one channel
            channels = channels[1:]
            notes.append(f"{draft.root}: every channel is pruned; one is kept so the layer stays")
        stay = sum(pruned) - len(channels)
        kept += stay
        if stay and blocked:
            notes.append(f"{draft.root}: {stay} pruned channels kept ("
                         + "; ".join(f"{reason}: {where}" for reason, where in blocked.items()) + ")")
        if channels:
            plans.append(_Plan(draft.root, channels, [f for r in channels for f in folds.get(r, [])],
                               any(r in folds for r in channels) and approximate))
    return plans, kept, notes


def _padded(conv: nn.modules.conv._ConvNd) -> bool:
    padding = conv.padding
    if isinstance(padding, str):
        return padding != "valid"
    return any(int(p) != 0 for p in padding)


@torch.no_grad()
def _measure_inputs(model: nn.Module, inputs: Any, wanted: Mapping[str, set[int]]) -> dict[tuple[str, int], float]:
    """The constant value each wanted input channel of each consumer receives (absent when it varies)."""
    if not wanted:
        return {}
    modules = dict(model.named_modules())
    seen: dict[tuple[str, int], list[tuple[float, float]]] = {}
    hooks = []

    def hook_for(name: str, module: nn.Module) -> Any:
        idx = sorted(wanted[name])

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            part = x[..., idx] if isinstance(module, nn.Linear) else x[:, idx]
            part = part.movedim(-1 if isinstance(module, nn.Linear) else 1, 0).reshape(len(idx), -1).float()
            lo, hi = part.amin(1), part.amax(1)
            for k, i in enumerate(idx):
                seen.setdefault((name, i), []).append((float(lo[k]), float(hi[k])))
        return hook

    for name in wanted:
        hooks.append(modules[name].register_forward_pre_hook(hook_for(name, modules[name])))
    try:
        call(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for key, ranges in seen.items():
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if hi - lo <= _CONSTANT_RTOL * max(1.0, abs(lo), abs(hi)):
            out[key] = lo if lo == hi else (lo + hi) / 2
    return out


@torch.no_grad()
def _fold(model: nn.Module, folds: Iterable[_Fold]) -> None:
    """Add each constant input's contribution to its consumer's bias (creating the bias when missing)."""
    modules = dict(model.named_modules())
    for f in folds:
        module = modules[f.consumer]
        weight = module.weight
        column = weight[:, f.index]
        contribution = column.reshape(column.shape[0], -1).sum(1) * f.value
        if module.bias is None:
            module.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
        module.bias.add_(contribution.to(module.bias.dtype))


def _realize(tp: Any, masked: nn.Module, inputs: Any, plans: list[_Plan]) -> nn.Module:
    """A copy of ``masked`` with the plans' constants folded and their channels removed."""
    model = copy.deepcopy(masked)
    _fold(model, [f for p in plans for f in p.folds])
    graph = _build_graph(tp, model, inputs)
    modules = dict(model.named_modules())
    for plan in plans:
        root = modules[plan.root]
        handler = graph.get_pruner_of_module(root).prune_out_channels
        group = graph.get_pruning_group(root, handler, plan.channels)
        group.prune(record_history=False)
    return model


def compact(model: nn.Module, masks: Any = None, example_inputs: Any = None, *, exact: bool = True,
            tolerance: float = TOLERANCE) -> Compaction:
    """A copy of ``model`` with its pruned channels physically removed (``model`` itself is not changed).

    ``masks``: a :class:`~sparsesearch.pruning.Pruner` (only its groups with a whole-channel pattern count),
    a mapping of layer names to boolean keep-masks, or None to read pruned rows and columns from the weights'
    zeros. ``example_inputs``: a batch of inputs as the model takes them (a tensor, or a dict of keyword
    arguments), with several samples, since the values constant channels carry are measured on it.
    ``exact=False`` also removes channels whose constant cannot be folded exactly (see the module doc).

    A model Torch-Pruning cannot trace, or with nothing to remove, comes back masked with the reason in
    :attr:`Compaction.notes`; a missing Torch-Pruning is a ConfigError naming the install command.
    """
    if example_inputs is None:
        raise ConfigError("compaction traces the model, so it needs example inputs", key="example_inputs",
                          allowed="a batch of inputs, e.g. the first validation batch's")
    tp = torch_pruning()
    keep, notes = _keep_masks(model, masks)
    was_training = model.training
    masked = copy.deepcopy(model).eval()
    _apply_masks(masked, keep)
    before = parameter_count(masked)
    result = Compaction(model=masked, compacted=False, params_before=before, params_after=before, notes=notes)
    with torch.no_grad():
        reference = output_tensors(call(masked, example_inputs))
    try:
        graph = _build_graph(tp, masked, example_inputs)
        plans, kept, plan_notes = _plan(tp, masked, graph, example_inputs, keep, exact)
    except Exception as exc:  # noqa: BLE001 - tracing runs the user's model through a third-party tracer
        result.notes.append(f"Torch-Pruning cannot trace this model ({type(exc).__name__}: {exc})")
        log.warning("compaction skipped: %s", result.message)
        masked.train(was_training)
        return result
    del graph
    result.kept, result.notes = kept, notes + plan_notes
    if not plans:
        result.notes.append("no whole channel can be removed")
        masked.train(was_training)
        return result
    limit = tolerance * _scale(reference)

    def attempt(chosen: list[_Plan]) -> tuple[nn.Module | None, float]:
        try:
            candidate = _realize(tp, masked, example_inputs, chosen)
            with torch.no_grad():
                diff = _difference(reference, output_tensors(call(candidate.eval(), example_inputs)))
        except Exception as exc:  # noqa: BLE001 - a topology Torch-Pruning handles wrongly
            log.debug("compaction of %s failed: %s", [p.root for p in chosen], exc)
            return None, float("inf")
        return candidate, diff

    approximate = any(p.approximate for p in plans)
    compacted, diff = attempt(plans)
    if compacted is None or (diff > limit and not approximate):
        accepted: list[_Plan] = []
        compacted, diff = None, 0.0
        for plan in plans:  # find the groups that break the outputs, one at a time
            candidate, d = attempt(accepted + [plan])
            if candidate is not None and (d <= limit or plan.approximate):
                accepted.append(plan)
                compacted, diff = candidate, d
            else:
                result.kept += len(plan.channels)
                result.notes.append(f"{plan.root}: {len(plan.channels)} channels kept (removing them changes the "
                                    f"outputs{'' if candidate is None else f' by {d:.3g}'})")
        plans = accepted
    if compacted is None:
        result.notes.append("no group of channels can be removed without changing the outputs")
        masked.train(was_training)
        return result
    if approximate:
        result.notes.append(f"exact=False: constants entering padded convolutions were folded approximately; "
                            f"outputs differ by up to {diff:.3g}")
    before_shapes = {n: tuple(m.weight.shape) for n, m in masked.named_modules()
                     if isinstance(getattr(m, "weight", None), torch.Tensor)}
    for name, module in compacted.named_modules():
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and before_shapes.get(name, tuple(weight.shape)) != tuple(weight.shape):
            result.layers[name] = (before_shapes[name], tuple(weight.shape))
    compacted.train(was_training)
    result.model, result.compacted = compacted, True
    result.removed = sum(len(p.channels) for p in plans)
    result.params_after = parameter_count(compacted)
    result.max_difference = diff
    log.info("%s", result.message)
    return result
