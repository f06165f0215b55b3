"""Global scope hits its target exactly with every layer inside its bounds (water-filling); the minimum follows
the ramp; local scope applies the bounds to each layer's target."""

from __future__ import annotations

import math
import random
import warnings

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Pruner, prune
from sparsesearch.pruning.patterns import to_2d
from sparsesearch.pruning.pruner import PruningWarning
from sparsesearch.pruning.select import choose_lowest

from helpers import make_mlp


def _mlp_37_53_64_7(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(37, 53), nn.ReLU(), nn.Linear(53, 64), nn.ReLU(), nn.Linear(64, 7))


def _zeros(pruner: Pruner) -> dict[str, tuple[int, int]]:
    return {r["name"]: (r["zeros"], r["params"]) for r in pruner.report().rows()}


def test_global_with_default_max_prunes_exactly_the_budget():
    """Before: one threshold, then the 7-output layer clipped to 0.98 and the difference lost (5434 of 5801)."""
    model = _mlp_37_53_64_7()
    pruner = prune(model, {"pruning_scope": "global", "target_sparsity": 0.95})
    rows = _zeros(pruner)
    total = sum(p for _, p in rows.values())
    assert total == 5801
    assert sum(z for z, _ in rows.values()) == round(0.95 * 5801) == 5511
    for name, (zeros, params) in rows.items():
        assert zeros <= math.floor(0.98 * params), name


def test_global_with_a_minimum_does_not_overshoot():
    """Before: layers raised to the minimum after the threshold, overshooting to 0.3396 for a 0.33 target."""
    model = _mlp_37_53_64_7(1)
    pruner = prune(model, {"pruning_scope": "global", "target_sparsity": 0.33, "min_sparsity_ratio_per_op": 0.3})
    rows = _zeros(pruner)
    assert sum(z for z, _ in rows.values()) == round(0.33 * 5801)
    for name, (zeros, params) in rows.items():
        assert zeros >= math.ceil(0.3 * params), name


