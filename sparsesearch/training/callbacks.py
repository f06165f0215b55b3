"""The callback protocol a training loop drives: :class:`~sparsesearch.pruning.callbacks.Callbacks`.

Re-exported here because the training loop is where users meet it; the pruner, which implements it, lives
below training in the engine.
"""

from __future__ import annotations

from sparsesearch.pruning.callbacks import Callbacks

__all__ = ["Callbacks"]
