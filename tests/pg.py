"""Throwaway PostgreSQL databases on 127.0.0.1:5432 for the multi-worker and storage tests.

Each test gets databases of its own, dropped afterwards. When the server is down the test fails (it does
not skip): CI must run these tests, and the message says how to start the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOST = "127.0.0.1"
PORT = 5432
ADMIN_DB = "test"
USER = "postgres"
START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def url(name: str, password: str | None = None) -> str:
    who = f"{USER}:{password}" if password else USER
    return f"postgresql://{who}@{HOST}:{PORT}/{name}"


@contextmanager
def databases(*kinds: str) -> Iterator[list[str]]:
    """Create one database per kind (names returned), drop them all afterwards."""
    import psycopg2

    try:
        admin = psycopg2.connect(host=HOST, port=PORT, dbname=ADMIN_DB, user=USER, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on {HOST}:{PORT} ({exc}); start it with: {START}")
    admin.autocommit = True
    names = [f"ss_{kind}_{uuid.uuid4().hex[:10]}" for kind in kinds]
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        yield names
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
