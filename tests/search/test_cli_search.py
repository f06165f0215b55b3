"""The search commands as a user runs them: run, show, studies, export, validate, reproduce."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sparsesearch.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Run each command where a user would: in a scratch directory (local files land there, not in the repo)."""
    monkeypatch.chdir(tmp_path)


def write_spec(tmp_path: Path, name: str = "clistudy", *, tracking: bool = True, **over) -> Path:
    data = {
        "name": name, "task": "digits-mlp", "n_trials": 3,
        "budget": {"epochs": 4, "dense_epochs": 6},
        "space": {"pruning_types": ["magnitude"], "sparsity": [0.5, 0.9], "schedule": {"end": [0.5, 0.5]}},
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db" if tracking else None},
        "export": {"max_drop": 0.05},
        **over,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_show_studies_export_validate_reproduce(tmp_path):
    spec = write_spec(tmp_path)
    result = invoke("run", spec)
    assert result.exit_code == 0, result.output
    assert "Pareto front" in result.stdout and "sparsesearch export" in result.stdout
    assert "dense baseline (trained)" in result.stderr

    shown = invoke("show", spec)
    assert shown.exit_code == 0 and "Pareto front" in shown.stdout and "3 trials (3 complete" in shown.stdout

    listed = invoke("studies", "--storage", f"sqlite:///{tmp_path}/optuna.db")
    assert listed.exit_code == 0 and "clistudy" in listed.stdout

    out = tmp_path / "recipe.yaml"
    exported = invoke("export", spec, "-o", out)
    assert exported.exit_code == 0, exported.output
    text = out.read_text()
    assert "test_accuracy" in text and "study: clistudy" in text and "run_id" in text

    again = invoke("export", spec, "-o", out)  # never overwrites silently
    assert again.exit_code == 2 and "Traceback" not in again.output and "--force" in again.output

    checked = invoke("validate", out, "--task", "digits-mlp")
    assert checked.exit_code == 0, checked.output

    rerun = invoke("reproduce", out, "--storage", f"sqlite:///{tmp_path}/optuna.db",
                   "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert rerun.exit_code == 0, rerun.output
    assert "reproduced" in rerun.stdout and "sparsity exact" in rerun.stdout


def test_export_rules_and_trial_choice_from_the_cli(tmp_path):
    spec = write_spec(tmp_path, "rules", tracking=False)
    assert invoke("run", spec).exit_code == 0
    for args in (["--rule", "knee"], ["--rule", "max_accuracy_at_sparsity", "--min-sparsity", "0.5"], ["--trial", "0"]):
        out = tmp_path / f"r{args[-1]}.yaml"
        result = invoke("export", spec, "-o", out, *args)
        assert result.exit_code == 0, result.output
    impossible = invoke("export", spec, "-o", tmp_path / "x.yaml", "--rule", "max_accuracy_at_sparsity",
                        "--min-sparsity", "0.999")
    assert impossible.exit_code == 2 and "Lower --min-sparsity" in impossible.output


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: digits-mlp\nspace:\n  sparsty: [0.5, 0.9]\n")
    result = invoke("run", bad)
    assert result.exit_code == 2
    assert "space.sparsty" in result.output and "bad.yaml:4" in result.output and "Traceback" not in result.output

    missing = invoke("show", "--study", "nope", "--storage", f"sqlite:///{tmp_path}/empty.db")
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output

    no_task = write_spec(tmp_path, "notask", task="nosuch.module:make")
    result = invoke("run", no_task)
    assert result.exit_code == 2 and "would import the module 'nosuch.module'" in result.output
    result = invoke("run", no_task, "--trust-task")
    assert result.exit_code == 2 and "cannot import the module 'nosuch.module'" in result.output


def test_user_task_by_reference(tmp_path):
    """A task of the user's own, as "module:callable" with task_args (tests/ is on sys.path)."""
    spec = write_spec(tmp_path, "usertask", tracking=False, task="tiny_task:make_task", task_args={"width": 24},
                      n_trials=2, budget={}, space={"pruning_types": ["magnitude"], "sparsity": [0.5, 0.8]})
    result = invoke("run", spec, "--trust-task")
    assert result.exit_code == 0, result.output
    assert "2 trials (2 complete" in result.stdout

    typo = write_spec(tmp_path, "usertypo", tracking=False, task="tiny_task:make_tsk")
    result = invoke("run", typo, "--trust-task")
    assert result.exit_code == 2 and "tiny_task:make_task" in result.output


@pytest.mark.slow
def test_quickstart_spec_is_valid_and_its_export_reproduces(tmp_path):
    """The shipped quickstart spec, shortened to 8 trials: export, then reproduce within 0.5 points."""
    data = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    data.update(n_trials=8, storage=f"sqlite:///{tmp_path}/optuna.db",
                tracking={"uri": f"sqlite:///{tmp_path}/mlflow.db"}, export={"rule": "knee"})
    spec = tmp_path / "quick.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    assert invoke("run", spec).exit_code == 0
    out = tmp_path / "recipe.yaml"
    assert invoke("export", spec, "-o", out).exit_code == 0
    rerun = invoke("reproduce", out, "--storage", f"sqlite:///{tmp_path}/optuna.db",
                   "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert rerun.exit_code == 0 and "reproduced" in rerun.stdout, rerun.output
