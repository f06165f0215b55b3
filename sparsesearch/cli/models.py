"""Taking the pruned model home: ``--save``/``--register`` of ``export`` and ``reproduce``, and ``compact``.

* ``--save FILE`` (a name with a suffix, such as ``model.pt``) writes the pruned model's **sparse state**
  (:mod:`sparsesearch.pruning.sparse_state`): every non-zero of the masked model and nothing else, so its
  size follows the sparsity; ``load_sparse(FILE, model)`` restores the exact state_dict into the task's
  architecture. (The compacted model is smaller still: compaction also drops the weights that only ever
  see a removed channel, and folds constant channels into biases.)
* ``--save DIR`` writes an **MLflow model directory** of the model to deploy (the compacted model when the
  recipe's pattern removes whole channels, else the masked one), with the sparse state and ``costs.json``
  in its ``extra_files/`` (``mlflow.pytorch.load_model(DIR)``).
* Either also logs that model to the trial's MLflow run (``mlflow.pytorch.log_model``, with the first
  validation batch's first rows as input example, so MLflow records a signature), the sparse state under the
  run's ``sparsesearch_model/`` artifacts and the measured costs as ``model_*`` metrics; ``--register NAME``
  registers it in MLflow's model registry.

Where ``export`` gets the weights: the trial's run, when it holds ``sparsesearch_model/sparse_state.pt``
(logged by an earlier ``--save``): exactly the trial's weights, no training. Otherwise the recipe is
re-trained (:func:`sparsesearch.search.reproduce.reproduce`: the trial's seeds and starting weights, so
the trial's result, checked against its recorded metrics), and the model is then logged to the run so the
next export finds it.

MLflow itself is reached through :mod:`sparsesearch.tracking.models` (the tracking package is the only one
that imports mlflow); heavy imports happen inside the functions, so ``export`` without ``--save`` stays light.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from sparsesearch.records.urls import STORAGE_ENV, TRACKING_ENV, from_environment
from sparsesearch.tracking.models import (
    STATE_FILE,
    log_model,
    register_logged,
    save_model_dir,
    saved_state,
    store_exists,
)

COSTS_FILE = "costs.json"

Echo = Callable[[str], None]


# ------------------------------------------------------------------------------------------ inputs


def first_inputs(task: Any) -> Any | None:
    """The inputs of the task's first validation batch (None for a task with its own loop)."""
    from sparsesearch.training.costs import example_inputs

    return example_inputs(task)


# ------------------------------------------------------------------------------------------ MLflow


# ------------------------------------------------------------------------------------------ saving


def _costs_line(costs: Any, label: str | None = None) -> str:
    return (f"{label or costs.measured + ' model'}: {costs.params:,} non-zero parameters, {costs.size_bytes:,} bytes saved, "
            f"{costs.flops:,} FLOPs per sample, {costs.latency_ms:.3f} ms per batch of {costs.batch_size} "
            f"({costs.threads} thread{'s' if costs.threads != 1 else ''}, {costs.device})")


