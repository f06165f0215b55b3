"""``sparsesearch report``: the HTML file, the figures, the options ``show`` has, and MLflow logging."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from report.reporting import TinyStudy, tiny_study

from sparsesearch.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Iterator[TinyStudy]:
    with tiny_study(tmp_path_factory.mktemp("cli")) as made:
        yield made


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_report_from_a_spec_with_figures(tiny):
    result = invoke("report", tiny.spec, "-o", "out/report.html", "--png-dir", "figs")
    assert result.exit_code == 0, result.output
    page = (tiny.folder / "out" / "report.html").read_text()
    assert "val accuracy" in page and 'id="panel-front"' in page
    assert sorted(p.name for p in (tiny.folder / "figs").iterdir()) == ["front.png", "hypervolume.png",
                                                                       "layer_profile.png"]
    assert "wrote out/report.html" in result.stdout and "front of" in result.stdout
    assert "#/experiments/" in result.stdout and "workflowType=machine_learning" in result.stdout

    again = invoke("report", tiny.spec, "-o", "out/report.html")  # its own report: replaced without --force
    assert again.exit_code == 0, again.output


def test_report_by_study_name_and_storage_without_mlflow(tiny):
    result = invoke("report", "--study", tiny.name, "--storage", tiny.storage, "--tracking-uri", "none",
                    "-o", "plain.html")
    assert result.exit_code == 0, result.output
    assert "note: MLflow was not read" in result.stdout
    page = (tiny.folder / "plain.html").read_text()
    assert "127.0.0.1:5000/#/experiments" not in page


def test_report_default_name_and_links_to_another_ui(tiny):
    result = invoke("report", tiny.spec, "--mlflow-url", "http://127.0.0.1:5077")
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:5077/#/experiments/" in (tiny.folder / f"{tiny.name}.report.html").read_text()


def test_report_never_replaces_another_file_silently(tiny):
    other = tiny.folder / "notes.html"
    other.write_text("<html>my notes</html>")
    refused = invoke("report", tiny.spec, "-o", other)
    assert refused.exit_code == 2 and "--force" in refused.output and "Traceback" not in refused.output
    assert other.read_text() == "<html>my notes</html>"
    assert invoke("report", tiny.spec, "-o", other, "--force").exit_code == 0
    onto_spec = invoke("report", tiny.spec, "-o", tiny.spec)
    assert onto_spec.exit_code == 2 and "study spec" in onto_spec.output

    missing = invoke("report", "--study", "nope", "--storage", tiny.storage)
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output


def test_report_logged_to_the_study_run(tiny):
    result = invoke("report", tiny.spec, "-o", "logged.html", "--log")
    assert result.exit_code == 0, result.output
    assert "logged report.html and 3 figures" in result.stdout
    from sparsesearch.report import collect
    from sparsesearch.search.storage import load

    view = collect(load(tiny.name, tiny.storage), tiny.tracking).tracking
    names = {a.path for a in view.client.list_artifacts(view.parent_run_id)}
    assert {"report.html", "figures"} <= names
