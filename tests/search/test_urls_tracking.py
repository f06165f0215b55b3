"""Credentials never reach logs or tags; flattening of configs for params; the PostgreSQL driver spelling."""

from __future__ import annotations

import importlib.util

import pytest

from sparsesearch.records.urls import mask_uri, with_driver
from sparsesearch.tracking import flatten


@pytest.mark.parametrize(("uri", "masked"), [
    ("postgresql://alice:s3cret@db.example:5432/optuna", "postgresql://alice:***@db.example:5432/optuna"),
    ("mysql+pymysql://bob:p%40ss@host/db", "mysql+pymysql://bob:***@host/db"),
    ("https://user:token@mlflow.example/", "https://user:***@mlflow.example/"),
    ("postgresql://carol@host/db", "postgresql://carol@host/db"),
    ("http://host:5000/?token=abc&x=1", "http://host:5000/?token=***&x=1"),
    ("sqlite:///sparsesearch.db", "sqlite:///sparsesearch.db"),
    ("sqlite:////abs/path/mlflow.db", "sqlite:////abs/path/mlflow.db"),
    (None, None),
])
def test_mask_uri(uri, masked):
    assert mask_uri(uri) == masked
    if uri and ":s3cret@" in uri:
        assert "s3cret" not in mask_uri(uri)


def test_with_driver_names_an_installed_postgres_driver():
    url = with_driver("postgresql://u@h/db")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        assert url == "postgresql+psycopg2://u@h/db"
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


def test_flatten_gives_dotted_keys_and_drops_nones():
    data = {"groups": [{"pattern": "1x1", "schedule": {"end_step": 9, "start_epoch": None}, "op_types": ("Linear",)}],
            "lr": 0.1}
    assert flatten(data) == {"groups.0.pattern": "1x1", "groups.0.schedule.end_step": 9,
                             "groups.0.op_types": ["Linear"], "lr": 0.1}
