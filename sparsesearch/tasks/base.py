"""The Task protocol, data splits, and batching of in-memory tensors."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class Splits:
    """Train, validation and test tensors. Validation picks trials; test is only ever recorded."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}


@runtime_checkable
class Task(Protocol):
    """What the search needs from a task.

    ``model()`` builds a fresh model (the caller seeds torch first, so initialisation is reproducible);
    ``splits(seed)`` returns the same data for the same seed; ``budget_hints`` gives defaults for the
    study's budget (``epochs``, ``dense_epochs``, ``batch_size``, ``optimizer``, ``lr``).
    """

    name: str
    budget_hints: Mapping[str, Any]

    def model(self) -> nn.Module: ...

    def splits(self, seed: int) -> Splits: ...


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Callable[[int], Iterator]:
    """``epoch -> iterator of (x, y)`` minibatches in an order fixed by ``seed`` and the epoch."""

    def per_epoch(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]

    return per_epoch


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
