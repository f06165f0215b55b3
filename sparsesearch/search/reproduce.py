"""Re-running a recipe exported from a study, to check it reproduces the trial it came from.

The recipe holds the pruning config and the training settings; the starting weights (the study's dense
baseline) come from the study: this worker's local copy when its checksum matches, else the tracking
store, or an explicit checkpoint file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.records.recipe import Recipe
from sparsesearch.records.state import StudyState
from sparsesearch.records.training import TrainingSettings
from sparsesearch.search.baseline import load_checkpoint
from sparsesearch.search.context import set_threads
from sparsesearch.search.storage import load
from sparsesearch.tasks import AnyTask, resolve_task
from sparsesearch.tracking import fetch_artifact
from sparsesearch.training.runs import RunResult, fresh_model, load_state, run

#: what "reproduces" means: validation accuracy within this many points, sparsity exact (counted weights)
TOLERANCE_POINTS = 0.5


@dataclass
class Reproduction:
    """A re-run of a recipe: its result, the recipe's recorded metrics, and the trained (pruned) model with
    the task it was trained on (for saving the model, or measuring it)."""

    result: RunResult
    recorded: dict[str, float]
    model: nn.Module | None = None
    task: AnyTask | None = None

    @property
    def delta(self) -> float | None:
        """This run's objective value minus the recorded one (in the metric's units)."""
        rec = self.recorded.get("value", self.recorded.get("val_accuracy"))
        return None if rec is None else self.result.value - rec

    @property
    def accuracy_delta_points(self) -> float | None:
        """The delta in points (hundredths), the unit of the tolerance."""
        return None if self.delta is None else 100.0 * self.delta

    @property
    def sparsity_exact(self) -> bool | None:
        rec = self.recorded.get("sparsity")
        return None if rec is None else abs(self.result.sparsity - rec) < 1e-12

    @property
    def ok(self) -> bool:
        delta = self.accuracy_delta_points
        return delta is not None and abs(delta) <= TOLERANCE_POINTS and bool(self.sparsity_exact)


def reproduce(recipe: Recipe, *, storage: str | None = None, tracking_uri: str | None = None,
              dense: str | Path | None = None, workdir: Path | None = None, task: str | None = None,
              trust_task: bool = False, source: str | None = None) -> Reproduction:
    """Train again exactly as the recipe says, from the study's dense weights; compare with its metrics.

    The recipe's task is resolved like a spec's: a built-in name freely, a ``module:callable`` reference only
    when the user names it herself (``task``) or trusts the recipe file (``trust_task``); ``source`` is the
    recipe's file, for messages.
    """
    training = _training(recipe, task)
    prov = recipe.provenance
    spec: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    if prov.study and storage:
        study = load(prov.study, storage)
        state = StudyState.of(study.user_attrs)
        spec, baseline = dict(state.spec), dict(state.baseline)
    set_threads(spec.get("num_threads"))  # before any task code runs, as in the study
    the_task = resolve_task(training.task, training.task_args or spec.get("task_args") or {}, key="training.task",
                            trusted=trust_task or task is not None, source=source,
                            seed=training.data_seed if training.data_seed is not None else training.seed,
                            batch_size=training.batch_size)
    set_threads(spec.get("num_threads"), the_task)
    init = training.init
    model = fresh_model(the_task, training.model_seed if training.model_seed is not None else training.seed)
    if init == "dense":
        weights = _dense_state(baseline, dense, tracking_uri or (spec.get("tracking") or {}).get("uri"),
                               workdir or Path(".sparsesearch") / (prov.study or "study"))
        load_state(model, weights)
    result = run(model, the_task, training, pruning=recipe.pruning, steps_per_epoch=training.steps_per_epoch)
    recorded = {k: v for k, v in vars(prov.metrics).items() if v is not None}
    return Reproduction(result, recorded, model=model, task=the_task)


def _training(recipe: Recipe, task: str | None) -> TrainingSettings:
    training = recipe.training
    if task is not None and training is not None:
        training = dataclasses.replace(training, task=task)
    if training is None or not training.task:
        raise ConfigError("the recipe names no task to train on, so it cannot be re-run here; apply it in your own "
                          "training loop (sparsesearch.apply(model, recipe))", key="training.task", value=None,
                          allowed="a recipe exported by `sparsesearch export`")
    return training


def recipe_model(recipe: Recipe, *, task: str | None = None, trust_task: bool = False,
                 source: str | None = None) -> tuple[nn.Module, AnyTask]:
    """The recipe's task and a fresh model of its architecture (to load saved weights into), resolved as
    :func:`reproduce` resolves them."""
    training = _training(recipe, task)
    the_task = resolve_task(training.task, training.task_args, key="training.task",
                            trusted=trust_task or task is not None, source=source,
                            seed=training.data_seed if training.data_seed is not None else training.seed,
                            batch_size=training.batch_size)
    model = fresh_model(the_task, training.model_seed if training.model_seed is not None else training.seed)
    return model, the_task


def _dense_state(baseline: dict[str, Any], dense: str | Path | None, tracking_uri: str | None,
                 workdir: Path) -> dict[str, torch.Tensor]:
    if dense is not None:
        try:
            return torch.load(Path(dense), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot read the dense checkpoint: {exc}", key="--dense", value=str(dense),
                              allowed="a state_dict saved with torch.save") from None
    if not baseline:
        raise ConfigError("the recipe fine-tunes from its study's dense baseline, and the study was not found",
                          key="provenance.study", allowed="--storage URL of the study, or --dense CHECKPOINT")
    state = load_checkpoint(baseline, lambda uri, dst: fetch_artifact(tracking_uri, uri, dst), workdir)
    if state is None:
        raise ConfigError("the study's dense baseline checkpoint cannot be found here", key="--dense",
                          value=baseline.get("checkpoint"),
                          allowed="--tracking-uri of the study's MLflow store, or --dense CHECKPOINT")
    return state
