"""Recipes from trials: the lossless export of what a trial ran, with provenance and achieved metrics.

Everything comes from what the trial stored on itself (``config``, ``training``, ``metrics`` user
attributes), never from Optuna's parameter names, so a recipe is exact even when the space changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sparsesearch.errors import ConfigError
from sparsesearch.formats.recipe import recipe_to_yaml, write_recipe
from sparsesearch.records.recipe import Recipe, make_recipe
from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.records.training import TRAINING_KEYS


def build_recipe(*, study: str, task: str | None, task_args: Mapping[str, Any] | None = None, number: int,
                 config: Mapping[str, Any],
                 training: Mapping[str, Any], steps_per_epoch: int | None, metrics: Mapping[str, Any] | None,
                 dense: Mapping[str, Any] | None, run_id: str | None, init: str = "dense",
                 objective: Mapping[str, Any] | None = None) -> Recipe:
    """The recipe of one trial (see the module docstring). ``objective`` is the study's {name, direction}."""
    metrics = dict(metrics or {})
    dense = dict(dense or {})
    name = str((objective or {}).get("name") or "accuracy")
    direction = (objective or {}).get("direction") or "maximize"
    notes = []
    if init == "dense":
        notes.append(f"fine-tuned from the study's dense baseline ({dense.get('epochs', '?')} epochs, validation "
                     f"{name} {_fmt(dense.get(f'val_{name}', dense.get('val_accuracy')))}); apply it to your "
                     "trained model")
    elif init == "pretrained":
        notes.append(f"fine-tuned from the task's trained weights (validation {name} "
                     f"{_fmt(dense.get(f'val_{name}'))})")
    else:
        notes.append("trained from the task's initial weights (init: scratch)")
    if metrics.get("stop_reason"):
        notes.append(f"stopped early: {metrics['stop_reason']}")
    provenance = {
        "study": study,
        "trial": number,
        "run_id": run_id,
        "metrics": {
            "objective": name,
            "direction": direction,
            "value": metrics.get(f"val_{name}"),
            "test_value": metrics.get(f"test_{name}"),
            "dense_value": dense.get(f"val_{name}"),
            "dense_test_value": dense.get(f"test_{name}"),
            "val_accuracy": metrics.get("val_accuracy"),
            "test_accuracy": metrics.get("test_accuracy"),
            "sparsity": metrics.get("sparsity"),
            "total_sparsity": metrics.get("total_sparsity"),
            "dense_val_accuracy": dense.get("val_accuracy"),
            "dense_test_accuracy": dense.get("test_accuracy"),
        },
        "notes": notes,
    }
    provenance["metrics"] = {k: v for k, v in dict(provenance["metrics"]).items() if v is not None}  # type: ignore[call-overload]
    settings = {k: training[k] for k in TRAINING_KEYS if k in training}
    settings["task"] = task
    settings["task_args"] = dict(task_args or {})
    settings["init"] = init
    settings["steps_per_epoch"] = steps_per_epoch
    return make_recipe(dict(config), training=settings, provenance={k: v for k, v in provenance.items()
                                                                   if v is not None})


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"


def recipe_text(recipe: Recipe) -> str:
    return recipe_to_yaml(recipe)


def export_recipe(recipe: Recipe, path: str | Path, *, overwrite: bool = False) -> Path:
    return write_recipe(recipe, path, overwrite=overwrite)


def recipe_for_trial(study: optuna.Study, trial: FrozenTrial, *, spec_data: Mapping[str, Any] | None = None) -> Recipe:
    """The recipe of a finished trial, from what it stored on itself (lossless)."""
    record = TrialRecord.of(trial.user_attrs)
    if record.config is None:
        raise ConfigError(f"trial {trial.number} stored no pruning config (was it run by sparsesearch?)",
                          key="trial", value=trial.number, allowed="a trial of a sparsesearch study")
    state = StudyState.of(study.user_attrs)
    spec_data = spec_data or state.spec
    metrics: dict[str, Any] = dict(record.metrics)
    if record.stop_reason:
        metrics["stop_reason"] = record.stop_reason
    return build_recipe(study=study.study_name, task=spec_data.get("task"), task_args=spec_data.get("task_args"),
                        number=trial.number, config=record.config, training=record.training,
                        steps_per_epoch=state.steps_per_epoch, metrics=metrics, dense=state.baseline,
                        run_id=record.run_id, init=_init(spec_data, state), objective=state.objective)


def _init(spec_data: Mapping[str, Any], state: StudyState) -> str:
    init = str((spec_data.get("budget") or {}).get("init", "dense"))
    return "pretrained" if init != "scratch" and state.baseline.get("pretrained") else init


