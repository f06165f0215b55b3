"""Sparse save: a state_dict file whose size reflects the sparsity, loaded back exactly.

Each tensor is stored in the smallest of four exact forms:

* ``dense`` — as it is (few zeros, integers, buffers);
* ``block`` — whole zero output rows and input channels left out: the kept row and channel indices and the
  dense block between them, which is the compacted layer's weight (``1xchannel`` and ``channelx1`` masks);
* ``bitmask`` — one bit per element saying which are non-zero, and the non-zero values (unstructured, N×M,
  N:M masks);
* ``index`` — the flat positions (int32) and values of the non-zeros (above ~97 % sparsity, where positions
  cost less than a bit per element).

:func:`save_sparse` writes ``torch.save`` of plain tensors and strings (safe to read with
``weights_only=True``) and returns the bytes written; :func:`load_sparse` restores the exact state_dict
(``torch.equal`` on every tensor) into a model of the original architecture. :func:`sparse_size` is the size
without writing a file. No third-party package is needed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError

FORMAT = "sparsesearch.sparse_state"
VERSION = 1

_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def _pack(mask: torch.Tensor) -> torch.Tensor:
    """A flat boolean tensor as bytes, eight elements a byte, most significant bit first."""
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.reshape(-1, 8) * _BITS).sum(1, dtype=torch.uint8)


def _unpack(bits: torch.Tensor, numel: int) -> torch.Tensor:
    return ((bits.reshape(-1, 1) & _BITS) != 0).reshape(-1)[:numel]


def _index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel < 2 ** 31 else torch.int64


def encode(tensor: torch.Tensor) -> dict[str, Any]:
    """The smallest exact form of ``tensor`` (see the module doc), as a dict of plain values and tensors."""
    t = tensor.detach().cpu()
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0 or t.is_sparse:
        return {"kind": "dense", "data": t.to_dense() if t.is_sparse else t.contiguous()}
    size = t.element_size()
    nonzero = t != 0
    nnz = int(nonzero.sum())
    numel = t.numel()
    options: list[tuple[int, str]] = [(numel * size, "dense"),
                                      ((numel + 7) // 8 + nnz * size, "bitmask"),
                                      (nnz * (size + _index_dtype(numel).itemsize), "index")]
    if t.dim() >= 2:
        rows = nonzero.reshape(t.shape[0], -1).any(1)
        cols = nonzero.transpose(0, 1).reshape(t.shape[1], -1).any(1)
        kept = int(rows.sum()) * int(cols.sum()) * (numel // (t.shape[0] * t.shape[1]))
        options.append((kept * size + 4 * (int(rows.sum()) + int(cols.sum())), "block"))
    kind = min(options)[1]
    shape = list(t.shape)
    if kind == "dense":
        return {"kind": "dense", "data": t.contiguous()}
    if kind == "bitmask":
        return {"kind": "bitmask", "shape": shape, "bits": _pack(nonzero), "values": t[nonzero].contiguous()}
    if kind == "index":
        index = torch.nonzero(nonzero.reshape(-1)).reshape(-1).to(_index_dtype(numel))
        return {"kind": "index", "shape": shape, "index": index, "values": t.reshape(-1)[index.long()].contiguous()}
    row_idx = torch.nonzero(rows).reshape(-1).to(torch.int32)
    col_idx = torch.nonzero(cols).reshape(-1).to(torch.int32)
    block = t.index_select(0, row_idx.long()).index_select(1, col_idx.long()).contiguous()
    return {"kind": "block", "shape": shape, "rows": row_idx, "cols": col_idx, "data": block}


def decode(entry: Mapping[str, Any], key: str = "tensor") -> torch.Tensor:
    """The tensor an :func:`encode` entry holds."""
    kind = entry.get("kind")
    if kind == "dense":
        return entry["data"]
    if kind not in ("bitmask", "index", "block"):
        raise ConfigError("unknown tensor encoding in a sparse state file", key=key, value=kind,
                          allowed="dense, bitmask, index, block")
    shape = torch.Size(entry["shape"])
    if kind == "block":
        data = entry["data"]
        out = data.new_zeros(shape)
        rows, cols = entry["rows"].long(), entry["cols"].long()
        out[rows.reshape(-1, 1), cols.reshape(1, -1)] = data
        return out
    values = entry["values"]
    flat = values.new_zeros(shape.numel())
    if kind == "bitmask":
        flat[_unpack(entry["bits"], shape.numel())] = values
    else:
        flat[entry["index"].long()] = values
    return flat.reshape(shape)


def _state(model_or_state: nn.Module | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(model_or_state, nn.Module):
        return model_or_state.state_dict()
    if isinstance(model_or_state, Mapping):
        return model_or_state
    raise ConfigError("expected a model or a state_dict", key="model", value=type(model_or_state).__name__,
                      allowed="a torch.nn.Module or a mapping of names to tensors")


def _payload(model_or_state: nn.Module | Mapping[str, Any]) -> dict[str, Any]:
    tensors = {}
    for name, value in _state(model_or_state).items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(f"state entry {name!r} is a {type(value).__name__}, not a tensor; a sparse state "
                              "holds tensors only", key=name, allowed="a state_dict of tensors")
        tensors[name] = encode(value)
    return {"format": FORMAT, "version": VERSION, "tensors": tensors}


def save_sparse(model_or_state: nn.Module | Mapping[str, Any], path: str | os.PathLike[str]) -> int:
    """Write the sparse state of a model (or a state_dict) to ``path``; returns the bytes written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _serialize(model_or_state)
    target.write_bytes(data)
    return len(data)


def _serialize(model_or_state: nn.Module | Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()  # not torch.save(path): the archive's inner names would depend on the file name
    torch.save(_payload(model_or_state), buffer)
    return buffer.getvalue()


def sparse_size(model_or_state: nn.Module | Mapping[str, Any]) -> int:
    """The bytes :func:`save_sparse` would write, without writing a file."""
    return len(_serialize(model_or_state))


def read_sparse(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The exact state_dict a sparse state file holds."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ConfigError(f"cannot read the sparse state file: {exc}", key="path", value=str(path),
                          allowed="a file written by sparsesearch's save_sparse") from None
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        raise ConfigError("not a sparse state file", key="path", value=str(path),
                          allowed="a file written by sparsesearch's save_sparse (format sparsesearch.sparse_state)")
    if payload.get("version") != VERSION:
        raise ConfigError("unsupported sparse state version", key="version", value=payload.get("version"),
                          allowed=str(VERSION))
    return {name: decode(entry, key=name) for name, entry in payload["tensors"].items()}


def load_sparse(path: str | os.PathLike[str], model: nn.Module) -> nn.Module:
    """Load a sparse state file into ``model`` (the original architecture); returns the model.

    Keys and shapes must match exactly; a mismatch is a ConfigError naming them.
    """
    state = read_sparse(path)
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or extra or wrong:
        raise ConfigError(f"the sparse state does not fit this model: missing {missing[:5]}, unexpected "
                          f"{extra[:5]}, other shapes {wrong[:5]}", key="model", value=type(model).__name__,
                          allowed="the architecture the state was saved from (a compacted model is saved whole)")
    model.load_state_dict(state)
    return model
