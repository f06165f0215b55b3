"""sparsesearch: experiment-tracked AutoML sparsity search for PyTorch models."""

from __future__ import annotations

__version__ = "0.1.0"
