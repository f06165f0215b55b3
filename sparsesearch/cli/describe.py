"""What a config file would do, as text lines for ``sparsesearch validate`` (the library never prints).

For a recipe, pruning config, INC or LPOT file: each group's type, pattern, scope, target and layer
selection, its schedule in steps (the steps at which masks update and the sparsity asked for at each), and,
given a model, the layers each group prunes with their targets and the prunable layers left dense.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.schedules import sparsity_at, update_steps
from sparsesearch.records.pruning import PruningGroup
from sparsesearch.records.urls import mask_uri

if TYPE_CHECKING:
    from torch import nn

    from sparsesearch.formats.files import LoadedConfig
    from sparsesearch.pruning.matching import ModelMatch


def model_from_reference(ref: str) -> nn.Module:
    """Build a model from ``"package.module:callable"`` (called without arguments).

    This imports and runs the user's code, on the user's explicit request (a command-line option); recipes
    and configs never do.
    """
    from torch import nn

    from sparsesearch.tasks.references import resolve_reference

    factory = resolve_reference(ref, key="--model", what="a callable that returns a torch.nn.Module")
    if not callable(factory):
        raise ConfigError("is not callable", key="--model", value=ref, allowed="a callable returning a torch.nn.Module")
    try:
        model = factory()
    except Exception as exc:  # the user's code: report it as bad input, not as a sparsesearch crash
        raise ConfigError(f"calling {ref} failed: {type(exc).__name__}: {exc}", key="--model", value=ref,
                          allowed="a callable that builds the model without arguments") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{ref} returned a {type(model).__name__}, not a torch.nn.Module", key="--model",
                          value=ref, allowed="a callable returning a torch.nn.Module")
    return model


def model_from_task(name: str) -> tuple[nn.Module, int | None]:
    """A task's model (seeded) and its steps per epoch (training split and batch size hint), if known."""
    import torch

    from sparsesearch.tasks import resolve_task
    from sparsesearch.training.runs import task_steps_per_epoch

    task = resolve_task(name, key="--task", trusted=True)  # named on the command line
    torch.manual_seed(0)
    model = task.model()
    try:
        spe: int | None = task_steps_per_epoch(task)
    except Exception:  # noqa: BLE001 - data unavailable: the schedule is then shown in epochs
        spe = None
    return model, spe


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "(none)"


def schedule_lines(group: PruningGroup, steps_per_epoch: int | None, indent: str = "    ") -> list[str]:
    """The schedule in steps: ramp, start, end, frequency, and the sparsity at each update."""
    schedule = group.schedule
    targets = list(group.layer_targets.values()) or [group.target_sparsity]
    shown_target = targets[0] if len(set(targets)) == 1 else max(targets)
    lines = []
    if schedule.epoch_based:
        lines.append(f"{indent}schedule (epochs): {schedule.ramp} ramp from {_fmt(schedule.init_sparsity)} at epoch "
                     f"{schedule.start_epoch} to the target at epoch {schedule.end_epoch}, every "
                     f"{schedule.frequency or 1} epoch(s)")
        if not steps_per_epoch:
            lines.append(f"{indent}  (give --steps-per-epoch, training.steps_per_epoch or a --task to see steps)")
            return lines
        schedule = schedule.in_steps(steps_per_epoch)
        lines.append(f"{indent}  with {steps_per_epoch} steps per epoch:")
    if group.pruning_type == "pattern_lock":
        lines.append(f"{indent}schedule: none (pattern_lock keeps the existing zeros and prunes nothing new)")
        return lines
    if schedule.start_step == schedule.end_step:
        lines.append(f"{indent}schedule (steps): one-shot to {_fmt(shown_target)} at step {schedule.start_step}")
    else:
        lines.append(f"{indent}schedule (steps): {schedule.ramp} ramp from {_fmt(schedule.init_sparsity)} at step "
                     f"{schedule.start_step} to {_fmt(shown_target)} at step {schedule.end_step}, masks updated "
                     f"every {schedule.pruning_frequency} step(s)")
    steps = update_steps(schedule)
    values = [f"{s}: {_fmt(sparsity_at(schedule, shown_target, s))}" for s in steps]
    if len(values) > 10:
        values = values[:6] + [f"... ({len(values) - 9} more)"] + values[-3:]
    label = "sparsity at each update" + (" (largest layer target)" if len(set(targets)) > 1 else "")
    lines.append(f"{indent}{label}: {', '.join(values)}")
    return lines


