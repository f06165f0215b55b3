"""MLflow tracking (with :mod:`sparsesearch.tracking.models`, the only place that imports mlflow).

One experiment per study; a parent run for the study; one nested run per trial (``mlflow.parentRunId``),
opened when the trial starts. Every write happens in a separate writer *process*, in order: MLflow's
SQLAlchemy store spends tens of milliseconds of Python per call, and in a thread that time would be taken
from training through the GIL (measured: ~20 % of a one-second trial). The training process only puts
small messages on a queue; it waits for the writer only where it needs an answer (the study run's id,
the baseline's URI, a trial's run id at its end) and at :meth:`MlflowTracker.flush`.

The writer batches within MLflow's limits (100 params or tags, 1000 metrics per call) and sends a running
trial's per-epoch metrics at most every ``FLUSH_S`` seconds (and at its end), so short trials cost a
handful of calls and long ones still show live curves.

Artifacts (the dense baseline's checkpoint, tables, recipes) go to the experiment's artifact location,
which every worker must be able to read: ``artifact_root`` (``tracking.artifact_root`` or
``SPARSESEARCH_ARTIFACT_ROOT``: ``s3://bucket/prefix``, a shared file system path) when given; else, with
a ``sqlite:///PATH`` store, ``mlartifacts/`` beside the database file; with an ``http(s)://`` tracking
server, the server's own artifact store (``mlflow server --artifacts-destination ...``); with any other
store MLflow's default, a ``./mlruns`` directory on the first worker's machine (a warning says so).

Robustness: the store is probed (a TCP connection with a short timeout, then a real connection for
databases) before the writer starts, so an unreachable store fails in seconds with one line naming it;
the writer serialises creating a new SQLite store's tables (a lock file beside it); it ignores SIGINT and
SIGTERM so that it can still record the interrupted trial as KILLED, and it exits when its worker dies
(it polls its parent), first ending that worker's open trial runs as FAILED. A study run is looked up by
the study's unique id before one is created, so joining workers share one.
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
import socket
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

from sparsesearch.errors import ConfigError
from sparsesearch.records.urls import mask_text, mask_uri, with_driver
from sparsesearch.tracking.base import Tracker, TrialRun, flatten, sqlite_lock

log = logging.getLogger(__name__)

# MLflow draws a progress bar for every artifact download; the CLI owns the console
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

TAG_STUDY = "sparsesearch.study"
TAG_ROLE = "sparsesearch.role"
TAG_TRIAL = "sparsesearch.trial"
TAG_PARETO = "sparsesearch.pareto"
TAG_UID = "sparsesearch.study_uid"
TAG_STATE = "sparsesearch.state"
TAG_STOP = "sparsesearch.stop_reason"
#: where the experiment's artifacts go, when the spec does not say (a URI or path every worker can read)
ARTIFACT_ROOT_ENV = "SPARSESEARCH_ARTIFACT_ROOT"
#: seconds to wait for a tracking store's host to accept a connection before giving up
PROBE_TIMEOUT_S = 5.0
#: MLflow's HTTP client retries a failed request 7 times over about 4 minutes by default; the writer
#: retries fewer times (a user's own MLFLOW_HTTP_REQUEST_* settings win)
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
                 "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}  # the console is the CLI's
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


def artifact_location(uri: str, experiment: str, artifact_root: str | None = None) -> str | None:
    """Where a new experiment's artifacts go: ``<artifact_root>/<experiment>`` when a root is given (a plain
    path becomes an absolute ``file://`` URI), else as :func:`artifact_root_for`."""
    if not artifact_root:
        return artifact_root_for(uri, experiment)
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", experiment)
    root = artifact_root if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", artifact_root) and not re.match(
        r"^[A-Za-z]:[\\/]", artifact_root) else Path(artifact_root).expanduser().resolve().as_uri()
    return root.rstrip("/") + "/" + safe


def _reach(host: str, port: int, timeout: float) -> str | None:
    """None when ``host:port`` accepts a TCP connection within ``timeout`` seconds, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast, in one line naming the store (masked) and the cause, when a tracking store cannot be
    reached: an HTTP server's port, a database's port and then a real connection; a SQLite file's folder."""
    scheme = uri.split(":", 1)[0].lower()
    cause = None
    if scheme in ("http", "https"):
        cause = _probe_http(uri, timeout)
    elif scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mssql"):
        cause = _probe_database(uri, timeout)
    if cause:
        raise ConfigError(f"cannot reach the MLflow tracking store: {cause}", key="tracking.uri", value=mask_uri(uri),
                          allowed="a reachable store (is the server or database running?), or --tracking-uri none "
                          "to turn tracking off")


