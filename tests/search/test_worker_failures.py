"""A worker stopped by a signal, a trial whose worker died, a baseline that fails or waits on another worker,
stores that cannot be reached or written: each ends with one clear message, nothing left RUNNING, and
nothing already recorded lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient
from optuna.trial import TrialState

from sparsesearch.cli import main
from sparsesearch.errors import SparseSearchError
from sparsesearch.records.study import load_spec
from sparsesearch.search import Events, run_study
from sparsesearch.search.storage import HeartbeatStorage, finished_count, make_storage, state_counts
from sparsesearch.search.workers import Liveness, LostTrials, recover
from sparsesearch.tracking.mlflow import MlflowTracker

FAST = Liveness(heartbeat_interval=1, grace_period=3, max_retry=2)

#: a task whose data make the loss NaN at the first step (written beside the spec, named with --task)
NAN_TASK = '''
import torch
from torch import nn
from sparsesearch.tasks import Splits


class NanTask:
    name = "nan"
    budget_hints = {"epochs": 2, "dense_epochs": 2, "batch_size": 32, "optimizer": "adam", "lr": 1e-3}

    def model(self):
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def splits(self, seed):
        x = torch.full((96, 8), float("nan"))
        y = torch.zeros(96, dtype=torch.long)
        return Splits(x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:])


def make_task(**kwargs):
    return NanTask()
'''


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    """One MLflow store for the module's studies (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def tracker(mlflow_uri):
    """One MLflow writer for the module's in-process studies (a tracker records studies one after another)."""
    t = MlflowTracker(mlflow_uri)
    t.flush()  # the store exists before any test opens a client on it
    yield t
    t.close()


def tiny(tmp_path: Path, name: str, *, tracking: str | None = None, **over) -> dict:
    """A small study; its Optuna storage in ``tmp_path``, its runs in the ``tracking`` store (None: off)."""
    data = {
        "name": name, "task": "digits-mlp", "n_trials": 2, "seed": 0,
        "budget": {"epochs": 4, "dense_epochs": 4},
        "space": {"pruning_types": ["magnitude"], "patterns": ["1x1"], "sparsity": [0.5, 0.9],
                  "schedule": {"end": [0.5, 0.5]}},
        "early_stopping": {"enabled": False}, "warm_start": [],
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": {"uri": tracking},
    }
    for key, value in over.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return data


def runs_of(uri: str, experiment: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("sparsesearch.role") == "study"]
    children = {int(r.data.tags["sparsesearch.trial"]): r for r in runs if r.data.tags.get("sparsesearch.role") == "trial"}
    return parents, children


class Recorder(Events):
    def __init__(self) -> None:
        self.baselines: list[bool] = []
        self.waiting: list[tuple[str, float, float]] = []
        self.lost: list[tuple[int, str, bool]] = []

    def baseline_done(self, metrics, reused: bool) -> None:
        self.baselines.append(reused)

    def baseline_waiting(self, worker: str, silent_s: float, takeover_s: float) -> None:
        self.waiting.append((worker, silent_s, takeover_s))

    def trial_lost(self, number: int, reason: str, retried: bool) -> None:
        self.lost.append((number, reason, retried))


class SignalAt(Recorder):
    """Sends ``sig`` to this process at epoch 1 of the baseline (``trial`` None) or of trial ``trial``."""

    def __init__(self, sig: int, trial: int | None) -> None:
        super().__init__()
        self.sig, self.trial = sig, trial

    def baseline_epoch(self, epoch, metrics) -> None:
        if self.trial is None and epoch == 1:
            os.kill(os.getpid(), self.sig)

    def trial_epoch(self, number, epoch, metrics) -> None:
        if number == self.trial and epoch == 1:
            os.kill(os.getpid(), self.sig)