def group_lines(index: int, group: PruningGroup, steps_per_epoch: int | None) -> list[str]:
    """One group: what it prunes and how."""
    lines = [f"  groups[{index}]: {group.pruning_type}, pattern {group.pattern}, {group.pruning_scope} scope"]
    if group.layer_targets:
        lines.append(f"    per-layer targets: {len(group.layer_targets)} layers")
        for name, target in group.layer_targets.items():
            lines.append(f"      {name}: {_fmt(target)}")
    else:
        what = "over the group's layers together" if group.pruning_scope == "global" else "for each layer"
        lines.append(f"    target sparsity {_fmt(group.target_sparsity)} {what}")
        if group.pruning_scope == "global":
            lines.append(f"    per-layer bounds: {_fmt(group.min_sparsity_ratio_per_op)} .. "
                         f"{_fmt(group.max_sparsity_ratio_per_op)}")
        lines.append(f"    layers: types {_names(group.op_types)}; op_names {_names(group.op_names) if group.op_names else '(all)'}; "
                     f"excluded_op_names {_names(group.excluded_op_names)}")
    if group.pruning_type == "group_lasso":
        lines.append(f"    regularisation: {group.reg_coeff:g} x sum of block L2 norms added to the loss")
    lines.extend(schedule_lines(group, steps_per_epoch))
    return lines


def match_lines(match: ModelMatch, model_label: str) -> list[str]:
    """The layers each group prunes on the model, and the prunable layers left dense."""
    lines = [f"on the model ({model_label}):"]
    for plan in match.groups:
        params = sum(layer.params for layer in plan.layers)
        lines.append(f"  groups[{plan.index}] prunes {len(plan.layers)} layer(s), {params} weights:")
        width = max((len(layer.name) for layer in plan.layers), default=4)
        for layer in plan.layers:
            target = (f"target {_fmt(layer.target)}" if plan.group.pruning_scope == "local"
                      else f"global target {_fmt(layer.target)} (per layer within "
                      f"{_fmt(plan.group.min_sparsity_ratio_per_op)} .. {_fmt(plan.group.max_sparsity_ratio_per_op)})")
            if plan.group.pruning_type == "pattern_lock":
                target = "keeps its existing zeros"
            lines.append(f"    {layer.name:<{width}}  {layer.type:<7} {str(layer.shape):<16} {layer.params:>9}  {target}")
    if match.unpruned:
        lines.append(f"  not pruned (stay dense): {_names(list(match.unpruned))}")
    else:
        lines.append("  every prunable (Linear/Conv) layer is pruned")
    if match.excluded_head:
        lines.append(f"  classifier head {match.excluded_head!r} excluded (INC's rule, selection.exclude_classifier_head)")
    return lines


def describe(loaded: LoadedConfig, *, match: ModelMatch | None = None, model_label: str = "",
             steps_per_epoch: int | None = None) -> list[str]:
    """Every line ``sparsesearch validate`` prints for a file that passed validation."""
    from sparsesearch.formats.files import kind_name

    lines = [f"{loaded.doc.file}: valid {kind_name(loaded.kind)}"]
    if loaded.kind == "study" and loaded.study is not None:
        spec = loaded.study
        space = spec.space
        lines += [f"  study {spec.name!r} on task {spec.task!r}, {spec.n_trials} trials, sampler {spec.sampler}",
                  f"  searches types {_names(space.pruning_types)}; patterns {_names(space.patterns)}; scopes "
                  f"{_names(space.scopes)}; sparsity {list(space.sparsity)}",
                  f"  storage {mask_uri(spec.storage)}; tracking {mask_uri(spec.tracking.uri)}"]
        return lines
    recipe = loaded.recipe
    if recipe is None:  # pragma: no cover - every other kind yields a recipe
        return lines
    prov = recipe.provenance
    if prov.study or prov.trial is not None:
        lines.append(f"  from study {prov.study!r}, trial {prov.trial}, run {prov.run_id}")
    metrics = {k: v for k, v in vars(prov.metrics).items() if v is not None}
    if metrics:
        lines.append("  metrics: " + ", ".join(f"{k} {_fmt(v) if isinstance(v, (int, float)) else v}"
                                            for k, v in metrics.items()))
    if recipe.training is not None:
        t = recipe.training
        lines.append(f"  training: {t.epochs} epochs, {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, seed {t.seed}"
                     + (f", task {t.task}" if t.task else ""))
    spe = steps_per_epoch or recipe.steps_per_epoch
    if prov.notes:
        source = {"inc": "INC", "lpot": "LPOT"}.get(prov.imported_from or "", "")
        lines.append(f"  notes{' (differences from ' + source + ')' if source else ''}:")
        lines.extend(f"    - {note}" for note in prov.notes)
    sel = recipe.selection
    if sel.exclude_classifier_head or sel.skip_incompatible_layers:
        rules = [r for r, on in (("exclude the classifier head", sel.exclude_classifier_head),
                                 ("skip layers the pattern does not divide", sel.skip_incompatible_layers)) if on]
        lines.append(f"  layer rules applied with the model: {'; '.join(rules)}")
    lines.append(f"  {len(recipe.pruning.groups)} group(s):")
    for i, group in enumerate(recipe.pruning.groups):
        lines.extend(group_lines(i, group, spe))
    if match is not None:
        lines.extend(match_lines(match, model_label))
    else:
        lines.append("  (give --task NAME or --model module:callable to check the layers against a model)")
    return lines


__all__ = ["describe", "model_from_reference", "model_from_task", "schedule_lines"]

