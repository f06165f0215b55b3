"""Early stopping for multi-objective trials (Optuna forbids ``trial.report`` there, so this is our own).

Below, "accuracy" stands for the task's objective metric; a metric where lower is better is judged by its
negative (its score), so every rule reads the same for both directions and messages show the metric itself.

A trial is stopped when its intermediate results show it cannot reach the front. Accuracy drops while
sparsity ramps up and recovers during fine-tuning, so the floor rule waits until the trial's sparsity has
been at its target for two epochs, and both rules judge a settled trial by an optimistic projection of
its final accuracy: the current accuracy plus its recent rate of recovery (the mean gain
per epoch over the last ``patience`` epochs, never negative) times the epochs left. Recovery slows down
as it goes, so the projection overestimates, and a stopped trial would very likely have ended worse.
A rule must hold ``patience`` epochs in a row:

- ``floor``: the projected accuracy is more than ``margin`` below the accuracy floor (dense minus the
  allowed drop): the trial would end infeasible, and infeasible trials are never on the front.
- ``dominated``: a completed trial that ended at least as sparse as this trial's target had, at the same
  epoch, at least this sparsity and more than ``margin`` higher accuracy, and it ended more than
  ``margin`` above this trial (above its projection once settled at target; while this trial still ramps,
  above its current accuracy, which pruning further will only lower). This rule may stop a trial during
  its ramp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sparsesearch.records.study import EarlyStopping

Curve = Sequence[tuple[float, float]]  # per epoch: (validation metric, sparsity)

#: epochs a trial must have spent at its target sparsity before it can be stopped
SETTLE_EPOCHS = 2


@dataclass
class Stopper:
    """Decides, epoch by epoch, whether one trial should stop; returns the reason when it should."""

    rules: EarlyStopping
    floor: float | None
    completed: Sequence[Curve]
    epochs: int
    target: float = 0.0
    maximize: bool = True
    metric: str = "accuracy"
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._streak = {"floor": 0, "dominated": 0}
        self._at_target = 0
        self._sign = 1.0 if self.maximize else -1.0
        # everything below works on scores (the metric, negated when lower is better)
        self.floor = None if self.floor is None else self._sign * self.floor
        self.completed = [[(self._sign * v, sp) for v, sp in curve] for curve in self.completed]

    def _shown(self, score: float) -> float:
        return self._sign * score

    def projected(self, epoch: int) -> float:
        """Optimistic final score: now plus the recent gain per epoch times the epochs left."""
        window = min(self.rules.patience, len(self.history) - 1, self._at_target - 1)
        slope = 0.0
        if window > 0:
            slope = max(0.0, (self.history[-1] - self.history[-1 - window]) / window)
        projected = self.history[-1] + slope * max(0, self.epochs - 1 - epoch)
        return min(1.0, projected) if self.maximize and self.metric == "accuracy" else projected

    def check(self, epoch: int, value: float, sparsity: float, target_reached: bool) -> str | None:
        """``value``: this epoch's validation metric. Returns the stop reason, or None to go on."""
        accuracy = self._sign * value
        self.history.append(accuracy)
        self._at_target = self._at_target + 1 if target_reached else 0
        if not self.rules.enabled or epoch + 1 < self.rules.min_epochs or epoch >= self.epochs - 1:
            self._streak = dict.fromkeys(self._streak, 0)
            return None
        margin = self.rules.margin
        settled = self._at_target >= SETTLE_EPOCHS
        projected = self.projected(epoch) if settled else accuracy
        if "floor" in self.rules.rules and self.floor is not None and settled:
            below = projected < self.floor - margin
            self._streak["floor"] = self._streak["floor"] + 1 if below else 0
            if self._streak["floor"] >= self.rules.patience:
                worse = "below" if self.maximize else "above"
                return (f"validation {self.metric} {value:.4f} (projected {self._shown(projected):.4f}) {worse} the "
                        f"constraint's floor {self._shown(self.floor):.4f} by more than the margin {margin:g} for "
                        f"{self._streak['floor']} epochs at target sparsity {sparsity:.4f}")
        else:
            self._streak["floor"] = 0
        if "dominated" in self.rules.rules:
            by = self._dominator(epoch, accuracy, sparsity, projected)
            self._streak["dominated"] = self._streak["dominated"] + 1 if by is not None else 0
            if by is not None and self._streak["dominated"] >= self.rules.patience:
                acc, sp, final = by
                what = (f"this one projects {self._shown(projected):.4f}" if settled
                        else f"this one is at {value:.4f} and ramping")
                return (f"dominated at epoch {epoch} by a completed trial ({self.metric} {self._shown(acc):.4f} vs "
                        f"{value:.4f} at sparsity {sp:.4f} vs {sparsity:.4f}; it ended at {self._shown(final):.4f}, "
                        f"{what}) for {self._streak['dominated']} epochs")
        return None

    def _dominator(self, epoch: int, accuracy: float, sparsity: float,
                   reference: float) -> tuple[float, float, float] | None:
        margin = self.rules.margin
        best: tuple[float, float, float] | None = None
        for curve in self.completed:
            if epoch >= len(curve):
                continue
            acc, sp = curve[epoch]
            final_acc, final_sp = curve[-1]
            if (sp >= sparsity - 1e-9 and final_sp >= max(sparsity, self.target) - 1e-9 and acc > accuracy + margin
                    and final_acc > reference + margin and (best is None or acc > best[0])):
                best = (acc, sp, final_acc)
        return best
