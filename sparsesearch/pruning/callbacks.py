"""The training-loop callbacks, as a base class whose hooks do nothing.

A loop calls them in this order (``regularization()`` is added to the loss every step)::

    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for batch in batches:
            callbacks.on_step_begin()
            loss = loss_fn(model(x), y) + callbacks.regularization()
            optimizer.zero_grad(); loss.backward()
            callbacks.on_before_optimizer_step()
            optimizer.step()
            callbacks.on_after_optimizer_step()
        callbacks.on_epoch_end()
    callbacks.on_train_end()

:class:`~sparsesearch.pruning.pruner.Pruner` overrides the hooks it needs; ``Callbacks()`` itself is the dense
loop. This is the one idiom for optional hooks in sparsesearch (as Optuna's ``BaseSampler.before_trial``).
"""

from __future__ import annotations

import torch


class Callbacks:
    """Hooks a training loop calls; every one is a no-op here."""

    def on_train_begin(self) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, epoch: int | None = None) -> None:
        """At the start of each epoch."""

    def on_step_begin(self, step: int | None = None) -> None:
        """Before the forward pass of each optimizer step."""

    def regularization(self) -> torch.Tensor:
        """A term to add to the loss (a constant zero by default)."""
        return torch.zeros(())

    def on_before_optimizer_step(self) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``."""

    def on_after_optimizer_step(self) -> None:
        """Right after ``optimizer.step()``."""

    def on_epoch_end(self) -> None:
        """At the end of each epoch."""

    def on_train_end(self) -> None:
        """After the last epoch (also when training stops early)."""
