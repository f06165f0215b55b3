"""Training-loop integration: the callback protocol and a reference train/evaluate loop."""

from __future__ import annotations

from sparsesearch.training.callbacks import NoCallbacks, TrainingCallbacks
from sparsesearch.training.loop import evaluate, train

__all__ = ["NoCallbacks", "TrainingCallbacks", "evaluate", "train"]
