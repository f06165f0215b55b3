"""Several workers share one study through PostgreSQL (Optuna) and one MLflow store (also PostgreSQL)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import optuna
import pg
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from sparsesearch.records.urls import with_driver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

@pytest.fixture
def databases():
    """Two throwaway databases (Optuna, MLflow); the test fails when PostgreSQL is down."""
    with pg.databases("optuna", "mlflow") as names:
        yield tuple(pg.url(n) for n in names)


def test_two_workers_share_one_study(databases, tmp_path):
    optuna_url, mlflow_url = databases
    spec = {
        "name": "shared", "task": "digits-mlp", "n_trials": 6,
        "budget": {"epochs": 4, "dense_epochs": 10},
        "space": {"pruning_types": ["magnitude", "snip_momentum"], "sparsity": [0.5, 0.95]},
        "storage": optuna_url, "tracking": {"uri": mlflow_url},
    }
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(spec))
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
    assert 6 <= len(finished) <= 7 and not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.user_attrs.get("summary", {}).get("target_sparsity") for t in finished}) == len(finished)

    client = MlflowClient(with_driver(mlflow_url))
    exp = client.get_experiment_by_name("shared")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("sparsesearch.role") == "study"]
    children = [r for r in runs if r.data.tags.get("sparsesearch.role") == "trial"]
    assert len(parents) == 1
    assert len(children) == len(trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert not [r for r in runs if r.info.status == "RUNNING"]
