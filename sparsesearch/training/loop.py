"""The reference training loop that drives the pruner's callbacks, and the evaluation of a task's metrics.

It is what the search runs inside every trial of a data-and-pieces task, and an example of where each
callback goes in a loop of your own: batches from any iterable (or ``epoch -> iterable``), tuples or dicts,
on any device, with optional mixed precision, gradient clipping and a learning-rate scheduler.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.errors import ConfigError, TrainingDiverged
from sparsesearch.tasks.data import Data, epoch_batches, forward, split_batch, to_device
from sparsesearch.tasks.metrics import Metric
from sparsesearch.training.callbacks import Callbacks

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) is CUDA when present, else the CPU; anything else as torch spells it."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"not a device: {exc}", key="device", value=device, allowed="auto, cpu, cuda, cuda:0, mps") from None


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Data,
    *,
    epochs: int,
    pruner: Callbacks | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    on_epoch_end: Callable[[int, float], Any] | None = None,
    scheduler: Any = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    grad_clip: float | None = None,
    split: Callable[[Any], tuple[Any, Any]] | None = None,
) -> list[float]:
    """Train ``model`` for ``epochs`` with the pruner in the loop; returns the mean loss of each epoch.

    ``on_epoch_end(epoch, mean_loss)`` runs after the pruner's ``on_epoch_end``; returning True stops
    training early (the pruner's ``on_train_end`` still runs). ``scheduler.step()`` follows every optimizer
    step. A NaN or infinite loss raises :class:`TrainingDiverged` naming the epoch and step. ``device``
    None leaves tensors where they are.
    """
    callbacks = pruner if pruner is not None else Callbacks()
    loss_fn = loss_fn or F.cross_entropy
    split = split or split_batch
    where = pick_device(device) if device is not None else None
    scaler = torch.amp.GradScaler(where.type) if precision == "fp16" and where is not None \
        and where.type == "cuda" else None
    losses: list[float] = []
    model.train()
    callbacks.on_train_begin()
    try:
        for epoch in range(epochs):
            callbacks.on_epoch_begin(epoch)
            total, count = torch.zeros(()), 0
            for step, batch in enumerate(epoch_batches(batches, epoch)):
                inputs, targets = split(batch)
                if where is not None:
                    inputs, targets = to_device(inputs, where), to_device(targets, where)
                callbacks.on_step_begin()
                with _autocast(where or torch.device("cpu"), precision):
                    loss = loss_fn(forward(model, inputs), targets)
                reg = callbacks.regularization()
                if reg.requires_grad:  # a constant zero adds nothing but an autograd node
                    loss = loss + reg
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                callbacks.on_before_optimizer_step()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                callbacks.on_after_optimizer_step()
                if scheduler is not None:
                    scheduler.step()
                value = loss.detach().float().cpu()
                if not bool(torch.isfinite(value)):
                    raise TrainingDiverged(f"the loss became {float(value)} at epoch {epoch}, step {step}; lower the "
                                           "learning rate or the sparsity")
                total += value
                count += 1
            mean = float(total) / max(count, 1)
            losses.append(mean)
            callbacks.on_epoch_end()
            if on_epoch_end is not None and on_epoch_end(epoch, mean) is True:
                break
    finally:
        callbacks.on_train_end()
    return losses


def _cat(parts: list[Any]) -> Any:
    if not parts:
        return torch.empty(0)
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat([p.reshape(-1, *p.shape[1:]) if p.dim() else p.reshape(1) for p in parts])
    return [x for p in parts for x in (p if isinstance(p, (list, tuple)) else [p])]


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable[Any], metrics: Sequence[Metric], *,
             device: str | torch.device | None = None, precision: str = "fp32",
             split: Callable[[Any], tuple[Any, Any]] | None = None) -> dict[str, float]:
    """Each metric over the whole of ``data`` (outputs and targets concatenated over batches, on the CPU)."""
    split = split or split_batch
    where = pick_device(device) if device is not None else None
    was_training = model.training
    model.eval()
    outputs: list[Any] = []
    targets: list[Any] = []
    try:
        for batch in data:
            inputs, target = split(batch)
            if where is not None:
                inputs = to_device(inputs, where)
            with _autocast(where or torch.device("cpu"), precision):
                out = forward(model, inputs)
            outputs.append(out.detach().float().cpu() if isinstance(out, torch.Tensor) else out)
            targets.append(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
    finally:
        model.train(was_training)
    out_all, tgt_all = _cat(outputs), _cat(targets)
    result = {}
    for metric in metrics:
        if metric.fn is None:
            raise ConfigError(f"metric {metric.name!r} has no function to compute it", key=f"metrics.{metric.name}",
                              allowed="Metric(name, fn, direction) with fn(outputs, targets) -> float")
        value = float(metric.fn(out_all, tgt_all))
        result[metric.name] = value if math.isfinite(value) else float("nan")
    return result
