"""Magnitude pruning agrees with torch.nn.utils.prune on the same weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from sparsesearch.pruning import prune

from helpers import make_cnn, make_mlp


def _masks_by_torch_local(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            tprune.l1_unstructured(module, "weight", amount=amount)
            out[name] = module.weight_mask.bool().clone()
            tprune.remove(module, "weight")
    return out


@pytest.mark.parametrize("make", [make_mlp, make_cnn])
@pytest.mark.parametrize("amount", [0.1, 0.5, 0.77, 0.95])
def test_local_magnitude_equals_l1_unstructured(make, amount):
    ours, ref = make(3), make(3)
    pruner = prune(ours, {"pruning_type": "magnitude", "pattern": "1x1", "pruning_scope": "local",
                          "target_sparsity": amount})
    expected = _masks_by_torch_local(ref, amount)
    assert set(pruner.masks) == set(expected)
    for name, mask in pruner.masks.items():
        assert torch.equal(mask, expected[name]), name
        # counting: round(s * n) weights, as torch.nn.utils.prune does
        assert int((~mask).sum()) == round(amount * mask.numel())


@pytest.mark.parametrize("make", [make_mlp, make_cnn])
@pytest.mark.parametrize("amount", [0.3, 0.8, 0.9])
def test_global_magnitude_equals_global_unstructured(make, amount):
    ours, ref = make(5), make(5)
    pruner = prune(ours, {"pruning_type": "magnitude", "pattern": "1x1", "pruning_scope": "global",
                          "target_sparsity": amount, "max_sparsity_ratio_per_op": 1.0})
    modules = [(n, m) for n, m in ref.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    tprune.global_unstructured([(m, "weight") for _, m in modules], pruning_method=tprune.L1Unstructured,
                               amount=amount)
    total = sum(m.weight.numel() for _, m in modules)
    for name, module in modules:
        assert torch.equal(pruner.masks[name], module.weight_mask.bool()), name
    zeros = sum(int((~m).sum()) for m in pruner.masks.values())
    assert zeros == round(amount * total)
    # global scope lets layers end at different sparsities
    ratios = {round(1 - float(m.float().mean()), 3) for m in pruner.masks.values()}
    assert len(ratios) > 1
