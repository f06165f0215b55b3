"""A password in a storage or tracking URL is never printed, logged or stored anywhere a run writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sparsesearch.records.urls import mask_secrets, mask_text, mask_uri

import pg

PASSWORD = "Sekr3t-Pa55w0rd"


@pytest.mark.parametrize("uri, shown", [
    (f"postgresql://bob:{PASSWORD}@db.example/x", "postgresql://bob:***@db.example/x"),
    (f"postgresql+psycopg2://bob:{PASSWORD}@db:5432/x?sslmode=require", "postgresql+psycopg2://bob:***@db:5432/x?sslmode=require"),
    ("postgresql://bob:p%40ss%3Aword@db/x", "postgresql://bob:***@db/x"),
    (f"https://user:{PASSWORD}@mlflow.example:5000", "https://user:***@mlflow.example:5000"),
    (f"https://mlflow.example/?token={PASSWORD}", "https://mlflow.example/?token=***"),
    ("sqlite:///sparsesearch.db", "sqlite:///sparsesearch.db"),
    ("postgresql://bob@db/x", "postgresql://bob@db/x"),
])
def test_mask_uri(uri, shown):
    assert mask_uri(uri) == shown


def test_mask_secrets_and_text():
    data = {"storage": f"postgresql://a:{PASSWORD}@h/d", "tracking": {"uri": f"http://a:{PASSWORD}@h"}, "n": 3}
    assert PASSWORD not in str(mask_secrets(data)) and mask_secrets(data)["n"] == 3
    assert PASSWORD not in mask_text(f"could not connect to postgresql://a:{PASSWORD}@h:5432/d: refused")


def _everything_written(root: Path) -> str:
    out = []
    for path in root.rglob("*"):
        if path.is_file():
            out.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(out)


def _dump(database: str) -> str:
    return subprocess.run(["pg_dump", "--data-only", "-h", pg.HOST, "-U", pg.USER, database],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.postgres
@pytest.mark.slow
def test_no_password_in_anything_a_run_writes(tmp_path):
    with pg.databases("optuna", "mlflow") as (optuna_db, mlflow_db):
        storage = pg.url(optuna_db, PASSWORD)      # trust auth accepts any password: a real URL with one
        tracking = pg.url(mlflow_db, PASSWORD)
        spec = tmp_path / "secret.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "secret", "task": "digits-mlp", "n_trials": 2, "storage": storage,
            "tracking": {"uri": tracking}, "budget": {"epochs": 2, "dense_epochs": 2},
            "space": {"sparsity": [0.5, 0.7]}, "warm_start": []}))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        outputs = []
        for args in (["-vv", "run", str(spec)], ["validate", str(spec)], ["show", str(spec)],
                     ["export", str(spec), "-o", str(tmp_path / "r.yaml")], ["studies", "--storage", storage]):
            done = subprocess.run([sys.executable, "-m", "sparsesearch", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs.append(done.stdout + done.stderr)
        # the environment variable works too, and keeps the password out of the file
        bare = tmp_path / "bare.yaml"
        bare.write_text(yaml.safe_dump({"name": "secret", "task": "digits-mlp"}))
        shown = subprocess.run([sys.executable, "-m", "sparsesearch", "show", str(bare)], cwd=tmp_path,
                               env={**env, "SPARSESEARCH_STORAGE": storage}, capture_output=True, text=True)
        assert shown.returncode == 0 and "secret" in shown.stdout, shown.stderr
        outputs.append(shown.stdout + shown.stderr)
        console = "\n".join(outputs)
        assert "***@" in console
        assert PASSWORD not in console
        spec.unlink()  # the user's own file holds it; nothing else may
        assert PASSWORD not in _everything_written(tmp_path)
        assert PASSWORD not in _dump(optuna_db)
        assert PASSWORD not in _dump(mlflow_db)
