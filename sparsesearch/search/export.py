"""Recipes from trials: the lossless export of what a trial ran, with provenance and achieved metrics.

Everything comes from what the trial stored on itself (``config``, ``training``, ``metrics`` user
attributes), never from Optuna's parameter names, so a recipe is exact even when the space changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparsesearch.recipes import Recipe, make_recipe, recipe_to_yaml, write_recipe

TRAINING_KEYS = ("epochs", "finetune_epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "seed")


def build_recipe(*, study: str, task: str | None, task_args: Mapping[str, Any] | None = None, number: int,
                 config: Mapping[str, Any],
                 training: Mapping[str, Any], steps_per_epoch: int | None, metrics: Mapping[str, Any] | None,
                 dense: Mapping[str, Any] | None, run_id: str | None, init: str = "dense") -> Recipe:
    """The recipe of one trial (see the module docstring)."""
    metrics = dict(metrics or {})
    dense = dict(dense or {})
    notes = []
    if init == "dense":
        notes.append(f"fine-tuned from the study's dense baseline ({dense.get('epochs', '?')} epochs, validation "
                     f"accuracy {_fmt(dense.get('val_accuracy'))}); apply it to your trained model")
    else:
        notes.append("trained from the task's initial weights (init: scratch)")
    if metrics.get("stop_reason"):
        notes.append(f"stopped early: {metrics['stop_reason']}")
    provenance = {
        "study": study,
        "trial": number,
        "run_id": run_id,
        "metrics": {
            "val_accuracy": metrics.get("val_accuracy"),
            "test_accuracy": metrics.get("test_accuracy"),
            "sparsity": metrics.get("sparsity"),
            "total_sparsity": metrics.get("total_sparsity"),
            "dense_val_accuracy": dense.get("val_accuracy"),
            "dense_test_accuracy": dense.get("test_accuracy"),
        },
        "notes": notes,
    }
    provenance["metrics"] = {k: v for k, v in provenance["metrics"].items() if v is not None}
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
