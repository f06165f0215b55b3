"""What every trial of a study shares: the task, its data, the budget, the space and the dense weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sparsesearch.records.study import Budget, StudySpec
from sparsesearch.records.training import TrainingSettings
from sparsesearch.search.space import Space, TrialPlan
from sparsesearch.tasks import Splits, Task, resolve_task, steps_per_epoch
from sparsesearch.training.runs import fresh_model, load_state


@dataclass
class Context:
    """Everything trials share: the task, its data, the budget, the space and the dense weights."""

    spec: StudySpec
    task: Task
    splits: Splits
    budget: Budget
    space: Space
    steps_per_epoch: int
    dense_state: dict[str, torch.Tensor] | None = None
    dense: dict[str, Any] = field(default_factory=dict)

    def settings(self, plan: TrialPlan | None = None, *, dense: bool = False) -> TrainingSettings:
        b = self.budget
        if dense:
            return TrainingSettings(epochs=int(b.dense_epochs), batch_size=int(b.batch_size), optimizer=str(b.optimizer),
                                    lr=float(b.dense_lr), weight_decay=b.weight_decay, momentum=b.momentum,
                                    seed=self.spec.seed)
        return TrainingSettings(epochs=plan.epochs if plan else int(b.epochs),
                                finetune_epochs=plan.finetune_epochs if plan else 0, batch_size=int(b.batch_size),
                                optimizer=str(b.optimizer), lr=plan.lr if plan else float(b.lr),
                                weight_decay=b.weight_decay, momentum=b.momentum, seed=self.spec.seed)

    def start_model(self) -> torch.nn.Module:
        """The model a trial starts from: the dense baseline's weights, or fresh initial weights."""
        model = fresh_model(self.task, self.spec.seed)
        if self.spec.budget.init == "dense" and self.dense_state is not None:
            load_state(model, self.dense_state)
        return model

    @property
    def floor(self) -> float | None:
        drop = self.spec.constraints.max_accuracy_drop
        acc = self.dense.get("val_accuracy")
        return None if drop is None or acc is None else acc - drop


def build_context(spec: StudySpec, *, trust_task: bool = False, source: str | None = None) -> Context:
    """Resolve the task, split the data, and validate the space against the real model (before any trial).

    A ``module:callable`` task is imported only with ``trust_task`` (see :func:`sparsesearch.tasks.resolve_task`).
    """
    set_threads(spec.num_threads)  # before any task code runs: data preparation must see the same threads
    task = resolve_task(spec.task, spec.task_args, trusted=trust_task, source=source)
    set_threads(spec.num_threads, task)
    budget = spec.budget.resolved(task.budget_hints)
    splits = task.splits(spec.seed)
    spe = steps_per_epoch(len(splits.x_train), int(budget.batch_size))
    model = fresh_model(task, spec.seed)
    space = Space(spec.space, budget, model, spe, seed=spec.seed)
    return Context(spec, task, splits, budget, space, spe)


def set_threads(configured: int | None, task: Task | None = None) -> int:
    """torch CPU threads: the spec's ``num_threads``, else the task's hint, else 1.

    One thread is fastest for small models on a shared machine (measured on digits-mlp: 2 threads were
    several times slower on 2 busy cores); large models should set ``num_threads``.
    """
    hint = (task.budget_hints.get("num_threads") if task is not None else None) or 1
    threads = max(1, int(configured or hint))
    torch.set_num_threads(threads)
    return threads
