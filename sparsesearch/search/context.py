"""What every trial of a study shares: the task, its data, the budget, the space and the dense weights."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sparsesearch.errors import ConfigError
from sparsesearch.records.study import Budget, StudySpec
from sparsesearch.records.training import TrainingSettings
from sparsesearch.search.space import Space, TrialPlan
from sparsesearch.tasks import AnyTask, Metric, resolve_task
from sparsesearch.training.runs import fresh_model, load_state, task_steps_per_epoch


@dataclass
class Context:
    """Everything trials share: the task, the budget, the space and the dense weights."""

    spec: StudySpec
    task: AnyTask
    budget: Budget
    space: Space
    steps_per_epoch: int
    dense_state: dict[str, torch.Tensor] | None = None
    dense: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> Metric:
        """The objective metric (name and direction)."""
        return self.task.objective_metric

    def settings(self, plan: TrialPlan | None = None, *, dense: bool = False) -> TrainingSettings:
        b = self.budget
        seeds = {"seed": self.spec.seed_of("training"), "data_seed": self.spec.seed_of("data"),
                 "model_seed": self.spec.seed_of("model")}
        assert b.dense_epochs and b.batch_size and b.epochs and b.lr and b.dense_lr  # resolved with the task's hints
        if dense:
            return TrainingSettings(epochs=int(b.dense_epochs), batch_size=int(b.batch_size), optimizer=str(b.optimizer),
                                    lr=float(b.dense_lr), weight_decay=b.weight_decay, momentum=b.momentum,
                                    lr_schedule=b.lr_schedule, **seeds)  # type: ignore[arg-type]
        return TrainingSettings(epochs=plan.epochs if plan else int(b.epochs),
                                finetune_epochs=plan.finetune_epochs if plan else 0, batch_size=int(b.batch_size),
                                optimizer=str(b.optimizer), lr=plan.lr if plan else float(b.lr),
                                weight_decay=b.weight_decay, momentum=b.momentum, lr_schedule=b.lr_schedule,
                                **seeds)  # type: ignore[arg-type]

    def fresh_model(self) -> torch.nn.Module:
        """The task's model with its initial weights (from the model seed; a checkpoint's when it has one)."""
        return fresh_model(self.task, self.spec.seed_of("model"))

    @property
    def pretrained(self) -> bool:
        """Whether the task's model comes trained (a checkpoint, or ``pretrained``): the dense metrics are
        measured, not trained."""
        return bool(self.task.pretrained or self.task.checkpoint)

    def start_model(self) -> torch.nn.Module:
        """The model a trial starts from: the dense baseline's weights, or fresh initial weights."""
        model = self.fresh_model()
        if self.spec.budget.init != "scratch" and self.dense_state is not None:
            load_state(model, self.dense_state)
        return model

    @property
    def floor(self) -> float | None:
        """The worst objective value a trial may reach and stay feasible (None: no constraint)."""
        c = self.spec.constraints
        dense = self.dense_value
        if c.max_drop is None or dense is None:
            return None
        drop = c.max_drop * abs(dense) if c.relative else c.max_drop
        return dense - drop if self.metric.maximize else dense + drop

    @property
    def dense_value(self) -> float | None:
        """The dense baseline's validation value of the objective metric."""
        value = self.dense.get(f"val_{self.metric.name}", self.dense.get("val_accuracy"))
        return None if value is None else float(value)


def build_context(spec: StudySpec, *, task: Any = None, trust_task: bool = False, source: str | None = None) -> Context:
    """Resolve the task, prepare its data, and validate the space against the real model (before any trial).

    ``task`` (a task object or factory, or a reference the user gave herself) replaces the spec's; a spec's
    own ``module:callable`` task is imported only with ``trust_task`` (see :func:`sparsesearch.tasks.resolve_task`).
    """
    set_threads(spec.num_threads)  # before any task code runs: data preparation must see the same threads
    the_task = resolve_task(task if task is not None else spec.task, spec.task_args,
                            trusted=trust_task or task is not None, source=source, seed=spec.seed_of("data"),
                            batch_size=spec.budget.batch_size)
    if spec.budget.checkpoint:
        if not Path(spec.budget.checkpoint).is_file():
            raise ConfigError("no such checkpoint file", key="budget.checkpoint", value=spec.budget.checkpoint,
                              allowed="the path of a state_dict saved with torch.save(model.state_dict(), PATH)")
        the_task = dataclasses.replace(the_task, checkpoint=spec.budget.checkpoint)
    set_threads(spec.num_threads, the_task)
    budget = spec.budget.resolved(the_task.budget_hints)
    spe = task_steps_per_epoch(the_task)
    model = fresh_model(the_task, spec.seed_of("model"))
    space_spec = spec.space
    if the_task.dense_layers:
        space_spec = dataclasses.replace(space_spec, excluded_op_names=tuple(space_spec.excluded_op_names)
                                         + tuple(the_task.dense_layers))
    space = Space(space_spec, budget, model, spe, seed=spec.seed_of("sampler"))
    return Context(spec, the_task, budget, space, spe)


def set_threads(configured: int | None, task: AnyTask | None = None) -> int:
    """torch CPU threads: the spec's ``num_threads``, else the task's hint, else 1.

    One thread is fastest for small models on a shared machine (measured on digits-mlp: 2 threads were
    several times slower on 2 busy cores); large models should set ``num_threads``.
    """
    hint = (task.budget_hints.get("num_threads") if task is not None else None) or 1
    threads = max(1, int(configured or hint))
    torch.set_num_threads(threads)
    return threads