def _probe_http(uri: str, timeout: float) -> str | None:
    """None when an HTTP(S) server answers at all (any status: authentication is MLflow's to check)."""
    import urllib.error
    import urllib.request

    parts = urlsplit(uri)
    if not parts.hostname:
        return "the URL names no host"
    cause = _reach(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), timeout)
    if cause:
        return cause
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    bare = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(bare, timeout=timeout):  # noqa: S310 - the user's own server
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return f"the server at {parts.hostname}:{parts.port or ''} accepted a connection but did not answer " \
                   f"within {timeout:g} s"
        return f"no HTTP answer: {reason}"


def _probe_database(uri: str, timeout: float) -> str | None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        url = make_url(with_driver(uri))
    except Exception as exc:  # noqa: BLE001 - MLflow reports a URL it cannot read itself
        return f"not a database URL: {exc}"
    defaults = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
    if url.host and not url.host.startswith("/"):
        cause = _reach(url.host, url.port or defaults.get(url.get_backend_name(), 5432), timeout)
        if cause:
            return cause
    try:
        engine = create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))}, poolclass=_null_pool())
        try:
            with engine.connect():
                return None
        finally:
            engine.dispose()
    except ImportError as exc:
        return f"the database driver is not installed ({exc.name or exc})"
    except (SQLAlchemyError, TypeError) as exc:
        orig = getattr(exc, "orig", None) or exc
        lines = [line for line in str(orig).strip().splitlines() if line.strip()]
        return lines[0] if lines else type(orig).__name__


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _now_ms() -> int:
    return int(time.time() * 1000)


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def open_client(uri: str, attempts: int = 30) -> MlflowClient:
    """A client whose store is ready. Workers starting together on a new database race to create MLflow's
    tables: on SQLite one at a time creates them (a lock file beside the database); anywhere the losers (or
    a worker racing another MLflow process) see a duplicate-table or locked-database error and retry until
    the winner's migration is done."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    racing = ("already exists", "database is locked", "duplicate")
    for attempt in range(attempts):
        try:
            with sqlite_lock(uri):  # one process at a time creates a new SQLite store's tables
                client = MlflowClient(tracking_uri=with_driver(uri))
                client.search_experiments(max_results=1)
            return client
        except (IntegrityError, ProgrammingError, OperationalError, MlflowException) as exc:
            text = exc.message if isinstance(exc, MlflowException) else str(exc.orig)
            if attempt == attempts - 1 or not (isinstance(exc, (IntegrityError, ProgrammingError))
                                               or any(r in text.lower() for r in racing)):
                raise _open_error(uri, exc) from None
            time.sleep(0.5 + random.random())
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

    def __init__(self, uri: str, artifact_root: str | None = None) -> None:
        self.uri = uri
        self.artifact_root = artifact_root
        self.client = open_client(uri)
        self.experiment_id: str | None = None
        self.study: str | None = None
        self.uid: str | None = None
        self.parent_id: str | None = None
        self.runs: dict[int, str | None] = {}
        self.open: set[int] = set()  # trials whose runs this writer started and has not ended
        self.pending: dict[int, list[Metric]] = {}
        self.flushed_at: dict[int, float] = {}
        self.failures = 0
        self.notify: Any = None  # called with (trial number, run id) as soon as a trial's run exists

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        wanted = artifact_location(self.uri, name, self.artifact_root)
        if found is None:
            try:
                experiment_id = self.client.create_experiment(name, artifact_location=wanted, tags={TAG_STUDY: name})
                found = self.client.get_experiment(experiment_id)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                    raise
                found = self.client.get_experiment_by_name(name)  # another worker created it just now
        if found is None:
            raise ConfigError(f"the MLflow experiment {name!r} could not be created or found",
                              key="tracking.experiment", value=name, allowed="an experiment name the store accepts")
        if found.lifecycle_stage == "deleted":
            raise ConfigError(f"the MLflow experiment {name!r} was deleted; restore it (mlflow experiments restore "
                              f"--experiment-id {found.experiment_id}) or name another experiment",
                              key="tracking.experiment", value=name, allowed="an active or new experiment name")
        where = found.artifact_location
        if self.artifact_root and wanted and where and where.rstrip("/") != wanted.rstrip("/"):
            log.warning("the MLflow experiment %r keeps its artifacts in %s (it existed before; the artifact root "
                        "%s applies to new experiments)", name, mask_uri(where), mask_uri(self.artifact_root))
        elif not self.uri.startswith(("sqlite:", "http:", "https:", "file:", "databricks")) and where \
                and where.startswith("file:"):
            log.warning("the MLflow experiment %r keeps its artifacts (the dense baseline too) in %s, on one "
                        "machine: workers on other machines cannot read them. Use an MLflow tracking server "
                        "(mlflow server --artifacts-destination ...) or set tracking.artifact_root (or %s) to a "
                        "location every worker can reach", name, where, ARTIFACT_ROOT_ENV)
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
                   parent_run_id: str | None, uid: str | None = None) -> tuple[str, str]:
        self.study = study
        self.uid = uid
        self.experiment_id = self._experiment(experiment)
        self.parent_id = None
        self.runs.clear()
        self.open.clear()
        if not parent_run_id and uid:  # another worker of this study may have opened it already
            parent_run_id = self._study_run(uid)
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
        if uid:
            tags[TAG_UID] = uid
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=study)
        self.parent_id = run.info.run_id
        self.batch(self.parent_id, params=[Param(k, _param_value(v)) for k, v in flatten(dict(spec)).items()])
        from sparsesearch.formats.safe_yaml import dump_yaml

        self.client.log_text(self.parent_id, dump_yaml(dict(spec), header="study spec"), "spec.yaml")
        return self.parent_id, self.experiment_id

    def _study_run(self, uid: str) -> str | None:
        """The oldest live study run tagged with the study's unique id, if there is one."""
        runs = self.client.search_runs([str(self.experiment_id)], filter_string=f"tags.`{TAG_UID}` = '{uid}' and "
                                       f"tags.`{TAG_ROLE}` = 'study'", order_by=["attributes.start_time ASC"],
                                       max_results=5)
        return runs[0].info.run_id if runs else None

    def _trial_runs(self, number: int) -> list[Any]:
        """The runs of trial ``number`` of this study (by tags)."""
        if self.experiment_id is None:
            return []
        query = f"tags.`{TAG_TRIAL}` = '{int(number)}' and tags.`{TAG_ROLE}` = 'trial'"
        query += f" and tags.`{TAG_UID}` = '{self.uid}'" if self.uid else f" and tags.`{TAG_STUDY}` = '{self.study}'"
        return self.client.search_runs([self.experiment_id], filter_string=query, max_results=10)

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
        if self.uid:
            all_tags[TAG_UID] = self.uid
        if self.parent_id:
            all_tags["mlflow.parentRunId"] = self.parent_id
        self.runs[number] = None
        try:
            run = self.client.create_run(str(self.experiment_id), tags=all_tags, run_name=f"trial-{number:03d}")
        except MlflowException:
            self.notify(number, None)
            raise
        self.runs[number] = run.info.run_id
        self.open.add(number)
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
        self.open.discard(number)

    def close_lost_trial(self, number: int, run_id: str | None, reason: str) -> None:
        runs = []
        if run_id:
            try:
                runs = [self.client.get_run(run_id)]
            except MlflowException:
                runs = []
        runs = runs or self._trial_runs(number)
        for run in runs:
            tags = [RunTag(TAG_STOP, reason[:5000])]
            if run.info.status == "RUNNING":
                tags.append(RunTag(TAG_STATE, "FAIL"))
            if run.data.tags.get(TAG_STOP) != reason[:5000]:
                self.batch(run.info.run_id, tags=tags)
            if run.info.status == "RUNNING":
                self.client.set_terminated(run.info.run_id, status="FAILED")

    def abandon(self, parent_pid: int) -> None:
        """The worker died: end the trial runs it left open as FAILED (the study run is the other workers')."""
        reason = f"worker lost: the worker process {parent_pid} ended without closing this run"
        for number in sorted(self.open):
            run_id = self.runs.get(number)
            try:
                self.batch(run_id, metrics=self.pending.pop(number, []),
                           tags=[RunTag(TAG_STATE, "FAIL"), RunTag(TAG_STOP, reason)])
                if run_id:
                    self.client.set_terminated(run_id, status="FAILED")
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                log.warning("MLflow: cannot end the run of trial %d: %s", number, exc)
        self.open.clear()

    def set_pareto(self, membership: Mapping[str, bool]) -> None:
        for run_id, on_front in membership.items():
            self.client.set_tag(run_id, TAG_PARETO, str(bool(on_front)).lower())

    def tag_runs(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        for run_id, run_tags in tags.items():
            self.batch(run_id, tags=[RunTag(k, str(v)) for k, v in run_tags.items()])

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


def _open_error(uri: str, exc: BaseException) -> ConfigError:
    """One line for a store that cannot be opened."""
    if isinstance(exc, ConfigError):
        return exc
    text = exc.message if isinstance(exc, MlflowException) else str(getattr(exc, "orig", None) or exc)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return ConfigError(f"cannot open the MLflow tracking store: {lines[-1] if lines else type(exc).__name__}",
                       key="tracking.uri", value=mask_uri(uri),
                       allowed="an MLflow tracking URI such as sqlite:///mlflow.db or http://host:5000 that this "
                       "worker can write, or --tracking-uri none to turn tracking off")


def _writer_main(uri: str, requests: Any, replies: Any, level: int, parent_pid: int | None = None,
                 artifact_root: str | None = None) -> None:
    """The writer process: serve requests until a None arrives, or until its worker (``parent_pid``) dies."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # stopping is the worker's to handle (it sends None)
        signal.signal(sig, signal.SIG_IGN)
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(max(level, logging.WARNING))
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    try:
        store = _Store(uri, artifact_root)
    except Exception as exc:  # noqa: BLE001 - whatever the store raised, the worker says it in one line
        replies.put(("error", _open_error(uri, exc)))
        return
    store.notify = lambda number, run_id: replies.put(("run", (number, run_id)))
    replies.put(("ready", os.getpid()))
    while True:
        try:
            message = requests.get(timeout=1.0)
        except queue.Empty:
            if parent_pid is not None and os.getppid() != parent_pid:  # the worker died without saying so
                store.abandon(parent_pid)
                return
            continue
        except (EOFError, OSError):  # the worker died mid-message
            if parent_pid is not None:
                store.abandon(parent_pid)
            return
        if message is None:
            break
        op, wants_reply, args = message
        try:
            answer = getattr(store, op)(*args)
        except ConfigError as exc:  # a problem the user must fix (a deleted experiment): the caller raises it
            answer = exc
        except Exception as exc:  # noqa: BLE001 - a failed write costs that record, never the writer
            store.failures += 1
            log.warning("MLflow %s failed: %s", op, mask_text(str(exc)))
            answer = None
        if wants_reply:
            replies.put(("ok", answer))


# ------------------------------------------------------------------------------------ the training side


class MlflowTracker(Tracker):
    """Records a study in MLflow (see the module docstring); implements the Tracker protocol."""

    enabled = True

    def __init__(self, uri: str, artifact_root: str | None = None) -> None:
        self.uri = uri
        self.artifact_root = artifact_root or os.environ.get(ARTIFACT_ROOT_ENV) or None
        self.experiment_name: str | None = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self._ready_seen = False
        self._broken = False
        self._runs: dict[int, str | None] = {}
        probe(uri)  # an unreachable store fails here, in seconds, before a writer exists
        ctx = multiprocessing.get_context("spawn")
        self._requests = ctx.Queue()
        self._replies = ctx.Queue()
        self._process = ctx.Process(target=_writer_main, name="sparsesearch-mlflow", daemon=True,
                                    args=(uri, self._requests, self._replies, logging.getLogger().getEffectiveLevel(),
                                          os.getpid(), self.artifact_root))
        self._process.start()
        log.info("MLflow writer process %d started for %s", self._process.pid, mask_uri(uri))
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id."""
        return self._process.pid

    # -- plumbing
    def _ready(self) -> None:
        if self._ready_seen or self._broken:
            return
        kind, value = self._reply()
        if kind == "error":
            self._broken = True
            raise value if isinstance(value, ConfigError) else ConfigError(str(value), key="tracking.uri",
                                                                           value=mask_uri(self.uri))
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
                   parent_run_id: str | None = None, uid: str | None = None) -> str | None:
        self.experiment_name = experiment or study
        answer = self._ask("open_study", study, self.experiment_name, dict(spec), storage, parent_run_id, uid)
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

    def tag_runs(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        self._send("tag_runs", {k: dict(v) for k, v in tags.items() if k})

    def close_lost_trial(self, number: int, run_id: str | None, reason: str) -> None:
        self._send("close_lost_trial", number, run_id, reason)

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
                log.warning("the MLflow writer process %s did not finish its writes in 60 s; stopping it",
                            self._process.pid)
                self._process.kill()  # it ignores SIGTERM
                self._process.join(timeout=5)


def _close_at_exit(ref: weakref.ref) -> None:
    tracker = ref()
    if tracker is not None:
        tracker.close()


__all__ = ["ARTIFACT_ROOT_ENV", "MlflowTracker", "artifact_location", "artifact_root_for", "download", "open_client",
           "probe"]
