"""The report page: one self-contained HTML file (plotly.js inlined, no network), from the package's
``template.html`` and the panels of :mod:`sparsesearch.report.figures`."""

from __future__ import annotations

import datetime as _dt
import html
import math
import re
from importlib import resources
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from sparsesearch.records.urls import mask_uri
from sparsesearch.report import figures
from sparsesearch.report.data import StudyData, summary_counts
from sparsesearch.report.links import experiment_runs_url

#: clicking a trial opens its MLflow run (hover shows the link; a tooltip cannot be clicked)
_CLICK = """var gd = document.getElementById('{plot_id}');
gd.on('plotly_click', function (ev) {
  var p = ev.points && ev.points[0];
  var url = p && p.customdata && p.customdata[5];
  if (url) { window.open(url, '_blank', 'noopener'); }
});"""

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def template() -> str:
    """The page template shipped with the package."""
    return resources.files("sparsesearch.report").joinpath("template.html").read_text(encoding="utf-8")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return _e(value)


def _figure_html(fig: Any, div_id: str, post_script: str | None = None) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id, default_width="100%",
                       config={"displaylogo": False, "responsive": True}, post_script=post_script)


def _panel(key: str, title: str, explain: str, body: str, *, wide: bool = False) -> str:
    return (f'<section class="panel{" wide" if wide else ""}" id="panel-{key}" data-panel="{key}">'
            f"<h2>{_e(title)}</h2><p class=\"explain\">{explain}</p>{body}</section>")


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _link(url: Any, text: str = "run") -> str:
    return f'<a href="{_e(url)}" target="_blank" rel="noopener">{_e(text)}</a>' if isinstance(url, str) and url else "-"


def _facts(data: StudyData) -> str:
    spec = data.state.spec
    direction = "higher" if data.maximize else "lower"
    facts = [("task", spec.get("task") or "?"),
             ("objective", f"val {data.metric} ({direction} is better) and sparsity"),
             ("trials", f"{len(data.trials)} ({summary_counts(data.counts)})")]
    if data.dense is not None:
        test = data.dense_test
        facts.append(("dense baseline", f"val {data.dense:.4f}" + (f", test {test:.4f}" if test is not None else "")))
    else:
        facts.append(("dense baseline", "not trained yet"))
    if data.floor is not None:
        facts.append(("constraint", f"{data.metric_label} {'≥' if data.maximize else '≤'} {data.floor:.4f} "
                                    f"(max drop {data.max_drop:g}{' relative' if data.relative else ''})"))
    if not data.hypervolume.empty:
        facts.append(("hypervolume", f"{float(data.hypervolume['hypervolume'].iloc[-1]):.4f}"))
    front = data.front
    facts.append(("front", f"{len(front)} trial{'' if len(front) == 1 else 's'}"))
    facts.append(("selected recipe", f"trial {data.selected}" if data.selected is not None else "none"))
    out = "".join(f"<span>{_e(k)}: <b>{_e(v)}</b></span>" for k, v in facts)
    if data.tracking is not None:
        out += (f"<span>MLflow: <b>{_e(mask_uri(data.tracking.uri))}</b> "
                f"({_link(experiment_runs_url(data.tracking.experiment_id, data.ui_url), 'runs in the MLflow UI')})"
                "</span>")
    return out


