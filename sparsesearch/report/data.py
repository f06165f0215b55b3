"""What the report shows, gathered once into pandas DataFrames: the trials from the Optuna storage, and from
the MLflow runs (when tracking was on and the store can be read) the per-epoch histories and the per-layer
sparsity tables. Without MLflow the report still has everything the study stores on itself: the trials,
their per-epoch curves (``TrialRecord.curve``), the front, the hypervolume and the importances.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.report import runs
from sparsesearch.report.links import run_url
from sparsesearch.search import pareto
from sparsesearch.search.results import feasibility, param_importances, trials_frame

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

#: the columns of :attr:`StudyData.trials` besides the metric's own (present even for an empty study)
TRIAL_COLUMNS = ("trial", "state", "value", "sparsity", "on_front", "selected", "feasible", "pruning_type",
                 "pattern", "scope", "allocation", "test_value", "stop_reason", "run_id", "warm_start", "url")
HISTORY_COLUMNS = ("trial", "epoch", "value", "sparsity", "source")
LAYER_COLUMNS = ("trial", "name", "type", "shape", "params", "zeros", "sparsity")


@dataclass
class StudyData:
    """One study, ready to draw."""

    name: str
    state: StudyState
    #: every trial: ``value`` is the validation metric, ``test_value`` the test metric, ``url`` its MLflow run
    trials: pd.DataFrame
    #: per-epoch (validation metric, sparsity) of the front's trials
    history: pd.DataFrame
    #: per-layer sparsity of the front's trials (from the MLflow runs' layer_sparsity.csv)
    layers: pd.DataFrame
    #: the normalised hypervolume of the front of the first k complete trials, k = 1..n
    hypervolume: pd.DataFrame
    #: objective label -> {parameter: importance}
    importances: dict[str, dict[str, float]]
    counts: dict[str, int]
    #: the constraint: the allowed drop, whether relative, and the metric's floor (None without a baseline)
    max_drop: float | None
    relative: bool
    floor: float | None
    tracking: runs.TrackingView | None
    notes: list[str] = field(default_factory=list)
    #: the MLflow UI the links point to (default: ``sparsesearch ui``'s address)
    ui_url: str | None = None

    @property
    def metric(self) -> str:
        return self.state.metric

    @property
    def maximize(self) -> bool:
        return self.state.maximize

    @property
    def metric_label(self) -> str:
        """The axis label of the objective metric, e.g. ``val accuracy``."""
        return f"val {self.metric}"

    @property
    def dense(self) -> float | None:
        return self.state.dense_value

    @property
    def dense_test(self) -> float | None:
        value = self.state.baseline.get(f"test_{self.metric}", self.state.baseline.get("test_accuracy")
                                        if self.metric == "accuracy" else None)
        return None if value is None else float(value)

    @property
    def front(self) -> pd.DataFrame:
        """The front's trials, sparsest first."""
        frame = self.trials[self.trials["on_front"]]
        return frame.sort_values(["sparsity", "value"], ascending=[False, not self.maximize]).reset_index(drop=True)

    @property
    def selected(self) -> int | None:
        chosen = self.trials.loc[self.trials["selected"], "trial"]
        return int(chosen.iloc[0]) if len(chosen) else None


def constraint_floor(state: StudyState) -> tuple[float | None, bool, float | None]:
    """(max_drop, relative, floor): the floor is the worst allowed metric value, dense - drop for a maximised
    metric and dense + drop for a minimised one (None while there is no dense baseline)."""
    max_drop, relative = pareto.spec_constraint(state.spec)
    dense = state.dense_value
    if dense is None or max_drop is None:
        return max_drop, relative, None
    allowed = pareto.allowed_drop(dense, float(max_drop), relative)
    return float(max_drop), relative, dense - allowed if state.maximize else dense + allowed


def collect(study: optuna.Study, tracking_uri: str | None = None, *, mlflow_url: str | None = None,
            tracking: bool = True) -> StudyData:
    """Everything the report draws, for ``study``; MLflow is read from ``tracking_uri`` (default: the store
    the study recorded, when its URI holds no masked password), unless ``tracking`` is False."""
    state = StudyState.of(study.user_attrs)
    notes: list[str] = []
    trials = _trials(study, state)
    counts = {k: int(v) for k, v in trials["state"].value_counts().items()} if len(trials) else {}
    view = runs.open_view(study.study_name, state, tracking_uri, notes) if tracking else None
    if not tracking:
        notes.append("MLflow was not read (tracking turned off for this report): drawn from the Optuna storage")
    if view is not None:
        # the run id a trial stored on itself wins over the tags (a retried trial may have several runs)
        view.trial_runs.update({int(n): str(r) for n, r in zip(trials["trial"], trials["run_id"])
                                if isinstance(r, str) and r})
        trials["run_id"] = trials["trial"].map(lambda n: view.trial_runs.get(int(n)))
        trials["url"] = [run_url(view.experiment_id, rid, mlflow_url) if isinstance(rid, str) and rid else None
                         for rid in trials["run_id"]]
    max_drop, relative, floor = constraint_floor(state)
    if not state.baseline:
        notes.append("the dense baseline is not trained yet: no baseline or constraint line")
    front_numbers = [int(n) for n in trials.loc[trials["on_front"], "trial"]]
    history = _history(study, state, front_numbers, view)
    layers = _layers(front_numbers, view, notes)
    data = StudyData(name=study.study_name, state=state, trials=trials, history=history, layers=layers,
                     hypervolume=_hypervolume(study, state, trials), importances={}, counts=counts,
                     max_drop=max_drop, relative=relative, floor=floor, tracking=view, notes=notes,
                     ui_url=mlflow_url)
    data.importances = param_importances(study, (data.metric_label, "sparsity"), notes)
    return data


