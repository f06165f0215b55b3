"""What matters: per-weight importance scores (larger = keep).

A criterion holds whatever state it needs for the weight tensors of one group, owns its hyperparameters
(validated in its constructor, as Torch-Pruning's importance classes do) and declares what it needs from
the pruner instead of the pruner branching on names:

* ``observes``: when :meth:`Criterion.observe` must run, with gradients present after ``backward``:
  ``"never"``, ``"before_update"`` (the step before each mask update: gradient, snip) or ``"every_step"``
  (accumulating: snip_momentum, movement).
* :meth:`Criterion.regularization`: a term for the loss, or None (group lasso's α·Σ‖group‖₂).
* :meth:`Criterion.initial_mask`: masks to start from, or None (pattern_lock keeps the model's zeros);
  ``locks_pattern`` criteria prune nothing new.

:meth:`Criterion.from_group` builds one from a :class:`~sparsesearch.records.pruning.PruningGroup`. Adding a
criterion = one class here plus one entry in :data:`CRITERIA` (and its traits in
:data:`sparsesearch.records.names.CRITERIA`, which a test keeps in step); :mod:`sparsesearch.testing` has
the contract checks a new one should pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.patterns import Pattern, to_2d

OBSERVE_POLICIES = ("never", "before_update", "every_step")


class Criterion:
    """Base class: scores are weight-shaped float32 tensors; larger means more important.

    ``weights`` is the group's list of weight tensors; the pruner replaces entries in place when a layer's
    Parameter is replaced (``load_state_dict(..., assign=True)``), so read it at call time.
    """

    name: ClassVar[str]
    #: scores read gradients (the torch-free table records.names.CRITERIA says the same)
    needs_grad: ClassVar[bool] = False
    #: keeps the zero pattern the model already has and prunes nothing new
    locks_pattern: ClassVar[bool] = False
    #: when :meth:`observe` runs: "never", "before_update" or "every_step"
    observes: ClassVar[str] = "never"

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        self.weights = list(weights)

    @classmethod
    def from_group(cls, weights: Sequence[torch.Tensor], group: Any, pattern: Pattern) -> Criterion:
        """Build from a pruning group's settings (override when the criterion has hyperparameters)."""
        return cls(weights)

    def observe(self) -> None:
        """Called with gradients present, after ``backward`` and before the optimizer step."""

    def scores(self) -> list[torch.Tensor]:
        """Fresh float32 tensors the caller owns (it may modify them in place)."""
        raise NotImplementedError

    def regularization(self) -> torch.Tensor | None:
        """A term to add to the loss, or None."""
        return None

    def initial_mask(self) -> list[torch.Tensor] | None:
        """Boolean keep-masks to start from (one per weight), or None for dense."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


def _check_range(key: str, value: Any, lo: float, hi: float | None, *, hi_open: bool = True,
                 integer: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or value < lo or (
            hi is not None and (value >= hi if hi_open else value > hi)):
        bound = "" if hi is None else (f" and < {hi}" if hi_open else f" and <= {hi}")
        raise ConfigError("out of range", key=key, value=value,
                          allowed=f"{'an integer' if integer else 'a number'} >= {lo}{bound}")


class Magnitude(Criterion):
    """|w|"""

    name = "magnitude"

    def scores(self) -> list[torch.Tensor]:
        return [w.detach().abs().float() for w in self.weights]


class _GradientSnapshot(Criterion):
    """Keeps a score computed from the last gradient before each mask update."""

    needs_grad = True
    observes = "before_update"

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        super().__init__(weights)
        self._scores: list[torch.Tensor | None] = [None] * len(self.weights)

    def _score(self, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def observe(self) -> None:
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
    observes = "every_step"

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        super().__init__(weights)
        self._scores = [torch.zeros_like(w, dtype=torch.float32) for w in self.weights]
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

    def __init__(self, weights: Sequence[torch.Tensor], momentum: float = 0.9) -> None:
        _check_range("momentum", momentum, 0.0, 1.0)
        super().__init__(weights)
        self.momentum = float(momentum)

    @classmethod
    def from_group(cls, weights: Sequence[torch.Tensor], group: Any, pattern: Pattern) -> SnipMomentum:
        return cls(weights, momentum=group.momentum)

    def observe(self) -> None:
        for s, w in zip(self._scores, self.weights):
            if w.grad is not None:
                s.mul_(self.momentum).add_((w.detach() * w.grad.detach()).abs())
                self._seen = True


class Movement(_Accumulating):
    """Movement pruning (Sanh et al. 2020): score = −Σ w·g, large for weights moving away from zero."""

    name = "movement"

    def observe(self) -> None:
        for s, w in zip(self._scores, self.weights):
            if w.grad is not None:
                s.sub_(w.detach() * w.grad.detach())
                self._seen = True


class Random(Criterion):
    """Uniform random scores (a baseline), reproducible from ``seed``."""

    name = "random"

    def __init__(self, weights: Sequence[torch.Tensor], seed: int = 0) -> None:
        _check_range("seed", seed, 0, None, integer=True)
        super().__init__(weights)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_group(cls, weights: Sequence[torch.Tensor], group: Any, pattern: Pattern) -> Random:
        return cls(weights, seed=group.seed)

    def scores(self) -> list[torch.Tensor]:
        return [torch.rand(w.shape, generator=self.generator).to(w.device) for w in self.weights]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class GroupLasso(Criterion):
    """Adds α·Σ‖group‖₂ over the pattern's groups to the loss; prunes the groups of smallest norm.

    Group norms come from :func:`torch.linalg.vector_norm`, whose gradient at a zero group is zero (not
    NaN, a known failure of INC's implementation).
    """

    name = "group_lasso"

    def __init__(self, weights: Sequence[torch.Tensor], pattern: Pattern, alpha: float = 1e-4) -> None:
        _check_range("reg_coeff", alpha, 0.0, None)
        if not isinstance(pattern, Pattern):
            raise ConfigError("expected a pattern", key="pattern", value=pattern,
                              allowed="a sparsesearch.pruning.patterns.Pattern (build_pattern('4x1'))")
        super().__init__(weights)
        self.pattern = pattern
        self.alpha = float(alpha)

    @classmethod
    def from_group(cls, weights: Sequence[torch.Tensor], group: Any, pattern: Pattern) -> GroupLasso:
        return cls(weights, pattern, alpha=group.reg_coeff)

    def regularization(self) -> torch.Tensor | None:
        if self.alpha == 0:
            return None
        total = sum(self.pattern.group_norms(to_2d(w)).sum() for w in self.weights)
        return self.alpha * total  # type: ignore[return-value]

    def scores(self) -> list[torch.Tensor]:
        return [(w.detach().float() ** 2) for w in self.weights]


class PatternLock(Criterion):
    """Keeps the zero pattern the model already has through fine-tuning; prunes nothing new."""

    name = "pattern_lock"
    locks_pattern = True

    def initial_mask(self) -> list[torch.Tensor] | None:
        return [w.detach() != 0 for w in self.weights]

    def scores(self) -> list[torch.Tensor]:
        return [(w.detach() != 0).float() for w in self.weights]


CRITERIA: dict[str, type[Criterion]] = {
    c.name: c for c in (Magnitude, Gradient, Snip, SnipMomentum, Movement, Random, GroupLasso, PatternLock)
}
