"""Tied weights, replaced Parameters, misused loops and bad inputs: each is handled or named, never silent."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Pruner, prune
from sparsesearch.pruning.pruner import PruningWarning
from sparsesearch.testing import train_steps

from helpers import batches_of, classification_data, make_mlp


class Tied(nn.Module):
    """Two Linear modules holding one Parameter (as tied embeddings/heads do)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(16, 16)
        self.b = nn.Linear(16, 16)
        self.b.weight = self.a.weight
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.b(torch.relu(self.a(x)))))


def test_tied_weight_gets_one_mask_and_is_counted_once():
    """Before: two masks (random 0.8 on each) left the weight at 0.969 while the report said 0.801."""
    model = Tied()
    pruner = prune(model, {"pruning_type": "random", "target_sparsity": 0.8, "op_names": ["^a$", "^b$"]})
    w = model.a.weight
    assert float((w == 0).float().mean()) == pytest.approx(round(0.8 * 256) / 256)
    assert pruner.layer_names == ["a"]
    masks = pruner.masks
    assert set(masks) == {"a", "b"} and torch.equal(masks["a"], masks["b"])
    report = pruner.report()
    assert [r["name"] for r in report.rows()] == ["a"]
    assert report.pruned_params == 256 and report.pruned_zeros == round(0.8 * 256)


def test_tied_weight_counts_once_in_global_scope():
    model = Tied()
    pruner = prune(model, {"pruning_scope": "global", "target_sparsity": 0.5, "max_sparsity_ratio_per_op": 1.0})
    report = pruner.report()
    assert report.pruned_params == 256 + 64
    assert report.pruned_zeros == round(0.5 * (256 + 64))


def test_tied_weight_in_two_groups_is_rejected():
    with pytest.raises(ConfigError, match="shares its weight with layer 'a' of groups\\[0\\]"):
        Pruner(Tied(), [{"op_names": ["^a$"]}, {"op_names": ["^b$"]}])


def _steps(model: nn.Module, pruner: Pruner, n: int = 3) -> None:
    x, y = classification_data(n=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_steps(model, pruner, opt, batches_of(x, y, 32) * n, epochs=1)


def test_weights_replaced_by_load_state_dict_assign_are_followed():
    """Before: load_state_dict(sd, assign=True) left dense weights while the masks said 0.5."""
    model = make_mlp(0)
    pruner = prune(model, {"target_sparsity": 0.5})
    dense = make_mlp(1).state_dict()
    model.load_state_dict(dense, assign=True)
    assert float((model[0].weight == 0).float().mean()) == 0.0  # the new Parameter is dense...
    _steps(model, pruner)                                           # ...until the next callback
    for name, mask in pruner.masks.items():
        w = dict(model.named_modules())[name].weight
        assert bool((w[~mask] == 0).all()) and float((~mask).float().mean()) == 0.5, name
    assert pruner.report().pruned_sparsity == 0.5


def test_replaced_weight_of_another_shape_is_a_config_error():
    model = make_mlp(0)
    pruner = prune(model, {"target_sparsity": 0.5})
    model[0].weight = nn.Parameter(torch.ones(8, 16))
    with pytest.raises(ConfigError, match="layer '0' now has a weight of shape \\(8, 16\\)"):
        pruner.on_step_begin()


def test_a_loop_without_on_step_begin_warns_and_reports_it():
    model = make_mlp(0)
    pruner = Pruner(model, {"target_sparsity": 0.5, "schedule": {"start_step": 0, "end_step": 4}})
    x, y = classification_data(n=32)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner.on_train_begin()
    for _ in range(6):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        pruner.on_before_optimizer_step()
        opt.step()
        pruner.on_after_optimizer_step()
    assert any("on_step_begin() was never called" in w for w in pruner.report().warnings)
    with pytest.warns(PruningWarning, match="on_step_begin\\(\\) was never called"):
        pruner.on_train_end()
    assert pruner.report().pruned_sparsity == 0.0


def test_a_loop_without_on_after_optimizer_step_warns():
    model = make_mlp(0)
    pruner = Pruner(model, {"target_sparsity": 0.5, "schedule": {"start_step": 0, "end_step": 0}})
    pruner.on_train_begin()
    pruner.on_step_begin()
    assert any("on_after_optimizer_step() was never called" in w for w in pruner.report().warnings)
    with pytest.warns(PruningWarning, match="on_after_optimizer_step\\(\\) was never called"):
        pruner.on_train_end()


def test_a_loop_calling_nothing_but_train_end_warns():
    pruner = Pruner(make_mlp(0), {"target_sparsity": 0.5})
    with pytest.warns(PruningWarning) as record:
        pruner.on_train_end()
    assert len(record) == 2


def test_a_schedule_longer_than_training_warns_once_with_the_numbers():
    model = make_mlp(0)
    pruner = Pruner(model, {"target_sparsity": 0.8, "schedule": {"start_step": 0, "end_step": 100,
                                                                  "pruning_frequency": 2}})
    with pytest.warns(PruningWarning, match="ends at step 100 but training stopped after 3 steps") as record:
        _steps(model, pruner)
    assert len(record) == 1
    (message,) = pruner.report().warnings
    assert "target sparsity 0.8 was not reached" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pruner.on_train_end()  # once


def test_a_complete_loop_has_no_warning():
    model = make_mlp(0)
    pruner = Pruner(model, {"target_sparsity": 0.5, "schedule": {"start_step": 0, "end_step": 2}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _steps(model, pruner)
    assert pruner.report().warnings == ()
    assert pruner.report().to_dict()["warnings"] == []


def test_prune_needs_a_model():
    with pytest.raises(ConfigError) as info:
        prune(object(), {"target_sparsity": 0.5})
    assert info.value.key == "model" and "torch.nn.Module" in str(info.value)


def test_load_state_dict_with_a_wrong_mask_shape_names_the_layer():
    state = prune(make_mlp(0), {"target_sparsity": 0.5}).state_dict()
    state["masks"]["2"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ConfigError) as info:
        Pruner(make_mlp(0), {"target_sparsity": 0.5}).load_state_dict(state)
    assert info.value.key == "masks.2" and "layer '2'" in str(info.value) and "(32, 32)" in str(info.value)


@pytest.mark.parametrize("state,key", [
    ({"format": 99}, "format"),
    ("not a state", "state"),
    ({"format": 1, "step": 0}, "state"),
])
def test_load_state_dict_mismatches_are_config_errors(state, key):
    with pytest.raises(ConfigError) as info:
        Pruner(make_mlp(0), {"target_sparsity": 0.5}).load_state_dict(state)
    assert info.value.key == key and isinstance(info.value, ValueError)


def test_load_state_dict_with_a_foreign_criterion_state_is_a_config_error():
    state = Pruner(make_mlp(0), {"pruning_type": "random"}).state_dict()
    other = Pruner(make_mlp(0), {"pruning_type": "snip_momentum",
                                 "schedule": {"start_step": 1, "end_step": 4}})
    with pytest.raises(ConfigError, match="criterion state does not fit"):
        other.load_state_dict(state)


def test_masks_take_one_byte_per_weight():
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    pruner = prune(model, {"target_sparsity": 0.9})
    assert all(m.dtype == torch.bool for m in pruner.masks.values())
    held = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for layer in pruner._all_layers for t in (layer.keep,)}
    assert sum(held.values()) == sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
