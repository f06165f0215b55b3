"""Sparse save: the file's size follows the sparsity, and loading restores the exact state_dict."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import prune
from sparsesearch.pruning.sparse_state import decode, encode, load_sparse, read_sparse, save_sparse, sparse_size


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.BatchNorm1d(512), nn.Linear(512, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def dense_bytes(m: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def pruned(pattern: str, sparsity: float) -> nn.Module:
    m = model()
    prune(m, {"groups": [{"pruning_type": "magnitude", "pattern": pattern, "target_sparsity": sparsity,
                          "op_names": ["0", "3"]}]})
    return m


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("pattern,sparsity,kind,at_most", [
    ("1x1", 0.9, "bitmask", 0.20),      # 10 % of the values + one bit per weight
    ("1x1", 0.98, "index", 0.07),       # positions cost less than bits
    ("1xchannel", 0.75, "block", 0.30),  # the kept rows only: the compacted layer's weight
    ("2:4", 0.5, "bitmask", 0.60),
])
def test_round_trip_is_exact_and_small(tmp_path, pattern, sparsity, kind, at_most):
    m = pruned(pattern, sparsity)
    path = tmp_path / "model.pt"
    size = save_sparse(m, path)
    assert size == path.stat().st_size == sparse_size(m)
    assert size <= at_most * dense_bytes(m), (size, dense_bytes(m))
    assert encode(m[0].weight)["kind"] == kind
    fresh = model()
    load_sparse(path, fresh)
    assert_same_state(m, fresh)


def test_a_dense_model_costs_no_more_than_torch_save(tmp_path):
    m = model()
    assert save_sparse(m, tmp_path / "d.pt") <= 1.01 * dense_bytes(m)
    assert_same_state(m, load_sparse(tmp_path / "d.pt", model()))


def test_every_encoding_decodes_exactly():
    g = torch.Generator().manual_seed(1)
    for shape in ((7, 9), (6, 5, 3, 3), (33,)):
        for share in (0.0, 0.3, 0.9, 0.995):
            t = torch.randn(shape, generator=g)
            t[torch.rand(shape, generator=g) < share] = 0
            if len(shape) > 1:
                t[1] = 0
                t[:, 2] = 0
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                x = t.to(dtype)
                assert torch.equal(decode(encode(x)), x)
    ints = torch.arange(10)
    assert encode(ints)["kind"] == "dense" and torch.equal(decode(encode(ints)), ints)


def test_a_state_that_does_not_fit_is_a_clear_error(tmp_path):
    path = tmp_path / "m.pt"
    save_sparse(pruned("1x1", 0.9), path)
    with pytest.raises(ConfigError, match="does not fit"):
        load_sparse(path, nn.Sequential(nn.Linear(256, 512)))
    torch.save({"weight": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match="not a sparse state file"):
        read_sparse(tmp_path / "plain.pt")
