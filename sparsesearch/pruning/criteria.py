"""What matters: per-weight importance scores (larger = keep).

A criterion holds whatever state it needs for the layers of one group (one entry per weight tensor).
``observe`` runs after ``backward`` and before the optimizer step, while gradients are present: criteria
that accumulate (snip_momentum, movement) add to their scores every step; criteria that read one gradient
(gradient, snip) keep it only when the next step updates masks. Adding a criterion = one small class here
plus one line in :data:`CRITERIA`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from sparsesearch.records.names import CRITERIA as CRITERION_TRAITS


class Criterion:
    """Base class: scores are weight-shaped float32 tensors; larger means more important."""

    name: ClassVar[str]
    needs_grad: ClassVar[bool] = False
    #: group_lasso adds a term to the loss through the pruner
    regularizes: ClassVar[bool] = False
    #: pattern_lock keeps the zeros a model already has and prunes nothing new
    locks_pattern: ClassVar[bool] = False
    #: accumulating criteria observe every step; the others only before an update
    accumulates: ClassVar[bool] = False

    def __init__(self, weights: list[torch.Tensor], group: Any) -> None:
        self.weights = weights

    def observe(self, before_update: bool) -> None:
        """Called with gradients present, before the optimizer step."""

    def scores(self) -> list[torch.Tensor]:
        """Fresh float32 tensors the caller owns (it may modify them in place)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class Magnitude(Criterion):
    """|w|"""

    name = "magnitude"

    def scores(self) -> list[torch.Tensor]:
        return [w.detach().abs().float() for w in self.weights]


class _GradientSnapshot(Criterion):
    """Keeps a score computed from the last gradient before each mask update."""

    needs_grad = True

    def __init__(self, weights: list[torch.Tensor], group: Any) -> None:
        super().__init__(weights, group)
        self._scores: list[torch.Tensor | None] = [None] * len(weights)

    def _score(self, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, before_update: bool) -> None:
        if not before_update:
            return
        for i, w in enumerate(self.weights):
            if w.grad is not None:
                self._scores[i] = self._score(w.detach(), w.grad.detach()).float()

    def scores(self) -> list[torch.Tensor]:
        if any(s is None for s in self._scores):
            raise RuntimeError(f"{self.name} needs a gradient before each mask update: call loss.backward() "
                               "and the pruner's on_before_optimizer_step() on the step before an update step")
        # hand the snapshot over: it is taken again on the step before the next update
        scores, self._scores = self._scores, [None] * len(self._scores)
        return scores  # type: ignore[return-value]

    def state_dict(self) -> dict[str, Any]:
        return {"scores": list(self._scores)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._scores = [None if s is None else s.clone() for s in state["scores"]]


class Gradient(_GradientSnapshot):
    """|g| of the last gradient before the update."""

    name = "gradient"

    def _score(self, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return g.abs()


class Snip(_GradientSnapshot):
    """|w·g| (SNIP, Lee et al. 2019): the first-order loss change of removing a weight."""

    name = "snip"

    def _score(self, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (w * g).abs()


class _Accumulating(Criterion):
    needs_grad = True
    accumulates = True

    def __init__(self, weights: list[torch.Tensor], group: Any) -> None:
        super().__init__(weights, group)
        self._scores = [torch.zeros_like(w, dtype=torch.float32) for w in weights]
        self._seen = False

    def scores(self) -> list[torch.Tensor]:
        if not self._seen:
            raise RuntimeError(f"{self.name} needs a gradient before its first mask update: call loss.backward() "
                               "and the pruner's on_before_optimizer_step() before an update step")
        return [s.clone() for s in self._scores]

    def state_dict(self) -> dict[str, Any]:
        return {"scores": [s.clone() for s in self._scores], "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for mine, saved in zip(self._scores, state["scores"]):
            mine.copy_(saved)
        self._seen = bool(state["seen"])


class SnipMomentum(_Accumulating):
    """|w·g| accumulated with momentum every step: score = β·score + |w·g| (INC's default type)."""

    name = "snip_momentum"

    def __init__(self, weights: list[torch.Tensor], group: Any) -> None:
        super().__init__(weights, group)
        self.beta = float(getattr(group, "momentum", 0.9))

    def observe(self, before_update: bool) -> None:
        for s, w in zip(self._scores, self.weights):
            if w.grad is not None:
                s.mul_(self.beta).add_((w.detach() * w.grad.detach()).abs())
                self._seen = True


class Movement(_Accumulating):
    """Movement pruning (Sanh et al. 2020): score = −Σ w·g, large for weights moving away from zero."""

    name = "movement"

    def observe(self, before_update: bool) -> None:
        for s, w in zip(self._scores, self.weights):
            if w.grad is not None:
                s.sub_(w.detach() * w.grad.detach())
                self._seen = True


class Random(Criterion):
    """Uniform random scores (a baseline), reproducible from the group's ``seed``."""

    name = "random"

    def __init__(self, weights: list[torch.Tensor], group: Any) -> None:
        super().__init__(weights, group)
        self.generator = torch.Generator().manual_seed(int(getattr(group, "seed", 0)))

    def scores(self) -> list[torch.Tensor]:
        return [torch.rand(w.shape, generator=self.generator).to(w.device) for w in self.weights]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class GroupLasso(Criterion):
    """Adds α·Σ‖group‖₂ over the pattern's groups to the loss; prunes the groups of smallest norm."""

    name = "group_lasso"
    regularizes = True

    def scores(self) -> list[torch.Tensor]:
        return [(w.detach().float() ** 2) for w in self.weights]


class PatternLock(Criterion):
    """Keeps the zero pattern the model already has through fine-tuning; prunes nothing new."""

    name = "pattern_lock"
    locks_pattern = True

    def scores(self) -> list[torch.Tensor]:
        return [(w.detach() != 0).float() for w in self.weights]


CRITERIA: dict[str, type[Criterion]] = {
    c.name: c for c in (Magnitude, Gradient, Snip, SnipMomentum, Movement, Random, GroupLasso, PatternLock)
}
for _name, _cls in CRITERIA.items():  # the torch-free name table must describe each class as it is
    _traits = CRITERION_TRAITS.get(_name)
    if _traits is None or (_traits.needs_grad, _traits.locks_pattern) != (_cls.needs_grad, _cls.locks_pattern):
        raise ImportError(f"criterion {_name!r} differs from its entry in sparsesearch.records.names.CRITERIA")
