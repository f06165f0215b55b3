"""Training: the callback protocol, a reference train/evaluate loop, and the runs a search makes."""

from __future__ import annotations

from sparsesearch.training.callbacks import Callbacks
from sparsesearch.training.loop import evaluate, train

__all__ = ["Callbacks", "evaluate", "train"]
