"""MLflow that reads well, and progress a person can follow when output is piped."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from sparsesearch.cli import main


@pytest.mark.slow
def test_params_tags_descriptions_and_plain_progress_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "readable", "task": "digits-mlp", "n_trials": 3, "storage": f"sqlite:///{tmp_path}/o.db",
        "tracking": {"uri": f"sqlite:///{tmp_path}/m.db"}, "budget": {"epochs": 3, "dense_epochs": 5},
        "space": {"pruning_types": ["magnitude"], "sparsity": [0.5, 0.8]}, "warm_start": [0.6],
        "export": {"max_drop": 0.5}}))
    result = CliRunner().invoke(main, ["run", str(spec)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # not a terminal: plain lines for the baseline and for every trial
    assert "dense baseline: epoch 5/5" in result.stderr
    assert "trial 0 complete [1/3]: val " in result.stderr and "trial 2 " in result.stderr
    assert "report: readable.report.html" in result.stdout and (tmp_path / "readable.report.html").is_file()

    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    experiment = client.get_experiment_by_name("readable")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sparsesearch.role") == "study")
    trials = [r for r in runs if r.data.tags.get("sparsesearch.role") == "trial"]
    assert len(trials) == 3
    assert "Pareto front" in parent.data.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "figures", "recipe.yaml"} <= artifacts
    for run in trials:
        params = run.data.params
        assert {"pruning_type", "pattern", "scope", "target_sparsity"} <= set(params)
        assert not any(k.startswith(("pruning.", "training.")) for k in params), sorted(params)  # constants: recipe
        assert len(params) < 20
        assert "layer_sparsity.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
    selected = [r for r in trials if r.data.tags.get("sparsesearch.selected") == "true"]
    assert len(selected) == 1 and "export" in selected[0].data.tags["mlflow.note.content"]
    assert parent.data.tags["sparsesearch.selected_trial"] == selected[0].data.tags["sparsesearch.trial"]
