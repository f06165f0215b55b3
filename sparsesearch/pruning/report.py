"""Achieved sparsity, always re-counted from the weights, per layer and overall, as plain data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from sparsesearch.pruning.targets import prunable_layers


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    type: str
    shape: tuple[int, ...]
    params: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape), "sparsity": self.sparsity}


@dataclass(frozen=True)
class SparsityReport:
    """``layers``: the reported (pruned) layers' weights; ``total_*``: every parameter of the model.

    ``warnings``: what looks wrong with the run that produced it (a training-loop callback never called, a
    schedule longer than the training, a target clipped by a bound); :meth:`Pruner.report` fills it.
    """

    layers: tuple[LayerSparsity, ...]
    total_params: int
    total_zeros: int
    warnings: tuple[str, ...] = ()

    @property
    def pruned_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def pruned_zeros(self) -> int:
        return sum(layer.zeros for layer in self.layers)

    @property
    def pruned_sparsity(self) -> float:
        """Sparsity over the reported layers' weights (what pruning targets)."""
        return self.pruned_zeros / self.pruned_params if self.pruned_params else 0.0

    @property
    def total_sparsity(self) -> float:
        """Sparsity over all parameters of the model (biases, norms and unpruned layers included)."""
        return self.total_zeros / self.total_params if self.total_params else 0.0

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer (for a table)."""
        return [layer.to_dict() for layer in self.layers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.rows(),
            "pruned_params": self.pruned_params,
            "pruned_zeros": self.pruned_zeros,
            "pruned_sparsity": self.pruned_sparsity,
            "total_params": self.total_params,
            "total_zeros": self.total_zeros,
            "total_sparsity": self.total_sparsity,
            "warnings": list(self.warnings),
        }


@torch.no_grad()
def sparsity_report(model: nn.Module, layers: Iterable[str] | None = None) -> SparsityReport:
    """Count zeros in the weights of ``layers`` (default: every Linear and Conv layer) and in all params.

    A weight shared by several modules (tied weights) is counted once, under the first name.
    """
    modules = dict(model.named_modules(remove_duplicate=False))
    names = [n for n, _ in prunable_layers(model)] if layers is None else list(layers)
    rows = []
    seen: set[int] = set()
    for name in names:
        weight = modules[name].weight
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        rows.append(LayerSparsity(name, type(modules[name]).__name__, tuple(weight.shape), weight.numel(),
                                  int((weight == 0).sum())))
    total = zeros = 0
    for p in model.parameters():
        total += p.numel()
        zeros += int((p == 0).sum())
    return SparsityReport(tuple(rows), total, zeros)
