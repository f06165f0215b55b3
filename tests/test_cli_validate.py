"""``sparsesearch validate`` and ``sparsesearch convert``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sparsesearch.cli import main
from sparsesearch.formats.recipe import load_recipe, write_recipe
from sparsesearch.records.recipe import make_recipe

INC_SEED = {"pruning_configs": [{"start_step": 0, "end_step": 2}], "target_sparsity": 0.9,
            "pruning_scope": "local", "pruning_type": "magnitude"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_validate_recipe_prints_groups_and_schedule(runner, tmp_path) -> None:
    recipe = make_recipe({"groups": [{"pruning_type": "magnitude", "pattern": "4x1", "target_sparsity": 0.8,
                                      "schedule": {"start_step": 0, "end_step": 4, "pruning_frequency": 2,
                                                   "ramp": "linear"}}]})
    path = write_recipe(recipe, tmp_path / "r.yaml")
    result = run(runner, "validate", path)
    assert result.exit_code == 0, result.output
    assert "valid sparsesearch recipe" in result.output
    assert "groups[0]: magnitude, pattern 4x1, local scope" in result.output
    assert "sparsity at each update: 0: 0, 2: 0.4, 4: 0.8" in result.output


def test_validate_against_a_model(runner, tmp_path) -> None:
    recipe = make_recipe({"groups": [{"layer_targets": {"conv1": 0.3, "conv2": 0.6}}]})
    path = write_recipe(recipe, tmp_path / "r.yaml")
    result = run(runner, "validate", path, "--model", "helpers:make_cnn")
    assert result.exit_code == 0, result.output
    assert "conv1  Conv2d  (8, 4, 3, 3)" in result.output and "target 0.6" in result.output
    assert "not pruned (stay dense): fc" in result.output


def test_validate_inc_against_a_task(runner, tmp_path) -> None:
    path = tmp_path / "inc.yaml"
    path.write_text(yaml.safe_dump(INC_SEED))
    result = run(runner, "validate", path, "--task", "digits-mlp")
    assert result.exit_code == 0, result.output
    assert "valid INC WeightPruningConfig" in result.output
    assert "classifier head '4' excluded" in result.output
    assert "0: 0, 1: 0.6838, 2: 0.9" in result.output


def test_validate_lpot_shows_steps_with_steps_per_epoch(runner, tmp_path) -> None:
    path = tmp_path / "lpot.yaml"
    path.write_text("pruning:\n  magnitude:\n    prune1:\n  end_epoch: 2\n  target_sparsity: 0.5\n")
    result = run(runner, "validate", path, "--steps-per-epoch", "10")
    assert result.exit_code == 0, result.output
    assert "0: 0, 10: 0.25, 20: 0.5" in result.output


def test_convert_inc_to_recipe_and_back(runner, tmp_path) -> None:
    src = tmp_path / "inc.yaml"
    src.write_text(yaml.safe_dump(INC_SEED))
    out = tmp_path / "recipe.yaml"
    result = run(runner, "convert", src, "--to", "sparsesearch", "-o", out)
    assert result.exit_code == 0, result.output
    assert "notes (differences from the original)" in result.output
    recipe = load_recipe(out)
    assert recipe.pruning.groups[0].target_sparsity == 0.9
    inc_out = tmp_path / "back.yaml"
    result = run(runner, "convert", out, "--to", "inc", "-o", inc_out)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(inc_out.read_text())["pruning_configs"][0]["pattern"] == "4x1"


def test_convert_never_overwrites_without_force(runner, tmp_path) -> None:
    src = tmp_path / "inc.yaml"
    src.write_text(yaml.safe_dump(INC_SEED))
    out = tmp_path / "recipe.yaml"
    out.write_text("precious: true\n")
    result = runner.invoke(main, ["convert", str(src), "--to", "sparsesearch", "-o", str(out)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert out.read_text() == "precious: true\n"
    result = runner.invoke(main, ["convert", str(src), "--to", "sparsesearch", "-o", str(out), "--force"])
    assert result.exit_code == 0 and load_recipe(out).pruning.groups
    same = runner.invoke(main, ["convert", str(src), "--to", "inc", "-o", str(src), "--force"])
    assert same.exit_code == 2 and "replace the input file" in same.output
    assert yaml.safe_load(src.read_text()) == INC_SEED


def test_convert_a_bad_file_writes_nothing(runner, tmp_path) -> None:
    src = tmp_path / "bad.yaml"
    src.write_text("target_sparsity: 0,9\npruning_type: magnitude\n")
    out = tmp_path / "out.yaml"
    result = runner.invoke(main, ["convert", str(src), "--to", "sparsesearch", "-o", str(out)])
    assert result.exit_code == 2 and "Did you mean '0.9'?" in result.output
    assert not out.exists()


def test_real_process_prints_no_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npruning:\n  groups:\n    - pruning_type: magnitud\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "sparsesearch.cli", "validate", str(bad)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"error: {bad}:4: pruning.groups[0].pruning_type: unknown pruning_type" in proc.stderr
    assert "Did you mean 'magnitude'?" in proc.stderr
