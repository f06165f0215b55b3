"""The two ways to describe a task, and the older tensor-splits protocol they grew from.

1. :class:`Task` — **data and pieces**: a model factory, train/validation/test data as any iterables of
   batches (DataLoaders included; batches as ``(inputs, targets)`` pairs or dicts), a loss, metrics (one is
   the objective), optionally an optimizer and learning-rate scheduler factory, a device, mixed precision,
   gradient clipping and layers that stay dense. sparsesearch's loop trains it with the pruner's callbacks.
2. :class:`LoopTask` — **your own loop**: ``train(model, pruning, epochs, report)`` and
   ``evaluate(model) -> dict``. sparsesearch hands your loop the pruning callbacks to call at the documented
   points, and ``report(epoch, metrics)`` for per-epoch results; everything else your loop does is yours.

A legacy task object (``name``, ``budget_hints``, ``model()``, ``splits(seed) -> Splits``) still works: it
becomes a :class:`Task` over in-memory tensors (:func:`from_splits`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.errors import ConfigError
from sparsesearch.tasks.data import Data, TensorBatches
from sparsesearch.tasks.metrics import ACCURACY, Metric

#: ``report(epoch, metrics)``; returns True when the search asks the loop to stop (early stopping)
Report = Callable[[int, Mapping[str, float]], bool]
#: ``optimizer(params, settings)``: the settings carry the trial's learning rate, momentum, weight decay
OptimizerFactory = Callable[[Iterable[nn.Parameter], Any], torch.optim.Optimizer]
#: ``scheduler(optimizer, total_steps)``, stepped after every optimizer step
SchedulerFactory = Callable[[torch.optim.Optimizer, int], Any]

PRECISIONS = ("fp32", "bf16", "fp16")


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
class SplitsTask(Protocol):
    """The older task protocol: a model factory and in-memory tensor splits fixed by a seed."""

    name: str
    budget_hints: Mapping[str, Any]

    def model(self) -> nn.Module: ...

    def splits(self, seed: int) -> Splits: ...


def _check_metrics(metrics: Sequence[Metric], objective: str | None, name: str) -> None:
    if not metrics:
        raise ConfigError("a task needs at least one metric", key=f"{name}.metrics", value=[],
                          allowed="e.g. [sparsesearch.tasks.ACCURACY] or Metric('f1', f1, 'maximize')")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ConfigError("metric names must differ", key=f"{name}.metrics", value=names)
    if objective is not None and objective not in names:
        raise ConfigError("the objective must be one of the task's metrics", key=f"{name}.objective",
                          value=objective, allowed=names)


class _TaskCommon:
    name: str
    metrics: Sequence[Metric]
    objective: str | None

    @property
    def objective_metric(self) -> Metric:
        """The metric the study optimises (the first one unless ``objective`` names another)."""
        wanted = self.objective or self.metrics[0].name
        return next(m for m in self.metrics if m.name == wanted)


@dataclass
class Task(_TaskCommon):
    """Data and pieces: sparsesearch's loop trains ``model()`` on ``train_data`` with the pruner in the loop.

    ``train_data`` may be ``epoch -> iterable`` to reshuffle or augment per epoch. ``loss(outputs, targets)``
    and each metric's ``fn(outputs, targets)`` see the model's outputs (``logits`` of a Hugging Face output)
    and the batch's targets. ``optimizer(params, settings)`` defaults to the study's optimizer and learning
    rate; ``scheduler(optimizer, total_steps)`` to the study's ``lr_schedule``. ``device="auto"`` picks CUDA
    when present. ``dense_layers`` are regular expressions of layer names never pruned. ``pretrained``: the
    model factory returns trained weights (or ``checkpoint`` names a ``state_dict`` file to load), so the
    dense metrics are measured once instead of training a baseline.
    """

    name: str
    model: Callable[[], nn.Module]
    train_data: Data
    val_data: Iterable[Any]
    test_data: Iterable[Any] | None = None
    loss: Callable[[Any, Any], torch.Tensor] = F.cross_entropy
    metrics: Sequence[Metric] = (ACCURACY,)
    objective: str | None = None
    optimizer: OptimizerFactory | None = None
    scheduler: SchedulerFactory | None = None
    device: str = "auto"
    precision: str = "fp32"
    grad_clip: float | None = None
    dense_layers: Sequence[str] = ()
    pretrained: bool = False
    checkpoint: str | None = None
    budget_hints: Mapping[str, Any] = field(default_factory=dict)
    #: ``batch -> (inputs, targets)`` when batches are neither pairs nor dicts with ``labels``
    batch: Callable[[Any], tuple[Any, Any]] | None = None
    #: batches per epoch when ``train_data`` has no ``len()`` (else counted)
    steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        _check_metrics(self.metrics, self.objective, self.name)
        if self.precision not in PRECISIONS:
            raise ConfigError("unknown precision", key=f"{self.name}.precision", value=self.precision,
                              allowed=PRECISIONS)
        if not callable(self.model):
            raise ConfigError("model must be a callable that builds the model", key=f"{self.name}.model",
                              value=type(self.model).__name__, allowed="a function or class returning an nn.Module")


@dataclass
class LoopTask(_TaskCommon):
    """Your own loop: ``train(model, pruning, epochs, report)`` trains ``model`` for ``epochs`` epochs, calling
    ``pruning``'s callbacks (a :class:`~sparsesearch.pruning.Callbacks`) at the documented points and
    ``report(epoch, metrics)`` after each epoch (stop when it returns True); ``evaluate(model)`` returns the
    validation metrics (a dict with every name in ``metrics``); ``test(model)``, the test metrics.

    ``metrics`` give names and directions (their ``fn`` is unused); ``steps_per_epoch`` is the number of
    optimizer steps per epoch, which turns the search's schedule fractions into steps.
    """

    name: str
    model: Callable[[], nn.Module]
    train: Callable[[nn.Module, Any, int, Report], Any]
    evaluate: Callable[[nn.Module], Mapping[str, float]]
    steps_per_epoch: int
    metrics: Sequence[Metric] = (ACCURACY,)
    objective: str | None = None
    test: Callable[[nn.Module], Mapping[str, float]] | None = None
    dense_layers: Sequence[str] = ()
    pretrained: bool = False
    checkpoint: str | None = None
    budget_hints: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_metrics(self.metrics, self.objective, self.name)
        if not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1:
            raise ConfigError("a loop task needs the number of optimizer steps per epoch",
                              key=f"{self.name}.steps_per_epoch", value=self.steps_per_epoch,
                              allowed="a positive integer (len(train_loader) // accumulation steps)")


AnyTask = Task | LoopTask


def from_splits(task: SplitsTask, *, seed: int, batch_size: int) -> Task:
    """A :class:`Task` over the tensor splits of a legacy task object (``splits(seed)``)."""
    splits = task.splits(seed)
    if not isinstance(splits, Splits):
        raise ConfigError(f"{task.name}.splits(seed) returned a {type(splits).__name__}, not a Splits",
                          key="task", value=task.name, allowed="sparsesearch.tasks.Splits(x_train, y_train, ...)")
    return Task(
        name=task.name, model=task.model,
        train_data=TensorBatches(splits.x_train, splits.y_train, batch_size, seed=seed),
        val_data=TensorBatches(splits.x_val, splits.y_val, 4096, shuffle=False),
        test_data=TensorBatches(splits.x_test, splits.y_test, 4096, shuffle=False),
        budget_hints=dict(task.budget_hints), device="cpu",
        metrics=tuple(getattr(task, "metrics", (ACCURACY,))), objective=getattr(task, "objective", None),
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
