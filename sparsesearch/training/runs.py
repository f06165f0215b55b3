"""Training runs the search makes: the dense baseline and each trial, on in-memory task data.

Pure torch plus the reference loop (no optuna here), so reproductions and benchmarks run exactly what the
trials ran: the same optimizer construction, the same seeded batch order, the same evaluation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparsesearch.pruning import Pruner, PruningConfig, sparsity_report
from sparsesearch.records.training import TrainingSettings
from sparsesearch.tasks import Splits, Task, batches, steps_per_epoch
from sparsesearch.training import evaluate, train

log = logging.getLogger(__name__)

#: called after each epoch with (epoch, metrics); returns a reason string to stop the run early
EpochHook = Callable[[int, dict[str, float]], "str | None"]


@dataclass
class RunResult:
    """What a training run achieved; sparsities are counted from the weights."""

    val_accuracy: float
    test_accuracy: float
    sparsity: float
    model_sparsity: float
    total_sparsity: float
    epochs_run: int
    seconds: float
    cpu_seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None

    def metrics(self) -> dict[str, float]:
        return {"val_accuracy": self.val_accuracy, "test_accuracy": self.test_accuracy, "sparsity": self.sparsity,
                "model_sparsity": self.model_sparsity, "total_sparsity": self.total_sparsity,
                "epochs_run": float(self.epochs_run), "train_seconds": self.seconds,
                "train_cpu_seconds": self.cpu_seconds}


def make_optimizer(settings: TrainingSettings, params: Any) -> torch.optim.Optimizer:
    name = settings.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def fresh_model(task: Task, seed: int) -> nn.Module:
    """The task's model, initialised reproducibly from ``seed``."""
    torch.manual_seed(seed)
    return task.model()


def run(model: nn.Module, splits: Splits, settings: TrainingSettings, *, pruning: PruningConfig | None = None,
        on_epoch: EpochHook | None = None) -> RunResult:
    """Train ``model`` (pruning with ``pruning`` in the loop when given) and measure it.

    ``on_epoch(epoch, metrics)`` sees validation accuracy, current sparsity (counted) and the epoch's mean
    loss after every epoch; a returned string stops training and becomes ``stop_reason``.
    """
    spe = steps_per_epoch(len(splits.x_train), settings.batch_size)
    pruner = Pruner(model, pruning, steps_per_epoch=spe) if pruning is not None else None
    layers = pruner.layer_names if pruner is not None else None
    optimizer = make_optimizer(settings, model.parameters())
    torch.manual_seed(settings.seed)
    curve: list[dict[str, float]] = []
    stop: list[str] = []
    started, cpu_started = time.perf_counter(), time.process_time()

    def epoch_end(epoch: int, loss: float) -> bool:
        val = evaluate(model, splits.x_val, splits.y_val)
        sparsity = sparsity_report(model, layers).pruned_sparsity if pruner is not None else 0.0
        row = {"val_accuracy": val, "sparsity": sparsity, "loss": loss}
        if pruner is not None:
            row["target_reached"] = float(pruner.step > pruner.end_step)
        curve.append(row)
        if on_epoch is not None:
            reason = on_epoch(epoch, row)
            if reason:
                stop.append(reason)
                return True
        return False

    train(model, optimizer, batches(splits.x_train, splits.y_train, settings.batch_size, settings.seed),
          epochs=settings.epochs, pruner=pruner, on_epoch_end=epoch_end)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    report = sparsity_report(model, layers) if layers else None
    everything = sparsity_report(model)
    return RunResult(
        val_accuracy=evaluate(model, splits.x_val, splits.y_val),
        test_accuracy=evaluate(model, splits.x_test, splits.y_test),
        sparsity=report.pruned_sparsity if report else 0.0,
        model_sparsity=everything.pruned_sparsity,
        total_sparsity=everything.total_sparsity,
        epochs_run=len(curve),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        curve=curve,
        layers=report.rows() if report else [],
        stop_reason=stop[0] if stop else None,
    )


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict({k: v.clone() for k, v in state.items()})
    return model
