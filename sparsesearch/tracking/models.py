"""Pruned models in MLflow: log a trial's model to its run (PyTorch flavor, with an input example so MLflow
records a signature), register it, save an MLflow model directory, and find a model an earlier save logged.

With :mod:`sparsesearch.tracking.mlflow`, the only place that imports mlflow.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: the trial run's artifact folder holding the sparse state and costs
ARTIFACT_DIR = "sparsesearch_model"
STATE_FILE = "sparse_state.pt"
#: rows of the first validation batch kept as MLflow's input example
EXAMPLE_ROWS = 8


def _example(inputs: Any) -> Any | None:
    """The first rows of ``inputs`` as numpy (MLflow's input example), or None when they are not tensors."""
    import torch

    if isinstance(inputs, torch.Tensor):
        return inputs[:EXAMPLE_ROWS].detach().cpu().numpy()
    if isinstance(inputs, Mapping) and all(isinstance(v, torch.Tensor) for v in inputs.values()):
        return {k: v[:EXAMPLE_ROWS].detach().cpu().numpy() for k, v in inputs.items()}
    return None


def store_exists(uri: str) -> bool:
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists()


def _mlflow(tracking_uri: str) -> Any:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    from sparsesearch.records.urls import with_driver

    mlflow.set_tracking_uri(with_driver(tracking_uri))
    return mlflow


def saved_state(tracking_uri: str | None, run_id: str | None, dst: Path) -> Path | None:
    """A local copy of the sparse state an earlier ``--save`` logged to the trial's run, or None."""
    if not tracking_uri or not run_id or not store_exists(tracking_uri):
        return None
    from sparsesearch.tracking import fetch_artifact

    try:
        path = fetch_artifact(tracking_uri, f"runs:/{run_id}/{ARTIFACT_DIR}/{STATE_FILE}", dst)
    except (FileNotFoundError, OSError):
        return None
    except Exception:  # noqa: BLE001 - an MLflow store that cannot answer: re-train instead
        return None
    return path if path.is_file() else None


def _pytorch_model(save: Callable[..., Any], model: Any, example: Any, **kwargs: Any) -> Any:
    """``save(model, ...)`` as a torch.export program (MLflow's default, needs an input example), falling back
    to a pickled module for models torch.export cannot capture."""
    import torch

    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # MLflow prints the exported graph and its registry steps; the command says what it did
        if example is not None:
            try:
                return save(model, input_example=example, pip_requirements=requirements, **kwargs)
            except Exception:  # noqa: BLE001 - torch.export refuses many real models; pickling still works
                pass
        return save(model, input_example=example, pip_requirements=requirements, serialization_format="pickle",
                    **kwargs)


def log_model(model: Any, *, tracking_uri: str, run_id: str, inputs: Any, files: list[Path],
              metrics: Mapping[str, float], register: str | None) -> str:
    """Log ``model`` to the run ``run_id`` (MLflow PyTorch flavor), ``files`` under its
    :data:`ARTIFACT_DIR` artifacts and ``metrics``; register it as ``register``. Returns the model's URI."""
    from sparsesearch.errors import ConfigError
    from sparsesearch.records.urls import mask_uri

    _mlflow(tracking_uri)
    import mlflow
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        status = client.get_run(run_id).info.status
    except MlflowException as exc:
        raise ConfigError(f"the trial's MLflow run cannot be read: {exc.message}", key="provenance.run_id",
                          value=run_id, allowed=f"a run in {mask_uri(tracking_uri)} (--tracking-uri)") from None
    with mlflow.start_run(run_id=run_id):
        info = _pytorch_model(mlflow.pytorch.log_model, model, _example(inputs), name="model",
                              registered_model_name=register)
        for f in files:
            mlflow.log_artifact(str(f), ARTIFACT_DIR)
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    if status != "FINISHED":  # start_run/end_run marks it FINISHED; keep what the search said
        client.set_terminated(run_id, status=status)
    return str(info.model_uri)


def register_logged(tracking_uri: str, run_id: str, name: str) -> str | None:
    """Register the model an earlier ``--save`` logged to the run; None when the run has none."""
    mlflow = _mlflow(tracking_uri)
    experiment = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'",
                                        output_format="list")
    models = [m for m in found if m.name == "model"]
    if not models:
        return None
    uri = f"models:/{models[-1].model_id}"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(uri, name)
    return f"{name} version {version.version}"


def save_model_dir(model: Any, inputs: Any, target: Path, *, extra_files: Sequence[Path]) -> None:
    """Write ``model`` as an MLflow model directory at ``target`` (``mlflow.pytorch.load_model(target)``)."""
    import mlflow.pytorch

    _pytorch_model(mlflow.pytorch.save_model, model, _example(inputs), path=str(target),
                   extra_files=[str(f) for f in extra_files])
