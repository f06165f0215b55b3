"""The study report: built from the Optuna storage and the MLflow runs, self-contained, drawn from Optuna alone
when tracking is off or unreachable, odd studies included; PNG figures; logged to MLflow; checked in a real
browser (headless Chromium)."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from report.reporting import TinyStudy, browser_page, tiny_study

from sparsesearch.report import build_report, collect, figures, log_report, log_trial_pictures
from sparsesearch.report.pictures import layer_sparsity_png
from sparsesearch.search import pareto
from sparsesearch.search.storage import load

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
PANELS = ("front", "trajectories", "layers", "hypervolume", "importance", "table")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Iterator[TinyStudy]:
    with tiny_study(tmp_path_factory.mktemp("study")) as made:
        yield made


@pytest.fixture(scope="module")
def study(tiny) -> optuna.Study:
    return load(tiny.name, tiny.storage)


def test_collect_reads_the_trials_from_optuna_and_the_runs_from_mlflow(study, tiny):
    data = collect(study, tiny.tracking)
    assert data.metric_label == "val accuracy" and data.maximize
    assert len(data.trials) == 4 and set(data.trials["state"]) == {"COMPLETE"}
    assert data.tracking is not None and data.notes == []
    exp = data.tracking.experiment_id
    for row in data.trials.itertuples():
        assert row.url == f"http://127.0.0.1:5000/#/experiments/{exp}/runs/{row.run_id}?workflowType=machine_learning"
    front = [int(n) for n in data.front["trial"]]
    assert front == [t.number for t in pareto.front_trials(study)]
    # per-epoch histories come from MLflow (two epochs each), the layer tables from layer_sparsity.csv
    assert set(data.history["trial"]) == set(front) and set(data.history["source"]) == {"mlflow"}
    assert (data.history.groupby("trial")["epoch"].max() == 2).all()
    assert set(data.layers["name"]) == {"0", "2", "4"} and set(data.layers["type"]) == {"Linear"}
    assert set(data.layers["trial"]) == set(front)
    # the hypervolume after the last complete trial is the study's own
    assert len(data.hypervolume) == 4
    pts = pareto.points(pareto.front_trials(study), True)
    assert data.hypervolume["hypervolume"].iloc[-1] == pytest.approx(
        pareto.study_hypervolume(pts, data.state.spec, data.dense))
    assert set(data.importances) == {"val accuracy", "sparsity"}


def test_the_page_is_self_contained_and_names_the_metric(study, tiny):
    html, pngs = build_report(study, tiny.tracking, mlflow_url="http://127.0.0.1:5123/")
    assert len(html) > 1_000_000  # plotly.js is inlined
    # nothing to fetch: no script, style sheet or import from elsewhere (the browser test watches requests)
    assert not re.search(r"<script[^>]+src=", html) and "<link " not in html and "@import" not in html
    assert "val accuracy" in html and "Objective 0" not in html
    assert "http://127.0.0.1:5123/#/experiments/" in html
    for key in PANELS:
        assert f'id="panel-{key}"' in html
    assert set(pngs) == {"front.png", "layer_profile.png", "hypervolume.png"}
    assert all(png.startswith(PNG) and len(png) > 5000 for png in pngs.values())


def test_without_tracking_the_report_is_drawn_from_optuna(study):
    data = collect(study, tracking=False)
    assert data.tracking is None and data.trials["url"].isna().all()
    assert set(data.history["source"]) == {"optuna"} and not data.history.empty
    assert data.layers.empty and any("per-layer" in n for n in data.notes)
    html, _ = build_report(study, data=data)
    assert "layer_sparsity.csv" in html


def test_an_unreachable_store_gives_a_note_not_an_error(study, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    data = collect(study, f"http://127.0.0.1:{port}")
    assert data.tracking is None and any("does not answer" in n for n in data.notes)
    missing = collect(study, f"sqlite:///{tmp_path}/nothing.db")
    assert any("no MLflow database" in n for n in missing.notes)
    assert not (tmp_path / "nothing.db").exists()  # reading never creates a store


def test_pngs_for_mlflow_and_the_trial_picture(study, tiny):
    rows = [{"name": "encoder.0", "type": "Linear", "shape": "256x64", "params": 16384, "zeros": 8192,
             "sparsity": 0.5}, {"name": "head", "type": "Linear", "shape": [10, 128], "params": 1280, "zeros": 1200,
                                "sparsity": 0.9375}]
    assert layer_sparsity_png(rows, "trial 3").startswith(PNG)
    assert layer_sparsity_png([]) is None


def test_log_report_puts_the_page_and_figures_on_the_study_run(study, tiny):
    from sparsesearch.tracking.mlflow import open_client

    data = collect(study, tiny.tracking)
    report = build_report(study, data=data)
    client = open_client(tiny.tracking)
    log_report(tiny.tracking, data.tracking.parent_run_id, report)
    names = {a.path for a in client.list_artifacts(data.tracking.parent_run_id)}
    assert "report.html" in names and "figures" in names
    figures = {a.path for a in client.list_artifacts(data.tracking.parent_run_id, "figures")}
    assert figures == {"figures/front.png", "figures/layer_profile.png", "figures/hypervolume.png"}
    assert log_trial_pictures(client, study=study) == 4
    assert log_trial_pictures(client, study=study) == 0  # already there
    run = data.tracking.trial_runs[0]
    assert "layer_sparsity.png" in {a.path for a in client.list_artifacts(run)}


def test_publish_at_the_end_of_a_run(study, tiny, tmp_path):
    from sparsesearch.report import publish

    report = publish(study, tiny.tracking)
    assert report is not None and report.html.startswith("<!DOCTYPE html>")
    assert publish(study, f"sqlite:///{tmp_path}/elsewhere.db") is None  # no store: nothing logged, no error


# ----------------------------------------------------------------------------------- odd and empty studies


def _odd_study(tmp_path: Path, kind: str) -> optuna.Study:
    """A study in one of the states a user can report on, made directly in Optuna."""
    study = optuna.create_study(study_name=kind, storage=f"sqlite:///{tmp_path}/{kind}.db",
                                directions=["maximize", "maximize"])
    study.set_user_attr("spec", {"task": "digits-mlp", "constraints": {"max_drop": 0.05},
                                 "space": {"sparsity": [0.5, 0.95]}, "export": {"max_drop": 0.05}})
    study.set_user_attr("objective", {"name": "accuracy", "direction": "maximize"})
    if kind != "no_baseline":
        study.set_user_attr("baseline", {"val_accuracy": 0.97, "test_accuracy": 0.96})
    dists = {"pattern": CategoricalDistribution(["1x1", "1x4"]), "density": FloatDistribution(0.05, 0.5)}

    def attrs(n: int, acc: float, sp: float) -> dict:
        return {"summary": {"pruning_type": "magnitude", "pattern": "1x1", "scope": "local"},
                "metrics": {"val_accuracy": acc, "test_accuracy": acc - 0.01, "sparsity": sp},
                "curve": [[acc - 0.02, sp / 2], [acc, sp]]}

    if kind == "one_trial":
        study.add_trial(create_trial(values=[0.95, 0.8], params={"pattern": "1x1", "density": 0.2},
                                     distributions=dists, user_attrs=attrs(0, 0.95, 0.8)))
    elif kind == "all_failed":
        for _ in range(3):
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"stop_reason": "out of memory"}))
    elif kind == "all_stopped":
        for n, (acc, sp) in enumerate([(0.5, 0.9), (0.6, 0.7)]):
            study.add_trial(create_trial(state=TrialState.PRUNED, params={"pattern": "1x4", "density": 0.1 + n / 10},
                                         distributions=dists,
                                         user_attrs={**attrs(n, acc, sp), "stop_reason": "below the floor"}))
    elif kind == "running":
        study.add_trial(create_trial(values=[0.96, 0.7], params={"pattern": "1x1", "density": 0.3},
                                     distributions=dists, user_attrs=attrs(0, 0.96, 0.7)))
        study.ask()  # left RUNNING, as a study some worker is still running
    elif kind == "beyond":  # a sparse trial too far below dense: off the front, drawn as beyond the constraint
        for n, (acc, sp) in enumerate([(0.96, 0.6), (0.85, 0.95)]):
            study.add_trial(create_trial(values=[acc, sp], params={"pattern": "1x1", "density": 1 - sp},
                                         distributions=dists, user_attrs=attrs(n, acc, sp),
                                         system_attrs={"constraints:drop": (0.97 - acc) - 0.05}))
    elif kind == "no_baseline":
        for n, (acc, sp) in enumerate([(0.96, 0.6), (0.93, 0.9), (0.95, 0.8)]):
            study.add_trial(create_trial(values=[acc, sp], params={"pattern": ["1x1", "1x4"][n % 2], "density": 1 - sp},
                                         distributions=dists, user_attrs=attrs(n, acc, sp)))
    return study


ODD = ("empty", "one_trial", "all_failed", "all_stopped", "running", "beyond", "no_baseline")


@pytest.mark.parametrize("kind", ODD)
def test_odd_studies_render(tmp_path, kind):
    study = _odd_study(tmp_path, kind)
    data = collect(study, tracking=False)
    html, pngs = build_report(study, data=data)
    for key in PANELS:
        assert f'id="panel-{key}"' in html
    assert "val accuracy" in html
    if kind in ("empty", "all_failed"):
        assert "no trial has a metric" in html and pngs == {}
    if kind == "one_trial":
        assert "parameter importance needs at least 2 complete trials" in html
        assert "front.png" in pngs and "hypervolume.png" in pngs
    if kind == "all_stopped":
        assert "stopped early" in html and "no Pareto front yet" in html
    if kind == "running":
        assert "1 running" in html
    if kind == "beyond":
        assert data.floor == pytest.approx(0.92)
        assert list(data.trials["feasible"]) == [True, False] and list(data.trials["on_front"]) == [True, False]
        traces = {t.name: list(t.customdata) for t in figures.front_scatter(data).data if t.customdata is not None}
        assert [c[0] for c in traces["beyond the constraint"]] == ["1"] and [c[0] for c in traces["front"]] == ["0"]
    if kind == "no_baseline":
        assert "not trained yet" in html and data.floor is None
        assert set(data.importances) == {"val accuracy", "sparsity"}


# ----------------------------------------------------------------------------------------- in a browser


def _panel_content(page) -> dict[str, dict[str, int]]:
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('section.panel')).map(s => [
        s.dataset.panel, {
          svg: s.querySelectorAll('.plot-container .main-svg').length,
          points: s.querySelectorAll('.scatterlayer .trace .points path').length,
          heatmap: s.querySelectorAll('.heatmaplayer image, .heatmaplayer .hm').length,
          bars: s.querySelectorAll('.barlayer .point path').length,
          rows: s.querySelectorAll('tbody tr').length,
          notes: s.querySelectorAll('.note').length,
        }]))""")


