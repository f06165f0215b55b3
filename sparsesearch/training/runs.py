"""Training runs the search makes: the dense baseline and each trial, for either form of task.

Pure torch plus the reference loop (no optuna here), so reproductions and benchmarks run exactly what the
trials ran: the same optimizer construction, the same seeded batch order, the same evaluation. A run is
scored on its best validation epoch once the target sparsity is reached (the weights of that epoch are
kept), not on whatever its last epoch happened to be.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Callbacks, Pruner, PruningConfig, sparsity_report
from sparsesearch.pruning.pruner import PruningWarning
from sparsesearch.records.training import TrainingSettings
from sparsesearch.tasks.base import AnyTask, LoopTask, Task
from sparsesearch.tasks.data import count_batches
from sparsesearch.training.loop import evaluate, pick_device, train

log = logging.getLogger(__name__)

#: called after each epoch with (epoch, metrics); returns a reason string to stop the run early
EpochHook = Callable[[int, dict[str, float]], "str | None"]


@dataclass
class RunResult:
    """What a training run achieved; sparsities are counted from the weights.

    ``val`` and ``test`` hold every metric of the task (by name) on the kept weights; ``objective`` names the
    one the study optimises.
    """

    val: dict[str, float]
    test: dict[str, float]
    objective: str
    sparsity: float
    model_sparsity: float
    total_sparsity: float
    epochs_run: int
    best_epoch: int | None
    seconds: float
    cpu_seconds: float
    curve: list[dict[str, float]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None

    @property
    def value(self) -> float:
        """The objective metric on the validation data."""
        return self.val[self.objective]

    @property
    def test_value(self) -> float | None:
        return self.test.get(self.objective)

    # the objective under the names the search used when it only knew accuracy
    @property
    def val_accuracy(self) -> float:
        return self.value

    @property
    def test_accuracy(self) -> float:
        return self.test.get(self.objective, float("nan"))

    def metrics(self) -> dict[str, float]:
        out = {f"val_{k}": v for k, v in self.val.items()}
        out.update({f"test_{k}": v for k, v in self.test.items()})
        out.update({"sparsity": self.sparsity, "model_sparsity": self.model_sparsity,
                    "total_sparsity": self.total_sparsity, "epochs_run": float(self.epochs_run),
                    "train_seconds": self.seconds, "train_cpu_seconds": self.cpu_seconds})
        if self.best_epoch is not None:
            out["best_epoch"] = float(self.best_epoch)
        return out


def make_optimizer(settings: TrainingSettings, params: Any) -> torch.optim.Optimizer:
    name = settings.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)


def make_scheduler(settings: TrainingSettings, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    """The study's learning-rate schedule over ``total_steps`` optimizer steps (None for constant)."""
    if settings.lr_schedule == "constant" or total_steps <= 0:
        return None
    if settings.lr_schedule == "cosine":
        def factor(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    else:
        def factor(step: int) -> float:
            return max(0.0, 1.0 - step / total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fresh_model(task: AnyTask, seed: int) -> nn.Module:
    """The task's model, initialised reproducibly from ``seed`` (and loaded from its checkpoint, if any)."""
    torch.manual_seed(seed)
    model = task.model()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"the task's model factory returned a {type(model).__name__}, not a torch.nn.Module",
                          key="task.model", value=task.name, allowed="a callable returning an nn.Module")
    if task.checkpoint:
        state = torch.load(task.checkpoint, map_location="cpu", weights_only=True)
        load_state(model, state.get("state_dict", state) if isinstance(state, Mapping) else state)
    return model


def task_steps_per_epoch(task: AnyTask) -> int:
    """Optimizer steps per epoch: the task's own figure, else ``len()`` of its train data, else one count."""
    if task.steps_per_epoch or isinstance(task, LoopTask):
        return int(task.steps_per_epoch or 1)
    try:
        return max(1, count_batches(task.train_data))
    except Exception as exc:  # noqa: BLE001 - the user's data raised
        raise ConfigError(f"cannot count the batches of the task's train data: {type(exc).__name__}: {exc}",
                          key="task.train_data", value=task.name,
                          allowed="an iterable of batches, or give the task steps_per_epoch") from None


class _Best:
    """Keeps the weights of the best validation epoch (once the target sparsity holds)."""

    def __init__(self, model: nn.Module, objective: str, maximize: bool) -> None:
        self.model, self.objective, self.maximize = model, objective, maximize
        self.value: float | None = None
        self.epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, epoch: int, metrics: Mapping[str, float], eligible: bool) -> None:
        value = metrics.get(self.objective)
        if not eligible or value is None or not math.isfinite(value):
            return
        if self.value is None or (value > self.value if self.maximize else value < self.value):
            self.value, self.epoch = float(value), epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def restore(self, last_epoch: int) -> int | None:
        if self.state is not None and self.epoch != last_epoch:
            self.model.load_state_dict(self.state)
        return self.epoch


