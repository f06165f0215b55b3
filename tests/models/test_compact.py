"""Compaction: pruned channels removed physically, outputs equal to the masked model's."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import prune
from sparsesearch.pruning.compact import compact, compacts
from sparsesearch.records.patterns import parse_pattern
from sparsesearch.tasks.text import TinyEncoder

pytest.importorskip("torch_pruning")

ATOL = 1e-5


def config(pattern: str, sparsity: float, layers: list[str]) -> dict:
    return {"groups": [{"pruning_type": "magnitude", "pattern": pattern, "target_sparsity": sparsity,
                        "op_names": layers}]}


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4))


def outputs_equal(masked: nn.Module, compacted: nn.Module, x) -> float:
    masked.eval()
    compacted.eval()
    with torch.no_grad():
        a = masked(**x) if isinstance(x, dict) else masked(x)
        b = compacted(**x) if isinstance(x, dict) else compacted(x)
    return float((a - b).abs().max())


class ResidualCNN(nn.Module):
    """conv-BN-ReLU stem, one residual block (two conv-BN), global pooling, a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12)
        self.c3, self.b3 = nn.Conv2d(12, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b1(self.c1(x)))
        h = torch.relu(h + self.b3(self.c3(torch.relu(self.b2(self.c2(h))))))
        return self.fc(h.mean((2, 3)))


def residual_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = ResidualCNN()
    for bn in (model.b1, model.b2, model.b3):  # trained-looking statistics, so BatchNorm is not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def test_which_patterns_compact():
    assert compacts("1xchannel") and compacts("channelx1")
    assert not any(compacts(p) for p in ("1x1", "4x1", "2:4"))
    assert parse_pattern("1xchannel").whole_channels and not parse_pattern("2:4").whole_channels


@pytest.mark.parametrize("pattern,layers", [("1xchannel", ["0", "2"]), ("channelx1", ["2", "4"])])
def test_mlp_compacts_exactly(pattern, layers):
    model = mlp()
    pruner = prune(model, config(pattern, 0.5, layers))
    x = torch.randn(64, 16)
    result = compact(model, pruner, x)
    assert result.compacted, result.message
    shapes = {name: after for name, (_, after) in result.layers.items()}
    assert shapes["0"] == (16, 16) and shapes["2"] == (12, 16) and shapes["4"] == (4, 12)
    assert result.max_difference <= ATOL
    assert outputs_equal(model, result.model, x) <= ATOL
    assert result.params_after < result.params_before
    assert tuple(model[0].weight.shape) == (32, 16)  # the original model is untouched


def test_pruned_rows_with_a_bias_fold_into_the_next_layer():
    model = mlp()
    pruner = prune(model, config("1xchannel", 0.5, ["0"]))
    with torch.no_grad():
        model[0].bias.fill_(0.3)  # pruned rows still output relu(0.3): a constant the next layer must see
    x = torch.randn(32, 16)
    result = compact(model, pruner, x)
    assert result.compacted and result.layers["0"][1] == (16, 16)
    assert outputs_equal(model, result.model, x) <= ATOL


def test_cnn_with_batchnorm_and_a_residual_connection():
    model = residual_cnn()
    x = torch.randn(16, 3, 8, 8)
    # residual stream channels 1 and 4: every consumer (c2, fc) ignores them, so c1, b1, c3, b3 lose them too
    keep = {"c2": torch.ones(12, 8, 3, 3, dtype=torch.bool), "fc": torch.ones(5, 8, dtype=torch.bool)}
    for c in (1, 4):
        keep["c2"][:, c] = False
        keep["fc"][:, c] = False
    result = compact(model, keep, x)
    assert result.compacted, result.message
    assert result.layers["c1"][1] == (6, 3, 3, 3) and result.layers["c3"][1] == (6, 12, 3, 3)
    assert result.layers["b1"][1] == (6,) and result.layers["b3"][1] == (6,)
    assert result.layers["c2"][1] == (12, 6, 3, 3) and result.layers["fc"][1] == (5, 6)
    masked = residual_cnn()
    with torch.no_grad():
        for name, mask in keep.items():
            getattr(masked, name).weight.mul_(mask)
    assert outputs_equal(masked, result.model, x) <= ATOL


