"""The search space: budget-exact per-layer sampling, conditional choices, validation against the model."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import prune, sparsity_report
from sparsesearch.pruning.patterns import build_pattern
from sparsesearch.records.study import Budget, SearchSpace, load_spec
from sparsesearch.search.space import Layer, Space, allocate

BUDGET = Budget(epochs=6, batch_size=32, optimizer="adam", lr=1e-3)


def digits_like(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def odd_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(37, 53), nn.ReLU(), nn.Linear(53, 7), nn.ReLU(), nn.Linear(7, 3))


def trials(n: int, seed: int = 0):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield trial
        study.tell(trial, [0.0, 0.0])


def layers_of(model: nn.Module) -> list[Layer]:
    return [Layer(n, m.weight.numel(), tuple(m.weight.shape)) for n, m in model.named_modules()
            if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("model_fn", [digits_like, odd_mlp])
def test_allocation_is_budget_exact_for_random_preferences(model_fn):
    layers = layers_of(model_fn())
    total = sum(layer.numel for layer in layers)
    g = torch.Generator().manual_seed(0)
    one = build_pattern("1x1")
    for _ in range(300):
        target = float(torch.rand((), generator=g)) * 0.99
        prefs = (2.0 ** (torch.rand(len(layers), generator=g) * 8 - 4)).tolist()
        counts = allocate(layers, one, target, prefs, (0.0, 0.999))
        assert sum(counts.values()) == round(target * total)
        for layer in layers:
            assert 0 <= counts[layer.name] <= int(0.999 * layer.numel + 1e-9)


def test_allocation_respects_per_layer_bounds():
    layers = layers_of(digits_like())
    counts = allocate(layers, build_pattern("1x1"), 0.6, [100.0, 1e-3, 1.0], (0.2, 0.9))
    for layer in layers:
        assert 0.2 * layer.numel - 1 <= counts[layer.name] <= 0.9 * layer.numel + 1e-9
    assert sum(counts.values()) == round(0.6 * sum(layer.numel for layer in layers))


def test_allocation_out_of_reach_is_a_clear_error():
    layers = layers_of(digits_like())
    with pytest.raises(ConfigError, match="cannot be met within the per-layer bounds"):
        allocate(layers, build_pattern("1x1"), 0.95, [1, 1, 1], (0.0, 0.9))


def test_sampled_local_configs_prune_exactly_the_sampled_budget():
    """Sampled per-layer targets, applied by the engine, give round(target * N) zeros (unstructured)."""
    space = Space(SearchSpace(pruning_types=("magnitude",), patterns=("1x1",), scopes=("local",),
                              sparsity=(0.3, 0.995), layer_freedom=3.0), BUDGET, digits_like(), 10)
    checked = 0
    for trial in trials(25):
        plan = space.sample(trial)
        group = plan.group
        assert group.layer_targets and set(group.layer_targets) == {"0", "2", "4"}
        model = digits_like(1)
        prune(model, plan.pruning)
        zeros = sparsity_report(model, list(group.layer_targets)).pruned_zeros
        assert zeros == round(plan.target_sparsity * space.total_weights)
        checked += 1
    assert checked == 25


def test_block_patterns_are_exact_within_one_group_per_layer():
    space = Space(SearchSpace(patterns=("1x4", "2:4"), scopes=("local",), sparsity=(0.2, 0.9)), BUDGET,
                  digits_like(), 10)
    for trial in trials(30, seed=3):
        plan = space.sample(trial)
        pattern = build_pattern(plan.group.pattern)
        assert plan.target_sparsity <= pattern.max_sparsity + 1e-12
        model = digits_like(2)
        prune(model, plan.pruning)
        zeros = sparsity_report(model).pruned_zeros
        assert abs(zeros - round(plan.target_sparsity * space.total_weights)) <= 3 * 4


def test_space_is_conditional():
    space = Space(SearchSpace(pruning_types=("magnitude", "snip_momentum", "group_lasso"),
                              patterns=("1x1", "2:4"), scopes=("local", "global"), sparsity=(0.3, 0.98)),
                  BUDGET, digits_like(), 10)
    seen_global = seen_nm = False
    for trial in trials(60, seed=1):
        plan = space.sample(trial)
        group = plan.group
        params = trial.params
        if group.pattern == "2:4":
            seen_nm = True
            assert group.pruning_scope == "local" and "scope" not in params
            assert plan.target_sparsity <= 0.5 and "density" not in params and "density|2:4" in params
        if group.pruning_scope == "global":
            seen_global = True
            assert not group.layer_targets and not any(k.startswith("layer:") for k in params)
        else:
            assert "allocation" in params
        assert ("reg_coeff" in params) == (group.pruning_type == "group_lasso")
        if group.uses_gradients:
            assert group.schedule.start_step >= 1  # a gradient criterion needs a backward pass first
    assert seen_global and seen_nm


def test_patterns_that_do_not_fit_the_model_are_rejected_before_any_trial():
    with pytest.raises(ConfigError) as info:
        Space(SearchSpace(patterns=("1x1", "4x1")), BUDGET, digits_like(), 10)
    assert info.value.key == "space.patterns[1]" and "'4'" in str(info.value) and "10" in str(info.value)


def test_nm_pattern_below_the_searched_range_is_a_spec_error():
    with pytest.raises(ConfigError) as info:
        load_spec({"name": "s", "task": "digits-mlp", "space": {"patterns": ["1x1", "2:4"], "sparsity": [0.8, 0.99]}})
    assert info.value.key == "space.patterns[1]" and "at most 0.5" in str(info.value)


def test_pattern_lock_cannot_be_searched():
    with pytest.raises(ConfigError, match="prunes nothing new"):
        load_spec({"name": "s", "task": "digits-mlp", "space": {"pruning_types": ["pattern_lock"]}})


def test_spec_typos_and_ranges_are_reported_with_key_paths():
    with pytest.raises(ConfigError) as info:
        load_spec({"name": "s", "task": "digits-mlp", "space": {"sparsty": [0.5, 0.9]}})
    assert info.value.key == "space.sparsty" and info.value.suggestion == "sparsity"
    with pytest.raises(ConfigError) as info:
        load_spec({"name": "s", "task": "digits-mlp", "space": {"schedule": {"start": [0.5, 0.6], "end": [0.4, 0.9]}}})
    assert info.value.key == "space.schedule.start"
    with pytest.raises(ConfigError) as info:
        load_spec({"name": "s", "task": "digits-mlp", "sampler": "tpee"})
    assert info.value.suggestion == "tpe"


def test_finetune_stage_must_leave_epochs_to_prune():
    spec = load_spec({"name": "s", "task": "digits-mlp",
                      "space": {"schedule": {"finetune_epochs": [0, 6]}}})
    with pytest.raises(ConfigError) as info:
        Space(spec.space, BUDGET, digits_like(), 10)
    assert info.value.key == "space.schedule.finetune_epochs"


def test_schedule_lies_within_the_pruning_window():
    spec = load_spec({"name": "s", "task": "digits-mlp", "space": {
        "schedule": {"start": [0.0, 0.2], "end": [0.5, 1.0], "finetune_epochs": [1, 3], "frequency": [1, 8]}}})
    space = Space(spec.space, BUDGET, digits_like(), 10)
    for trial in trials(30):
        plan = space.sample(trial)
        s = plan.group.schedule
        window = (BUDGET.epochs - plan.finetune_epochs) * 10
        assert 0 <= s.start_step <= s.end_step <= window
        assert 1 <= s.pruning_frequency <= 8


@pytest.mark.parametrize("space_kw", [
    {},
    {"scopes": ("local",), "patterns": ("1x1", "1x4"), "pruning_types": ("snip_momentum", "magnitude")},
    {"scopes": ("local",), "layer_freedom": 0.0, "allocations": ("uniform",)},
    {"pruning_types": ("group_lasso",), "lr": (1e-4, 1e-2)},
])
def test_warm_start_trials_are_the_classic_baselines(space_kw):
    spec = load_spec({"name": "s", "task": "digits-mlp", "space": {
        "sparsity": [0.5, 0.985], "schedule": {"ramps": ["exp", "cubic"], "start": [0.0, 0.2], "end": [0.3, 0.9],
                                               "frequency": [1, 8], "finetune_epochs": [0, 2]}}})
    space = Space(dataclasses.replace(spec.space, **space_kw), BUDGET, digits_like(), 10)
    warm = space.warm_start((0.9, 0.95, 0.98, 0.99))
    assert len(warm) == 3  # 0.99 is outside the searched range
    for (params, label), level in zip(warm, (0.9, 0.95, 0.98)):
        trial = optuna.trial.FixedTrial(params)
        plan = space.sample(trial)
        assert set(trial.params) == set(params)  # every param the space asks for, and no other
        group = plan.group
        assert abs(plan.target_sparsity - level) < 1e-9 and group.pattern == "1x1" and group.schedule.ramp == "cubic"
        assert group.pruning_scope == ("global" if "global" in space.space.scopes else "local")
        if group.layer_targets:  # uniform local: every layer at the level (to within one weight)
            assert all(abs(t - level) < 1e-3 for t in group.layer_targets.values())
        assert label.endswith(f"at {level:g}")
