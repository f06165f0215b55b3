"""Reading a study's MLflow runs for the report, through the tracking room's client (this package's only
door to mlflow): the experiment, the run of each trial, per-epoch metric histories and the per-layer
sparsity tables. A store that is missing, unreachable or broken gives no view and a note, never an error:
the report then draws from the Optuna storage alone.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from sparsesearch.records.state import StudyState
from sparsesearch.records.urls import MASK, mask_uri

log = logging.getLogger(__name__)

TAG_STUDY = "sparsesearch.study"
TAG_TRIAL = "sparsesearch.trial"
LAYER_ARTIFACT = "layer_sparsity.csv"


def tracking_uri_for(state: StudyState, given: str | None) -> str | None:
    """The store to read: ``given``, else the one the study recorded (unless its password is masked)."""
    if given:
        return given
    for uri in state.tracking:
        if MASK not in uri:
            return uri
    return None


def absolute(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute (MLflow caches one store per URI string in a process,
    so ``sqlite:///mlflow.db`` read from two folders would be the first folder's store twice)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path, sep, query = uri[len("sqlite:///"):].partition("?")
        if path and path != ":memory:":
            return "sqlite:///" + str(Path(path).expanduser().resolve()) + sep + query
    return uri


def reachable(uri: str, timeout: float = 3.0) -> str | None:
    """Why ``uri`` cannot be read (None when it looks readable): a missing SQLite file is not created, and an
    HTTP server that does not answer is not waited for."""
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):]).expanduser()
        return None if path.is_file() else f"no MLflow database at {path}"
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
                return None
        except OSError as exc:
            return f"the MLflow server at {mask_uri(uri)} does not answer ({exc.strerror or exc})"
    return None


@dataclass
class TrackingView:
    """A study's runs in one MLflow store."""

    uri: str
    client: Any
    experiment_id: str
    parent_run_id: str | None
    #: trial number -> run id
    trial_runs: dict[int, str] = field(default_factory=dict)
    #: one row per run of the study: run_id, trial, role, status, name
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def history(self, number: int, metric_key: str) -> pd.DataFrame | None:
        """Per-epoch ``metric_key`` and sparsity of trial ``number`` (epoch = MLflow step + 1)."""
        run_id = self.trial_runs.get(number)
        if run_id is None:
            return None
        try:
            value = _series(self.client.get_metric_history(run_id, metric_key))
            sparsity = _series(self.client.get_metric_history(run_id, "sparsity"))
        except Exception as exc:  # any store failure: the trial's own curve is drawn instead
            log.warning("cannot read the metric history of run %s: %s", run_id, exc)
            return None
        if value.empty:
            return None
        frame = pd.DataFrame({"value": value, "sparsity": sparsity}).sort_index()
        frame.index.name = "step"
        frame = frame.reset_index()
        frame["epoch"] = frame["step"] + 1
        return frame[["epoch", "value", "sparsity"]]

    def layers(self, number: int) -> pd.DataFrame | None:
        """Trial ``number``'s per-layer sparsity table (name, type, shape, params, zeros, sparsity)."""
        run_id = self.trial_runs.get(number)
        if run_id is None:
            return None
        return read_layers(self.client, run_id)


