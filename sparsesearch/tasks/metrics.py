"""Metrics: a name, a function over a whole split's outputs and targets, and a direction.

A task names one or more metrics; one of them is the study's objective (the first unless the task says
which). "Lower is better" metrics (loss, perplexity, error rates) set ``direction="minimize"``; everything
downstream (the constraint, early stopping, the Pareto front, export rules) follows the direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from sparsesearch.errors import ConfigError

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Metric:
    """``fn(outputs, targets) -> float`` over a whole split (outputs and targets concatenated over batches).

    ``fn`` may be None for a metric your own evaluation computes (the own-loop task form).
    """

    name: str
    fn: Callable[[Any, Any], float] | None = None
    direction: str = "maximize"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError("a metric name is letters, digits, '_' and '-'", key="metrics.name", value=self.name,
                              allowed="e.g. accuracy, f1, perplexity")
        if self.direction not in DIRECTIONS:
            raise ConfigError("unknown metric direction", key=f"metrics.{self.name}.direction", value=self.direction,
                              allowed=DIRECTIONS)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.maximize else a < b

    def drop(self, dense: float, value: float) -> float:
        """How much worse ``value`` is than ``dense`` (positive = worse), in the metric's own units."""
        return dense - value if self.maximize else value - dense


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] (logits over the last dimension)."""
    return float((outputs.argmax(-1) == targets).float().mean()) if len(targets) else 0.0


def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy (lower is better)."""
    return float(F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]).float(), targets.reshape(-1)))


def perplexity(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """exp(mean cross-entropy) (lower is better)."""
    return math.exp(min(cross_entropy(outputs, targets), 80.0))


ACCURACY = Metric("accuracy", accuracy, "maximize")
LOSS = Metric("loss", cross_entropy, "minimize")
PERPLEXITY = Metric("perplexity", perplexity, "minimize")
