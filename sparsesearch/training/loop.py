"""A small reference training loop that drives the pruner's callbacks, and an accuracy evaluation.

It is what the search runs inside every trial, and an example of where each callback goes in a user's own
loop. Batches come from an iterable, or from a callable ``epoch -> iterable`` so each epoch can reshuffle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.errors import TrainingDiverged
from sparsesearch.training.callbacks import Callbacks

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches | Callable[[int], Batches],
    *,
    epochs: int,
    pruner: Callbacks | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    on_epoch_end: Callable[[int, float], Any] | None = None,
) -> list[float]:
    """Train ``model`` for ``epochs`` with the pruner in the loop; returns the mean loss of each epoch.

    ``on_epoch_end(epoch, mean_loss)`` runs after the pruner's ``on_epoch_end``; returning True stops
    training early (the pruner's ``on_train_end`` still runs). A NaN or infinite loss raises
    :class:`TrainingDiverged` naming the epoch and step.
    """
    callbacks = pruner if pruner is not None else Callbacks()
    loss_fn = loss_fn or F.cross_entropy
    losses: list[float] = []
    model.train()
    callbacks.on_train_begin()
    try:
        for epoch in range(epochs):
            callbacks.on_epoch_begin(epoch)
            total, count = 0.0, 0
            for step, (x, y) in enumerate(batches(epoch) if callable(batches) else batches):
                callbacks.on_step_begin()
                loss = loss_fn(model(x), y)
                reg = callbacks.regularization()
                if reg.requires_grad:  # a constant zero adds nothing but an autograd node
                    loss = loss + reg
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                callbacks.on_before_optimizer_step()
                optimizer.step()
                callbacks.on_after_optimizer_step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDiverged(f"the loss became {value} at epoch {epoch}, step {step}; lower the "
                                           "learning rate or the sparsity")
                total += value
                count += 1
            mean = total / max(count, 1)
            losses.append(mean)
            callbacks.on_epoch_end()
            if on_epoch_end is not None and on_epoch_end(epoch, mean) is True:
                break
    finally:
        callbacks.on_train_end()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in [0, 1]."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(-1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(x), 1)
