"""``sparsesearch report``: the study report as one self-contained HTML file (and PNG figures)."""

from __future__ import annotations

from typing import Any

import click

from sparsesearch.records.urls import TRACKING_ENV, from_environment
from sparsesearch.report.links import DEFAULT_UI_URL

#: what marks a file as a report this command wrote (so writing it again needs no --force)
GENERATOR = '<meta name="generator" content="sparsesearch'


def _study(spec_path: str | None, study: str | None, storage: str | None) -> tuple[str, str, Any]:
    """(name, storage URL, spec or None), as ``show`` resolves them."""
    from sparsesearch.cli.common import study_ref

    return study_ref(spec_path, study, storage)


def _check_output(output: str, spec_path: str | None, force: bool) -> None:
    from pathlib import Path

    from sparsesearch.errors import ConfigError

    out = Path(output)
    if spec_path and out.exists() and out.resolve() == Path(spec_path).resolve():
        raise ConfigError("the report would replace the study spec", key="--output", value=output,
                          allowed="another file name, e.g. report.html")
    if out.is_dir():
        raise ConfigError("is a folder", key="--output", value=output, allowed="a file name, e.g. report.html")
    if out.exists() and not force:
        with out.open("r", encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
        if GENERATOR not in head:
            raise ConfigError("the file exists and is not a sparsesearch report; pass --force to replace it",
                              key="--output", value=output)


@click.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--study", "study_name", metavar="NAME", help="Study name (default: the spec's).")
@click.option("--storage", metavar="URL", help="Optuna storage (default: the spec's, or sqlite:///sparsesearch.db).")
@click.option("-o", "--output", type=click.Path(path_type=str), help="The HTML file (default: STUDY.report.html).")
@click.option("--tracking-uri", metavar="URI",
              help="MLflow store with the study's runs (default: the spec's, else the one the study recorded; "
                   "'none': draw from the Optuna storage alone).")
@click.option("--mlflow-url", metavar="URL", default=DEFAULT_UI_URL, show_default=True,
              help="The MLflow UI the trial links point to (where `sparsesearch ui` serves it).")
@click.option("--png-dir", type=click.Path(file_okay=False, path_type=str),
              help="Also write the front, layer-profile and hypervolume figures as PNG files here.")
@click.option("--log", "log_to_mlflow", is_flag=True, help="Also log the report and its figures to the study's MLflow run.")
@click.option("--force", is_flag=True, help="Replace an existing file that is not a sparsesearch report.")
def report(spec: str | None, study_name: str | None, storage: str | None, output: str | None,
           tracking_uri: str | None, mlflow_url: str, png_dir: str | None, log_to_mlflow: bool, force: bool) -> None:
    """Write the study report: one HTML file that works offline, with the metric-versus-sparsity front,
    training trajectories, per-layer sparsity, hypervolume, parameter importance and the front table."""
    import logging
    from pathlib import Path

    from sparsesearch.errors import ConfigError
    from sparsesearch.records.urls import mask_uri
    from sparsesearch.report import build_report, collect, log_report
    from sparsesearch.report.data import summary_counts
    from sparsesearch.report.links import experiment_runs_url
    from sparsesearch.search.storage import load

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(max(logging.getLogger().level, logging.WARNING))
    name, url, spec_obj = _study(spec, study_name, storage)
    output = output or f"{name}.report.html"
    _check_output(output, spec, force)
    uri = from_environment(tracking_uri, TRACKING_ENV, spec_obj.tracking.uri if spec_obj else None)
    off = uri is not None and uri.strip().lower() in ("none", "null", "")
    study = load(name, url)
    data = collect(study, None if off else uri, mlflow_url=mlflow_url, tracking=not off)
    built = build_report(study, data=data, pngs=bool(png_dir or log_to_mlflow))
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(built.html, encoding="utf-8")
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, works offline): study {name!r}, {len(data.trials)} "
               f"trials ({summary_counts(data.counts)}), front of {len(data.front)}")
    if png_dir:
        folder = Path(png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for file, png in built.pngs.items():
            (folder / file).write_bytes(png)
        click.echo(f"wrote {len(built.pngs)} figures to {folder}: {', '.join(built.pngs) or '(none to draw)'}")
    for note in data.notes:
        click.echo(f"note: {note}")
    if data.tracking is not None:
        click.echo(f"MLflow runs: {experiment_runs_url(data.tracking.experiment_id, mlflow_url)} "
                   f"(sparsesearch ui{' ' + spec if spec else ''})")
    if log_to_mlflow:
        if data.tracking is None or not data.tracking.parent_run_id:
            raise ConfigError("there is no MLflow study run to log the report to", key="--log",
                              allowed="a study tracked in MLflow (give --tracking-uri if its store moved)")
        log_report(data.tracking.client, data.tracking.parent_run_id, built)
        click.echo(f"logged report.html and {len(built.pngs)} figures to the study run {data.tracking.parent_run_id} "
                   f"in {mask_uri(data.tracking.uri)}")
