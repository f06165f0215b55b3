"""Pruned weights are exactly zero after every optimizer step and get zero gradient; checkpoints stay sparse."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.pruning import Pruner

from helpers import classification_data, make_mlp

OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw_decay": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_zeros_stay_zero_with_zero_grad_for_200_steps(name):
    model = make_mlp(1)
    x, y = classification_data(n=64)
    opt = OPTIMIZERS[name](model.parameters())
    # dense warm-up so momentum / Adam moments are non-zero when pruning starts
    pruner = Pruner(model, {"target_sparsity": 0.8, "schedule": {"start_step": 20, "end_step": 80,
                                                                  "pruning_frequency": 20}})
    pruner.on_train_begin()
    seen_sparsity = []
    for step in range(200):
        pruner.on_step_begin()
        loss = F.cross_entropy(model(x), y) + pruner.regularization()
        opt.zero_grad()
        loss.backward()
        pruner.on_before_optimizer_step()
        for layer, module in zip(pruner.layer_names, [m for m in model if isinstance(m, nn.Linear)]):
            mask = pruner.masks[layer]
            assert bool((module.weight.grad[~mask] == 0).all()), (step, layer)
        opt.step()
        pruner.on_after_optimizer_step()
        for layer, module in zip(pruner.layer_names, [m for m in model if isinstance(m, nn.Linear)]):
            mask = pruner.masks[layer]
            assert bool((module.weight[~mask] == 0).all()), (step, layer)
        seen_sparsity.append(pruner.report().pruned_sparsity)
    pruner.on_train_end()
    # the ramp starts at init_sparsity (0) at step 20; the first pruning update is step 40
    assert seen_sparsity[39] == 0.0 and seen_sparsity[40] > 0
    assert seen_sparsity[-1] == pytest.approx(0.8, abs=1e-3)
    # sparsity never decreases: masks never silently un-prune
    assert all(b >= a for a, b in zip(seen_sparsity, seen_sparsity[1:]))


def test_state_dict_keys_unchanged_and_checkpoint_stays_sparse():
    model = make_mlp(2)
    keys = list(model.state_dict())
    pruner = Pruner(model, {"target_sparsity": 0.7, "schedule": {"start_step": 0, "end_step": 0}})
    pruner.on_train_begin()
    pruner.on_step_begin()
    assert list(model.state_dict()) == keys
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = make_mlp(99)
    fresh.load_state_dict(torch.load(buffer))
    for name in pruner.layer_names:
        w = dict(fresh.named_modules())[name].weight
        assert float((w == 0).float().mean()) == pytest.approx(0.7, abs=0.01)
    # a whole-model save works too (hooks are not pickled, nothing is monkeypatched)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded[0].weight, model[0].weight)


def test_on_train_end_releases_gradient_masking():
    model = make_mlp(3)
    x, y = classification_data(n=32)
    pruner = Pruner(model, {"target_sparsity": 0.5, "schedule": {"start_step": 0, "end_step": 0}})
    pruner.on_train_begin()
    pruner.on_step_begin()
    pruner.on_train_end()
    F.cross_entropy(model(x), y).backward()
    mask = pruner.masks["0"]
    assert bool((model[0].weight.grad[~mask] != 0).any())
