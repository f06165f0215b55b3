"""The study report: one self-contained HTML page (works offline) and PNG figures for MLflow.

It reads a study the way a user would look at it: the trials from the Optuna storage and, when the study was
tracked, the per-epoch histories and per-layer tables of its MLflow runs (all as pandas DataFrames), and
draws the metric-versus-sparsity front with the dense baseline and the constraint, the front's training
trajectories, its per-layer sparsity profile, the hypervolume over trials, the parameter importances and
the table of front trials with the selected recipe::

    from sparsesearch.report import build_report, log_report
    report = build_report(study, "sqlite:///mlflow.db")      # an optuna.Study
    Path("report.html").write_text(report.html)
    log_report("sqlite:///mlflow.db", parent_run_id, report)  # report.html + figures/*.png on the study run
    publish(study, "sqlite:///mlflow.db")                     # the end of a run: all of the above, and a
                                                              # layer_sparsity.png on each trial run

Nothing in the core imports this package; the CLI (``sparsesearch report``) and the search's end of run
call it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import optuna

    from sparsesearch.report.data import StudyData

log = logging.getLogger(__name__)

#: where the report goes in the study's MLflow run
REPORT_ARTIFACT = "report.html"
FIGURES_DIR = "figures"
TRIAL_PICTURE = "layer_sparsity.png"


class Report(NamedTuple):
    """The page and the PNG figures (file name -> bytes); unpacks as ``html, pngs = build_report(...)``."""

    html: str
    pngs: dict[str, bytes]


def collect(study: optuna.Study, tracking_uri: str | None = None, *, mlflow_url: str | None = None,
            tracking: bool = True) -> StudyData:
    """The study's data as the report draws it (see :func:`sparsesearch.report.data.collect`)."""
    from sparsesearch.report.data import collect as gather

    return gather(study, tracking_uri, mlflow_url=mlflow_url, tracking=tracking)


def build_report(study: optuna.Study, tracking_uri: str | None = None, *, mlflow_url: str | None = None,
                 pngs: bool = True, tracking: bool = True, data: StudyData | None = None) -> Report:
    """The report of ``study``: HTML and (with ``pngs``) the front, layer-profile and hypervolume PNGs.

    ``tracking_uri`` is the MLflow store to read (default: the one the study recorded); when it is off,
    missing or unreachable the report is drawn from the Optuna storage alone, with a note. ``mlflow_url`` is
    the MLflow UI the run links point to (default ``http://127.0.0.1:5000``, where ``sparsesearch ui``
    serves it). ``tracking=False`` leaves MLflow alone; ``data`` is a :func:`collect` result to draw again.
    """
    from sparsesearch.report.page import render
    from sparsesearch.report.pictures import study_pngs

    data = data or collect(study, tracking_uri, mlflow_url=mlflow_url, tracking=tracking)
    return Report(render(data), study_pngs(data) if pngs else {})


def write_report(study: optuna.Study, path: str | os.PathLike[str], tracking_uri: str | None = None, *,
                 mlflow_url: str | None = None, png_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build the report and write it to ``path`` (and the PNGs into ``png_dir``, if given)."""
    report = build_report(study, tracking_uri, mlflow_url=mlflow_url, pngs=png_dir is not None)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    if png_dir is not None:
        folder = Path(png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name, png in report.pngs.items():
            (folder / name).write_bytes(png)
    return out


def log_report(tracking: Any, parent_run_id: str, report: Report) -> None:
    """Log ``report`` on the study's MLflow run: ``report.html`` at the run's root (MLflow previews it) and
    the PNGs under ``figures/``. ``tracking`` is a tracking URI or an open ``MlflowClient``."""
    client = _client(tracking)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / REPORT_ARTIFACT
        page.write_text(report.html, encoding="utf-8")
        client.log_artifact(parent_run_id, str(page))
        if report.pngs:
            figures = Path(tmp) / FIGURES_DIR
            figures.mkdir()
            for name, png in report.pngs.items():
                (figures / name).write_bytes(png)
            client.log_artifacts(parent_run_id, str(figures), FIGURES_DIR)


def log_trial_pictures(tracking: Any, run_layers: Mapping[str, Any] | None = None, *,
                       study: optuna.Study | None = None, skip_existing: bool = True) -> int:
    """Log each trial run's per-layer sparsity as ``layer_sparsity.png`` (MLflow previews it beside the CSV).

    Give ``run_layers`` (run id -> rows of the layer table) or ``study`` (every trial run that has a
    ``layer_sparsity.csv``). Returns how many pictures were logged.
    """
    from sparsesearch.records.state import TrialRecord
    from sparsesearch.report.pictures import layer_sparsity_png
    from sparsesearch.report.runs import read_layers

    client = _client(tracking)
    todo: dict[str, Any] = dict(run_layers or {})
    titles: dict[str, str] = {}
    if study is not None:
        for t in study.get_trials(deepcopy=False):
            run_id = TrialRecord.of(t.user_attrs).run_id
            if run_id and run_id not in todo:
                todo[run_id] = None
                titles[run_id] = f"trial {t.number}: per-layer sparsity"
    logged = 0
    with tempfile.TemporaryDirectory() as tmp:
        for run_id, rows in todo.items():
            if skip_existing and any(a.path == TRIAL_PICTURE for a in client.list_artifacts(run_id)):
                continue
            if rows is None:
                frame = read_layers(client, run_id)
                rows = [] if frame is None else frame.to_dict("records")
            png = layer_sparsity_png(rows, titles.get(run_id, "per-layer sparsity"))
            if png is None:
                continue
            path = Path(tmp) / run_id / TRIAL_PICTURE
            path.parent.mkdir()
            path.write_bytes(png)
            client.log_artifact(run_id, str(path))
            logged += 1
    return logged


def publish(study: optuna.Study, tracking_uri: str | None = None, *, parent_run_id: str | None = None,
            mlflow_url: str | None = None, trial_pictures: bool = True) -> Report | None:
    """The end of a tracked run in one call: build the report from the study and its MLflow runs, log it and
    its figures on the study run (``parent_run_id``, default: the one the study recorded) and, with
    ``trial_pictures``, a ``layer_sparsity.png`` on each trial run that lacks one. Returns the report, or None
    when there is no MLflow study run to log to (tracking off or unreachable: nothing is logged). A failure
    to log is a warning, never an error: the study's results are already safe."""
    data = collect(study, tracking_uri, mlflow_url=mlflow_url)
    view = data.tracking
    parent = parent_run_id or (view.parent_run_id if view is not None else None)
    if view is None or not parent:
        log.info("no MLflow study run: the report is not logged (%s)", "; ".join(data.notes) or "tracking off")
        return None
    report = build_report(study, data=data)
    try:
        log_report(view.client, parent, report)
        if trial_pictures:
            log_trial_pictures(view.client, study=study)
    except Exception as exc:  # any store failure: warn, the study itself is recorded
        log.warning("could not log the study report to MLflow: %s", exc)
    return report


def _client(tracking: Any) -> Any:
    if isinstance(tracking, str):
        from sparsesearch.report.runs import absolute
        from sparsesearch.tracking.mlflow import open_client

        return open_client(absolute(tracking))
    return tracking


__all__ = ["Report", "build_report", "collect", "log_report", "log_trial_pictures", "publish", "write_report"]
