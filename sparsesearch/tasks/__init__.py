"""Tasks: what a study prunes and how it is trained and measured.

Two forms (see :mod:`sparsesearch.tasks.base`): :class:`Task` (data and pieces, trained by sparsesearch's
loop) and :class:`LoopTask` (your own loop). Built-in tasks are named (``digits-mlp``, ``digits-cnn``,
``text-transformer``); a task of your own is referenced as ``"package.module:callable"`` (resolved from the
working directory too), where the callable returns a task when called with the spec's ``task_args``. A
factory that accepts ``seed`` and/or ``batch_size`` keyword arguments receives the study's data seed and
batch size. Tasks with the older ``splits(seed)`` protocol are still accepted.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sparsesearch.errors import ConfigError, closest
from sparsesearch.tasks.base import AnyTask, LoopTask, Splits, SplitsTask, Task, from_splits, steps_per_epoch
from sparsesearch.tasks.data import TensorBatches
from sparsesearch.tasks.metrics import ACCURACY, LOSS, PERPLEXITY, Metric
from sparsesearch.tasks.references import is_reference, refuse_untrusted, resolve_reference


def _builtins() -> dict[str, Callable[..., Any]]:
    from sparsesearch.tasks.digits import DigitsMLP, digits_cnn
    from sparsesearch.tasks.text import text_transformer

    return {"digits-mlp": DigitsMLP, "digits-cnn": digits_cnn, "text-transformer": text_transformer}


BUILTIN_TASKS = ("digits-mlp", "digits-cnn", "text-transformer")


def _call(factory: Callable[..., Any], args: Mapping[str, Any], extras: Mapping[str, Any]) -> Any:
    """``factory(**args)``, plus the ``extras`` (seed, batch_size) it names as parameters."""
    try:
        params = inspect.signature(factory).parameters
        given = {k: v for k, v in extras.items() if k in params and k not in args}
    except (TypeError, ValueError):
        given = {}
    return factory(**args, **given)


def as_task(obj: Any, *, ref: str = "task", seed: int = 0, batch_size: int | None = None) -> AnyTask:
    """``obj`` as a :class:`Task` or :class:`LoopTask` (a legacy ``splits(seed)`` object is converted, with
    ``batch_size`` or else its own hint)."""
    if isinstance(obj, (Task, LoopTask)):
        return obj
    if isinstance(obj, SplitsTask):
        size = batch_size or int(obj.budget_hints.get("batch_size", 64))
        return from_splits(obj, seed=seed, batch_size=size)
    raise ConfigError(f"{ref} did not return a task (got a {type(obj).__name__})", key="task", value=ref,
                      allowed="sparsesearch.tasks.Task(...) (data and pieces), sparsesearch.tasks.LoopTask(...) "
                      "(your own loop), or an object with name, budget_hints, model() and splits(seed)")


def resolve_task(ref: str | Any, args: Mapping[str, Any] | None = None, *, key: str = "task", trusted: bool = False,
                 source: str | None = None, flag: str = "--task", seed: int = 0,
                 batch_size: int | None = None) -> AnyTask:
    """The task ``ref`` names (a built-in name or ``"module:callable"``), or ``ref`` itself when it already
    is a task object or factory (the Python API), built with ``args``.

    A ``"module:callable"`` reference is imported and called only when ``trusted`` (the user named it
    herself, or trusted the file it came from); otherwise
    :class:`~sparsesearch.tasks.references.UntrustedCode` says what would have been imported (``source`` is
    the file it came from, ``flag`` the option that allows it).
    """
    args = dict(args or {})
    extras: dict[str, Any] = {"seed": seed} if batch_size is None else {"seed": seed, "batch_size": batch_size}
    if not isinstance(ref, str):
        obj = _call(ref, args, extras) if callable(ref) and not isinstance(ref, (Task, LoopTask)) else ref
        return as_task(obj, ref=getattr(ref, "__name__", type(ref).__name__), seed=seed, batch_size=batch_size)
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
        obj = _call(factory, args, extras)
    except TypeError as exc:
        raise ConfigError(f"the task does not accept these task_args: {exc}", key="task_args", value=args,
                          allowed="the keyword arguments of the task's callable") from None
    return as_task(obj, ref=ref, seed=seed, batch_size=batch_size)


__all__ = ["ACCURACY", "BUILTIN_TASKS", "LOSS", "PERPLEXITY", "AnyTask", "LoopTask", "Metric", "Splits", "Task",
           "TensorBatches", "as_task", "resolve_task", "steps_per_epoch"]
