"""What ``import sparsesearch`` gives a notebook or a script: run a study, read its results as pandas, take
the recipe home, apply it in your own loop. The command line is a thin layer over these functions::

    import sparsesearch
    study = sparsesearch.run({"name": "mine", "n_trials": 20}, task=my_task)   # a Task, LoopTask or factory
    study.trials()            # every trial as a DataFrame: metric, sparsity, front, config, state
    study.front()             # the Pareto front
    recipe = study.recipe()   # the selected trial's recipe (or study.recipe(trial=7))
    pruner = sparsesearch.apply(model, recipe)   # then the pruner's callbacks in your loop
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsesearch.errors import ConfigError
from sparsesearch.formats.files import read_spec
from sparsesearch.formats.recipe import load_recipe, write_recipe
from sparsesearch.records.recipe import Recipe
from sparsesearch.records.study import DEFAULT_STORAGE, StudySpec, load_spec

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from torch import nn

    from sparsesearch.pruning.pruner import Pruner
    from sparsesearch.search.events import Events, StudyResult
    from sparsesearch.tracking import Tracker


def study_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it exists, else the ready study of that name shipped with sparsesearch
    (``quickstart`` or ``quickstart.yaml``), else ``path`` (whose reading then says it is missing)."""
    given = Path(path)
    if given.exists():
        return given
    from importlib.resources import files

    name = given.name if given.suffix in (".yaml", ".yml") else f"{given.name}.yaml"
    shipped = files("sparsesearch").joinpath("studies").joinpath(name)
    return Path(str(shipped)) if shipped.is_file() else given


def _spec(spec: StudySpec | Mapping[str, Any] | str | os.PathLike[str], task: Any) -> StudySpec:
    if isinstance(spec, StudySpec):
        return spec
    if isinstance(spec, Mapping):
        data = dict(spec)
        if task is not None and "task" not in data:
            data["task"] = getattr(task, "name", None) or getattr(task, "__name__", None) or "task"
        return load_spec(data)
    return read_spec(study_file(spec))


@dataclass
class Study:
    """A study in its storage: results as DataFrames, the front, recipes."""

    name: str
    storage: str = DEFAULT_STORAGE
    #: what the last :func:`run` in this process did (None for a study loaded with :func:`load`)
    result: StudyResult | None = None

    def optuna(self) -> optuna.Study:
        from sparsesearch.search.storage import load as load_study

        return load_study(self.name, self.storage)

    def trials(self) -> pd.DataFrame:
        """Every trial: the objective metric and sparsity, front membership, sampled config, metrics, state."""
        from sparsesearch.search.results import trials_frame

        return trials_frame(self.optuna())

    def front(self) -> pd.DataFrame:
        """The Pareto front's trials, sparsest first."""
        frame = self.trials()
        return frame[frame["on_front"]].sort_values("sparsity", ascending=False).reset_index(drop=True)

    def selected(self) -> int | None:
        """The trial the spec's export rule picks from the front (None when none qualifies)."""
        from sparsesearch.search.results import selected_trial

        return selected_trial(self.optuna())

    def recipe(self, trial: int | None = None) -> Recipe:
        """The recipe of ``trial`` (default: the selected trial)."""
        from sparsesearch.search.export import recipe_for_trial

        study = self.optuna()
        number = self.selected() if trial is None else trial
        if number is None:
            raise ConfigError("no trial is selected by the export rule; pass trial=N", key="trial", value=None,
                              allowed="the number of a completed trial (see study.trials())")
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise ConfigError("no such trial", key="trial", value=number,
                              allowed=f"0 .. {len(study.trials) - 1}")
        return recipe_for_trial(study, found[0])

    def report(self, path: str | os.PathLike[str] | None = None, *, tracking_uri: str | None = None) -> str:
        """The study report (one self-contained HTML page); written to ``path`` when given. ``tracking_uri``
        adds the MLflow runs' per-epoch histories and per-layer tables."""
        from sparsesearch.report import build_report

        html = build_report(self.optuna(), tracking_uri, pngs=False).html
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def export(self, path: str | os.PathLike[str], trial: int | None = None, *, overwrite: bool = False) -> Path:
        """Write :meth:`recipe` to ``path`` (an existing file is kept unless ``overwrite``)."""
        return write_recipe(self.recipe(trial), path, overwrite=overwrite)


def run(spec: StudySpec | Mapping[str, Any] | str | os.PathLike[str], *, task: Any = None, trust_task: bool = False,
        events: Events | None = None, tracker: Tracker | None = None, workdir: str | os.PathLike[str] | None = None,
        ) -> Study:
    """Run (or resume, or join) a study and return it.

    ``spec`` is a spec file, a dict of spec keys, or a :class:`StudySpec`. ``task`` is your task: a
    :class:`~sparsesearch.tasks.Task`, a :class:`~sparsesearch.tasks.LoopTask`, a factory returning one, or a
    ``"module:callable"`` reference (you name it, so it is trusted). Without ``task`` the spec's task is used
    (a ``module:callable`` task from a file only with ``trust_task=True``).
    """
    from sparsesearch.search.runner import run_study

    the_spec = _spec(spec, task)
    result = run_study(the_spec, task=task, trust_task=trust_task, events=events, tracker=tracker,
                       workdir=Path(workdir) if workdir is not None else None)
    return Study(result.name, the_spec.storage, result)


def load(spec: StudySpec | Mapping[str, Any] | str | os.PathLike[str] | None = None, *, name: str | None = None,
         storage: str | None = None) -> Study:
    """A study already in its storage, by spec (file, dict or object) or by ``name`` and ``storage``."""
    if spec is not None:
        the_spec = _spec(spec, None)
        return Study(name or the_spec.name, storage or the_spec.storage)
    if name is None:
        raise ConfigError("give a spec or a study name", key="name", value=None, allowed="load(spec) or load(name=...)")
    return Study(name, storage or DEFAULT_STORAGE)


def apply(model: nn.Module, recipe: Recipe | str | os.PathLike[str], *, steps_per_epoch: int | None = None) -> Pruner:
    """A :class:`~sparsesearch.pruning.Pruner` for ``model`` from a recipe (object or YAML file).

    The model is checked against the recipe first (unknown layer names are an error listing the nearest
    ones), the recipe's layer rules are applied, and the steps per epoch default to the recipe's. Then run
    the pruner's callbacks in your training loop.
    """
    from sparsesearch.pruning.matching import pruner_from_recipe

    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    return pruner_from_recipe(model, loaded, steps_per_epoch=steps_per_epoch)


__all__ = ["Study", "apply", "load", "load_recipe", "read_spec", "run", "study_file", "write_recipe"]
