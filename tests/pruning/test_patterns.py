"""Each pattern gives exactly its structure, at several sparsities and shapes, Linear and Conv2d."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import prune
from sparsesearch.pruning.patterns import from_2d, to_2d
from sparsesearch.records.patterns import parse_pattern


def _layer(kind: str, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Sequential(nn.Linear(shape[1], shape[0]))
    return nn.Sequential(nn.Conv2d(shape[1], shape[0], shape[2]))


SHAPES = [("linear", (16, 32)), ("linear", (64, 8)), ("conv", (16, 8, 3)), ("conv", (8, 16, 1))]
SPARSITIES = [0.25, 0.5, 0.75, 0.9]


def _mask2d(model: nn.Module, pattern: str, sparsity: float) -> torch.Tensor:
    pruner = prune(model, {"pattern": pattern, "target_sparsity": sparsity})
    (mask,) = pruner.masks.values()
    assert torch.equal(mask, model[0].weight != 0)
    return to_2d(mask)


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("n,m", [(4, 1), (1, 4), (2, 2), (8, 4)])
def test_blocks_are_all_zero_or_all_kept(kind, shape, sparsity, n, m):
    mask = _mask2d(_layer(kind, shape), f"{n}x{m}", sparsity)
    rows, cols = mask.shape
    blocks = mask.reshape(rows // n, n, cols // m, m).permute(0, 2, 1, 3).reshape(-1, n * m)
    kept = blocks.sum(-1)
    assert bool(((kept == 0) | (kept == n * m)).all())
    # the layer prunes round(s*n) weights, i.e. round(round(s*n) / block size) whole blocks
    assert int((kept == 0).sum()) == round(round(sparsity * mask.numel()) / (n * m))


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8), (1, 2)])
def test_n_in_m_full_target_has_exactly_n_zeros_per_group(kind, shape, n, m):
    mask = _mask2d(_layer(kind, shape, seed=n + m), f"{n}:{m}", n / m)
    rows, cols = mask.shape
    zeros = (~mask).reshape(rows, cols // m, m).sum(-1)
    assert bool((zeros == n).all())
    assert int(zeros.numel()) == rows * cols // m  # the group count


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("sparsity", [0.1, 0.25, 0.4])
def test_n_in_m_partial_target_prunes_whole_groups(kind, shape, sparsity):
    mask = _mask2d(_layer(kind, shape), "2:4", sparsity)
    rows, cols = mask.shape
    zeros = (~mask).reshape(rows, cols // 4, 4).sum(-1)
    assert bool(((zeros == 0) | (zeros == 2)).all())
    assert int((zeros == 2).sum()) == round(round(sparsity * mask.numel()) / 2)


def test_two_four_mask_is_valid_for_sparse_tensor_cores():
    """2:4 on Conv runs along input channels at each kernel position (the NHWC layout)."""
    model = _layer("conv", (16, 8, 3), seed=4)
    prune(model, {"pattern": "2:4", "target_sparsity": 0.5})
    w = model[0].weight.detach().permute(0, 2, 3, 1)  # (out, kh, kw, in)
    groups = (w != 0).reshape(16, 3, 3, 2, 4).sum(-1)
    assert bool((groups == 2).all())


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_output_channels_are_pruned_whole(kind, shape, sparsity):
    mask = _mask2d(_layer(kind, shape), "1xchannel", sparsity)
    rows = mask.all(1) | (~mask).all(1)
    assert bool(rows.all())  # every output row (filter) entirely kept or entirely pruned
    assert int((~mask).all(1).sum()) == round(sparsity * mask.shape[0])


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_input_columns_are_pruned_whole(kind, shape, sparsity):
    mask = _mask2d(_layer(kind, shape), "channelx1", sparsity)
    cols = mask.all(0) | (~mask).all(0)
    assert bool(cols.all())
    assert int((~mask).all(0).sum()) == round(sparsity * mask.shape[1])


@pytest.mark.parametrize("kind,shape", SHAPES)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_unstructured_prunes_round_s_n(kind, shape, sparsity):
    mask = _mask2d(_layer(kind, shape), "1x1", sparsity)
    assert int((~mask).sum()) == round(sparsity * mask.numel())


def test_conv_2d_view_round_trips():
    t = torch.randn(6, 4, 3, 2)
    assert torch.equal(from_2d(to_2d(t), t.shape), t)
    assert to_2d(t).shape == (6, 3 * 2 * 4)
    # consecutive columns are consecutive input channels at one kernel position
    assert torch.equal(to_2d(t)[:, :4], t[:, :, 0, 0])


@pytest.mark.parametrize("pattern,shape,message", [
    ("4x1", (10, 8), "10 output rows are not a multiple of 4"),
    ("1x4", (8, 10), "10 input columns are not a multiple of 4"),
    ("2:4", (8, 6), "6 input columns are not a multiple of 4"),
])
def test_block_that_does_not_divide_names_the_layer(pattern, shape, message):
    model = nn.Sequential(nn.Linear(shape[1], shape[0]))
    with pytest.raises(ConfigError) as info:
        prune(model, {"pattern": pattern, "target_sparsity": 0.5})
    text = str(info.value)
    assert "'0'" in text and message in text and "groups[0].pattern" in text


def test_conv_block_must_divide_input_channels_not_just_columns():
    model = nn.Sequential(nn.Conv2d(6, 8, 2))  # 6 input channels x 4 kernel positions = 24 columns
    with pytest.raises(ConfigError, match="6 input channels are not a multiple of 4"):
        prune(model, {"pattern": "1x4", "target_sparsity": 0.5})


@pytest.mark.parametrize("text,suggestion", [("4X1", "4x1"), ("2/4", "2:4"), ("4*1", "4x1"), ("channelsx1", "channelx1")])
def test_misspelled_patterns_suggest_the_valid_spelling(text, suggestion):
    with pytest.raises(ConfigError) as info:
        parse_pattern(text)
    assert info.value.suggestion == suggestion
    assert "allowed: 1x1" in str(info.value)


@pytest.mark.parametrize("text", ["0x4", "4:4", "3:2", "channelxchannel", "blocky", ""])
def test_invalid_patterns_are_config_errors(text):
    with pytest.raises(ConfigError):
        parse_pattern(text)


@pytest.mark.parametrize("pattern", ["1xchannel", "channelx1", "4x1"])
def test_global_structured_scope_counts_weights_across_layers_of_different_group_sizes(pattern):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    pruner = prune(model, {"pattern": pattern, "pruning_scope": "global", "target_sparsity": 0.6,
                           "max_sparsity_ratio_per_op": 1.0})
    total = sum(int(m.numel()) for m in pruner.masks.values())
    zeros = sum(int((~m).sum()) for m in pruner.masks.values())
    largest_group = max(to_2d(m).shape[1] if pattern == "1xchannel" else
                        (to_2d(m).shape[0] if pattern == "channelx1" else 4) for m in pruner.masks.values())
    assert abs(zeros - round(0.6 * total)) <= largest_group / 2
    for name, mask in pruner.masks.items():
        m2 = to_2d(mask)
        if pattern == "1xchannel":
            assert bool((m2.all(1) | (~m2).all(1)).all()), name
        elif pattern == "channelx1":
            assert bool((m2.all(0) | (~m2).all(0)).all()), name
