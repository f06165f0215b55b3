"""Early stopping for multi-objective trials (Optuna forbids ``trial.report`` there, so this is our own).

A trial is stopped when its intermediate results show it cannot reach the front. Both rules wait until
the trial's sparsity has reached its target (before that, accuracy is still falling by design) and until
``min_epochs`` have run, and need ``patience`` epochs in a row:

- ``floor``: validation accuracy more than ``margin`` below the accuracy floor (dense minus the allowed
  drop). The trial would be infeasible, and infeasible trials are never on the front.
- ``dominated``: some completed trial had, at the same epoch, at least this sparsity and more than
  ``margin`` higher validation accuracy — it dominated this one at the same point of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparsesearch.config import EarlyStopping

Curve = Sequence[tuple[float, float]]  # per epoch: (validation accuracy, sparsity)


@dataclass
class Stopper:
    """Decides, epoch by epoch, whether one trial should stop; returns the reason when it should."""

    rules: EarlyStopping
    floor: float | None
    completed: Sequence[Curve]

    def __post_init__(self) -> None:
        self._streak = {"floor": 0, "dominated": 0}

    def check(self, epoch: int, accuracy: float, sparsity: float, target_reached: bool) -> str | None:
        if not self.rules.enabled or not target_reached or epoch + 1 < self.rules.min_epochs:
            self._streak = dict.fromkeys(self._streak, 0)
            return None
        margin = self.rules.margin
        if "floor" in self.rules.rules and self.floor is not None:
            below = accuracy < self.floor - margin
            self._streak["floor"] = self._streak["floor"] + 1 if below else 0
            if self._streak["floor"] >= self.rules.patience:
                return (f"validation accuracy {accuracy:.4f} below the accuracy floor {self.floor:.4f} (minus margin "
                        f"{margin:g}) for {self._streak['floor']} epochs at target sparsity {sparsity:.4f}")
        if "dominated" in self.rules.rules:
            by = self._dominator(epoch, accuracy, sparsity)
            self._streak["dominated"] = self._streak["dominated"] + 1 if by is not None else 0
            if by is not None and self._streak["dominated"] >= self.rules.patience:
                acc, sp = by
                return (f"dominated at epoch {epoch} by a completed trial (accuracy {acc:.4f} vs {accuracy:.4f}, "
                        f"sparsity {sp:.4f} vs {sparsity:.4f}) for {self._streak['dominated']} epochs")
        return None

    def _dominator(self, epoch: int, accuracy: float, sparsity: float) -> tuple[float, float] | None:
        best: tuple[float, float] | None = None
        for curve in self.completed:
            if epoch >= len(curve):
                continue
            acc, sp = curve[epoch]
            if sp >= sparsity - 1e-9 and acc > accuracy + self.rules.margin and (best is None or acc > best[0]):
                best = (acc, sp)
        return best
