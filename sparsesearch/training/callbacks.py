"""The callback protocol a training loop drives (the pruner implements it)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TrainingCallbacks(Protocol):
    """Hooks in the order a loop calls them; ``regularization()`` is added to the loss every step."""

    def on_train_begin(self) -> None: ...
    def on_epoch_begin(self, epoch: int | None = None) -> None: ...
    def on_step_begin(self, step: int | None = None) -> None: ...
    def regularization(self) -> torch.Tensor: ...
    def on_before_optimizer_step(self) -> None: ...
    def on_after_optimizer_step(self) -> None: ...
    def on_epoch_end(self) -> None: ...
    def on_train_end(self) -> None: ...


class NoCallbacks:
    """Callbacks that do nothing: the dense loop."""

    _zero = torch.zeros(())

    def on_train_begin(self) -> None:
        return None

    def on_epoch_begin(self, epoch: int | None = None) -> None:
        return None

    def on_step_begin(self, step: int | None = None) -> None:
        return None

    def regularization(self) -> torch.Tensor:
        return self._zero

    def on_before_optimizer_step(self) -> None:
        return None

    def on_after_optimizer_step(self) -> None:
        return None

    def on_epoch_end(self) -> None:
        return None

    def on_train_end(self) -> None:
        return None
