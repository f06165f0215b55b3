"""sparsesearch: experiment-tracked AutoML sparsity search for PyTorch models.

``import sparsesearch`` is cheap: the API (:mod:`sparsesearch.api`) is loaded on first use, so reading a
spec or a recipe never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("Study", "apply", "load", "load_recipe", "read_spec", "run", "write_recipe")


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("sparsesearch.api"), name)
    raise AttributeError(f"module 'sparsesearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["__version__", *_API]