# ------------------------------------------------------------------------------ signals, then resume


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("during", ["baseline", "trial"])
def test_a_signal_stops_the_worker_cleanly_and_the_study_resumes(sig, during, tmp_path, tracker, mlflow_uri):
    data = tiny(tmp_path, f"sig-{during}-{signal.Signals(sig).name}", tracking=mlflow_uri)
    spec = load_spec(data)
    first = SignalAt(sig, None if during == "baseline" else 1)
    result = run_study(spec, events=first, workdir=tmp_path / "w", tracker=tracker, liveness=FAST)
    assert result.interrupted and result.stopped_by == signal.Signals(sig).name
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are given back
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    trials = study.get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    parents, children = runs_of(data["tracking"]["uri"], spec.name)
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    if during == "baseline":
        assert trials == [] and "baseline" not in study.user_attrs
        assert study.user_attrs["baseline_heartbeat"] == 0.0  # the claim is given up: a resume does not wait
    else:
        assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
        assert trials[1].user_attrs["stop_reason"] == "interrupted by the user"
        assert children[1].info.status == "KILLED"

    second = Recorder()
    started = time.monotonic()
    resumed = run_study(spec, events=second, workdir=tmp_path / "w", tracker=tracker, liveness=FAST)
    assert not resumed.interrupted and second.waiting == []
    assert second.baselines == [during == "trial"]  # trained now if the first run was stopped while training it
    trials = study.get_trials()
    assert finished_count(trials) == 2 and sum(t.state == TrialState.COMPLETE for t in trials) == 2
    parents, children = runs_of(data["tracking"]["uri"], spec.name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [r for r in children.values() if r.info.status == "RUNNING"]
    assert time.monotonic() - started < 120


@pytest.mark.slow
def test_sigterm_from_outside_ends_the_cli_run_like_ctrl_c(tmp_path, tracker, mlflow_uri):
    """The real thing: `sparsesearch run` gets SIGTERM mid-trial; exit 143, the trial interrupted, the runs
    closed, the writer gone."""
    data = tiny(tmp_path, "term", tracking=mlflow_uri, n_trials=3, budget={"epochs": 30})
    spec = tmp_path / "term.yaml"
    spec.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "sparsesearch.cli", "-v", "run", str(spec)], cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    storage = data["storage"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # a trial past its first epoch
        try:
            trials = optuna.load_study(study_name="term", storage=storage).get_trials(deepcopy=False)
        except (KeyError, Exception):  # noqa: BLE001 - not created yet
            trials = []
        if any(t.state == TrialState.RUNNING and t.user_attrs.get("run_id") for t in trials):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "interrupted by SIGTERM" in out and "Traceback" not in out
    writer = int(__import__("re").search(r"MLflow writer process (\d+) started", out).group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(writer, 0)
    trials = optuna.load_study(study_name="term", storage=storage).get_trials()
    assert state_counts(trials).get("INTERRUPTED") == 1 and not [t for t in trials if t.state == TrialState.RUNNING]
    parents, children = runs_of(data["tracking"]["uri"], "term")
    assert parents[0].info.status == "KILLED" and not [r for r in children.values() if r.info.status == "RUNNING"]


# ------------------------------------------------------------------------------ lost trials, waiting workers


def test_a_stale_trial_is_failed_with_its_reason_and_queued_again(tmp_path):
    """What a worker does with the trial of a worker that died (no processes needed: a trial whose heartbeat
    stops is the same to the storage)."""
    lost = LostTrials(max_retry=1)
    events = Recorder()
    lost.events = events
    storage = make_storage(f"sqlite:///{tmp_path}/o.db", heartbeat_interval=1, grace_period=2, on_stale=lost)
    assert isinstance(storage, HeartbeatStorage)
    study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "maximize"])
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("worker", "elsewhere:123")
    trial.set_user_attr("warm_start", "gmp@0.9")
    trial.set_user_attr("config", {"groups": []})
    storage.record_heartbeat(trial._trial_id)
    recover(study)
    assert study.get_trials()[0].state == TrialState.RUNNING  # not stale yet
    time.sleep(3.2)
    recover(study)
    recover(study)  # a second look finds nothing more to do
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    reason = trials[0].user_attrs["stop_reason"]
    assert reason.startswith("worker lost: no heartbeat since ") and reason.endswith("it ran on elsewhere:123")
    retry = trials[1]
    assert retry.user_attrs == {"warm_start": "gmp@0.9", "retry_of": 0} and retry.params == trials[0].params
    assert retry.system_attrs["failed_trial"] == 0
    assert events.lost == [(0, reason, True)]
    assert finished_count(trials) == 0 and state_counts(trials) == {"LOST": 1, "WAITING": 1}

    again = study.ask()  # the retry is what the next worker runs; lost again, it is not retried (max_retry=1)
    assert again.number == 1 and again.params == trials[0].params
    storage.record_heartbeat(again._trial_id)
    time.sleep(3.2)
    recover(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert events.lost[-1][2] is False
    assert finished_count(trials) == 1  # a lost trial that was not retried counts, as failed


def test_a_worker_says_whom_it_waits_for_and_takes_the_baseline_over(tmp_path):
    data = tiny(tmp_path, "takeover", n_trials=1)
    spec = load_spec(data)
    study = optuna.create_study(storage=spec.storage, study_name=spec.name, directions=["maximize", "maximize"])
    study.set_user_attr("baseline_worker", "gone:1")  # a worker that claimed the baseline, then went silent
    study.set_user_attr("baseline_heartbeat", time.time())
    events = Recorder()
    started = time.monotonic()
    result = run_study(spec, events=events, workdir=tmp_path / "w", liveness=FAST)
    assert events.waiting and events.waiting[0][0] == "gone:1" and events.waiting[0][2] == 3.0
    assert events.baselines == [False] and result.counts == {"COMPLETE": 1}
    assert time.monotonic() - started < 60


# ------------------------------------------------------------------------------ bad stores, bad disks, bad runs


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections and never answers (a hung server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def _one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.slow
def test_unreachable_stores_fail_fast_in_one_line(tmp_path, monkeypatch, silent_port):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tiny(tmp_path, "unreachable")))
    cases = [("--storage", f"postgresql://me:secret@127.0.0.1:{silent_port}/optuna", "study storage"),
             ("--storage", "postgresql://me:secret@127.0.0.1:1/optuna", "study storage"),
             ("--tracking-uri", "postgresql://me:secret@127.0.0.1:1/mlflow", "MLflow tracking store"),
             ("--tracking-uri", "http://127.0.0.1:1", "MLflow tracking store")]
    for flag, uri, what in cases:
        started = time.monotonic()
        line = _one_line_error(invoke("run", spec, flag, uri))
        assert time.monotonic() - started < 30, (uri, line)  # measured: 0-11 s (benchmarks/workers.py)
        assert what in line and "secret" not in line and "127.0.0.1" in line, line
    started = time.monotonic()  # a server that accepts connections and never answers
    http = _one_line_error(invoke("run", spec, "--tracking-uri", f"http://me:secret@127.0.0.1:{silent_port}"))
    assert "did not answer within 5 s" in http and "secret" not in http and time.monotonic() - started < 30


