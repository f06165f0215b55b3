"""A study's results as pandas DataFrames: every trial, the front, the selected trial."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.records.study import Export
from sparsesearch.search import pareto
from sparsesearch.search.pareto import feasibility

_SUMMARY = ("pruning_type", "pattern", "scope", "allocation", "target_sparsity")


def study_points(study: optuna.Study) -> list[pareto.Point]:
    """The study's Pareto front as points with the metric's direction."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    return pareto.points(pareto.front_trials(study), maximize)


def selected_trial(study: optuna.Study, rule: Export | None = None) -> int | None:
    """The number of the front trial the spec's export rule (or ``rule``) picks; None when none qualifies."""
    state = StudyState.of(study.user_attrs)
    rule = rule or Export(**state.export)
    try:
        return pareto.select(study_points(study), rule, state.dense_value, metric=state.metric).number
    except pareto.NoTrialSelected:
        return None


def param_importances(study: optuna.Study, labels: tuple[str, str],
                      notes: list[str]) -> dict[str, dict[str, float]]:
    """Optuna's parameter importances for each objective (by ``labels``); a note instead when they cannot be
    computed."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values]
    if len(complete) < 2:
        notes.append("parameter importance needs at least 2 complete trials")
        return {}
    varying = {name for name in set().union(*(t.params for t in complete))
               if len({repr(t.params.get(name)) for t in complete}) > 1}
    if not varying:
        notes.append("parameter importance needs parameters that vary between complete trials")
        return {}
    out: dict[str, dict[str, float]] = {}
    for index, label in enumerate(labels):
        def target(t: optuna.trial.FrozenTrial, i: int = index) -> float:
            return float(t.values[i])

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=target)
        except (RuntimeError, ValueError, ZeroDivisionError) as exc:
            notes.append(f"parameter importance for {label} could not be computed: {exc}")
            continue
        if found:
            out[label] = {str(k): float(v) for k, v in found.items()}
    if not out and not any(n.startswith("parameter importance") for n in notes):
        notes.append("parameter importance: the complete trials share no varying parameter")
    return out


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, the objective value and sparsity, front membership, feasibility,
    the sampled summary (type, pattern, scope, allocation, target), every recorded metric, stop reason and
    tracking run id."""
    state = StudyState.of(study.user_attrs)
    front = {p.number for p in study_points(study)}
    selected = selected_trial(study)
    feasible = feasibility(study, state)
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t.user_attrs)
        complete = t.state == TrialState.COMPLETE and t.values is not None
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            state.metric: t.values[0] if complete else record.metrics.get(f"val_{state.metric}"),
            "sparsity": t.values[1] if complete else record.metrics.get("sparsity"),
            "on_front": t.number in front,
            "selected": t.number == selected,
            "feasible": feasible.get(t.number, False),
        }
        row.update({k: record.summary.get(k) for k in _SUMMARY})
        row.update({k: v for k, v in record.metrics.items() if k.startswith(("val_", "test_"))})
        row.update({"stop_reason": record.stop_reason, "run_id": record.run_id, "warm_start": record.warm_start,
                    "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                    if t.datetime_complete and t.datetime_start else None})
        rows.append(row)
    return pd.DataFrame(rows)
