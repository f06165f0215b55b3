"""PNG versions of the main figures (matplotlib, offline, no browser), for MLflow, which previews PNG
artifacts: the front, the per-layer profile and the hypervolume of a study, and one trial's per-layer
sparsity. Figures are drawn on their own canvas (no pyplot state), so this is safe in any process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sparsesearch.report.data import StudyData

FRONT = "#1d4e89"
OTHER = "#7fa7d3"
BEYOND = "#d1495b"
STOPPED = "#9e9e9e"
DENSE = "#2a9d8f"
SELECTED = "#f4a300"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def front_png(data: StudyData) -> bytes | None:
    """The metric-versus-sparsity scatter with the front, the baseline and the constraint."""
    t = data.trials
    t = t[t["value"].notna() & t["sparsity"].notna()]
    if t.empty:
        return None
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot()
    complete = t["state"] == "COMPLETE"
    front = t[complete & t["on_front"]].sort_values("sparsity")
    styles: list[tuple[str, Any, dict[str, Any]]] = [
        ("other trials", t[complete & ~t["on_front"] & t["feasible"]], {"marker": "o", "color": OTHER}),
        ("beyond the constraint", t[complete & ~t["feasible"]], {"marker": "x", "color": BEYOND}),
        ("stopped early", t[t["state"] == "PRUNED"], {"marker": "o", "facecolors": "none", "edgecolors": STOPPED}),
    ]
    for label, rows, style in styles:
        if len(rows):
            ax.scatter(rows["sparsity"], rows["value"], s=30, label=label, **style)
    if len(front):
        ax.plot(front["sparsity"], front["value"], color=FRONT, lw=1, drawstyle="steps-pre")
        ax.scatter(front["sparsity"], front["value"], marker="D", s=45, color=FRONT, label="front", zorder=3)
    chosen = t[t["selected"]]
    if len(chosen):
        ax.scatter(chosen["sparsity"], chosen["value"], s=220, facecolors="none", edgecolors=SELECTED, lw=2.5,
                   label="selected recipe", zorder=4)
    if data.dense is not None:
        ax.axhline(data.dense, color=DENSE, ls="--", lw=1.2, label=f"dense {data.dense:.4f}")
    if data.floor is not None:
        ax.axhline(data.floor, color=BEYOND, ls=":", lw=1.2, label=f"constraint {data.floor:.4f}")
    for r in front.itertuples():
        ax.annotate(str(r.trial), (r.sparsity, r.value), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("sparsity")
    ax.set_ylabel(data.metric_label)
    ax.set_title(f"study {data.name}: {data.metric_label} vs sparsity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def layer_profile_png(data: StudyData) -> bytes | None:
    """Heatmap of per-layer sparsity, layers by front trials."""
    from sparsesearch.report.data import layer_matrix

    matrix = layer_matrix(data)
    if matrix is None:
        return None
    rows, cols, z = matrix
    fig = _figure(max(5.0, 2.5 + 0.9 * len(cols)), max(2.5, 1.2 + 0.38 * len(rows)))
    ax = fig.add_subplot()
    values = [[float("nan") if v is None else v for v in row] for row in z]
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="sparsity")
    ax.set_title("per-layer sparsity of the front's trials")
    return _png(fig)


def hypervolume_png(data: StudyData) -> bytes | None:
    """The front's hypervolume as complete trials accumulate."""
    hv = data.hypervolume
    if hv.empty:
        return None
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    ax.step(hv["k"], hv["hypervolume"], where="post", color=FRONT)
    ax.plot(hv["k"], hv["hypervolume"], "o", color=FRONT, ms=3)
    ax.set_xlabel("complete trials")
    ax.set_ylabel("hypervolume")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"hypervolume over trials (final {float(hv['hypervolume'].iloc[-1]):.4f})")
    return _png(fig)


def layer_sparsity_png(rows: Sequence[Mapping[str, Any]], title: str = "per-layer sparsity") -> bytes | None:
    """One trial's per-layer sparsity as horizontal bars, from the rows of its ``layer_sparsity.csv`` (name,
    type, shape, params, zeros, sparsity); None for no rows."""
    if not rows:
        return None
    labels = [f"{r.get('name')} ({r.get('type', '')} {_shape(r.get('shape'))})".replace(" )", ")") for r in rows]
    values = [float(r.get("sparsity") or 0.0) for r in rows]
    fig = _figure(7.0, max(2.0, 0.8 + 0.32 * len(rows)))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), values, color=FRONT)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("sparsity")
    for i, v in enumerate(values):
        ax.text(min(v, 0.88) + 0.01, i, f"{v:.3f}", va="center", fontsize=7,
                color="white" if v > 0.88 else "black")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _shape(shape: Any) -> str:
    return "x".join(map(str, shape)) if isinstance(shape, (list, tuple)) else str(shape or "")


def study_pngs(data: StudyData) -> dict[str, bytes]:
    """The study's PNG figures by file name (figures with nothing to draw are left out)."""
    made = {"front.png": front_png(data), "layer_profile.png": layer_profile_png(data),
            "hypervolume.png": hypervolume_png(data)}
    return {name: png for name, png in made.items() if png}
