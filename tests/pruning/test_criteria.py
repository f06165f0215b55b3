"""Behaviour of the individual criteria."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Pruner, prune
from sparsesearch.pruning.criteria import GroupLasso, Random, SnipMomentum
from sparsesearch.pruning.patterns import build_pattern, to_2d
from sparsesearch.training import train

from helpers import batches_of, classification_data, make_mlp


def test_snip_momentum_picks_different_weights_than_magnitude():
    """Large weights on an input that is always zero have no gradient: magnitude keeps them, snip does not."""
    torch.manual_seed(0)
    x = torch.randn(128, 8)
    x[:, :4] = 0.0                      # the first four inputs never carry signal
    y = (x[:, 4:].sum(1) > 0).long()

    def run(pruning_type: str) -> torch.Tensor:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(8, 2))
        with torch.no_grad():
            model[0].weight[:, :4] = 5.0      # big but useless
            model[0].weight[:, 4:] *= 0.1     # small but useful
        pruner = Pruner(model, {"pruning_type": pruning_type, "target_sparsity": 0.5,
                                "schedule": {"start_step": 3, "end_step": 3}})
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        train(model, opt, batches_of(x, y, 32), epochs=1, pruner=pruner)
        return pruner.masks["0"]

    magnitude, snip = run("magnitude"), run("snip_momentum")
    assert bool(magnitude[:, :4].all()) and not bool(magnitude[:, 4:].any())
    assert not bool(snip[:, :4].any()) and bool(snip[:, 4:].all())


def test_pattern_lock_neither_adds_nor_loses_zeros():
    model = make_mlp(4)
    prune(model, {"target_sparsity": 0.6})
    before = {n: (p == 0).clone() for n, p in model.named_parameters() if n.endswith("weight")}
    x, y = classification_data(n=128)
    pruner = Pruner(model, {"pruning_type": "pattern_lock"})
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.05)
    train(model, opt, batches_of(x, y), epochs=5, pruner=pruner)
    after = {n: (p == 0) for n, p in model.named_parameters() if n.endswith("weight")}
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert pruner.report().pruned_sparsity == pytest.approx(0.6, abs=0.01)


def test_group_lasso_shrinks_group_norms_and_never_makes_nan():
    x, y = classification_data(n=128)

    def norms_after(reg_coeff: float) -> torch.Tensor:
        model = make_mlp(5)
        pruner = Pruner(model, {"pruning_type": "group_lasso", "pattern": "4x1", "reg_coeff": reg_coeff,
                                "target_sparsity": 0.0})  # regularize only
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        train(model, opt, batches_of(x, y), epochs=4, pruner=pruner)
        return build_pattern("4x1").group_norms(to_2d(model[2].weight.detach()))

    plain, lasso = norms_after(0.0), norms_after(0.1)
    assert float(lasso.sum()) < 0.8 * float(plain.sum())
    assert bool(torch.isfinite(lasso).all())


def test_group_lasso_zero_norm_group_has_finite_gradient():
    model = nn.Sequential(nn.Linear(8, 8))
    with torch.no_grad():
        model[0].weight[:4, :] = 0.0          # whole 4x1 groups of zeros
    pruner = Pruner(model, {"pruning_type": "group_lasso", "pattern": "4x1", "reg_coeff": 0.1,
                            "target_sparsity": 0.5, "schedule": {"start_step": 50, "end_step": 50}})
    reg = pruner.regularization()
    reg.backward()
    assert torch.isfinite(reg) and bool(torch.isfinite(model[0].weight.grad).all())
    assert bool((model[0].weight.grad[:4] == 0).all())


@pytest.mark.parametrize("pruning_type", ["gradient", "snip", "snip_momentum", "movement"])
def test_gradient_types_cannot_prune_at_step_zero(pruning_type):
    with pytest.raises(ConfigError) as info:
        Pruner(make_mlp(), {"pruning_type": pruning_type, "schedule": {"start_step": 0, "end_step": 0}})
    assert "before any backward pass" in str(info.value) and info.value.key.endswith("schedule.start_step")
    with pytest.raises(ConfigError, match="cannot prune in one shot"):
        prune(make_mlp(), {"pruning_type": pruning_type, "schedule": {"start_step": 1, "end_step": 1}})
    # starting at 0 is fine when the ramp begins at 0 sparsity: the first pruning update comes later
    model = make_mlp()
    pruner = Pruner(model, {"pruning_type": pruning_type, "target_sparsity": 0.5,
                            "schedule": {"start_step": 0, "end_step": 4, "pruning_frequency": 2}})
    x, y = classification_data(n=64)
    train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches_of(x, y, 16), epochs=2, pruner=pruner)
    assert pruner.report().pruned_sparsity == pytest.approx(0.5, abs=0.01)


def test_movement_prefers_weights_moving_away_from_zero():
    model = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, -1.0, -1.0]]))
    pruner = Pruner(model, {"pruning_type": "movement", "target_sparsity": 0.5,
                            "schedule": {"start_step": 1, "end_step": 1}})
    pruner.on_train_begin()
    pruner.on_step_begin()
    # loss = -(w0 + ... ) pushes w0 up (away from zero), w1 down (towards zero), w2 down (away), w3 up
    loss = -(model[0].weight * torch.tensor([[1.0, -1.0, 1.0, -1.0]])).sum()
    loss.backward()
    pruner.on_before_optimizer_step()
    pruner.on_after_optimizer_step()
    pruner.on_step_begin()
    assert pruner.masks["0"].tolist() == [[True, False, False, True]]


def test_random_is_reproducible_from_seed():
    a, b, c = make_mlp(0), make_mlp(0), make_mlp(0)
    ma = prune(a, {"pruning_type": "random", "seed": 3, "target_sparsity": 0.5}).masks
    mb = prune(b, {"pruning_type": "random", "seed": 3, "target_sparsity": 0.5}).masks
    mc = prune(c, {"pruning_type": "random", "seed": 4, "target_sparsity": 0.5}).masks
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not all(torch.equal(ma[k], mc[k]) for k in ma)


def test_loss_nan_raises_training_diverged():
    from sparsesearch.errors import TrainingDiverged

    model = make_mlp(0)
    x, y = classification_data(n=32)
    x[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="epoch 0, step 0"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), batches_of(x, y), epochs=1)


@pytest.mark.parametrize("pattern", ["1x1", "4x1", "1xchannel", "2:4"])
def test_group_norms_of_zero_groups_have_zero_not_nan_gradient(pattern):
    w = torch.randn(8, 8)
    w[:4] = 0.0
    w.requires_grad_(True)
    build_pattern(pattern).group_norms(to_2d(w)).sum().backward()
    assert bool(torch.isfinite(w.grad).all()) and bool((w.grad[:4] == 0).all())


@pytest.mark.parametrize("make,key", [
    (lambda ws: SnipMomentum(ws, momentum=1.5), "momentum"),
    (lambda ws: SnipMomentum(ws, momentum="high"), "momentum"),
    (lambda ws: Random(ws, seed=-1), "seed"),
    (lambda ws: Random(ws, seed=0.5), "seed"),
    (lambda ws: GroupLasso(ws, build_pattern("4x1"), alpha=-1.0), "reg_coeff"),
    (lambda ws: GroupLasso(ws, "4x1"), "pattern"),
])
def test_criteria_validate_their_own_hyperparameters(make, key):
    weights = [torch.randn(4, 4)]
    with pytest.raises(ConfigError) as info:
        make(weights)
    assert info.value.key == key and "allowed" in str(info.value)


def test_criteria_are_built_from_the_group_settings():
    model = make_mlp(0)
    pruner = Pruner(model, [{"pruning_type": "snip_momentum", "momentum": 0.5, "op_names": ["^0$"],
                             "schedule": {"start_step": 1, "end_step": 2}},
                            {"pruning_type": "random", "seed": 7, "op_names": ["^2$"]},
                            {"pruning_type": "group_lasso", "pattern": "4x1", "reg_coeff": 0.25, "op_names": ["^4$"]}])
    snip, rand, lasso = (g.criterion for g in pruner._groups)
    assert snip.momentum == 0.5 and snip.observes == "every_step"
    assert rand.seed == 7 and rand.observes == "never"
    assert lasso.alpha == 0.25 and lasso.pattern.name == "4x1"
    expected = 0.25 * build_pattern("4x1").group_norms(to_2d(model[4].weight)).sum()
    assert torch.allclose(pruner.regularization(), expected)
    assert pruner.regularization().requires_grad


def test_no_regularizer_gives_a_constant_zero():
    pruner = Pruner(make_mlp(0), [{"pruning_type": "group_lasso", "reg_coeff": 0.0}])
    reg = pruner.regularization()
    assert float(reg) == 0.0 and not reg.requires_grad