def test_global_bounds_keep_the_lowest_scores_water_filling():
    """Within the bounds the choice is one threshold: no pruned weight outscores a kept one in a layer that
    could take more, unless the pruned one's layer is held at its minimum."""
    model = _mlp_37_53_64_7(2)
    scores = {n: m.weight.detach().abs().clone() for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    pruner = prune(model, {"pruning_scope": "global", "target_sparsity": 0.6, "min_sparsity_ratio_per_op": 0.5,
                           "max_sparsity_ratio_per_op": 0.7})
    masks = pruner.masks
    counts = {n: int((~m).sum()) for n, m in masks.items()}
    lo = {n: math.ceil(0.5 * m.numel()) for n, m in masks.items()}
    hi = {n: math.floor(0.7 * m.numel()) for n, m in masks.items()}
    assert sum(counts.values()) == round(0.6 * sum(m.numel() for m in masks.values()))
    for a in masks:
        for b in masks:
            if a != b and counts[a] > lo[a] and counts[b] < hi[b]:
                assert float(scores[a][~masks[a]].max()) <= float(scores[b][masks[b]].min()), (a, b)


@pytest.mark.parametrize("bounds,key", [
    ({"max_sparsity_ratio_per_op": 0.9}, "max_sparsity_ratio_per_op"),
    ({"min_sparsity_ratio_per_op": 0.97}, "min_sparsity_ratio_per_op"),
])
def test_global_target_the_bounds_cannot_reach_is_a_config_error(bounds, key):
    with pytest.raises(ConfigError) as info:
        Pruner(_mlp_37_53_64_7(), {"pruning_scope": "global", "target_sparsity": 0.95, **bounds})
    text = str(info.value)
    assert info.value.key == f"groups[0].{key}"
    assert "5511 of the group's 5801 weights" in text and "3 layers" in text


def test_global_blocks_count_the_budget_in_blocks_when_sizes_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    pruner = prune(model, {"pattern": "4x1", "pruning_scope": "global", "target_sparsity": 0.9,
                           "max_sparsity_ratio_per_op": 0.95})
    total = sum(m.numel() for m in pruner.masks.values())
    zeros = sum(int((~m).sum()) for m in pruner.masks.values())
    assert zeros == round(round(0.9 * total) / 4) * 4
    for mask in pruner.masks.values():
        kept = to_2d(mask).reshape(-1, 4, to_2d(mask).shape[1]).sum(1)
        assert bool(((kept == 0) | (kept == 4)).all())
        assert int((~mask).sum()) <= math.floor(0.95 * mask.numel() / 4) * 4


def test_min_bound_follows_the_ramp():
    """Linear 0 -> 0.9 over steps 0-10 with min 0.5: before, every layer sat at 0.5 from step 1."""
    model = _mlp_37_53_64_7(3)
    with torch.no_grad():
        model[4].weight.mul_(100.0)  # the small head scores high: global scope would leave it dense
    pruner = Pruner(model, {"pruning_scope": "global", "target_sparsity": 0.9, "min_sparsity_ratio_per_op": 0.5,
                            "schedule": {"start_step": 0, "end_step": 10, "ramp": "linear"}})
    head = model[4].weight
    seen = {}
    for step in range(11):
        pruner.on_step_begin()
        seen[step] = float((head == 0).float().mean())
        total = sum(z for z, _ in _zeros(pruner).values())
        assert total == round(0.09 * step * 5801), step
        pruner.on_after_optimizer_step()
    # the head is held at the minimum scaled by the ramp's progress: 0.5 * (0.09 step) / 0.9
    for step in (1, 4, 8, 10):
        assert seen[step] == pytest.approx(math.ceil(0.05 * step * 448) / 448), step
    assert seen[1] < 0.1


def test_local_scope_caps_targets_at_the_maximum_and_warns():
    """Before: local scope ignored both bounds silently."""
    model = make_mlp(0)
    with pytest.warns(PruningWarning, match="clipped to max_sparsity_ratio_per_op 0.8"):
        pruner = prune(model, {"target_sparsity": 0.9, "max_sparsity_ratio_per_op": 0.8})
    for name, (zeros, params) in _zeros(pruner).items():
        assert zeros == round(0.8 * params), name
    assert set(pruner.target_sparsities().values()) == {0.8}
    assert any("clipped" in w for w in pruner.report().warnings)


def test_local_scope_raises_targets_to_the_minimum():
    model = make_mlp(0)
    with pytest.warns(PruningWarning, match="clipped to min_sparsity_ratio_per_op 0.5"):
        pruner = prune(model, {"layer_targets": {"0": 0.2, "2": 0.7}, "min_sparsity_ratio_per_op": 0.5})
    rows = {r["name"]: (r["zeros"], r["params"]) for r in pruner.report().rows()}
    assert rows == {"0": (256, 512), "2": (round(0.7 * 1024), 1024)}


def test_local_scope_within_bounds_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prune(make_mlp(0), {"target_sparsity": 0.5, "min_sparsity_ratio_per_op": 0.1})


def test_choose_lowest_with_bounds_is_exact_and_water_filling_on_random_inputs():
    rng = random.Random(0)
    for trial in range(200):
        k = rng.randint(1, 4)
        scores = [torch.randint(0, 5 if trial % 2 else 10_000, (rng.randint(1, 60),)).float() for _ in range(k)]
        if trial % 3 == 0:
            scores[0][:3] = float("-inf")
        lo = [rng.randint(0, s.numel() // 2) for s in scores]
        hi = [rng.randint(a, s.numel()) for a, s in zip(lo, scores)]
        budget = rng.randint(sum(lo), sum(hi))
        chosen = choose_lowest(scores, [1] * k, budget, lower=lo, upper=hi)
        n = [int(c.sum()) for c in chosen]
        assert sum(n) == budget
        for c, s, a, b, count in zip(chosen, scores, lo, hi, n):
            assert a <= count <= b
            if 0 < count < s.numel():
                assert float(s[c].max()) <= float(s[~c].min())  # each tensor takes its lowest
        for i in range(k):
            for j in range(k):
                if i != j and lo[i] < n[i] and n[j] < hi[j] and n[j] < scores[j].numel():
                    assert not float(scores[j][~chosen[j]].min()) < float(scores[i][chosen[i]].max())