def _front_table(data: StudyData) -> str:
    front = data.front
    if front.empty:
        return _note("no Pareto front yet: the study has no complete feasible trial")
    label = data.metric_label
    head = ["", "trial", label, f"test {data.metric}", "sparsity",
            "drop vs dense" if data.maximize else "rise vs dense", "type", "pattern", "scope", "allocation", "MLflow"]
    sign = 1.0 if data.maximize else -1.0
    rows = []
    for r in front.itertuples():
        drop = sign * (data.dense - r.value) if data.dense is not None else None
        chosen = bool(r.selected)
        cells = [f'<span class="star" title="the selected recipe">{"★" if chosen else ""}</span>', _e(r.trial),
                 _num(r.value), _num(r.test_value), _num(r.sparsity), _num(drop), _e(r.pruning_type or "-"),
                 _e(r.pattern or "-"), _e(r.scope or "-"), _e(r.allocation or "-"), _link(r.url)]
        classes = ["", "num", "num", "num", "num", "num", "", "", "", "", ""]
        tds = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for c, v in zip(classes, cells))
        selected = ' class="selected"' if chosen else ""
        rows.append(f'<tr data-trial="{_e(r.trial)}"{selected}>{tds}</tr>')
    hint = ""
    if data.selected is not None:
        hint = (f'<p class="explain"><span class="star">★</span> trial {data.selected} is the recipe the export '
                f"rule selects: <code>sparsesearch export SPEC</code> writes it.</p>")
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (f'<div class="scroll"><table class="front-table"><thead><tr>{ths}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{hint}")


def _all_trials(data: StudyData) -> str:
    t = data.trials
    if t.empty:
        return ""
    rows = []
    for r in t.sort_values("trial").itertuples():
        reason = str(r.stop_reason) if isinstance(r.stop_reason, str) else ""
        rows.append(f'<tr><td class="num">{_e(r.trial)}</td><td class="state-{_e(r.state)}">{_e(r.state)}</td>'
                    f'<td class="num">{_num(r.value)}</td><td class="num">{_num(r.sparsity)}</td>'
                    f"<td>{'yes' if r.on_front else ''}</td><td>{'' if r.feasible or r.state != 'COMPLETE' else 'no'}</td>"
                    f"<td>{_e(r.pruning_type or '-')}</td><td>{_e(r.pattern or '-')}</td><td>{_e(r.scope or '-')}</td>"
                    f"<td>{_link(r.url)}</td><td title=\"{_e(reason)}\">{_e(reason[:80])}</td></tr>")
    head = ["trial", "state", data.metric_label, "sparsity", "front", "feasible", "type", "pattern", "scope",
            "MLflow", "stop reason"]
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (f"<details><summary>all {len(t)} trials</summary><div class=\"scroll\"><table class=\"all-trials\">"
            f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></details>")


def render(data: StudyData) -> str:
    """The report page for ``data``."""
    label = data.metric_label
    panels = []
    fig = figures.front_scatter(data)
    drop = "" if data.max_drop is None else f" (max drop {data.max_drop:g}{' relative' if data.relative else ''})"
    panels.append(_panel(
        "front", f"{label} versus sparsity",
        "Every trial; the Pareto front joined, trials beyond the constraint" + _e(drop) + " marked ×, trials "
        "stopped early as open circles, the selected recipe ringed. Hover a point for its configuration; click it "
        "to open its MLflow run.",
        _figure_html(fig, "fig-front", _CLICK) if fig is not None else
        _note("no trial has a metric and a sparsity yet"), wide=True))
    fig = figures.trajectories(data)
    panels.append(_panel(
        "trajectories", "training trajectories of the front",
        f"{_e(label)} and sparsity per epoch of each front trial"
        + (" (from MLflow)" if (data.history["source"] == "mlflow").any() else ""),
        _figure_html(fig, "fig-trajectories") if fig is not None else
        _note("no per-epoch curves yet: the front is empty"), wide=True))
    fig = figures.layer_profile(data)
    panels.append(_panel(
        "layers", "per-layer sparsity profile",
        "Sparsity of each pruned layer (module name, type, shape) in each front trial.",
        _figure_html(fig, "fig-layers") if fig is not None else _note(
            "no per-layer tables: they come from the trials' MLflow runs (layer_sparsity.csv)"
            if not data.front.empty else "no Pareto front yet")))
    fig = figures.hypervolume(data)
    panels.append(_panel(
        "hypervolume", "hypervolume over trials",
        "Share of the box between the reference (the constraint floor, the lowest sparsity searched) and the "
        "ideal point that the front of the first k complete trials dominates.",
        _figure_html(fig, "fig-hypervolume") if fig is not None else _note("no complete trial yet")))
    fig = figures.importances(data)
    why = next((n for n in data.notes if n.startswith("parameter importance")), "parameter importance needs "
               "at least 2 complete trials with varying parameters")
    panels.append(_panel(
        "importance", "parameter importance",
        "How much of each objective's variance across complete trials each sampled parameter explains (fANOVA).",
        _figure_html(fig, "fig-importance") if fig is not None else _note(why), wide=True))
    panels.append(_panel("table", "the Pareto front", "Front trials, sparsest first, with validation and test "
                         "metrics.", _front_table(data) + _all_trials(data), wide=True))
    notes = "".join(f"<li>{_e(n)}</li>" for n in data.notes)
    values = {
        "title": _e(f"sparsesearch study {data.name}"),
        "version": _e(_version()),
        "facts": _facts(data),
        "notes": f'<ul class="notes">{notes}</ul>' if notes else "",
        "panels": "\n".join(panels),
        "footer": _e(f"made by sparsesearch {_version()} on "
                     f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; works offline"),
        "plotlyjs": get_plotlyjs(),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparsesearch")
    except PackageNotFoundError:
        return "dev"


__all__ = ["render", "template"]
