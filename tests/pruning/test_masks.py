"""Pruned weights are exactly zero after every optimizer step and get zero gradient; checkpoints stay sparse."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.pruning import Pruner
from sparsesearch.pruning.pruner import PruningWarning

from helpers import classification_data, make_mlp

OPTIMIZERS = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw_decay": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("mask_gradients", [False, True])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_zeros_stay_zero_for_200_steps(name, mask_gradients):
    """Pruned weights are exactly zero after every step; their gradients are zero with mask_gradients."""
    model = make_mlp(1)
    x, y = classification_data(n=64)
    opt = OPTIMIZERS[name](model.parameters())
    # dense warm-up so momentum / Adam moments are non-zero when pruning starts
    pruner = Pruner(model, {"target_sparsity": 0.8, "schedule": {"start_step": 20, "end_step": 80,
                                                                  "pruning_frequency": 20}},
                    mask_gradients=mask_gradients)
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
            if mask_gradients:
                assert bool((module.weight.grad[~mask] == 0).all()), (step, layer)
            elif step > 40:  # without it the optimizer sees raw gradients; the weights are still re-zeroed
                assert bool((module.weight.grad[~mask] != 0).any()), (step, layer)
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
    pruner = Pruner(model, {"target_sparsity": 0.5, "schedule": {"start_step": 0, "end_step": 0}},
                    mask_gradients=True)
    pruner.on_train_begin()
    pruner.on_step_begin()
    with pytest.warns(PruningWarning, match="on_after_optimizer_step"):
        pruner.on_train_end()
    F.cross_entropy(model(x), y).backward()
    mask = pruner.masks["0"]
    assert bool((model[0].weight.grad[~mask] != 0).any())


def test_masks_follow_the_model_to_another_dtype():
    """model.to() swaps each Parameter's storage: the keeper re-binds to it at the next callback."""
    model = make_mlp(4)
    pruner = Pruner(model, {"target_sparsity": 0.6, "schedule": {"start_step": 0, "end_step": 0}})
    pruner.on_step_begin()
    model.to(torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)   # as an optimizer step would, on the new storage
    pruner.on_after_optimizer_step()
    for name, mask in pruner.masks.items():
        w = dict(model.named_modules())[name].weight
        assert w.dtype == torch.float64 and bool((w[~mask] == 0).all()), name


def test_layers_larger_than_a_chunk_and_mixed_with_dense_ones_are_masked(monkeypatch):
    from sparsesearch.pruning import masks as masks_module

    monkeypatch.setattr(masks_module, "CHUNK", 100)   # many chunks, layers split across them
    model = make_mlp(5)
    pruner = Pruner(model, [{"op_names": ["^0$", "^4$"], "target_sparsity": 0.7,
                             "schedule": {"start_step": 0, "end_step": 0}},
                            {"op_names": ["^2$"], "target_sparsity": 0.0}], mask_gradients=True)
    pruner.on_step_begin()
    with torch.no_grad():
        for p in model.parameters():
            p.grad = torch.ones_like(p)
            p.add_(1.0)
    pruner.on_before_optimizer_step()
    pruner.on_after_optimizer_step()
    for name, mask in pruner.masks.items():
        w = dict(model.named_modules())[name].weight
        assert bool((w[~mask] == 0).all()) and bool((w[mask] != 0).all()), name
        assert bool((w.grad[~mask] == 0).all()) and bool((w.grad[mask] == 1).all()), name
    assert float((model[2].weight == 0).float().mean()) == 0.0
