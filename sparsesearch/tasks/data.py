"""Batches as users have them: tuples ``(inputs, targets)`` or dicts, from DataLoaders or any iterable.

:func:`split_batch` finds the inputs and the targets of a batch; :func:`to_device` moves any nesting of
tensors; :class:`TensorBatches` shuffles in-memory tensors per epoch by index (fast for small data, and
reproducible from a seed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

from sparsesearch.errors import ConfigError

#: dict keys taken as the targets of a dict batch, in this order (as Hugging Face and most loaders name them)
TARGET_KEYS = ("labels", "label", "targets", "target", "y")

#: train data: an iterable of batches, or ``epoch -> iterable`` so each epoch can reshuffle
Data = Iterable[Any] | Callable[[int], Iterable[Any]]


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch: a ``(x, y)`` pair, or a dict whose targets are under one of
    :data:`TARGET_KEYS` (the inputs are the rest of the dict, passed to the model as keyword arguments)."""
    if isinstance(batch, Mapping):
        for key in TARGET_KEYS:
            if key in batch:
                return {k: v for k, v in batch.items() if k != key}, batch[key]
        raise ConfigError("a dict batch needs its targets under one of the keys " + ", ".join(TARGET_KEYS),
                          key="batch", value=sorted(batch), allowed="a dict with a 'labels' (or label, "
                          "targets, target, y) entry, or an (inputs, targets) pair; or give the task a batch function")
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ConfigError("cannot tell the inputs from the targets of this batch", key="batch",
                      value=type(batch).__name__, allowed="(inputs, targets) pairs or dicts with 'labels'; or give "
                      "the task a batch function returning (inputs, targets)")


def to_device(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor inside it (dicts, lists, tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True) if value.device != device else value
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def forward(model: torch.nn.Module, inputs: Any) -> Any:
    """The model's outputs: ``model(**inputs)`` for a dict, ``model(inputs)`` otherwise; a Hugging Face style
    output with ``logits`` gives the logits."""
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return getattr(out, "logits", out) if not isinstance(out, torch.Tensor) else out


def epoch_batches(data: Data, epoch: int) -> Iterable[Any]:
    """The batches of one epoch (``data`` may be ``epoch -> iterable``)."""
    return data(epoch) if callable(data) else data


def count_batches(data: Data) -> int:
    """Batches per epoch: ``len()`` when the data has one (a DataLoader does), else one pass counts them."""
    first = epoch_batches(data, 0)
    try:
        return len(first)  # type: ignore[arg-type]
    except TypeError:
        return sum(1 for _ in first)


class TensorBatches:
    """In-memory ``(x, y)`` tensors as shuffled minibatches, in an order fixed by ``seed`` and the epoch.

    Iterating gives epoch 0's order; calling with an epoch gives that epoch's (the training loop does).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, int(batch_size), int(seed), shuffle

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __call__(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(len(self.x), generator=g)
        else:
            order = torch.arange(len(self.x))
        for i in range(0, len(self.x), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self(0)
