"""Measured costs: latency, non-zero parameters, saved bytes, FLOPs; 2:4 says when it cannot measure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsesearch.pruning import prune
from sparsesearch.pruning.sparse_state import sparse_size
from sparsesearch.training.costs import (
    Unavailable,
    batch_of,
    flops,
    latency_ms,
    measure_costs,
    params,
    semi_structured_latency_ms,
    semi_structured_support,
    size_bytes,
)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 4))


def pruned(pattern: str, sparsity: float = 0.5) -> tuple[nn.Module, object]:
    m = mlp()
    return m, prune(m, {"groups": [{"pruning_type": "magnitude", "pattern": pattern, "target_sparsity": sparsity,
                                    "op_names": ["0", "2"]}]})


def test_counts_follow_the_zeros():
    m = mlp()
    dense_params = sum(p.numel() for p in m.parameters())
    assert params(m) == dense_params == params(m, nonzero=False)
    weights = 16 * 32 + 32 * 24 + 24 * 4
    biases = 32 + 24 + 4
    assert flops(m, torch.randn(1, 16)) == 2 * weights + biases
    assert flops(m, torch.randn(3, 16)) == 3 * (2 * weights + biases)
    p, _ = pruned("1x1", 0.5)
    gone = (16 * 32 + 32 * 24) // 2
    assert params(p) == dense_params - gone
    assert flops(p, torch.randn(1, 16)) == 2 * (weights - gone) + biases
    assert flops(p, torch.randn(1, 16), sparse=False) == 2 * weights + biases
    assert size_bytes(p) == sparse_size(p) < size_bytes(m)


def test_conv_flops():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert flops(conv, torch.randn(1, 3, 5, 5)) == 2 * 8 * 3 * 9 * 25


def test_latency_is_a_median_of_positive_times():
    m = mlp()
    ms = latency_ms(m, torch.randn(4, 16), batch_size=64, repeats=5, warmup=1)
    assert ms > 0
    assert torch.get_num_threads() >= 1


def test_batch_of_cuts_and_repeats():
    x = torch.arange(6).reshape(3, 2)
    assert batch_of(x, 2).shape == (2, 2) and batch_of(x, 7).shape == (7, 2) and batch_of(x, None) is x
    d = batch_of({"ids": x, "mask": x}, 5)
    assert d["ids"].shape == (5, 2) and d["mask"].shape == (5, 2)


def test_2to4_is_unavailable_off_cuda():
    m, _ = pruned("2:4")
    reason = semi_structured_support("cpu")
    assert reason is not None and "cpu" in reason
    result = semi_structured_latency_ms(m, torch.randn(8, 16), device="cpu")
    assert isinstance(result, Unavailable) and not result and "NVIDIA" in result.reason
    costs, _ = measure_costs(m, torch.randn(8, 16), patterns=["2:4"], repeats=3)
    assert costs.latency_2to4_ms is None
    assert any("2:4 latency not measured" in n for n in costs.notes)


def test_measure_costs_compacts_whole_channel_patterns():
    pytest.importorskip("torch_pruning")
    m, pruner = pruned("1xchannel")
    x = torch.randn(32, 16)
    costs, compaction = measure_costs(m, x, masks=pruner, batch_size=64, repeats=3)
    assert compaction is not None and compaction.compacted and costs.measured == "compacted"
    assert costs.params == params(compaction.model) < params(m, nonzero=False)
    masked, none = measure_costs(m, x, compaction=False, repeats=3)
    assert none is None and masked.measured == "masked"
    assert costs.flops <= masked.flops
    assert set(costs.as_dict()) >= {"latency_ms", "params", "size_bytes", "flops", "measured"}


def test_unstructured_patterns_measure_the_masked_model():
    m, pruner = pruned("1x1")
    costs, compaction = measure_costs(m, torch.randn(8, 16), masks=pruner, repeats=3)
    assert compaction is None and costs.measured == "masked"


def test_example_inputs_are_the_first_validation_batch():
    from sparsesearch.tasks import LoopTask, resolve_task
    from sparsesearch.training.costs import example_inputs

    task = resolve_task("digits-cnn")
    x = example_inputs(task)
    assert torch.equal(x, next(iter(task.val_data))[0])
    text = example_inputs(resolve_task("text-transformer"))
    assert set(text) == {"input_ids"}
    loop = LoopTask(name="own", model=mlp, train=lambda *a: None, evaluate=lambda m: {"accuracy": 1.0},
                    steps_per_epoch=1)
    assert example_inputs(loop) is None
