"""Several workers share one study through PostgreSQL (Optuna) and one MLflow store (also PostgreSQL); one
of them may be killed (SIGKILL) mid-trial, and the study still ends as if nothing had happened to it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from sparsesearch.records.urls import with_driver
from sparsesearch.search.storage import finished_count

import pg

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: heartbeats every second, a worker lost after 5 s of silence (the defaults are 5 s and 20 s)
FAST = {"SPARSESEARCH_HEARTBEAT_INTERVAL": "1", "SPARSESEARCH_GRACE_PERIOD": "5", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def databases():
    """Two throwaway databases (Optuna, MLflow); the test fails when PostgreSQL is down."""
    with pg.databases("optuna", "mlflow") as names:
        yield tuple(pg.url(n) for n in names)


class Worker:
    """``sparsesearch -v run SPEC`` in its own working directory (as on its own machine); its output is read
    line by line as it comes."""

    def __init__(self, spec: Path, cwd: Path, env: dict[str, str]) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "sparsesearch.cli", "-v", "run", str(spec)], cwd=cwd,
                                     env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def find(self, pattern: str) -> re.Match | None:
        return re.search(pattern, self.output)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.output


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def processes_in(folder: Path) -> list[int]:
    """Live processes whose working directory is ``folder`` (a worker's children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).resolve() == folder.resolve() and alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until(check, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return check()


def write_spec(tmp_path: Path, name: str, optuna_url: str, mlflow_url: str, **over) -> Path:
    spec = {
        "name": name, "task": "digits-mlp", "n_trials": 6, "seed": 0,
        "budget": {"epochs": 4, "dense_epochs": 6},
        "space": {"pruning_types": ["magnitude", "snip_momentum"], "patterns": ["1x1"], "sparsity": [0.5, 0.95]},
        "early_stopping": {"enabled": False},
        "storage": optuna_url, "tracking": {"uri": mlflow_url}, **over,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def mlflow_runs(mlflow_url: str, experiment: str):
    client = MlflowClient(with_driver(mlflow_url))
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if r.data.tags.get("sparsesearch.role") == "study"]
    children = [r for r in runs if r.data.tags.get("sparsesearch.role") == "trial"]
    return exp, parents, children


def test_two_workers_share_one_study(databases, tmp_path):
    optuna_url, mlflow_url = databases
    path = write_spec(tmp_path, "shared", optuna_url, mlflow_url, budget={"epochs": 4, "dense_epochs": 10})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = []
    for i in range(2):
        cwd = tmp_path / f"worker{i}"  # separate working directories, as on separate machines
        cwd.mkdir()
        workers.append(subprocess.Popen([sys.executable, "-m", "sparsesearch.cli", "run", str(path)], cwd=cwd, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    for w, out in zip(workers, outputs):
        assert w.returncode == 0, out

    trained = sum("dense baseline (trained)" in out for out in outputs)
    reused = sum("dense baseline (reused)" in out for out in outputs)
    assert (trained, reused) == (1, 1), outputs  # the baseline is trained once, by one worker
    ran = [int(re.search(r"this run: (\d+) trials", out).group(1)) for out in outputs]
    assert all(n >= 1 for n in ran), outputs  # both workers ran trials of the one study

    study = optuna.load_study(study_name="shared", storage=with_driver(optuna_url))
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6 and len(trials) == 6  # exactly n_trials: the workers never overshoot
    assert len({t.user_attrs.get("summary", {}).get("target_sparsity") for t in finished}) == len(finished)

    _, parents, children = mlflow_runs(mlflow_url, "shared")
    assert len(parents) == 1
    assert len(children) == len(trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert not [r for r in parents + children if r.info.status == "RUNNING"]


def test_a_worker_killed_mid_trial_costs_only_its_trial(databases, tmp_path):
    """SIGKILL one of three workers mid-trial: its trial is failed as lost (with the reason) and run again by
    another worker, the study ends with exactly n_trials finished trials, no trial or MLflow run is left
    RUNNING, the killed worker's MLflow writer does not outlive it, the baseline is trained once, there is
    one study run, and the artifacts live under the shared artifact root."""
    optuna_url, mlflow_url = databases
    shared = tmp_path / "shared-artifacts"
    path = write_spec(tmp_path, "killed", optuna_url, mlflow_url, n_trials=5, budget={"epochs": 8, "dense_epochs": 3})
    env = {**FAST, "SPARSESEARCH_ARTIFACT_ROOT": str(shared)}
    workers = [Worker(path, tmp_path / f"w{i}", env) for i in range(3)]
    storage = with_driver(optuna_url)

    def victim_mid_trial():
        """A running trial whose worker is one of ours and whose first epoch is recorded (its run id is set)."""
        try:
            trials = optuna.load_study(study_name="killed", storage=storage).get_trials(deepcopy=False)
        except KeyError:
            return None
        pids = {w.proc.pid: w for w in workers}
        for t in trials:
            worker = t.user_attrs.get("worker", "")
            if t.state == TrialState.RUNNING and t.user_attrs.get("run_id") and worker:
                pid = int(worker.rsplit(":", 1)[1])
                if pid in pids:
                    return pids[pid], t.number
        return None

    found = wait_until(victim_mid_trial, timeout=240, step=0.1)
    assert found, [w.output for w in workers]
    victim, number = found
    writer = int(victim.find(r"MLflow writer process (\d+) started").group(1))
    victim.proc.send_signal(signal.SIGKILL)

    others = [w for w in workers if w is not victim]
    results = [w.finish() for w in others]
    for code, out in results:
        assert code == 0, out
    assert victim.finish(timeout=30)[0] == -signal.SIGKILL
    assert wait_until(lambda: not alive(writer), timeout=15), "the killed worker's MLflow writer outlived it"
    assert wait_until(lambda: not processes_in(victim.cwd), timeout=15), processes_in(victim.cwd)

    outputs = [w.output for w in workers]
    assert sum("dense baseline (trained)" in out for out in outputs) == 1, outputs
    assert any(f"trial {number}: worker lost: no heartbeat since" in out for _, out in results), outputs

    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
    assert finished_count(trials) == 5 and sum(t.state == TrialState.COMPLETE for t in trials) == 5
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    lost = trials[number]
    assert lost.state == TrialState.FAIL
    assert re.match(r"worker lost: no heartbeat since .* UTC \(\d+ s ago; grace period 5 s\); it ran on .*:"
                    rf"{victim.proc.pid}$", lost.user_attrs["stop_reason"])
    retries = [t for t in trials if t.user_attrs.get("retry_of") == number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].system_attrs["failed_trial"] == number and retries[0].params == lost.params

    exp, parents, children = mlflow_runs(mlflow_url, "killed")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [r for r in parents + children if r.info.status == "RUNNING"]
    by_trial = {int(r.data.tags["sparsesearch.trial"]): r for r in children}
    assert by_trial[number].info.status == "FAILED"
    assert by_trial[number].data.tags["sparsesearch.stop_reason"].startswith("worker lost")
    assert by_trial[retries[0].number].data.tags["sparsesearch.retry_of"] == str(number)
    assert exp.artifact_location.startswith(shared.as_uri())
    assert list(shared.rglob("dense.pt")), "the dense baseline is not in the shared artifact root"