def run(model: nn.Module, task: AnyTask, settings: TrainingSettings, *, pruning: PruningConfig | None = None,
        on_epoch: EpochHook | None = None, steps_per_epoch: int | None = None, keep_best: bool = True) -> RunResult:
    """Train ``model`` on ``task`` (pruning with ``pruning`` in the loop when given) and measure it.

    ``on_epoch(epoch, metrics)`` sees the validation metrics (``val_<name>``), the current sparsity (counted)
    and the epoch's mean loss after every epoch; a returned string stops training and becomes
    ``stop_reason``. With ``keep_best`` the run ends on the weights of its best validation epoch among
    those at the target sparsity.
    """
    objective = task.objective_metric
    spe = steps_per_epoch or task_steps_per_epoch(task)
    device = pick_device(task.device) if isinstance(task, Task) else None
    if device is not None:
        model.to(device)
    # a loop that reads gradients after the pruner's hook (gradient clipping) needs the pruned ones zeroed
    clips = isinstance(task, Task) and bool(task.grad_clip)
    pruner = Pruner(model, pruning, steps_per_epoch=spe, mask_gradients=clips) if pruning is not None else None
    layers = pruner.layer_names if pruner is not None else None
    curve: list[dict[str, float]] = []
    stop: list[str] = []
    best = _Best(model, objective.name, objective.maximize)
    torch.manual_seed(settings.seed)
    started, cpu_started = time.perf_counter(), time.process_time()

    def record(epoch: int, val: Mapping[str, float], loss: float | None) -> bool:
        sparsity = sparsity_report(model, layers).pruned_sparsity if pruner is not None else 0.0
        row = {f"val_{k}": float(v) for k, v in val.items()}
        row["sparsity"] = sparsity
        if loss is not None:
            row["loss"] = loss
        reached = pruner is None or pruner.step > pruner.end_step
        row["target_reached"] = float(reached)
        curve.append(row)
        if keep_best:
            best.offer(epoch, val, reached)
        if on_epoch is not None:
            reason = on_epoch(epoch, row)
            if reason:
                stop.append(reason)
                return True
        return False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PruningWarning)
        if isinstance(task, LoopTask):
            _run_loop(model, task, settings, pruner, record)
        else:
            _run_pieces(model, task, settings, pruner, record, spe, device)
    for warning in caught:  # a run the search stopped early did not reach its target on purpose: no warning
        if not (stop and issubclass(warning.category, PruningWarning)):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    best_epoch = best.restore(len(curve) - 1) if keep_best else None
    val, test = _measure(model, task, device)
    report = sparsity_report(model, layers) if layers else None
    everything = sparsity_report(model)
    if device is not None and device.type != "cpu":
        model.to("cpu")
    return RunResult(
        val=val, test=test, objective=objective.name,
        sparsity=report.pruned_sparsity if report else 0.0,
        model_sparsity=everything.pruned_sparsity,
        total_sparsity=everything.total_sparsity,
        epochs_run=len(curve), best_epoch=best_epoch,
        seconds=seconds, cpu_seconds=cpu_seconds, curve=curve,
        layers=report.rows() if report else [],
        stop_reason=stop[0] if stop else None,
    )


def _run_pieces(model: nn.Module, task: Task, settings: TrainingSettings, pruner: Pruner | None,
                record: Callable[[int, Mapping[str, float], float | None], bool], spe: int,
                device: torch.device | None) -> None:
    optimizer = (task.optimizer(model.parameters(), settings) if task.optimizer is not None
                 else make_optimizer(settings, model.parameters()))
    total = settings.epochs * spe
    scheduler = task.scheduler(optimizer, total) if task.scheduler is not None else \
        make_scheduler(settings, optimizer, total)

    def epoch_end(epoch: int, loss: float) -> bool:
        val = evaluate(model, task.val_data, task.metrics, device=device, precision=task.precision, split=task.batch)
        return record(epoch, val, loss)

    train(model, optimizer, task.train_data, epochs=settings.epochs, pruner=pruner, loss_fn=task.loss,
          on_epoch_end=epoch_end, scheduler=scheduler, device=device, precision=task.precision,
          grad_clip=task.grad_clip, split=task.batch)


def _run_loop(model: nn.Module, task: LoopTask, settings: TrainingSettings, pruner: Pruner | None,
              record: Callable[[int, Mapping[str, float], float | None], bool]) -> None:
    names = [m.name for m in task.metrics]
    seen: set[int] = set()

    def report(epoch: int, metrics: Mapping[str, float]) -> bool:
        missing = [n for n in names if n not in metrics]
        if missing:
            raise ConfigError(f"report({epoch}, ...) lacks the metrics {missing}", key=f"{task.name}.report",
                              value=sorted(metrics), allowed=f"a dict with {names}")
        seen.add(epoch)
        loss = metrics.get("loss")
        return record(epoch, {n: float(metrics[n]) for n in names}, float(loss) if loss is not None else None)

    callbacks = pruner if pruner is not None else Callbacks()
    task.train(model, callbacks, settings.epochs, report)
    if not seen:
        log.warning("%s: the loop never called report(epoch, metrics); the run is scored on its last weights",
                    task.name)


def measure(model: nn.Module, task: AnyTask) -> tuple[dict[str, float], dict[str, float]]:
    """The task's validation and test metrics of ``model`` as it is (a pretrained model's dense metrics)."""
    device = pick_device(task.device) if isinstance(task, Task) else None
    if device is not None:
        model.to(device)
    try:
        return _measure(model, task, device)
    finally:
        if device is not None and device.type != "cpu":
            model.to("cpu")


def _measure(model: nn.Module, task: AnyTask, device: torch.device | None) -> tuple[dict[str, float], dict[str, float]]:
    if isinstance(task, LoopTask):
        val = {k: float(v) for k, v in task.evaluate(model).items()}
        test = {k: float(v) for k, v in task.test(model).items()} if task.test is not None else {}
        return val, test
    val = evaluate(model, task.val_data, task.metrics, device=device, precision=task.precision, split=task.batch)
    test = evaluate(model, task.test_data, task.metrics, device=device, precision=task.precision,
                    split=task.batch) if task.test_data is not None else {}
    return val, test


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict({k: v.clone() for k, v in state.items()})
    return model
