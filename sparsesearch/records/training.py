"""How one model trains: the one training-settings type of sparsesearch.

A recipe's ``training`` section, the settings of each run the search makes (trial or dense baseline), and a
reproduction all use :class:`TrainingSettings`. A study spec's ``budget`` section
(:class:`sparsesearch.records.study.Budget`) is what the user writes, with defaults from the task; the search
derives each run's settings from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sparsesearch.errors import ConfigError
from sparsesearch.records import schema
from sparsesearch.records.names import INITS, LR_SCHEDULES, OPTIMIZERS

#: the keys that describe the training itself (not where the task and weights come from)
TRAINING_KEYS = ("epochs", "finetune_epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "seed",
                 "data_seed", "model_seed", "lr_schedule")


@dataclass(frozen=True)
class TrainingSettings:
    """How one model trains, and (in a recipe) which task and starting weights reproduce the result."""

    task: str | None = schema.spec(None, doc="built-in task name or 'package.module:callable'")
    task_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = schema.spec(0, ge=0, doc="batch order and other randomness of the run")
    data_seed: int | None = schema.spec(None, ge=0, doc="the task's data split (default: seed)")
    model_seed: int | None = schema.spec(None, ge=0, doc="the model's initial weights (default: seed)")
    init: str = schema.spec("dense", choices=INITS, doc="dense: from the trained dense model; scratch: from init")
    epochs: int = schema.spec(1, ge=1)
    finetune_epochs: int = schema.spec(0, ge=0, doc="last epochs: mask-locked fine-tuning")
    steps_per_epoch: int | None = schema.spec(None, gt=0, doc="needed by epoch-based schedules")
    batch_size: int = schema.spec(32, ge=1)
    optimizer: str = schema.spec("sgd", choices=OPTIMIZERS)
    lr: float = schema.spec(0.01, gt=0.0)
    momentum: float = schema.spec(0.9, ge=0.0, lt=1.0, doc="SGD momentum")
    weight_decay: float = schema.spec(0.0, ge=0.0)
    lr_schedule: str = schema.spec("constant", choices=LR_SCHEDULES,
                                   doc="learning rate over the run: constant, or cosine/linear decay to zero")

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.finetune_epochs >= self.epochs and self.finetune_epochs:
            raise ConfigError(f"finetune_epochs must be fewer than epochs ({self.epochs})", key="finetune_epochs",
                              value=self.finetune_epochs, allowed=f"0 .. {self.epochs - 1}")

    def core(self) -> dict[str, Any]:
        """The training keys alone (:data:`TRAINING_KEYS`), as plain data."""
        return {k: getattr(self, k) for k in TRAINING_KEYS}
