"""A spec or recipe from a file never imports or runs code by itself; the user allows it by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sparsesearch.cli import main
from sparsesearch.errors import ConfigError
from sparsesearch.tasks import resolve_task
from sparsesearch.tasks.references import UntrustedCode

EVIL = '''
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def make(**kwargs):
    pathlib.Path({marker!r}).write_text("called")
    raise SystemExit("must never run")
'''

TASK = '''
import torch
from torch import nn
from sparsesearch.tasks import Splits

class Mine:
    name = "mine"
    budget_hints = {"epochs": 2, "dense_epochs": 2, "batch_size": 32, "lr": 3e-3}
    def model(self):
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    def splits(self, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(300, 8, generator=g)
        y = (x[:, :3]).argmax(-1)
        return Splits(x[:180], y[:180], x[180:240], y[180:240], x[240:], y[240:])

def make_task():
    return Mine()
'''


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as if the user's own modules were importable
    return tmp_path


def _recipe(path: Path, task: str, task_args: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 1,
        "pruning": {"groups": [{"pruning_type": "magnitude", "target_sparsity": 0.5}]},
        "training": {"task": task, "task_args": task_args or {}, "epochs": 1, "init": "scratch"},
    }))
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_a_recipe_that_would_run_a_shell_command_runs_nothing(scratch):
    marker = scratch / "pwned"
    recipe = _recipe(scratch / "r.yaml", "os:system", {"command": f"touch {marker}"})
    result = invoke("reproduce", recipe)
    assert result.exit_code == 2
    assert not marker.exists()
    err = result.stderr
    assert "would import the module 'os' and call 'system'" in err and "r.yaml" in err
    assert "--task os:system" in err and "--trust-task" in err


def test_a_recipe_naming_a_module_imports_nothing(scratch):
    marker = scratch / "marker"
    (scratch / "evil.py").write_text(EVIL.format(marker=str(marker)))
    result = invoke("reproduce", _recipe(scratch / "r.yaml", "evil:make"))
    assert result.exit_code == 2 and not marker.exists(), result.output
    assert "evil" not in sys.modules


def test_a_spec_naming_a_module_imports_nothing(scratch):
    marker = scratch / "marker"
    (scratch / "evil.py").write_text(EVIL.format(marker=str(marker)))
    spec = scratch / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "task": "evil:make", "storage": f"sqlite:///{scratch}/o.db",
                                    "tracking": {"uri": None}}))
    result = invoke("run", spec)
    assert result.exit_code == 2 and not marker.exists(), result.output
    assert "would import the module 'evil' and call 'make'" in result.stderr


def test_validate_of_a_spec_imports_nothing(scratch):
    marker = scratch / "marker"
    (scratch / "evil.py").write_text(EVIL.format(marker=str(marker)))
    spec = scratch / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "s", "task": "evil:make"}))
    result = invoke("validate", spec)
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_the_user_allows_her_own_task_by_name_or_by_trust(scratch):
    (scratch / "mytask.py").write_text(TASK)
    spec = scratch / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "mine", "task": "mytask:make_task", "n_trials": 1, "storage": f"sqlite:///{scratch}/o.db",
        "tracking": {"uri": None}, "budget": {"epochs": 2, "dense_epochs": 2},
        "space": {"sparsity": [0.5, 0.6], "scopes": ["local"]}, "warm_start": []}))
    refused = invoke("run", spec)
    assert refused.exit_code == 2 and "mytask" in refused.stderr
    named = invoke("run", spec, "--task", "mytask:make_task")
    assert named.exit_code == 0, named.output
    trusted = invoke("run", spec, "--trust-task", "--n-trials", "2")
    assert trusted.exit_code == 0, trusted.output


def test_resolve_task_refuses_untrusted_references_and_names_builtins_freely():
    with pytest.raises(UntrustedCode, match="would import the module 'os' and call 'system'"):
        resolve_task("os:system", {"command": "true"}, source="recipe.yaml")
    assert resolve_task("digits-mlp").name == "digits-mlp"
    with pytest.raises(ConfigError, match="no such module"):
        resolve_task("no_such_module_abc:make", trusted=True)


def test_a_task_module_in_the_working_directory_is_found_without_pythonpath(tmp_path):
    (tmp_path / "cwdtask.py").write_text(TASK)
    code = ("from sparsesearch.tasks import resolve_task\n"
            "print(resolve_task('cwdtask:make_task', trusted=True).name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "mine", out.stderr
