"""Hugging Face Transformers: the pruner inside ``Trainer`` (a ``TrainerCallback``), and a task adapter so a
study searches a model that ``Trainer`` trains.

Thin by design: the callback calls the pruner's callbacks at the Trainer's matching events — masks update
at ``on_step_begin``, pruned gradients are zeroed at ``on_pre_optimizer_step``, pruned weights go back to
zero at ``on_optimizer_step`` — and adds the sparsity (counted from the weights) to the Trainer's logs::

    pruner = Pruner(model, config, steps_per_epoch=len(trainer.get_train_dataloader()))
    trainer = Trainer(model=model, args=args, train_dataset=..., callbacks=[PruningCallback(pruner)])
    trainer.train()

``group_lasso`` adds a term to the loss, which a callback cannot do: add ``pruner.regularization()`` in your
``compute_loss`` (the callback warns when the pruner has such a term).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments

from sparsesearch.pruning import Pruner
from sparsesearch.tasks.base import LoopTask, Report
from sparsesearch.tasks.metrics import Metric

log = logging.getLogger(__name__)


class PruningCallback(TrainerCallback):
    """Runs a :class:`~sparsesearch.pruning.Pruner` inside ``transformers.Trainer``."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(self.pruner, "_regularized", None):
            log.warning("a group_lasso group adds a loss term that a Trainer callback cannot add: add "
                        "pruner.regularization() to the loss in your Trainer's compute_loss")
        self.pruner.on_train_begin()

    def on_epoch_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_epoch_begin(int(state.epoch or 0))

    def on_step_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_step_begin()

    def on_pre_optimizer_step(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_before_optimizer_step()

    def on_optimizer_step(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_after_optimizer_step()

    def on_epoch_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_epoch_end()

    def on_train_end(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        self.pruner.on_train_end()

    def on_log(self, args: TrainingArguments, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        if logs is None or not hasattr(self.pruner, "report"):
            return
        sparsity = round(self.pruner.report().pruned_sparsity, 6)
        logs["sparsity"] = sparsity
        if state.log_history:
            state.log_history[-1]["sparsity"] = sparsity


class _Report(TrainerCallback):
    """Hands each evaluation's metrics to the search's ``report(epoch, metrics)``; stops when asked."""

    def __init__(self, report: Report, names: list[str]) -> None:
        self.report, self.names = report, names

    def on_evaluate(self, args: TrainingArguments, state: Any, control: Any, metrics: Mapping[str, float] | None = None,
                    **kwargs: Any) -> Any:
        values = {k.removeprefix("eval_"): float(v) for k, v in (metrics or {}).items()
                  if isinstance(v, (int, float))}
        epoch = max(0, math.ceil(state.epoch or 0) - 1)
        if all(n in values for n in self.names) and self.report(epoch, values):
            control.should_training_stop = True
        return control


def trainer_task(name: str, *, model: Callable[[], Any], args: TrainingArguments, train_dataset: Any,
                 eval_dataset: Any, metrics: list[Metric], test_dataset: Any = None,
                 compute_metrics: Callable[[Any], Mapping[str, float]] | None = None,
                 trainer_class: type[Trainer] = Trainer, objective: str | None = None,
                 **trainer_kwargs: Any) -> LoopTask:
    """A study task whose every run is a ``Trainer.train()`` with the pruner in it.

    ``model()`` builds the model (e.g. ``lambda: AutoModelForSequenceClassification.from_config(config)``);
    ``args`` are your TrainingArguments (their ``num_train_epochs`` is set per run, evaluation happens every
    epoch); ``metrics`` name the keys ``compute_metrics`` returns (``eval_`` prefix dropped; ``loss`` is
    always there, lower is better), one of them the objective.
    """
    names = [m.name for m in metrics]
    per_device = args.per_device_train_batch_size * max(1, args.gradient_accumulation_steps)
    steps = max(1, math.ceil(len(train_dataset) / per_device))

    def make_trainer(net: Any, epochs: int, callbacks: list[TrainerCallback]) -> Trainer:
        run_args = dataclasses.replace(args, num_train_epochs=epochs, eval_strategy="epoch", save_strategy="no",
                                       report_to=[], disable_tqdm=True)
        return trainer_class(model=net, args=run_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                             compute_metrics=compute_metrics, callbacks=callbacks,  # type: ignore[arg-type]
                             **trainer_kwargs)

    def train(net: Any, pruning: Any, epochs: int, report: Report) -> None:
        callbacks: list[TrainerCallback] = [_Report(report, names)]
        if isinstance(pruning, Pruner):
            callbacks.insert(0, PruningCallback(pruning))
        make_trainer(net, epochs, callbacks).train()

    def evaluate_on(dataset: Any) -> Callable[[Any], Mapping[str, float]]:
        def run(net: Any) -> Mapping[str, float]:
            out = make_trainer(net, 1, []).evaluate(eval_dataset=dataset)
            return {k.removeprefix("eval_"): float(v) for k, v in out.items() if k.removeprefix("eval_") in names}
        return run

    return LoopTask(name=name, model=model, train=train, evaluate=evaluate_on(eval_dataset),
                    test=evaluate_on(test_dataset) if test_dataset is not None else None, steps_per_epoch=steps,
                    metrics=tuple(metrics), objective=objective)


__all__ = ["PruningCallback", "trainer_task"]
