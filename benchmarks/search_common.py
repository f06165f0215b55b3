"""Shared helpers for the search benchmarks: specs derived from the quickstart, temp stores, fronts."""

from __future__ import annotations

import copy
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sparsesearch.records.study import load_spec
from sparsesearch.search import pareto
from sparsesearch.search.runner import StudyResult, run_study
from sparsesearch.search.storage import load
from sparsesearch.tracking import Tracker

ROOT = Path(__file__).resolve().parents[1]


def quickstart_data() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())


def spec_from(base: dict[str, Any], workdir: Path, *, tracking: bool = False, **changes: Any):
    data = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    data["storage"] = f"sqlite:///{workdir}/optuna.db"
    data["tracking"] = {"uri": f"sqlite:///{workdir}/mlflow.db" if tracking else None}
    return load_spec(data)


def run(base: dict[str, Any], *, tracking: bool = False, **changes: Any) -> tuple[StudyResult, Any]:
    """Run a study in a fresh temporary directory; returns the result and the Optuna study."""
    workdir = Path(tempfile.mkdtemp(prefix="sparsesearch-bench-"))
    spec = spec_from(base, workdir, tracking=tracking, **changes)
    result = run_study(spec, tracker=None if tracking else Tracker(), workdir=workdir / "work")
    return result, load(spec.name, spec.storage)


def trial_seconds(study) -> list[float]:
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials()
            if t.datetime_complete is not None and t.datetime_start is not None]


def best_at(study, sparsity: float) -> dict[str, float] | None:
    """The front trial with the best validation accuracy among those with sparsity >= ``sparsity``."""
    front = [t for t in pareto.front_trials(study) if t.values[1] >= sparsity - 1e-9]
    if not front:
        return None
    t = max(front, key=lambda t: (t.values[0], t.values[1]))
    return {"val": t.values[0], "test": t.user_attrs["metrics"]["test_accuracy"], "sparsity": t.values[1],
            "trial": t.number}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def pct(values: list[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f}" if len(values) == 1 else f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"
