"""Every user-facing failure of sparsesearch.

Bad input raises :class:`ConfigError` (a ``ValueError``) whose message names where the problem is (file,
line, key path), the bad value and what is allowed, with the closest valid name when the value looks like
a typo. The CLI prints the message and exits non-zero; no traceback reaches the user.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class SparseSearchError(Exception):
    """Base class of the errors sparsesearch raises on purpose."""


def closest(name: object, choices: Iterable[str]) -> str | None:
    """The valid name closest to ``name`` (for "did you mean ...?"), or None when nothing is close."""
    if not isinstance(name, str):
        return None
    options = [str(c) for c in choices]
    lowered = {c.lower(): c for c in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if not match:
        match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        match = [lowered[m] for m in match]
    return match[0] if match else None


def _fmt_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class ConfigError(SparseSearchError, ValueError):
    """Invalid configuration or input.

    Attributes hold the parts of the message so callers (the YAML reader, the CLI) can add the file and
    line without re-parsing text: ``key`` is a key path such as ``groups[1].pattern``.
    """

    def __init__(
        self,
        problem: str,
        *,
        key: str | None = None,
        value: Any = ...,
        allowed: str | Iterable[str] | None = None,
        suggestion: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.key = key
        self.value = value
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        self.suggestion = suggestion
        self.file = file
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = where + (f"{self.key}: " if self.key else "") + self.problem
        if self.value is not ...:
            text += f" (got {_fmt_value(self.value)})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        if self.suggestion is not None:
            text += f". Did you mean {self.suggestion!r}?"
        return text

    def located(self, *, file: str | None = None, line: int | None = None, prefix: str | None = None) -> ConfigError:
        """A copy with a file, line or key-path prefix added (the first one set wins)."""
        key = self.key
        if prefix:
            key = prefix if not key else (f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}")
        return ConfigError(
            self.problem,
            key=key,
            value=self.value,
            allowed=self.allowed,
            suggestion=self.suggestion,
            file=self.file or file,
            line=self.line or line,
        )

    def __reduce__(self):  # keep the error picklable for multiprocessing workers
        return (_rebuild, (self.problem, self.key, self.value, self.allowed, self.suggestion, self.file, self.line))


def _rebuild(problem, key, value, allowed, suggestion, file, line) -> ConfigError:
    return ConfigError(problem, key=key, value=value, allowed=allowed, suggestion=suggestion, file=file, line=line)


def unknown_name(kind_key: str, value: Any, allowed: Iterable[str]) -> ConfigError:
    """The error for a name that is not in a registry: lists the valid names and the closest one."""
    allowed = sorted(allowed)
    return ConfigError(f"unknown {kind_key.rsplit('.', 1)[-1]}", key=kind_key, value=value, allowed=allowed,
                       suggestion=closest(value, allowed))


class TrainingDiverged(SparseSearchError):
    """The loss became NaN or infinite during training."""
