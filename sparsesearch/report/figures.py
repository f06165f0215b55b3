"""The report's interactive figures (plotly), one function per panel; each returns None when the study has
nothing to draw there yet (the page shows a note instead)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sparsesearch.report.data import StudyData, layer_matrix

FRONT = "#1d4e89"
OTHER = "#7fa7d3"
BEYOND = "#d1495b"
STOPPED = "#9e9e9e"
DENSE = "#2a9d8f"
FLOOR = "#d1495b"
SELECTED = "#f4a300"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"


def _layout(fig: go.Figure, height: int = 440, **extra: Any) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 60, "r": 20, "t": 40, "b": 50},
                      font={"family": FONT, "size": 13}, legend={"orientation": "h", "y": -0.18}, **extra)
    return fig


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def _custom(rows: pd.DataFrame) -> list[list[str]]:
    """Hover and click data per point: trial, type, pattern, scope, run line, run URL, extra."""
    out = []
    for r in rows.itertuples():
        url = r.url if isinstance(r.url, str) else ""
        extra = f"<br>stopped: {str(r.stop_reason)[:90]}" if isinstance(r.stop_reason, str) and r.state == "PRUNED" else ""
        out.append([str(r.trial), _text(r.pruning_type), _text(r.pattern), _text(r.scope),
                    f"MLflow run: {url} (click the point)" if url else "no MLflow run", url, extra])
    return out


def front_scatter(data: StudyData) -> go.Figure | None:
    """Every trial's metric against its sparsity: the front highlighted (and joined), trials beyond the
    constraint and stopped trials with their own markers, the dense baseline and the constraint floor."""
    t = data.trials
    drawable = t[t["value"].notna() & t["sparsity"].notna()]
    if drawable.empty:
        return None
    label = data.metric_label
    hover = ("<b>trial %{customdata[0]}</b><br>type %{customdata[1]}<br>pattern %{customdata[2]}<br>"
             "scope %{customdata[3]}<br>" + label + " %{y:.4f}<br>sparsity %{x:.4f}<br>%{customdata[4]}"
             "%{customdata[6]}<extra>%{fullData.name}</extra>")
    complete = drawable["state"] == "COMPLETE"
    groups = [
        ("front", complete & drawable["on_front"],
         {"symbol": "diamond", "size": 13, "color": FRONT, "line": {"width": 1, "color": "white"}}),
        ("other trials", complete & ~drawable["on_front"] & drawable["feasible"],
         {"symbol": "circle", "size": 9, "color": OTHER}),
        ("beyond the constraint", complete & ~drawable["feasible"],
         {"symbol": "x", "size": 10, "color": BEYOND}),
        ("stopped early", drawable["state"] == "PRUNED",
         {"symbol": "circle-open", "size": 9, "color": STOPPED}),
    ]
    fig = go.Figure()
    front = drawable[complete & drawable["on_front"]].sort_values("sparsity")
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=front["sparsity"], y=front["value"], mode="lines", name="front line",
                                 line={"color": FRONT, "width": 1.5, "shape": "vh"},
                                 hoverinfo="skip", showlegend=False))
    for name, mask, marker in groups:
        rows = drawable[mask]
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(x=rows["sparsity"], y=rows["value"], mode="markers", name=name, marker=marker,
                                 customdata=_custom(rows), hovertemplate=hover))
    chosen = drawable[drawable["selected"]]
    if len(chosen):
        fig.add_trace(go.Scatter(x=chosen["sparsity"], y=chosen["value"], mode="markers", name="selected recipe",
                                 marker={"symbol": "circle-open", "size": 24, "color": SELECTED,
                                         "line": {"width": 3}}, hoverinfo="skip"))
    low, high = float(drawable["sparsity"].min()), float(drawable["sparsity"].max())
    pad = max(0.01, 0.05 * (high - low))
    span = [max(0.0, low - pad), min(1.0, high + pad)]
    if data.dense is not None:
        fig.add_trace(go.Scatter(x=span, y=[data.dense] * 2, mode="lines", name=f"dense baseline {data.dense:.4f}",
                                 line={"color": DENSE, "dash": "dash", "width": 1.5},
                                 hovertemplate=f"dense baseline<br>{label} {data.dense:.4f}<extra></extra>"))
    if data.floor is not None:
        drop = f"{data.max_drop:g}{' relative' if data.relative else ''}"
        fig.add_trace(go.Scatter(x=span, y=[data.floor] * 2, mode="lines",
                                 name=f"constraint {'≥' if data.maximize else '≤'} {data.floor:.4f}",
                                 line={"color": FLOOR, "dash": "dot", "width": 1.5},
                                 hovertemplate=f"constraint: {label} {'≥' if data.maximize else '≤'} {data.floor:.4f} "
                                               f"(max drop {drop})<extra></extra>"))
    return _layout(fig, height=480, xaxis_title="sparsity", yaxis_title=label, hovermode="closest")


def trajectories(data: StudyData) -> go.Figure | None:
    """Metric and sparsity per epoch for each front trial."""
    h = data.history
    if h.empty:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{data.metric_label} per epoch", "sparsity per epoch"),
                        horizontal_spacing=0.1)
    palette = ["#1d4e89", "#d1495b", "#2a9d8f", "#f4a300", "#6a4c93", "#00798c", "#8d6a9f", "#edae49",
               "#3d5a80", "#ee6c4d"]
    for i, (number, rows) in enumerate(h.groupby("trial", sort=False)):
        color = palette[i % len(palette)]
        name = f"trial {number}" + (" (selected)" if number == data.selected else "")
        for col, column in ((1, "value"), (2, "sparsity")):
            fig.add_trace(go.Scatter(x=rows["epoch"], y=rows[column], mode="lines+markers", name=name,
                                     legendgroup=name, showlegend=col == 1, line={"color": color, "width": 2},
                                     marker={"size": 5},
                                     hovertemplate=f"{name}<br>epoch %{{x}}<br>{'sparsity' if col == 2 else data.metric_label}"
                                                   " %{y:.4f}<extra></extra>"), row=1, col=col)
    if data.dense is not None:
        fig.add_hline(y=data.dense, line={"color": DENSE, "dash": "dash", "width": 1}, row=1, col=1,
                      annotation_text="dense", annotation_position="bottom right")
    if data.floor is not None:
        fig.add_hline(y=data.floor, line={"color": FLOOR, "dash": "dot", "width": 1}, row=1, col=1,
                      annotation_text="constraint", annotation_position="bottom right")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=data.metric_label, row=1, col=1)
    fig.update_yaxes(title_text="sparsity", row=1, col=2)
    return _layout(fig, height=420)


def layer_profile(data: StudyData) -> go.Figure | None:
    """Heatmap of per-layer sparsity: the model's layers (real module names) by the front's trials."""
    matrix = layer_matrix(data)
    if matrix is None:
        return None
    rows, cols, z = matrix
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, zmin=0.0, zmax=1.0, colorscale="Blues",
                               colorbar={"title": {"text": "sparsity"}}, texttemplate="%{z:.2f}",
                               hovertemplate="%{y}<br>%{x}<br>sparsity %{z:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="layer")
    fig.update_xaxes(title_text="front trials (sparsest first)", type="category")
    return _layout(fig, height=max(300, 120 + 34 * len(rows)))


def hypervolume(data: StudyData) -> go.Figure | None:
    """The front's hypervolume as complete trials accumulate."""
    hv = data.hypervolume
    if hv.empty:
        return None
    fig = go.Figure(go.Scatter(x=hv["k"], y=hv["hypervolume"], mode="lines+markers", line={"shape": "hv",
                               "color": FRONT}, customdata=hv[["trial", "front_size"]].to_numpy(),
                               hovertemplate="after %{x} complete trials (last: trial %{customdata[0]})<br>"
                                             "hypervolume %{y:.4f}, front of %{customdata[1]}<extra></extra>",
                               name="hypervolume"))
    fig.update_yaxes(title_text="hypervolume (share of the box)", rangemode="tozero")
    fig.update_xaxes(title_text="complete trials", dtick=max(1, len(hv) // 10))
    return _layout(fig, height=360, showlegend=False)


def importances(data: StudyData) -> go.Figure | None:
    """Parameter importance for each objective (fANOVA)."""
    found = data.importances
    if not found:
        return None
    fig = make_subplots(rows=1, cols=len(found), subplot_titles=[f"importance for {k}" for k in found],
                        horizontal_spacing=0.18)
    for i, (label, values) in enumerate(found.items(), start=1):
        items = sorted(values.items(), key=lambda kv: kv[1])
        fig.add_trace(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h", name=label,
                             marker={"color": FRONT if i == 1 else DENSE},
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>"), row=1, col=i)
        fig.update_xaxes(title_text="importance", rangemode="tozero", row=1, col=i)
    return _layout(fig, height=max(300, 100 + 28 * max(len(v) for v in found.values())), showlegend=False)