def _trials(study: optuna.Study, state: StudyState) -> pd.DataFrame:
    """trials_frame with the metric's columns under fixed names (``value``, ``test_value``)."""
    frame = trials_frame(study)
    metric = state.metric
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in TRIAL_COLUMNS}).astype(
            {"on_front": bool, "selected": bool, "feasible": bool})
    frame = frame.rename(columns={metric: "value"})
    frame["test_value"] = frame.get(f"test_{metric}")
    if f"val_{metric}" in frame:  # a stopped trial's last value is in its metrics when trials_frame has none
        frame["value"] = frame["value"].fillna(frame[f"val_{metric}"])
    frame["feasible"] = frame["trial"].map(feasibility(study, state))
    frame["url"] = None
    for column in TRIAL_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["run_id"] = frame["run_id"].astype(object)
    return frame


def _history(study: optuna.Study, state: StudyState, numbers: list[int],
             view: runs.TrackingView | None) -> pd.DataFrame:
    """Per-epoch curves of the front's trials: MLflow's metric history when there is one, else the curve the
    trial stored on itself."""
    frames = []
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in numbers:
        tracked = view.history(number, f"val_{state.metric}") if view is not None else None
        if tracked is not None and not tracked.empty:
            frames.append(tracked.assign(trial=number, source="mlflow"))
            continue
        curve = TrialRecord.of(by_number[number].user_attrs).curve
        if curve:
            frames.append(pd.DataFrame({"trial": number, "epoch": range(1, len(curve) + 1),
                                        "value": [c[0] for c in curve], "sparsity": [c[1] for c in curve],
                                        "source": "optuna"}))
    if not frames:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(HISTORY_COLUMNS)]


def _layers(numbers: list[int], view: runs.TrackingView | None, notes: list[str]) -> pd.DataFrame:
    frames = []
    if view is not None:
        for number in numbers:
            table = view.layers(number)
            if table is not None and not table.empty:
                frames.append(table.assign(trial=number))
    if not frames:
        if numbers:
            notes.append("per-layer sparsity comes from the trials' MLflow runs (layer_sparsity.csv)"
                         + ("; none could be read" if view is not None else ", and tracking is off or unreachable"))
        return pd.DataFrame(columns=list(LAYER_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(LAYER_COLUMNS)]


def _hypervolume(study: optuna.Study, state: StudyState, trials: pd.DataFrame) -> pd.DataFrame:
    """The normalised hypervolume (as ``sparsesearch show`` prints it) of the feasible front of the first k
    complete trials, in the order they completed."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    done.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
    feasible = dict(zip(trials["trial"], trials["feasible"]))
    rows, pts = [], []
    for k, t in enumerate(done, start=1):
        if feasible.get(t.number, True):
            pts.append(pareto.Point(t.number, float(t.values[0]), float(t.values[1]), state.maximize))
        front = pareto.non_dominated(pts)
        hv = pareto.study_hypervolume(front, state.spec, state.dense_value) if front else 0.0
        rows.append({"k": k, "trial": t.number, "hypervolume": hv, "front_size": len(front)})
    return pd.DataFrame(rows, columns=["k", "trial", "hypervolume", "front_size"])


def layer_matrix(data: StudyData) -> tuple[list[str], list[str], list[list[float | None]]] | None:
    """(layer labels, trial labels, sparsity[layer][trial]) of the front's trials, layers in model order."""
    layers = data.layers
    if layers.empty:
        return None
    order: list[str] = []
    labels: dict[str, str] = {}
    for r in layers.itertuples():
        if r.name not in labels:
            order.append(r.name)
            labels[r.name] = f"{r.name} ({r.type} {r.shape})" if isinstance(r.type, str) else str(r.name)
    trials = [n for n in data.front["trial"] if n in set(layers["trial"])]
    table = layers.pivot_table(index="name", columns="trial", values="sparsity", aggfunc="first")
    z = [[None if pd.isna(table.at[name, n]) else float(table.at[name, n]) for n in trials] for name in order]
    return [labels[n] for n in order], [f"trial {n}" + (" ★" if n == data.selected else "") for n in trials], z


def summary_counts(counts: Mapping[str, Any]) -> str:
    """``8 complete, 4 stopped early, 0 failed, 1 running`` (the states a study can have)."""
    names = (("COMPLETE", "complete"), ("PRUNED", "stopped early"), ("FAIL", "failed"), ("RUNNING", "running"),
             ("WAITING", "waiting"))
    return ", ".join(f"{int(counts.get(k, 0))} {label}" for k, label in names
                     if counts.get(k, 0) or k in ("COMPLETE", "PRUNED", "FAIL"))
