"""Shared by the report and UI tests: a tiny tracked study, and headless Chromium (the system's, driven by
playwright, never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: the flags every test browser starts with: no network of its own, no first-run work, a fresh profile
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class TinyStudy:
    name: str
    spec: Path
    storage: str
    tracking: str
    folder: Path


def tiny_spec(folder: Path, name: str = "tiny", *, tracking: bool = True, **over: Any) -> TinyStudy:
    """A 4-trial digits-mlp study spec (2 epochs a trial, 3 dense epochs, no warm start) in ``folder``, whose
    stores are relative to it (``sqlite:///optuna.db``, ``sqlite:///mlflow.db``): use it from there, as a user
    would (and no machine's folder shows up in a report or screenshot)."""
    import yaml

    storage = "sqlite:///optuna.db"
    uri = "sqlite:///mlflow.db"
    data = {
        "name": name, "task": "digits-mlp", "n_trials": 4, "seed": 0,
        "budget": {"epochs": 2, "dense_epochs": 3},
        "space": {"pruning_types": ["magnitude", "snip_momentum"], "patterns": ["1x1", "1x4"],
                  "scopes": ["local", "global"], "sparsity": [0.5, 0.95], "schedule": {"end": [0.5, 0.5]}},
        "warm_start": [], "early_stopping": {"enabled": False},
        "storage": storage, "tracking": {"uri": uri if tracking else None},
        "export": {"max_drop": 0.05},
        **over,
    }
    spec = folder / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return TinyStudy(name, spec, storage, uri, folder)


@contextlib.contextmanager
def tiny_study(folder: Path, name: str = "tiny", **over: Any) -> Iterator[TinyStudy]:
    """Run :func:`tiny_spec`'s study (about ten seconds) and stay in ``folder`` until the block ends."""
    import sparsesearch

    tiny = tiny_spec(folder, name, **over)
    old = Path.cwd()
    os.chdir(folder)
    try:
        sparsesearch.run(tiny.spec, workdir=folder / "work")
        yield tiny
    finally:
        os.chdir(old)


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def need_chromium() -> str:
    """The system Chromium; without one the test fails in CI (CI set) and is skipped elsewhere."""
    found = chromium_path()
    if found is None:
        message = "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (pip install --group dev)")
        pytest.skip("playwright is not installed (pip install --group dev)")
    return found


@contextlib.contextmanager
def browser_page(profile: Path, width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium (profile folder ``profile``) and the list its console errors and
    page errors are collected in."""
    from playwright.sync_api import sync_playwright

    executable = need_chromium()
    errors: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page, errors
        finally:
            context.close()