def take_home(model: Any, task: Any, recipe: Any, *, save: str | None, register: str | None,
              tracking_uri: str | None, overwrite: bool, echo: Echo, logged: bool = False) -> None:
    """Save (``save``), log to the recipe's trial run and register (``register``) the pruned ``model``.

    ``logged``: the model came from the trial's run, so it is not logged there again (only registered).
    """
    from sparsesearch.errors import ConfigError
    from sparsesearch.pruning.sparse_state import save_sparse
    from sparsesearch.training.costs import measure_costs

    run_id = recipe.provenance.run_id
    tracked = bool(tracking_uri and run_id and store_exists(tracking_uri))
    if register and not tracked:
        raise ConfigError("--register needs the trial's MLflow run: the recipe has no run id or its tracking store "
                          "is not here", key="--register", value=register,
                          allowed="a recipe from a tracked study, with its store (--tracking-uri or "
                          f"{TRACKING_ENV})")
    target = Path(save) if save else None
    if target is not None and target.exists() and not overwrite:
        raise ConfigError("the path exists; choose another or add --force", key="--save", value=str(target),
                          allowed="a new file (sparse state) or directory (MLflow model)")
    inputs = first_inputs(task)
    patterns = [g.pattern for g in recipe.pruning.groups]
    batch_size = recipe.training.batch_size if recipe.training else None
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / STATE_FILE
        size = save_sparse(model, state)
        deploy, summary = model, {}
        if inputs is not None:
            costs, compaction = measure_costs(model, inputs, patterns=patterns, batch_size=batch_size)
            if compaction is not None:
                echo(compaction.message)
                deploy = compaction.model
                summary = {"compacted": compaction.compacted, "removed_channels": compaction.removed,
                           "kept_channels": compaction.kept, "params_before": compaction.params_before,
                           "params_after": compaction.params_after, "max_difference": compaction.max_difference,
                           "layers": {k: [list(a), list(b)] for k, (a, b) in compaction.layers.items()},
                           "notes": compaction.notes}
            for note in costs.notes:
                echo(f"note: {note}")
            echo(_costs_line(costs))
            report = {"costs": costs.as_dict(), "compaction": summary, "sparse_state_bytes": size}
            metrics = {"model_params": costs.params, "model_size_bytes": costs.size_bytes,
                       "model_flops": costs.flops, "model_latency_ms": costs.latency_ms,
                       "model_sparse_state_bytes": size}
        else:
            echo("note: the task gives no validation batch, so the model is neither compacted nor measured")
            report, metrics = {"sparse_state_bytes": size}, {"model_sparse_state_bytes": size}
        costs_file = Path(tmp) / COSTS_FILE
        costs_file.write_text(json.dumps(report, indent=2, default=str))
        if target is not None:
            _write(target, deploy, inputs, state, costs_file, size, overwrite, echo)
        if tracked and not logged:
            uri = log_model(deploy, tracking_uri=str(tracking_uri), run_id=str(run_id), inputs=inputs,
                            files=[state, costs_file], metrics=metrics, register=register)
            echo(f"logged to the trial's MLflow run {run_id}: {uri}" + (f", registered as {register!r}" if register
                                                                         else ""))
        elif tracked and register:
            done = register_logged(str(tracking_uri), str(run_id), register)
            if done is None:
                uri = log_model(deploy, tracking_uri=str(tracking_uri), run_id=str(run_id), inputs=inputs,
                                files=[], metrics={}, register=register)
                done = f"{register} ({uri})"
            echo(f"registered {done}")
        elif save and not tracked:
            echo("note: not logged to MLflow (the recipe has no tracking run here)")


def _write(target: Path, model: Any, inputs: Any, state: Path, costs_file: Path, size: int, overwrite: bool,
           echo: Echo) -> None:
    if target.suffix:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(state, target)
        echo(f"wrote {target}: the sparse state, {size:,} bytes (load it into the task's model with "
             "sparsesearch.pruning.sparse_state.load_sparse(path, model))")
        return
    if target.exists() and overwrite:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    try:
        save_model_dir(model, inputs, target, extra_files=[state, costs_file])
    except Exception:
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        raise
    echo(f"wrote {target}/: an MLflow model (mlflow.pytorch.load_model), with extra_files/{STATE_FILE} "
         f"({size:,} bytes) and extra_files/{COSTS_FILE}")


def export_model(recipe: Any, *, storage: str, tracking_uri: str | None, save: str | None, register: str | None,
                 overwrite: bool, echo: Echo) -> None:
    """``export --save/--register``: the trial's model from its run when saved there, else re-trained."""
    from sparsesearch.pruning.sparse_state import load_sparse
    from sparsesearch.search.reproduce import recipe_model, reproduce

    run_id = recipe.provenance.run_id
    with tempfile.TemporaryDirectory() as tmp:
        found = saved_state(tracking_uri, run_id, Path(tmp))
        if found is not None:
            model, task = recipe_model(recipe)
            load_sparse(found, model)
            echo(f"the model: the trial's own weights, from its MLflow run {run_id}")
        else:
            echo("the model: the trial's run holds no saved model, so the recipe is re-trained (the trial's seeds "
                 "and starting weights) ...")
            rep = reproduce(recipe, storage=storage, tracking_uri=tracking_uri)
            r = rep.result
            echo(f"  re-trained: val {r.objective} {r.value:.4f}, sparsity {r.sparsity:.6f}"
                 + ("" if rep.delta is None else f" ({rep.accuracy_delta_points:+.2f} points from the trial)"))
            assert rep.model is not None and rep.task is not None
            model, task = rep.model, rep.task
        take_home(model, task, recipe, save=save, register=register, tracking_uri=tracking_uri,
                  overwrite=overwrite, echo=echo, logged=found is not None)


# ------------------------------------------------------------------------------------------ compact


