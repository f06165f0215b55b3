"""MLflow tracking: the only module of sparsesearch that imports mlflow.

One experiment per study; a parent run for the study; one nested run per trial (``mlflow.parentRunId``),
opened when the trial starts. Every write happens in a separate writer *process*, in order: MLflow's
SQLAlchemy store spends tens of milliseconds of Python per call, and in a thread that time would be taken
from training through the GIL (measured: ~20 % of a one-second trial). The training process only puts
small messages on a queue; it waits for the writer only where it needs an answer (the study run's id,
the baseline's URI, a trial's run id at its end) and at :meth:`MlflowTracker.flush`.

The writer batches within MLflow's limits (100 params or tags, 1000 metrics per call) and sends a running
trial's per-epoch metrics at most every ``FLUSH_S`` seconds (and at its end), so short trials cost a
handful of calls and long ones still show live curves. With a ``sqlite:///PATH`` store the experiment's
artifacts go to ``mlartifacts/`` beside the database file. The writer ignores Ctrl-C so that it can still
record the interrupted trial as KILLED.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import queue
import random
import re
import signal
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

from sparsesearch.errors import ConfigError
from sparsesearch.records.urls import mask_uri, with_driver
from sparsesearch.tracking.base import Tracker, TrialRun, flatten

log = logging.getLogger(__name__)

# MLflow draws a progress bar for every artifact download; the CLI owns the console
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TAG_STUDY = "sparsesearch.study"
TAG_ROLE = "sparsesearch.role"
TAG_TRIAL = "sparsesearch.trial"
TAG_PARETO = "sparsesearch.pareto"
#: a running trial's epoch metrics are sent at most this often (and at its end)
FLUSH_S = 2.0
#: how long the training process waits for an answer from the writer before giving up on tracking
REPLY_TIMEOUT_S = 300.0


def artifact_root_for(uri: str, experiment: str) -> str | None:
    """``file://.../mlartifacts/<experiment>`` beside a ``sqlite:///`` database; None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):]).expanduser()
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", experiment)
    return (db.resolve().parent / "mlartifacts" / safe).as_uri()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def open_client(uri: str, attempts: int = 30) -> MlflowClient:
    """A client whose store is ready. Workers starting together on a new database race to create MLflow's
    tables; the losers see a duplicate-table error and retry until the winner's migration is done."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            client = MlflowClient(tracking_uri=with_driver(uri))
            client.search_experiments(max_results=1)
            return client
        except (IntegrityError, ProgrammingError) as exc:
            if attempt == attempts - 1:
                raise ConfigError(f"cannot open the MLflow tracking store: {exc.orig}", key="tracking.uri",
                                  value=mask_uri(uri)) from None
            time.sleep(0.5 + random.random())
        except MlflowException as exc:
            raise ConfigError(f"cannot open the MLflow tracking store: {exc.message}", key="tracking.uri",
                              value=mask_uri(uri), allowed="an MLflow tracking URI such as sqlite:///mlflow.db, "
                              "http://host:5000, or null to turn tracking off") from None
    raise ConfigError("cannot open the MLflow tracking store", key="tracking.uri", value=mask_uri(uri))


def download(tracking_uri: str, uri: str, dst_dir: Path, *, client: MlflowClient | None = None) -> Path:
    """A local copy of the artifact ``runs:/RUN_ID/PATH`` (a plain path is returned as it is)."""
    if not uri.startswith("runs:/"):
        return Path(uri)
    run_id, _, path = uri[len("runs:/"):].partition("/")
    dst_dir.mkdir(parents=True, exist_ok=True)
    client = client or MlflowClient(tracking_uri=with_driver(tracking_uri))
    try:
        return Path(client.download_artifacts(run_id, path, str(dst_dir)))
    except MlflowException as exc:
        raise FileNotFoundError(f"{uri}: {exc.message}") from None


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("x".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in row.items()})
    return out.getvalue()


# ------------------------------------------------------------------------------------ the writer process


class _Store:
    """The writer process's side: one MlflowClient doing every write, in the order it was asked."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client = open_client(uri)
        self.experiment_id: str | None = None
        self.study: str | None = None
        self.parent_id: str | None = None
        self.runs: dict[int, str | None] = {}
        self.pending: dict[int, list[Metric]] = {}
        self.flushed_at: dict[int, float] = {}
        self.failures = 0
        self.notify: Any = None  # called with (trial number, run id) as soon as a trial's run exists

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(name, artifact_location=artifact_root_for(self.uri, name),
                                                     tags={TAG_STUDY: name})
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
                found = self.client.get_experiment_by_name(name)  # another worker created it just now
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"the MLflow experiment {name!r} was deleted; restore it (mlflow experiments restore "
                              f"--experiment-id {found.experiment_id}) or name another experiment",
                              key="tracking.experiment", value=name, allowed="an active or new experiment name")
        return found.experiment_id

    def batch(self, run_id: str | None, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
              tags: Sequence[RunTag] = ()) -> None:
        if run_id is None:
            return
        params, tags, metrics = list(params), list(tags), list(metrics)
        while params or tags or metrics:
            p, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
            t, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
            room = MAX_METRICS_PER_BATCH - len(p) - len(t)
            m, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)

    # -- requests with an answer
    def open_study(self, study: str, experiment: str, spec: Mapping[str, Any], storage: str,
                   parent_run_id: str | None) -> tuple[str, str]:
        self.study = study
        self.experiment_id = self._experiment(experiment)
        self.parent_id = None
        self.runs.clear()
        if parent_run_id:
            try:
                run = self.client.get_run(parent_run_id)
                if run.info.lifecycle_stage != "deleted":
                    self.parent_id = parent_run_id
                    if run.info.status != "RUNNING":
                        self.client.update_run(parent_run_id, status="RUNNING")
                    return parent_run_id, self.experiment_id
            except MlflowException:
                log.warning("the study's MLflow run %s is gone; starting a new one", parent_run_id)
        tags = {TAG_STUDY: study, TAG_ROLE: "study", "sparsesearch.storage": mask_uri(storage) or ""}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=study)
        self.parent_id = run.info.run_id
        self.batch(self.parent_id, params=[Param(k, _param_value(v)) for k, v in flatten(dict(spec)).items()])
        from sparsesearch.formats.safe_yaml import dump_yaml

        self.client.log_text(self.parent_id, dump_yaml(dict(spec), header="study spec"), "spec.yaml")
        return self.parent_id, self.experiment_id

    def log_baseline(self, metrics: Mapping[str, float], curve: Sequence[Mapping[str, float]],
                     checkpoint: str) -> str | None:
        if self.parent_id is None:
            return None
        stamp = _now_ms()
        points = [Metric(f"dense/{k}", float(v), stamp, e) for e, row in enumerate(curve) for k, v in row.items()]
        points += [Metric(f"dense_{k}", float(v), stamp, 0) for k, v in metrics.items()]
        self.batch(self.parent_id, metrics=points)
        self.client.log_artifact(self.parent_id, checkpoint, "baseline")
        return f"runs:/{self.parent_id}/baseline/{Path(checkpoint).name}"

    def fetch(self, uri: str, dst_dir: str) -> str:
        return str(download(self.uri, uri, Path(dst_dir), client=self.client))

    def ping(self) -> int:
        return self.failures

    # -- fire and forget
    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        all_tags = {TAG_STUDY: self.study or "", TAG_TRIAL: str(number), TAG_ROLE: "trial", **tags}
        if self.parent_id:
            all_tags["mlflow.parentRunId"] = self.parent_id
        self.runs[number] = None
        try:
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=f"trial-{number:03d}")
        except MlflowException:
            self.notify(number, None)
            raise
        self.runs[number] = run.info.run_id
        self.notify(number, run.info.run_id)
        self.flushed_at[number] = time.monotonic()
        self.batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])

    def log_epoch(self, number: int, epoch: int, metrics: Mapping[str, float], stamp: int) -> None:
        self.pending.setdefault(number, []).extend(Metric(k, float(v), stamp, epoch) for k, v in metrics.items())
        if time.monotonic() - self.flushed_at.get(number, 0.0) >= FLUSH_S:
            self.batch(self.runs.get(number), metrics=self.pending.pop(number, []))
            self.flushed_at[number] = time.monotonic()

    def finish_trial(self, number: int, status: str, metrics: Mapping[str, float], layers: Sequence[Mapping[str, Any]],
                     recipe_yaml: str | None, tags: Mapping[str, str], stamp: int) -> None:
        run_id = self.runs.get(number)
        points = self.pending.pop(number, []) + [Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
        self.batch(run_id, metrics=points, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        if run_id is None:
            return
        if layers:
            self.client.log_text(run_id, _csv(layers), "layer_sparsity.csv")
        if recipe_yaml:
            self.client.log_text(run_id, recipe_yaml, "recipe.yaml")
        self.client.set_terminated(run_id, status=status)

    def set_pareto(self, membership: Mapping[str, bool]) -> None:
        for run_id, on_front in membership.items():
            self.client.set_tag(run_id, TAG_PARETO, str(bool(on_front)).lower())

    def close_study(self, status: str | None, metrics: Mapping[str, float], texts: Mapping[str, str],
                    tags: Mapping[str, str], stamp: int) -> None:
        if self.parent_id is None:
            return
        self.batch(self.parent_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
                   tags=[RunTag(k, str(v)) for k, v in tags.items()])
        for name, text in texts.items():
            self.client.log_text(self.parent_id, text, name)
        if status:
            self.client.set_terminated(self.parent_id, status=status)


def _writer_main(uri: str, requests: Any, replies: Any, level: int) -> None:
    """The writer process: serve requests until a None arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    try:
        store = _Store(uri)
    except (ConfigError, MlflowException) as exc:
        replies.put(("error", str(exc) if isinstance(exc, ConfigError) else exc.message))
        return
    store.notify = lambda number, run_id: replies.put(("run", (number, run_id)))
    replies.put(("ready", None))
    while True:
        message = requests.get()
        if message is None:
            break
        op, wants_reply, args = message
        try:
            answer = getattr(store, op)(*args)
        except ConfigError as exc:  # a problem the user must fix (a deleted experiment): the caller raises it
            answer = exc
        except (MlflowException, OSError, ValueError, RuntimeError, KeyError) as exc:
            store.failures += 1
            log.warning("MLflow %s failed: %s", op, exc)
            answer = None
        if wants_reply:
            replies.put(("ok", answer))


# ------------------------------------------------------------------------------------ the training side


class MlflowTracker(Tracker):
    """Records a study in MLflow (see the module docstring); implements the Tracker protocol."""

    enabled = True

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.experiment_name: str | None = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self._ready_seen = False
        self._broken = False
        self._runs: dict[int, str | None] = {}
        ctx = multiprocessing.get_context("spawn")
        self._requests = ctx.Queue()
        self._replies = ctx.Queue()
        self._process = ctx.Process(target=_writer_main, name="sparsesearch-mlflow", daemon=True,
                                    args=(uri, self._requests, self._replies,
                                          logging.getLogger().getEffectiveLevel()))
        self._process.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- plumbing
    def _ready(self) -> None:
        if self._ready_seen or self._broken:
            return
        kind, value = self._reply()
        if kind == "error":
            self._broken = True
            raise ConfigError(value, key="tracking.uri", value=mask_uri(self.uri))
        self._ready_seen = True

    def _next(self, deadline: float) -> tuple[str, Any]:
        """The writer's next message; run ids announced on the way are recorded, not returned."""
        while True:
            try:
                kind, value = self._replies.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive() or time.monotonic() > deadline:
                    self._broken = True
                    log.warning("the MLflow writer process stopped answering; tracking is off from here on")
                    return ("error", "the MLflow writer process stopped")
                continue
            if kind == "run":
                number, run_id = value
                self._runs[number] = run_id
                return (kind, value)
            return (kind, value)

    def _reply(self) -> tuple[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            kind, value = self._next(deadline)
            if kind != "run":
                return kind, value

    def _run_id(self, number: int) -> str | None:
        """A trial's run id: announced by the writer right after it created the run, so this does not wait
        for the writer's other queued work (it waits only if the run is not created yet)."""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while number not in self._runs and not self._broken:
            kind, _ = self._next(deadline)
            if kind == "error":
                break
        return self._runs.pop(number, None)

    def _send(self, op: str, *args: Any) -> None:
        if not self._broken:
            self._requests.put((op, False, args))

    def _ask(self, op: str, *args: Any) -> Any:
        self._ready()
        if self._broken:
            return None
        self._requests.put((op, True, args))
        kind, value = self._reply()
        if isinstance(value, ConfigError):
            raise value
        return value if kind == "ok" else None

    # -- the Tracker protocol
    def describe(self) -> str:
        where = f"MLflow {mask_uri(self.uri)}"
        return where + (f", experiment {self.experiment_name!r}" if self.experiment_name else "")

    def open_study(self, study: str, *, experiment: str | None = None, spec: Mapping[str, Any], storage: str,
                   parent_run_id: str | None = None) -> str | None:
        self.experiment_name = experiment or study
        answer = self._ask("open_study", study, self.experiment_name, dict(spec), storage, parent_run_id)
        self.parent_id, self.experiment_id = answer if answer else (None, None)
        return self.parent_id

    def log_baseline(self, metrics: Mapping[str, float], curve: Sequence[Mapping[str, float]],
                     checkpoint: Path) -> str | None:
        return self._ask("log_baseline", dict(metrics), [dict(r) for r in curve], str(checkpoint))

    def fetch(self, uri: str, dst_dir: Path) -> Path:
        if not uri.startswith("runs:/"):
            return Path(uri)
        path = self._ask("fetch", uri, str(dst_dir))
        if path is None:
            raise FileNotFoundError(f"{uri} could not be downloaded")
        return Path(path)

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> TrialRun:
        self._ready()
        run = TrialRun(number, pending=True, resolver=lambda: self._run_id(number))
        self._send("start_trial", number, {"trial_number": number, **params}, dict(tags or {}))
        return run

    def log_epoch(self, run: TrialRun, epoch: int, metrics: Mapping[str, float]) -> None:
        self._send("log_epoch", run.number, epoch, dict(metrics), _now_ms())

    def finish_trial(self, run: TrialRun, status: str, *, metrics: Mapping[str, float] | None = None,
                     layers: Sequence[Mapping[str, Any]] | None = None, recipe_yaml: str | None = None,
                     tags: Mapping[str, str] | None = None) -> None:
        self._send("finish_trial", run.number, status, dict(metrics or {}), [dict(r) for r in layers or []],
                   recipe_yaml, dict(tags or {}), _now_ms())

    def set_pareto(self, membership: Mapping[str, bool]) -> None:
        self._send("set_pareto", {k: v for k, v in membership.items() if k})

    def close_study(self, status: str | None, *, metrics: Mapping[str, float] | None = None,
                    tables: Mapping[str, str] | None = None, texts: Mapping[str, str] | None = None,
                    tags: Mapping[str, str] | None = None) -> None:
        self._send("close_study", status, dict(metrics or {}), {**(tables or {}), **(texts or {})}, dict(tags or {}),
                   _now_ms())
        self.flush()

    def flush(self) -> None:
        failures = self._ask("ping")
        if failures:
            log.warning("%d MLflow writes failed (see the warnings above)", failures)

    def close(self) -> None:
        if self._process.is_alive():
            if not self._broken:
                self._requests.put(None)
            self._process.join(timeout=60)
            if self._process.is_alive():
                self._process.terminate()


def _close_at_exit(ref: weakref.ref) -> None:
    tracker = ref()
    if tracker is not None:
        tracker.close()


__all__ = ["MlflowTracker", "artifact_root_for", "download", "open_client"]