def read_layers(client: Any, run_id: str) -> pd.DataFrame | None:
    """The ``layer_sparsity.csv`` artifact of a run, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, LAYER_ARTIFACT, tmp)
            frame = pd.read_csv(path, dtype={"name": str, "type": str, "shape": str})
        except Exception as exc:  # a run without the table (failed early, or an old run)
            log.info("no %s in run %s: %s", LAYER_ARTIFACT, run_id, exc)
            return None
    return frame


def _series(history: list[Any]) -> pd.Series:
    """A metric history as value by step; of several values at one step, the first logged."""
    points = sorted(history, key=lambda m: (m.step, m.timestamp))
    out: dict[int, float] = {}
    for m in points:
        out.setdefault(int(m.step), float(m.value))
    return pd.Series(out, dtype=float)


def open_view(study: str, state: StudyState, tracking_uri: str | None, notes: list[str]) -> TrackingView | None:
    """The study's runs in its MLflow store, or None (with a note saying why)."""
    uri = tracking_uri_for(state, tracking_uri)
    if uri is None:
        if state.tracking:
            notes.append("the study's MLflow store URI holds a password; pass --tracking-uri to read its runs")
        else:
            notes.append("tracking was off for this study: the report is drawn from the Optuna storage alone")
        return None
    why = reachable(uri)
    if why:
        notes.append(f"{why}: the report is drawn from the Optuna storage alone")
        return None
    info = _tracking_info(state.tracking, uri)
    try:
        from sparsesearch.tracking.mlflow import open_client

        client = open_client(absolute(uri), attempts=2)
        experiment_id = _experiment_id(client, study, info)
        if experiment_id is None:
            notes.append(f"no MLflow experiment of study {study!r} in {mask_uri(uri)}: the report is drawn from "
                         "the Optuna storage alone")
            return None
        frame = _runs_frame(client, experiment_id, study)
    except Exception as exc:  # any store failure leaves the report to the Optuna storage
        log.warning("cannot read MLflow at %s: %s", mask_uri(uri), exc)
        notes.append(f"MLflow at {mask_uri(uri)} could not be read ({type(exc).__name__}): the report is drawn "
                     "from the Optuna storage alone")
        return None
    trial_runs = {int(r.trial): str(r.run_id) for r in frame.itertuples() if r.trial is not None and r.trial >= 0}
    parent = info.get("parent_run_id")
    if not parent and len(frame):
        studies = frame[frame["role"] == "study"]
        parent = str(studies["run_id"].iloc[0]) if len(studies) else None
    return TrackingView(uri=uri, client=client, experiment_id=experiment_id, parent_run_id=parent,
                        trial_runs=trial_runs, runs=frame)


def _tracking_info(tracking: Mapping[str, Mapping[str, Any]], uri: str) -> Mapping[str, Any]:
    masked = mask_uri(uri) or ""
    if masked in tracking:
        return tracking[masked]
    return next(iter(tracking.values())) if len(tracking) == 1 else {}


def _experiment_id(client: Any, study: str, info: Mapping[str, Any]) -> str | None:
    parent = info.get("parent_run_id")
    if parent:
        try:
            return str(client.get_run(parent).info.experiment_id)
        except Exception:  # the run was deleted: look the experiment up by name
            log.info("the study run %s is gone; looking the experiment up by name", parent)
    experiment = client.get_experiment_by_name(info.get("experiment") or study)
    return None if experiment is None else str(experiment.experiment_id)


def _runs_frame(client: Any, experiment_id: str, study: str) -> pd.DataFrame:
    """One row per run of the study in the experiment (every page of the search)."""
    rows: list[dict[str, Any]] = []
    token = None
    escaped = study.replace("'", "\\'")
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_STUDY}` = '{escaped}'",
                                  max_results=1000, page_token=token)
        for run in page:
            tags = run.data.tags
            trial = tags.get(TAG_TRIAL)
            rows.append({"run_id": run.info.run_id, "name": run.info.run_name, "status": run.info.status,
                         "role": tags.get("sparsesearch.role"),
                         "trial": int(trial) if trial is not None and trial.lstrip("-").isdigit() else -1,
                         "start_time": run.info.start_time})
        token = getattr(page, "token", None)
        if not token:
            break
    frame = pd.DataFrame(rows, columns=["run_id", "name", "status", "role", "trial", "start_time"])
    # a retried trial can have several runs: keep the latest of each trial
    trials = frame[frame["trial"] >= 0].sort_values("start_time").drop_duplicates("trial", keep="last")
    return pd.concat([frame[frame["trial"] < 0], trials], ignore_index=True)
