"""Short studies end to end: what lands in Optuna and MLflow, resume, early stopping, interruption, failures."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from sparsesearch.pruning import PruningConfig
from sparsesearch.records.study import load_spec
from sparsesearch.search import Events, run_study
from sparsesearch.search.pareto import front_trials
from sparsesearch.tracking.mlflow import MlflowTracker


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Path:
    """One directory (Optuna and MLflow SQLite files) shared by this module's studies."""
    return tmp_path_factory.mktemp("stores")


def tiny(stores: Path, name: str, **over) -> dict:
    data = {
        "name": name, "task": "digits-mlp", "n_trials": 4, "seed": 0,
        "budget": {"epochs": 4, "dense_epochs": 5},
        "space": {"pruning_types": ["magnitude", "snip_momentum"], "patterns": ["1x1"], "sparsity": [0.5, 0.9],
                  "schedule": {"end": [0.5, 0.5]}},
        "early_stopping": {"enabled": False},
        "storage": f"sqlite:///{stores}/optuna.db",
        "tracking": {"uri": f"sqlite:///{stores}/mlflow.db"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture(scope="module")
def tracker(stores: Path):
    """One MLflow writer for the module's studies (a tracker records studies one after another)."""
    t = MlflowTracker(f"sqlite:///{stores}/mlflow.db")
    yield t
    t.close()


class Recorder(Events):
    def __init__(self) -> None:
        self.baselines: list[bool] = []
        self.done: list[tuple[int, str]] = []

    def baseline_done(self, metrics, reused: bool) -> None:
        self.baselines.append(reused)

    def trial_done(self, number, state, values, reason, best) -> None:
        self.done.append((number, state))


def runs_of(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sparsesearch.role") == "study"]
    children = {int(r.data.tags["sparsesearch.trial"]): r for r in runs if r.data.tags.get("sparsesearch.role") == "trial"}
    return parents, children


def test_short_study_records_everything_in_optuna_and_mlflow(stores, tracker, tmp_path):
    spec = load_spec(tiny(stores, "e2e"))
    result = run_study(spec, workdir=tmp_path, tracker=tracker)
    assert result.counts == {"COMPLETE": 4} and not result.interrupted

    study = optuna.load_study(study_name="e2e", storage=spec.storage)
    assert study.user_attrs["spec"]["name"] == "e2e"
    baseline = study.user_attrs["baseline"]
    assert baseline["val_accuracy"] > 0.8 and baseline["checkpoint"].startswith("runs:/")
    trials = study.get_trials()
    for t in trials:
        config = PruningConfig.from_dict(t.user_attrs["config"])  # the full sampled config, loadable
        assert config.groups[0].pruning_type in ("magnitude", "snip_momentum")
        metrics = t.user_attrs["metrics"]
        assert t.values[0] == metrics["val_accuracy"] and t.values[1] == metrics["sparsity"]
        assert metrics["test_accuracy"] > 0  # recorded, never an objective
        assert abs(metrics["sparsity"] - config.groups[0].target_sparsity) < 1e-4  # counted from the weights
        assert len(t.user_attrs["curve"]) == 4
        assert t.user_attrs["run_id"]

    client = MlflowClient(spec.tracking.uri)
    parents, children = runs_of(client, "e2e")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["dense_val_accuracy"] == pytest.approx(baseline["val_accuracy"])
    assert parent.data.metrics["hypervolume"] == pytest.approx(result.hypervolume)
    parent_files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "pareto.csv", "baseline"} <= parent_files
    assert sorted(children) == [0, 1, 2, 3]
    front = {t.number for t in front_trials(study)}
    for number, run in children.items():
        trial = trials[number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.info.run_id == trial.user_attrs["run_id"]
        assert run.data.params["trial_number"] == str(number)
        assert run.data.params["pruning_type"] == trial.user_attrs["config"]["groups"][0]["pruning_type"]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [0, 1, 2, 3]
        best = int(trial.user_attrs["metrics"]["best_epoch"])  # scored on its best epoch at the target
        assert history[best].value == pytest.approx(trial.values[0])
        assert trial.values[0] == pytest.approx(max(h.value for h in history[best:]))
        assert run.data.metrics["test_accuracy"] == pytest.approx(trial.user_attrs["metrics"]["test_accuracy"])
        files = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert {"layer_sparsity.csv", "recipe.yaml"} <= files
        assert run.data.tags.get("sparsesearch.pareto") == ("true" if number in front else "false") or (
            number not in front and "sparsesearch.pareto" not in run.data.tags)
    table = client.download_artifacts(parent.info.run_id, "pareto.csv", str(tmp_path))
    assert Path(table).read_text().startswith("trial,val_accuracy,sparsity")


def test_resume_adds_trials_without_retraining_the_baseline(stores, tracker, tmp_path):
    first = Recorder()
    run_study(load_spec(tiny(stores, "resume", n_trials=2)), events=first, workdir=tmp_path / "w1", tracker=tracker)
    study = optuna.load_study(study_name="resume", storage=f"sqlite:///{stores}/optuna.db")
    baseline_before = dict(study.user_attrs["baseline"])

    second = Recorder()  # a fresh working directory: the baseline comes back from MLflow, not a retrain
    result = run_study(load_spec(tiny(stores, "resume", n_trials=4)), events=second, workdir=tmp_path / "w2", tracker=tracker)
    assert first.baselines == [False] and second.baselines == [True]
    assert result.trials_run == 2 and result.counts == {"COMPLETE": 4}
    assert study.user_attrs["baseline"] == baseline_before
    assert [n for n, _ in second.done] == [2, 3]

    third = Recorder()  # already complete: nothing to do, and it says so
    result = run_study(load_spec(tiny(stores, "resume", n_trials=4)), events=third, workdir=tmp_path / "w2", tracker=tracker)
    assert result.trials_run == 0 and any("already has 4 finished trials" in m for m in result.messages)

    parents, children = runs_of(MlflowClient(f"sqlite:///{stores}/mlflow.db"), "resume")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and sorted(children) == [0, 1, 2, 3]


def test_early_stopped_trials_are_pruned_in_optuna_and_killed_in_mlflow(stores, tracker, tmp_path):
    spec = load_spec(tiny(stores, "stops", n_trials=3,
                          space={"pruning_types": ["magnitude"], "sparsity": [0.995, 0.995],
                                 "schedule": {"end": [0.25, 0.25]}},
                          constraints={"max_accuracy_drop": 0.0},
                          early_stopping={"enabled": True, "rules": ["floor"], "min_epochs": 0, "patience": 1,
                                          "margin": 0.0}))
    result = run_study(spec, workdir=tmp_path, tracker=tracker)
    assert result.counts == {"PRUNED": 3}
    study = optuna.load_study(study_name="stops", storage=spec.storage)
    _, children = runs_of(MlflowClient(spec.tracking.uri), "stops")
    for t in study.get_trials():
        assert t.state == TrialState.PRUNED
        reason = t.user_attrs["stop_reason"]
        assert "constraint's floor" in reason
        assert len(t.user_attrs["curve"]) < 4  # it stopped before its last epoch
        run = children[t.number]
        assert run.info.status == "KILLED"
        assert run.data.tags["sparsesearch.state"] == "PRUNED"
        assert run.data.tags["sparsesearch.stop_reason"] == reason
    assert result.front == []


class InterruptAt(Recorder):
    """Simulates Ctrl-C during an epoch of one trial (KeyboardInterrupt raised inside the training loop)."""

    def __init__(self, trial: int) -> None:
        super().__init__()
        self.trial = trial

    def trial_epoch(self, number, epoch, metrics) -> None:
        if number == self.trial and epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_marks_the_trial_and_the_study_resumes(stores, tracker, tmp_path):
    data = tiny(stores, "interrupt", n_trials=3)
    result = run_study(load_spec(data), events=InterruptAt(1), workdir=tmp_path, tracker=tracker)
    assert result.interrupted
    study = optuna.load_study(study_name="interrupt", storage=data["storage"])
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.FAIL}
    assert study.get_trials()[1].user_attrs["stop_reason"] == "interrupted by the user"
    client = MlflowClient(data["tracking"]["uri"])
    parents, children = runs_of(client, "interrupt")
    assert parents[0].info.status == "KILLED" and children[1].info.status == "KILLED"

    resumed = run_study(load_spec(data), workdir=tmp_path, tracker=tracker)
    assert not resumed.interrupted and resumed.counts == {"COMPLETE": 3, "INTERRUPTED": 1}  # not counted
    parents, _ = runs_of(client, "interrupt")
    assert len(parents) == 1 and client.get_run(parents[0].info.run_id).info.status == "FINISHED"


def test_diverging_trials_fail_and_three_in_a_row_stop_the_study(stores, tmp_path):
    data = tiny(stores, "diverge", n_trials=6, budget={"optimizer": "sgd"},
                space={"lr": [1.0e6, 1.0e7], "pruning_types": ["magnitude"]}, tracking={"uri": None})
    result = run_study(load_spec(data), workdir=tmp_path)
    assert result.counts == {"FAIL": 3}
    assert any("3 failed trials in a row" in m for m in result.messages)
    study = optuna.load_study(study_name="diverge", storage=data["storage"])
    assert all("loss became" in t.user_attrs["stop_reason"] for t in study.get_trials())
