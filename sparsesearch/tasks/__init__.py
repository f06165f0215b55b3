"""Tasks: what a study prunes — a model factory, data splits fixed by a seed, and training budget hints.

A task is any object with the :class:`Task` protocol. Built-in tasks are named (``digits-mlp``); a user's
task is referenced as ``"package.module:callable"``, where the callable returns a task when called with the
spec's ``task_args`` as keyword arguments (a task class works). Data is held as in-memory tensors, and
:func:`batches` shuffles by index permutation, so small tasks train without DataLoader overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sparsesearch.errors import ConfigError, closest
from sparsesearch.tasks.base import Splits, Task, batches, steps_per_epoch
from sparsesearch.tasks.references import is_reference, refuse_untrusted, resolve_reference


def _builtins() -> dict[str, Callable[..., Task]]:
    from sparsesearch.tasks.digits import DigitsMLP

    return {"digits-mlp": DigitsMLP}


BUILTIN_TASKS = ("digits-mlp",)


def resolve_task(ref: str, args: Mapping[str, Any] | None = None, *, key: str = "task", trusted: bool = False,
                 source: str | None = None, flag: str = "--task") -> Task:
    """The task named ``ref``, built with ``args``.

    A built-in name is always resolved. A ``"module:callable"`` reference is imported and called only when
    ``trusted`` (the user named it herself, or trusted the file it came from); otherwise
    :class:`~sparsesearch.tasks.references.UntrustedCode` says what would have been imported (``source`` is
    the file it came from, ``flag`` the option that allows it).
    """
    args = dict(args or {})
    builtins = _builtins()
    if ref in builtins:
        factory: Any = builtins[ref]
    elif is_reference(ref):
        if not trusted:
            raise refuse_untrusted(ref, key=key, source=source, flag=flag)
        factory = resolve_reference(ref, key=key, what="a callable returning a task")
        if not callable(factory):
            raise ConfigError(f"{ref} is a {type(factory).__name__}, not callable", key=key, value=ref,
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
