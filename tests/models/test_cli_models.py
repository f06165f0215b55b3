"""Taking the model home from the CLI: export/reproduce --save/--register, and compact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from sparsesearch.cli import main
from sparsesearch.pruning.sparse_state import load_sparse, read_sparse
from sparsesearch.tasks import resolve_task

pytest.importorskip("torch_pruning")
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def study(tmp_path) -> tuple[Path, str]:
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    spec = {"name": "homestudy", "task": "digits-mlp", "n_trials": 1, "warm_start": [0.6],
            "budget": {"epochs": 3, "dense_epochs": 4},
            "space": {"pruning_types": ["magnitude"], "patterns": ["1xchannel"], "scopes": ["local"],
                      "sparsity": [0.5, 0.7]},
            "storage": f"sqlite:///{tmp_path}/optuna.db", "tracking": {"uri": tracking},
            "constraints": {"max_drop": 1.0}, "export": {"max_drop": 1.0}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = invoke("run", path)
    assert result.exit_code == 0, result.output
    return path, tracking


def run_artifacts(tracking: str, run_id: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking)
    return [a.path for a in client.list_artifacts(run_id, "sparsesearch_model")]


def test_export_save_register_and_compact(tmp_path, study):
    spec, tracking = study
    saved = invoke("export", spec, "-o", "r.yaml", "--trial", "0", "--save", "model.pt")
    assert saved.exit_code == 0, saved.output
    assert "re-trained" in saved.stdout and "wrote model.pt: the sparse state" in saved.stdout
    assert "compacted:" in saved.stdout and "logged to the trial's MLflow run" in saved.stdout
    recipe = yaml.safe_load(Path("r.yaml").read_text())
    run_id = recipe["provenance"]["run_id"]
    assert sorted(run_artifacts(tracking, run_id)) == ["sparsesearch_model/costs.json",
                                                       "sparsesearch_model/sparse_state.pt"]
    # the sparse state loads into the task's own architecture, with the recipe's sparsity
    model = resolve_task("digits-mlp").model()
    load_sparse("model.pt", model)
    zero_rows = int((model[0].weight == 0).all(1).sum())
    assert zero_rows > 0
    assert Path("model.pt").stat().st_size < 0.9 * sum(t.numel() * 4 for t in read_sparse("model.pt").values())

    # a second export takes the trial's weights from its run (no training) and registers the model
    again = invoke("export", spec, "-o", "r.yaml", "--trial", "0", "--force", "--save", "mlmodel",
                   "--register", "digits-pruned")
    assert again.exit_code == 0, again.output
    assert "the trial's own weights" in again.stdout and "re-trained" not in again.stdout
    assert "registered digits-pruned version 1" in again.stdout
    assert (tmp_path / "mlmodel" / "MLmodel").is_file() and (tmp_path / "mlmodel" / "extra_files" / "sparse_state.pt").is_file()
    import mlflow.pytorch

    mlflow.set_tracking_uri(tracking)
    registered = mlflow.pytorch.load_model("models:/digits-pruned/1")
    local = mlflow.pytorch.load_model(str(tmp_path / "mlmodel"))
    x = torch.randn(5, 64)
    with torch.no_grad():
        expected = model.eval()(x)
        assert (registered(x) - expected).abs().max() <= 1e-5
        assert (local(x) - expected).abs().max() <= 1e-5

    # compact: the compacted model, saved whole, smaller and equal in outputs
    compacted = invoke("compact", "r.yaml", "--weights", "model.pt", "-o", "small.pt")
    assert compacted.exit_code == 0, compacted.output
    assert "compacted:" in compacted.stdout and "faster" in compacted.stdout
    small = torch.load("small.pt", weights_only=False).eval()
    assert small[0].weight.shape[0] == 256 - zero_rows
    with torch.no_grad():
        assert (small(x) - expected).abs().max() <= 1e-5
    refused = invoke("compact", "r.yaml", "--weights", "model.pt", "-o", "small.pt")
    assert refused.exit_code == 2 and "--force" in refused.output


def test_reproduce_save_and_register_needs_tracking(tmp_path, study):
    spec, tracking = study
    assert invoke("export", spec, "-o", "r.yaml", "--trial", "0").exit_code == 0
    args = ["reproduce", "r.yaml", "--storage", f"sqlite:///{tmp_path}/optuna.db"]
    done = invoke(*args, "--tracking-uri", tracking, "--save", "rep.pt")
    assert done.exit_code == 0, done.output
    assert "reproduced" in done.stdout and "wrote rep.pt" in done.stdout
    assert load_sparse("rep.pt", resolve_task("digits-mlp").model()) is not None
    refused = invoke(*args, "--tracking-uri", f"sqlite:///{tmp_path}/elsewhere.db", "--register", "x")
    assert refused.exit_code == 2 and "--register needs the trial's MLflow run" in refused.output
