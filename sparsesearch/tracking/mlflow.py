"""MLflow tracking: the only module of sparsesearch that imports mlflow.

One experiment per study; a parent run for the study; one nested run per trial (``mlflow.parentRunId``),
opened when the trial starts. Writes go through a single background thread in order, so a trial's training
never waits on the tracking store, and params, metrics and tags are sent in batches within MLflow's limits
(100 params or tags, 1000 metrics per call). With a ``sqlite:///PATH`` store the experiment's artifacts go to
``mlartifacts/`` beside the database file, so a local study keeps everything in one directory.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

from sparsesearch.errors import ConfigError
from sparsesearch.tracking import FINISHED, TrialRun, flatten, mask_uri

log = logging.getLogger(__name__)

TAG_STUDY = "sparsesearch.study"
TAG_ROLE = "sparsesearch.role"
TAG_TRIAL = "sparsesearch.trial"
TAG_PARETO = "sparsesearch.pareto"
TAG_STATE = "sparsesearch.state"
TAG_REASON = "sparsesearch.stop_reason"


def artifact_root_for(uri: str, experiment: str) -> str | None:
    """``file://.../mlartifacts/<experiment>`` beside a ``sqlite:///`` database; None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):]).expanduser()
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", experiment)
    return (db.resolve().parent / "mlartifacts" / safe).as_uri()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."