def test_a_store_in_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: a regular file in the path fails the same way
        folder.chmod(0o755)
        folder.rmdir()
        folder.write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(tiny(tmp_path, "ro", storage=f"sqlite:///{folder}/optuna.db")))
    line = _one_line_error(invoke("run", spec))
    assert "study storage" in line and "unable to open database file" in line, line
    data = tiny(tmp_path, "ro")
    data["tracking"] = {"uri": f"sqlite:///{folder}/mlflow.db"}
    spec.write_text(yaml.safe_dump(data))
    line = _one_line_error(invoke("run", spec))
    assert "MLflow tracking store" in line, line


@pytest.mark.slow
def test_a_dense_baseline_that_diverges_is_one_message_and_leaves_no_claim(tmp_path, monkeypatch, tracker,
                                                                            mlflow_uri):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nan_task.py").write_text(NAN_TASK)
    data = tiny(tmp_path, "nanbase", tracking=mlflow_uri, task="nan_task:make_task", budget={},
                space={"pruning_types": ["magnitude"]})
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(data))
    line = _one_line_error(invoke("run", spec, "--task", "nan_task:make_task"))
    assert "the dense baseline failed: the loss became nan" in line, line
    started = time.monotonic()
    again = invoke("run", spec, "--task", "nan_task:make_task", env={"SPARSESEARCH_GRACE_PERIOD": "60"})
    assert "waiting for" not in again.output and time.monotonic() - started < 30  # the claim was given up
    assert "the dense baseline failed" in _one_line_error(again)
    study = optuna.load_study(study_name="nanbase", storage=data["storage"])
    assert study.get_trials() == [] and "baseline" not in study.user_attrs
    parents, _ = runs_of(data["tracking"]["uri"], "nanbase")
    assert len(parents) == 1 and parents[0].info.status == "FAILED"


def test_a_checkpoint_that_cannot_be_written_is_one_message(tmp_path, tracker, mlflow_uri):
    data = tiny(tmp_path, "nodisk", tracking=mlflow_uri)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the worker's folder should be")
    with pytest.raises(SparseSearchError, match=r"the dense baseline failed: cannot write .*blocked"):
        run_study(load_spec(data), workdir=blocked / "w", tracker=tracker, liveness=FAST)
    study = optuna.load_study(study_name="nodisk", storage=data["storage"])
    assert study.user_attrs["baseline_heartbeat"] == 0.0 and "baseline" not in study.user_attrs
    parents, _ = runs_of(data["tracking"]["uri"], "nodisk")
    assert parents[0].info.status == "FAILED"


