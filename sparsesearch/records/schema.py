"""Strict loading of plain data (dicts from YAML or Python) into the typed, frozen config dataclasses.

One small mechanism for every config object: unknown keys are rejected with the closest valid key, values
are checked against the field's type and its declared bounds or choices, and every error carries the key
path (``groups[1].schedule.end_step``) so the YAML reader can add the file and line. Pure Python: importing
it loads neither torch nor yaml.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from sparsesearch.errors import ConfigError, closest

T = TypeVar("T")

_NUMBER_WITH_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")


def spec(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with bounds or choices that :func:`load` checks."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "doc": doc}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _bounds_text(meta: Mapping[str, Any]) -> str | None:
    lo = f"[{meta['ge']}" if meta.get("ge") is not None else (f"({meta['gt']}" if meta.get("gt") is not None else None)
    hi = f"{meta['le']}]" if meta.get("le") is not None else (f"{meta['lt']})" if meta.get("lt") is not None else None)
    if lo and hi:
        return f"a number in {lo}, {hi}"
    if lo:
        return f"a number {'>=' if lo[0] == '[' else '>'} {lo[1:]}"
    if hi:
        return f"a number {'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
    return None


def check_bounds(value: float, meta: Mapping[str, Any], path: str) -> None:
    bad = (
        (meta.get("ge") is not None and not value >= meta["ge"])
        or (meta.get("gt") is not None and not value > meta["gt"])
        or (meta.get("le") is not None and not value <= meta["le"])
        or (meta.get("lt") is not None and not value < meta["lt"])
    )
    if bad:
        raise ConfigError("out of range", key=path, value=value, allowed=_bounds_text(meta))


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin in (tuple, list):
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def convert(value: Any, tp: Any, path: str, meta: Mapping[str, Any] | None = None) -> Any:
    """Check ``value`` against the type hint ``tp`` (and ``meta`` bounds) and return the typed value."""
    meta = meta or {}
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return convert(value, inner[0], path, meta)
        errors = []
        for option in inner:
            try:
                return convert(value, option, path, meta)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if tp is Any:
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return load(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError("expected true or false", key=path, value=value, allowed="true, false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError("expected an integer", key=path, value=value, allowed=_bounds_text(meta) or "an integer")
        check_bounds(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER_WITH_COMMA.match(value):
            fixed = value.strip().replace(",", ".")
            raise ConfigError("expected a number; a comma is not a decimal point", key=path, value=value,
                              allowed=_bounds_text(meta) or "a number", suggestion=fixed)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError("expected a number", key=path, value=value, allowed=_bounds_text(meta) or "a number")
        value = float(value)
        if math.isnan(value):
            raise ConfigError("expected a number, not NaN", key=path, value=value, allowed=_bounds_text(meta))
        check_bounds(value, meta, path)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError("expected a string", key=path, value=value,
                              allowed=", ".join(meta["choices"]) if meta.get("choices") else "a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"unknown {path.rsplit('.', 1)[-1]}", key=path, value=value, allowed=choices,
                              suggestion=closest(value, choices))
        return value
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError("expected a list", key=path, value=value, allowed=f"a list of {_item_name(tp)}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [convert(v, item_tp, join(path, i), meta) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError("expected a mapping", key=path, value=value, allowed="a mapping of names to values")
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            k2 = convert(k, key_tp, path, {})
            out[k2] = convert(v, val_tp, f"{path}[{k!r}]" if not isinstance(k, str) else join(path, k), meta)
        return out
    raise TypeError(f"schema: unsupported type {tp!r} at {path}")  # a programming error, not user input


def _item_name(tp: Any) -> str:
    args = typing.get_args(tp)
    return _type_name(args[0]).removeprefix("a ").removeprefix("an ") + "s" if args else "values"


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.init]


def load(cls: type[T], data: Any, path: str = "") -> T:
    """Build the dataclass ``cls`` from ``data`` strictly. ``path`` prefixes every error's key."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError("expected a mapping of keys to values", key=path or None, value=data,
                          allowed="keys " + ", ".join(field_names(cls)))
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in fields:
            raise ConfigError("unknown key", key=join(path, str(key)), allowed=sorted(fields),
                              suggestion=closest(str(key), fields))
        f = fields[key]
        kwargs[key] = convert(value, hints[key], join(path, key), f.metadata)
    missing = [n for n, f in fields.items()
               if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError("missing required key", key=join(path, missing[0]), allowed=", ".join(missing))
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.located(prefix=path or None) from None


def dump(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a config dataclass, in field order, for writing to YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [dump(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: dump(v) for k, v in obj.items()}
    return obj


def validate_fields(obj: Any) -> None:
    """Check bounds and choices of a dataclass built directly in Python (``load`` checks them for dicts)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.init:
            object.__setattr__(obj, f.name, convert(getattr(obj, f.name), hints[f.name], f.name, f.metadata))