class _Writer:
    """One daemon thread running queued writes in order; failures are logged, never raised into training."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="sparsesearch-mlflow", daemon=True)
        self.failures = 0
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args = item
                try:
                    fn(*args)
                except (MlflowException, OSError, ValueError, RuntimeError) as exc:
                    self.failures += 1
                    log.warning("MLflow logging failed (%s): %s", getattr(fn, "__name__", "write"), exc)
            finally:
                self._queue.task_done()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._queue.put((fn, args))

    def flush(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)


class MlflowTracker:
    """Records a study in MLflow (see the module docstring)."""

    enabled = True

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri = uri
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(experiment)
        self.parent_id: str | None = None
        self.study: str | None = None
        self._writer = _Writer()
        atexit.register(_close_at_exit, weakref.ref(self))

    # ------------------------------------------------------------------ setup
    def _experiment(self, name: str) -> str:
        try:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                try:
                    return self.client.create_experiment(name, artifact_location=artifact_root_for(self.uri, name),
                                                         tags={TAG_STUDY: name})
                except MlflowException as exc:
                    if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):  # another worker created it
                        raise
                    found = self.client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise ConfigError(f"cannot open the MLflow tracking store: {exc.message}", key="tracking.uri",
                              value=mask_uri(self.uri), allowed="an MLflow tracking URI such as "
                              "sqlite:///mlflow.db, http://host:5000, or null to turn tracking off") from None
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"the MLflow experiment {name!r} was deleted; restore it (mlflow experiments restore "
                              f"--experiment-id {found.experiment_id}) or name another experiment",
                              key="tracking.experiment", value=name, allowed="an active or new experiment name")
        return found.experiment_id

    def describe(self) -> str:
        return f"MLflow {mask_uri(self.uri)}, experiment {self.experiment_name!r}"

    def run_url(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        return f"#/experiments/{self.experiment_id}/runs/{run_id}"

    # ------------------------------------------------------------------ writes (in the writer thread)
    def _log_batch(self, run_id: str | None, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                   tags: Sequence[RunTag] = ()) -> None:
        if run_id is None:
            return
        for chunk in _chunks(list(params), MAX_PARAMS_TAGS_PER_BATCH):
            if chunk:
                self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(list(tags), MAX_PARAMS_TAGS_PER_BATCH):
            if chunk:
                self.client.log_batch(run_id, tags=chunk)
        for chunk in _chunks(list(metrics), MAX_METRICS_PER_BATCH):
            if chunk:
                self.client.log_batch(run_id, metrics=chunk)

    def _log_text(self, run_id: str | None, text: str, name: str) -> None:
        if run_id is None:
            return
        self.client.log_text(run_id, text, name)

    def _create_trial_run(self, run: TrialRun, tags: dict[str, str], params: list[Param]) -> None:
        try:
            created = self.client.create_run(self.experiment_id, tags=tags, run_name=f"trial-{run.number:03d}")
        except MlflowException:
            run.resolve(None)
            raise
        run.resolve(created.info.run_id)
        self._log_batch(created.info.run_id, params=params)

    def _on_run(self, run: TrialRun, fn: Callable[..., Any], *args: Any) -> None:
        fn(run.run_id, *args)

    def _terminate(self, run_id: str | None, status: str) -> None:
        if run_id is not None:
            self.client.set_terminated(run_id, status=status)

    # ------------------------------------------------------------------ the Tracker protocol
    def open_study(self, study: str, *, spec: Mapping[str, Any], storage: str,
                   parent_run_id: str | None = None) -> str | None:
        self.study = study
        if parent_run_id:
            try:
                run = self.client.get_run(parent_run_id)
                if run.info.lifecycle_stage != "deleted":
                    self.parent_id = parent_run_id
                    if run.info.status != "RUNNING":
                        self.client.update_run(parent_run_id, status="RUNNING")
                    return parent_run_id
            except MlflowException:
                log.warning("the study's MLflow run %s is gone; starting a new one", parent_run_id)
        tags = {TAG_STUDY: study, TAG_ROLE: "study", "sparsesearch.storage": mask_uri(storage) or ""}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=study)
        self.parent_id = run.info.run_id
        params = [Param(k, _param_value(v)) for k, v in flatten(dict(spec)).items()]
        self._writer.submit(self._log_batch, self.parent_id, (), params)
        from sparsesearch.yamlio import dump_yaml

        self._writer.submit(self._log_text, self.parent_id, dump_yaml(dict(spec), header="study spec"), "spec.yaml")
        return self.parent_id

    def log_baseline(self, metrics: Mapping[str, float], curve: Sequence[Mapping[str, float]],
                     checkpoint: Path) -> str | None:
        if self.parent_id is None:
            return None
        stamp = _now_ms()
        points = [Metric(f"dense/{k}", float(v), stamp, epoch) for epoch, row in enumerate(curve) for k, v in row.items()]
        points += [Metric(f"dense_{k}", float(v), stamp, 0) for k, v in metrics.items()]
        self._log_batch(self.parent_id, metrics=points)
        self.client.log_artifact(self.parent_id, str(checkpoint), "baseline")
        return f"runs:/{self.parent_id}/baseline/{Path(checkpoint).name}"

    def fetch(self, uri: str, dst_dir: Path) -> Path:
        if not uri.startswith("runs:/"):
            return Path(uri)
        run_id, _, path = uri[len("runs:/"):].partition("/")
        dst_dir.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(dst_dir)))

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> TrialRun:
        run = TrialRun(number)
        all_tags = {TAG_STUDY: self.study or "", TAG_TRIAL: str(number), TAG_ROLE: "trial", **(tags or {})}
        if self.parent_id:
            all_tags["mlflow.parentRunId"] = self.parent_id
        plist = [Param(k, _param_value(v)) for k, v in {"trial_number": number, **params}.items()]
        self._writer.submit(self._create_trial_run, run, all_tags, plist)
        return run

    def log_epoch(self, run: TrialRun, epoch: int, metrics: Mapping[str, float]) -> None:
        stamp = _now_ms()
        points = [Metric(k, float(v), stamp, epoch) for k, v in metrics.items()]
        self._writer.submit(self._on_run, run, self._log_batch, points)

    def finish_trial(self, run: TrialRun, status: str, *, metrics: Mapping[str, float] | None = None,
                     layers: Sequence[Mapping[str, Any]] | None = None, recipe_yaml: str | None = None,
                     tags: Mapping[str, str] | None = None) -> None:
        stamp = _now_ms()
        points = [Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        self._writer.submit(self._on_run, run, self._log_batch, points, (), tag_list)
        if layers:
            self._writer.submit(self._on_run, run, self._log_text, _csv(layers), "layer_sparsity.csv")
        if recipe_yaml:
            self._writer.submit(self._on_run, run, self._log_text, recipe_yaml, "recipe.yaml")
        self._writer.submit(self._on_run, run, self._terminate, status)

    def set_pareto(self, membership: Mapping[str, bool]) -> None:
        for run_id, on_front in membership.items():
            if run_id:
                self._writer.submit(self._log_batch, run_id, (), (), [RunTag(TAG_PARETO, str(bool(on_front)).lower())])

    def close_study(self, status: str, *, metrics: Mapping[str, float] | None = None,
                    tables: Mapping[str, str] | None = None, texts: Mapping[str, str] | None = None,
                    tags: Mapping[str, str] | None = None) -> None:
        if self.parent_id is None:
            return
        stamp = _now_ms()
        points = [Metric(k, float(v), stamp, 0) for k, v in (metrics or {}).items()]
        tag_list = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        self._writer.submit(self._log_batch, self.parent_id, points, (), tag_list)
        for name, text in {**(tables or {}), **(texts or {})}.items():
            self._writer.submit(self._log_text, self.parent_id, text, name)
        self._writer.submit(self._terminate, self.parent_id, status or FINISHED)
        self.flush()

    def flush(self) -> None:
        self._writer.flush()

    @property
    def failures(self) -> int:
        return self._writer.failures

    def close(self) -> None:
        self._writer.flush()
        self._writer.stop()


def _close_at_exit(ref: weakref.ref) -> None:
    tracker = ref()
    if tracker is not None:
        tracker.close()


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    import csv
    import io

    out = io.StringIO()
    fields = list(rows[0])
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("x".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in row.items()})
    return out.getvalue()