@pytest.mark.slow
def test_the_report_renders_in_chromium(study, tiny, tmp_path):
    page_file = tmp_path / "report.html"
    page_file.write_text(build_report(study, tiny.tracking).html)
    with browser_page(tmp_path / "profile") as (page, errors):
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_selector("#panel-importance .barlayer .point path", timeout=30_000)
        page.wait_for_timeout(500)
        content = _panel_content(page)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        links = page.evaluate("() => document.getElementById('fig-front').data.flatMap("
                              "t => (t.customdata || []).map(c => c[5])).filter(Boolean)")
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []  # works offline
    assert set(content) == set(PANELS)
    assert content["front"]["svg"] and content["front"]["points"] >= 4
    assert content["trajectories"]["points"] >= 4
    assert content["layers"]["heatmap"] >= 1
    assert content["hypervolume"]["points"] >= 4
    assert content["importance"]["bars"] >= 2
    assert content["table"]["rows"] >= 1 + 4  # the front table and the table of all trials
    assert len(links) == 4 and all("/#/experiments/" in u for u in links)
    assert shot.read_bytes().startswith(PNG)
    docs = ROOT / "docs" / "report.png"
    if os.environ.get("SPARSESEARCH_UPDATE_DOCS") or not docs.exists():  # the README's picture, once
        docs.parent.mkdir(exist_ok=True)
        docs.write_bytes(shot.read_bytes())


@pytest.mark.slow
def test_odd_studies_render_in_chromium(tmp_path):
    with browser_page(tmp_path / "profile") as (page, errors):
        for kind in ODD:
            page_file = tmp_path / f"{kind}.html"
            page_file.write_text(build_report(_odd_study(tmp_path, kind), tracking=False, pngs=False).html)
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            page.wait_for_timeout(300)
            content = _panel_content(page)
            assert set(content) == set(PANELS), kind
            for key, found in content.items():
                assert found["svg"] or found["notes"] or found["rows"], (kind, key, found)
            page.screenshot(path=str(tmp_path / f"{kind}.png"), full_page=True)
    assert errors == []
