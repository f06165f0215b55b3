"""Tasks: what a study prunes — a model factory, data splits fixed by a seed, and training budget hints.

A task is any object with the :class:`Task` protocol. Built-in tasks are named (``digits-mlp``); a user's
task is referenced as ``"package.module:callable"``, where the callable returns a task when called with the
spec's ``task_args`` as keyword arguments (a task class works). Data is held as in-memory tensors, and
:func:`batches` shuffles by index permutation, so small tasks train without DataLoader overhead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from sparsesearch.errors import ConfigError, closest
from sparsesearch.tasks.base import Splits, Task, batches, steps_per_epoch


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
