"""Tasks: what a study prunes — a model factory, data splits fixed by a seed, and training budget hints.

A task is any object with the :class:`Task` protocol. Built-in tasks are named (``digits-mlp``); a user's
task is referenced as ``"package.module:callable"``, where the callable returns a task when called with the
spec's ``task_args`` as keyword arguments (a task class works). Data is held as in-memory tensors, and
:func:`batches` shuffles by index permutation, so small tasks train without DataLoader overhead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from sparsesearch.errors import ConfigError, closest


@dataclass(frozen=True)
class Splits:
    """Train, validation and test tensors. Validation picks trials; test is only ever recorded."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}


@runtime_checkable
class Task(Protocol):
    """What the search needs from a task.

    ``model()`` builds a fresh model (the caller seeds torch first, so initialisation is reproducible);
    ``splits(seed)`` returns the same data for the same seed; ``budget_hints`` gives defaults for the
    study's budget (``epochs``, ``dense_epochs``, ``batch_size``, ``optimizer``, ``lr``).
    """

    name: str
    budget_hints: Mapping[str, Any]

    def model(self) -> nn.Module: ...

    def splits(self, seed: int) -> Splits: ...


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Callable[[int], Iterator]:
    """``epoch -> iterator of (x, y)`` minibatches in an order fixed by ``seed`` and the epoch."""

    def per_epoch(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            yield x[idx], y[idx]

    return per_epoch


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def _builtins() -> dict[str, Callable[..., Task]]:
    from sparsesearch.tasks.digits import DigitsMLP

    return {"digits-mlp": DigitsMLP}


BUILTIN_TASKS = ("digits-mlp",)


def resolve_task(ref: str, args: Mapping[str, Any] | None = None, *, key: str = "task") -> Task:
    """The task named ``ref`` (built-in name or ``"module:callable"``), built with ``args``."""
    args = dict(args or {})
    builtins = _builtins()
    if ref in builtins:
        factory = builtins[ref]
    elif ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import the task's module {module_name!r}: {exc}", key=key, value=ref,
                              allowed="an importable 'package.module:callable' (is the package installed, "
                              "or the directory on PYTHONPATH?)") from None
        factory = module
        for part in attr.split("."):
            factory = getattr(factory, part, None)
            if factory is None:
                names = [n for n in dir(module) if not n.startswith("_")]
                raise ConfigError(f"module {module_name!r} has no attribute {attr!r}", key=key, value=ref,
                                  allowed="a callable in that module returning a task",
                                  suggestion=f"{module_name}:{c}" if (c := closest(attr, names)) else None)
        if not callable(factory):
            raise ConfigError("the task reference is not callable", key=key, value=ref,
                              allowed="a callable returning a task")
    else:
        raise ConfigError("unknown task", key=key, value=ref,
                          allowed=list(BUILTIN_TASKS) + ["'package.module:callable'"],
                          suggestion=closest(ref, BUILTIN_TASKS))
    try:
        task = factory(**args)
    except TypeError as exc:
        raise ConfigError(f"the task does not accept these task_args: {exc}", key="task_args", value=args,
                          allowed="the keyword arguments of the task's callable") from None
    missing = [m for m in ("model", "splits", "name", "budget_hints") if not hasattr(task, m)]
    if missing:
        raise ConfigError(f"{ref!r} did not return a task: it lacks {', '.join(missing)}", key=key, value=ref,
                          allowed="an object with name, budget_hints, model() and splits(seed)")
    return task


__all__ = ["BUILTIN_TASKS", "Splits", "Task", "batches", "resolve_task", "steps_per_epoch"]
