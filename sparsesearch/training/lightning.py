"""Lightning: the pruner inside ``Trainer.fit`` (a ``Callback``), as thin as the Hugging Face one.

Masks update when a batch starts, pruned gradients are zeroed before the optimizer step, and pruned weights
go back to zero after it (when a batch ends and Lightning's ``global_step`` has moved, so gradient
accumulation is counted in optimizer steps); the sparsity is logged as ``sparsity``::

    pruner = Pruner(module, config, steps_per_epoch=len(train_loader))
    trainer = lightning.Trainer(max_epochs=5, callbacks=[PruningCallback(pruner)])
    trainer.fit(module, train_loader, val_loader)

For ``group_lasso`` add ``pruner.regularization()`` to the loss your ``training_step`` returns.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class PruningCallback(pl.Callback):
    """Runs a :class:`~sparsesearch.pruning.Pruner` inside ``lightning.Trainer``."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.on_train_begin()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.on_epoch_begin(trainer.current_epoch)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.pruner.on_step_begin()  # idempotent within an optimizer step (gradient accumulation)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.pruner.on_before_optimizer_step()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        while self.pruner.step < trainer.global_step:  # an optimizer step happened in this batch
            self.pruner.on_after_optimizer_step()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.on_epoch_end()
        pl_module.log("sparsity", float(self.pruner.report().pruned_sparsity), prog_bar=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.pruner.on_train_end()


__all__ = ["PruningCallback"]