def test_a_storage_that_fails_mid_trial_stops_the_worker_and_closes_its_runs(tmp_path, tracker, mlflow_uri,
                                                                             monkeypatch):
    """A disk that fills up while a trial runs: the worker stops with one line; the trials done before are
    kept; nothing is left RUNNING."""
    from sqlalchemy.exc import OperationalError

    data = tiny(tmp_path, "fullfail", tracking=mlflow_uri, n_trials=3)
    spec = load_spec(data)
    run_study(spec.with_overrides(n_trials=1), workdir=tmp_path / "w", tracker=tracker, liveness=FAST)
    real = HeartbeatStorage.set_trial_user_attr

    def full(self, trial_id, key, value):
        if key == "metrics":
            raise OperationalError("UPDATE trial_user_attributes", {}, Exception("database or disk is full"))
        return real(self, trial_id, key, value)

    monkeypatch.setattr(HeartbeatStorage, "set_trial_user_attr", full)
    with pytest.raises(SparseSearchError) as info:
        run_study(spec, workdir=tmp_path / "w", tracker=tracker, liveness=FAST)
    assert str(info.value) == f"the study storage sqlite:///{tmp_path}/optuna.db failed: database or disk is full"
    monkeypatch.undo()
    trials = optuna.load_study(study_name="fullfail", storage=spec.storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    parents, children = runs_of(data["tracking"]["uri"], "fullfail")
    assert parents[0].info.status == "FAILED" and children[0].info.status == "FINISHED"
    assert children[1].info.status == "FAILED"
    assert "could not record the trial" in children[1].data.tags["sparsesearch.stop_reason"]


def test_a_study_whose_every_trial_fails_exits_non_zero_with_the_first_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tiny(tmp_path, "allfail", n_trials=3, budget={"optimizer": "sgd"},
                space={"lr": [1.0e6, 1.0e7]})
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(data))
    result = invoke("run", spec)
    line = _one_line_error(result)
    assert line.startswith("error: every trial failed; the first, trial 0: the loss became"), line
    assert "3 trials (0 complete, 0 stopped early, 3 failed)" in result.output


# ------------------------------------------------------------------------------ first start on SQLite


@pytest.mark.slow
def test_workers_started_together_on_new_sqlite_stores(tmp_path):
    """Three workers started at once in a new folder with the default stores (sparsesearch.db, mlflow.db):
    one creates each store's tables while the others wait, and they share the study."""
    data = tiny(tmp_path, "together", n_trials=3, budget={"epochs": 2, "dense_epochs": 2})
    del data["storage"], data["tracking"]  # the zero-config defaults, in the working directory
    spec = tmp_path / "together.yaml"
    spec.write_text(yaml.safe_dump(data))
    env = {**os.environ, "SPARSESEARCH_HEARTBEAT_INTERVAL": "1", "SPARSESEARCH_GRACE_PERIOD": "5"}
    procs = [subprocess.Popen([sys.executable, "-m", "sparsesearch.cli", "run", str(spec)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0 and "Traceback" not in out, out
    assert sum("dense baseline (trained)" in out for out in outputs) == 1, outputs
    trials = optuna.load_study(study_name="together", storage=f"sqlite:///{tmp_path}/sparsesearch.db").get_trials()
    assert finished_count(trials) == 3 and len(trials) == 3
    parents, children = runs_of(f"sqlite:///{tmp_path}/mlflow.db", "together")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and sorted(children) == [0, 1, 2]
    assert not [r for r in children.values() if r.info.status != "FINISHED"]


def test_a_joining_worker_waits_for_the_study_run_being_opened_and_joins_it(tmp_path, tracker, mlflow_uri):
    """Another worker claimed the study's tracking run and is slow to open it: this worker waits, then joins
    that run instead of opening a second one."""
    import threading

    from sparsesearch.records.urls import mask_uri

    data = tiny(tmp_path, "joiner", tracking=mlflow_uri, n_trials=1)
    spec = load_spec(data)
    key = mask_uri(data["tracking"]["uri"])
    study = optuna.create_study(storage=spec.storage, study_name=spec.name, directions=["maximize", "maximize"])
    study.set_user_attr("tracking_claim", {key: {"worker": "slow:1", "at": time.time()}})
    client = MlflowClient(data["tracking"]["uri"])
    experiment = client.create_experiment(spec.name)
    theirs = client.create_run(experiment, tags={"sparsesearch.role": "study", "sparsesearch.study": spec.name})

    def slow_creator() -> None:
        time.sleep(2.0)
        study.set_user_attr("tracking", {key: {"parent_run_id": theirs.info.run_id, "experiment": spec.name}})

    thread = threading.Thread(target=slow_creator)
    thread.start()
    result = run_study(spec, workdir=tmp_path / "w", tracker=tracker, liveness=FAST)
    thread.join()
    assert result.parent_run_id == theirs.info.run_id
    parents, _ = runs_of(data["tracking"]["uri"], spec.name)
    assert [p.info.run_id for p in parents] == [theirs.info.run_id] and parents[0].info.status == "FINISHED"
