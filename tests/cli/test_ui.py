"""``sparsesearch ui``: refuses a busy port before starting anything; serves a finished study's runs on
127.0.0.1 behind a link that shows them in a fresh browser; stops cleanly."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from report.reporting import browser_page, tiny_study

from sparsesearch.cli import main
from sparsesearch.report.links import run_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_busy_port_is_a_clear_error_and_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["ui", "--port", str(port)], catch_exceptions=False)
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def test_no_store_or_tracking_off_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["ui"], catch_exceptions=False)
    assert result.exit_code == 2 and "no MLflow database here yet" in result.output


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)


@pytest.mark.slow
def test_ui_serves_the_study_and_its_link_shows_the_trial_runs(tmp_path):
    with tiny_study(tmp_path) as tiny:
        port = _free_port()
        process = subprocess.Popen([sys.executable, "-m", "sparsesearch", "ui", str(tiny.spec), "--port", str(port)],
                                   cwd=tiny.folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        seen: list[str] = []
        try:
            link = None
            deadline = time.monotonic() + 240
            while link is None and time.monotonic() < deadline and process.poll() is None:
                try:
                    line = lines.get(timeout=1)
                except queue.Empty:
                    continue
                seen.append(line)
                if line.startswith("MLflow UI: "):
                    link = line.split(": ", 1)[1].strip()
            assert link, "no link printed:\n" + "".join(seen)
            base = f"http://127.0.0.1:{port}"
            assert link.startswith(f"{base}/#/experiments/") and "/runs?workflowType=machine_learning" in link

            experiments = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
            ours = [e for e in experiments if e["name"] == tiny.name]
            assert len(ours) == 1 and f"/#/experiments/{ours[0]['experiment_id']}/" in link
            runs = _post(f"{base}/api/2.0/mlflow/runs/search",
                         {"experiment_ids": [ours[0]["experiment_id"]], "max_results": 100})["runs"]
            names = {r["info"]["run_name"] for r in runs}
            assert {"trial-000", "trial-001", "trial-002", "trial-003", tiny.name} <= names

            with browser_page(tmp_path / "profile") as (page, _errors):
                page.goto(link)
                for name in ("trial-000", "trial-003"):  # listed flat, not folded under the study run
                    page.wait_for_selector(f"text={name}", timeout=90_000)
                page.screenshot(path=str(tmp_path / "mlflow-runs.png"))
                assert "Evaluation runs" not in page.inner_text("body")  # the model-training view, not GenAI's
                # the report's link to a trial's run opens it in the same view
                trial0 = next(r["info"]["run_id"] for r in runs if r["info"]["run_name"] == "trial-000")
                page.goto(run_url(ours[0]["experiment_id"], trial0, base))
                page.wait_for_selector("text=trial-000", timeout=90_000)
                page.wait_for_selector("text=Parent run", timeout=30_000)
                page.screenshot(path=str(tmp_path / "mlflow-run.png"))
                assert "Evaluation runs" not in page.inner_text("body")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
        assert code == 0, "".join(seen)
        # the server is gone with it: the port is free again
        time.sleep(1)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
        assert Path(tiny.folder / "mlflow.db").exists()