def test_filters_whose_constant_reaches_a_padded_convolution_stay_unless_inexact():
    model = residual_cnn()
    pruner = prune(model, config("1xchannel", 0.5, ["c2"]))
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():  # half of the pruned filters give relu(negative) = 0, half a positive constant
        pruned = [i for i in range(12) if not pruner.masks["c2"][i].any()]
        model.b2.bias[pruned] = torch.tensor([-1.0, 1.0] * (len(pruned) // 2) + [-1.0] * (len(pruned) % 2))
        model.b2.running_mean[pruned] = 0.0
    exact = compact(model, pruner, x)
    zero_ones = (len(pruned) + 1) // 2
    assert exact.compacted and exact.layers["c2"][1][0] == 12 - zero_ones
    assert exact.kept == len(pruned) - zero_ones
    assert any("padded convolution" in n and "c3" in n for n in exact.notes), exact.notes
    assert outputs_equal(model, exact.model, x) <= ATOL
    loose = compact(model, pruner, x, exact=False)
    assert loose.layers["c2"][1][0] == 12 - len(pruned)
    assert loose.max_difference > ATOL and "exact=False" in loose.message


def test_transformer_feed_forward_blocks():
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    x = torch.randint(0, 32, (16, 16))
    for pattern, layers in (("1xchannel", ["encoder.layers.*.linear1"]), ("channelx1", ["encoder.layers.*.linear2"])):
        pruned = TinyEncoder().eval()
        pruned.load_state_dict(model.state_dict())
        pruner = prune(pruned, config(pattern, 0.5, layers))
        result = compact(pruned, pruner, x)
        assert result.compacted, result.message
        for i in (0, 1):
            assert result.layers[f"encoder.layers.{i}.linear1"][1] == (64, 64)
            assert result.layers[f"encoder.layers.{i}.linear2"][1] == (64, 64)
        assert not any("self_attn" in name or "norm" in name for name in result.layers)
        assert outputs_equal(pruned, result.model, x) <= ATOL


def test_channels_that_layernorm_mixes_or_that_are_outputs_stay():
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    pruner = prune(model, config("1xchannel", 0.5, ["encoder.layers.*.linear2", "classifier"]))
    result = compact(model, pruner, torch.randint(0, 32, (8, 16)))
    assert not result.compacted
    assert any("LayerNorm" in n for n in result.notes) and any("outputs of the model" in n for n in result.notes)


def test_unstructured_masks_do_not_compact_and_the_masked_model_is_kept():
    model = mlp()
    pruner = prune(model, config("1x1", 0.8, ["0", "2"]))
    x = torch.randn(8, 16)
    result = compact(model, pruner, x)
    assert not result.compacted and "1x1 prunes no whole channel" in result.message
    assert outputs_equal(model, result.model, x) == 0.0


def test_a_group_whose_removal_changes_the_outputs_is_kept():
    class Softmaxed(nn.Module):  # softmax over the channels: a dead channel still counts in its denominator
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(8, 6), nn.Linear(8, 6), nn.Linear(6, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(torch.softmax(self.a(x), -1) + torch.relu(self.b(x)))

    torch.manual_seed(0)
    model = Softmaxed()
    keep = {"c": torch.ones(3, 6, dtype=torch.bool)}
    keep["c"][:, :2] = False
    result = compact(model, keep, torch.randn(16, 8))
    assert not result.compacted
    assert any("changes the outputs" in n for n in result.notes), result.notes


def test_a_model_that_cannot_be_traced_is_kept_masked(monkeypatch):
    import torch_pruning as tp

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operation")

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", broken)
    model = mlp()
    result = compact(model, prune(model, config("1xchannel", 0.5, ["0"])), torch.randn(4, 16))
    assert not result.compacted and "cannot trace" in result.message and "unsupported operation" in result.message


def test_missing_torch_pruning_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(ConfigError, match=r"pip install sparsesearch\[compact\]"):
        compact(mlp(), None, torch.randn(2, 16))


def test_example_inputs_are_required():
    with pytest.raises(ConfigError, match="example inputs"):
        compact(mlp(), None, None)
