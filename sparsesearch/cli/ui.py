"""What ``sparsesearch ui`` needs besides the command itself: a port check, the study's experiment, and the
MLflow server process (started on 127.0.0.1, stopped with its children)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from sparsesearch.errors import ConfigError

HOST = "127.0.0.1"
#: how long the MLflow server may take to answer (its first start migrates the database)
START_TIMEOUT_S = 180.0


def check_port(port: int) -> None:
    """ConfigError when something already listens on 127.0.0.1:``port`` (bound the way servers bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise ConfigError(f"port {port} on {HOST} is already in use ({exc.strerror or exc}); is another MLflow "
                              "UI running? Open that one, or start this one on another port",
                              key="--port", value=port, allowed=f"a free port, e.g. --port {port + 1}") from None


def find_experiment(uri: str, name: str | None) -> tuple[str | None, str | None]:
    """(experiment id, name) of the study's experiment: ``name``, else the store's only sparsesearch
    experiment; (None, None) when there is no such single experiment."""
    from sparsesearch.tracking.mlflow import open_client

    client = open_client(uri, attempts=2)
    if name:
        found = client.get_experiment_by_name(name)
        return (str(found.experiment_id), found.name) if found is not None else (None, None)
    ours = [e for e in client.search_experiments() if "sparsesearch.study" in (e.tags or {})]
    return (str(ours[0].experiment_id), ours[0].name) if len(ours) == 1 else (None, None)


def server_command(uri: str, port: int) -> list[str]:
    """The MLflow server on 127.0.0.1 with one worker (a local UI for one person)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", HOST, "--port",
            str(port), "--workers", "1"]


def server_env() -> dict[str, str]:
    """The server's environment: MLflow's background job runners (GenAI judges, trace rollups) stay off
    unless the user turned them on; a study's UI needs none of them."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def wait_until_up(process: subprocess.Popen, port: int, timeout: float = START_TIMEOUT_S) -> bool:
    """True once the server answers /health; False when it exited or did not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    """Stop the server: SIGTERM (MLflow passes it on to its web server), SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