@click.command("compact")
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="File for the compacted model (saved whole: torch.load(path, weights_only=False)).")
@click.option("--task", "task_ref", metavar="NAME|MODULE:CALLABLE", help="The task (overrides the recipe's).")
@click.option("--trust-task", is_flag=True, help="Allow the recipe file's own module:callable task to be imported.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="The pruned weights (a sparse state from --save FILE, or a state_dict); else re-trained.")
@click.option("--storage", metavar="URL", help="Optuna storage of the recipe's study (when re-training).")
@click.option("--tracking-uri", metavar="URI", help="MLflow store of the study (when re-training).")
@click.option("--dense", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="When re-training: start from this dense state_dict instead of the study's baseline.")
@click.option("--inexact", is_flag=True, help="Also remove channels whose constant value enters a padded "
              "convolution (outputs change slightly; the difference is printed).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
def compact(recipe_path: str, output: str, task_ref: str | None, trust_task: bool, weights: str | None,
            storage: str | None, tracking_uri: str | None, dense: str | None, inexact: bool, force: bool) -> None:
    """Remove a channel-pruned model's pruned channels physically: a smaller, faster model.

    Works for recipes whose pattern prunes whole channels (1xchannel: output rows and filters; channelx1:
    input columns). Needs Torch-Pruning (pip install sparsesearch[compact]). A model that cannot be compacted
    is written masked, with the reason.
    """
    import torch

    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.recipe import load_recipe
    from sparsesearch.pruning.compact import compact as compact_model
    from sparsesearch.pruning.compact import torch_pruning
    from sparsesearch.pruning.sparse_state import FORMAT, load_sparse
    from sparsesearch.records.study import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
    from sparsesearch.search.reproduce import recipe_model, reproduce
    from sparsesearch.training.costs import measure_costs

    target = Path(output)
    if target.exists() and not force:
        raise ConfigError("the output file exists; choose another or add --force", key="--output", value=output)
    torch_pruning()  # a clear message before any training
    recipe = load_recipe(recipe_path)
    if weights:
        model, task = recipe_model(recipe, task=task_ref, trust_task=trust_task, source=recipe_path)
        try:
            loaded = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            raise ConfigError(f"cannot read the weights: {exc}", key="--weights", value=weights) from None
        if isinstance(loaded, Mapping) and loaded.get("format") == FORMAT:
            load_sparse(weights, model)
        else:
            model.load_state_dict(loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else loaded)
        click.echo(f"loaded the pruned weights from {weights}")
    else:
        click.echo(f"re-training {recipe_path} for its weights (give --weights to skip) ...", err=True)
        rep = reproduce(recipe, storage=from_environment(storage, STORAGE_ENV, DEFAULT_STORAGE),
                        tracking_uri=from_environment(tracking_uri, TRACKING_ENV, DEFAULT_TRACKING_URI), dense=dense,
                        task=task_ref, trust_task=trust_task, source=recipe_path)
        assert rep.model is not None and rep.task is not None
        model, task = rep.model, rep.task
        click.echo(f"re-trained: val {rep.result.objective} {rep.result.value:.4f}, sparsity {rep.result.sparsity:.4f}")
    inputs = first_inputs(task)
    if inputs is None:
        raise ConfigError("compaction traces the model on example inputs, and this task has no validation batches",
                          key="--task", allowed="a task with val_data")
    patterns = [g.pattern for g in recipe.pruning.groups]
    batch_size = recipe.training.batch_size if recipe.training else None
    result = compact_model(model, None, inputs, exact=not inexact) if any(
        _compacts(p) for p in patterns) else None
    before, _ = measure_costs(model, inputs, compaction=False, batch_size=batch_size)
    if result is None:
        click.echo(f"not compacted: pattern {', '.join(sorted(set(patterns)))} prunes no whole channel (only "
                   "channelx1 and 1xchannel compact); the masked model is kept")
        final = model
    else:
        click.echo(result.message)
        final = result.model
    after, _ = measure_costs(final, inputs, compaction=False, batch_size=batch_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(final, target)
    click.echo(f"wrote {target} ({target.stat().st_size:,} bytes; torch.load(path, weights_only=False))")
    click.echo(_costs_line(before, "  before"))
    click.echo(_costs_line(after, "  after ") + f"; {before.latency_ms / max(after.latency_ms, 1e-9):.2f}x faster")


def _compacts(pattern: str) -> bool:
    from sparsesearch.records.patterns import parse_pattern

    return parse_pattern(pattern).whole_channels
