"""``"package.module:callable"`` references: resolved only on the user's explicit say-so.

A reference names code to import and run. sparsesearch resolves one only when the user gave it herself (a
command-line option, a Python argument) or explicitly trusted the file it came from: a spec or recipe file
never causes code to be imported or run by itself. Resolution uses :func:`pkgutil.resolve_name`, with the
working directory on the import path (as ``uvicorn main:app`` does), so a task file beside the spec is
found without ``PYTHONPATH=.``.
"""

from __future__ import annotations

import os
import pkgutil
import re
import sys
from typing import Any

from sparsesearch.errors import ConfigError, closest

_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


def is_reference(text: object) -> bool:
    """Whether ``text`` is spelled ``package.module:callable``."""
    return isinstance(text, str) and bool(_REFERENCE.match(text))


class UntrustedCode(ConfigError):
    """A file named code to run, and the user has not allowed it."""


def refuse_untrusted(ref: str, *, key: str, source: str | None, flag: str) -> UntrustedCode:
    """The error for a reference that came from a file: says exactly what would be imported and run."""
    module, _, attr = ref.partition(":")
    where = f"the file {source}" if source else "a file"
    return UntrustedCode(
        f"{where} names code to run: it would import the module {module!r} and call {attr!r}. A file never "
        "runs code by itself", key=key, value=ref,
        allowed=f"a built-in task name, or allow this code explicitly: pass {flag} {ref} on the command line "
        "(or --trust-task to trust the file's reference; in Python, trust_task=True)", file=source)


def resolve_reference(ref: str, *, key: str, what: str) -> Any:
    """The object ``ref`` names; ConfigError naming the reference and what was expected otherwise.

    ``what`` says what the reference should be (for messages), e.g. "a callable returning a task".
    """
    if not is_reference(ref):
        raise ConfigError("expected a reference 'package.module:callable'", key=key, value=ref, allowed=what)
    module_name, _, attr = ref.partition(":")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return pkgutil.resolve_name(ref)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import the module {module_name!r}: no such module in the working directory "
                              "or the installed packages", key=key, value=ref,
                              allowed=f"{what}, in an installed package or a file in the working directory") from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}", key=key, value=ref,
                          allowed=f"{what} whose module imports cleanly") from None
    except AttributeError:
        module = sys.modules.get(module_name)
        names = [n for n in dir(module) if not n.startswith("_")] if module else []
        near = closest(attr, names)
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}", key=key, value=ref, allowed=what,
                          suggestion=f"{module_name}:{near}" if near else None) from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", key=key, value=ref,
                          allowed=f"{what} whose module imports cleanly") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
