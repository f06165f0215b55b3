"""A study's results as pandas DataFrames: every trial, the front, the selected trial."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.records.study import Export
from sparsesearch.search import pareto

_SUMMARY = ("pruning_type", "pattern", "scope", "allocation", "target")


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


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, the objective value and sparsity, front membership, feasibility,
    the sampled summary (type, pattern, scope, allocation, target), every recorded metric, stop reason and
    tracking run id."""
    state = StudyState.of(study.user_attrs)
    front = {p.number for p in study_points(study)}
    selected = selected_trial(study)
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t.user_attrs)
        complete = t.state == TrialState.COMPLETE and t.values is not None
        constraint = t.system_attrs.get("constraints") if complete else None
        row: dict[str, Any] = {
            "trial": t.number,
            "state": t.state.name,
            state.metric: t.values[0] if complete else record.metrics.get(f"val_{state.metric}"),
            "sparsity": t.values[1] if complete else record.metrics.get("sparsity"),
            "on_front": t.number in front,
            "selected": t.number == selected,
            "feasible": bool(complete and (not constraint or all(c <= 0 for c in constraint))),
        }
        row.update({k: record.summary.get(k) for k in _SUMMARY})
        row.update({k: v for k, v in record.metrics.items() if k.startswith(("val_", "test_"))})
        row.update({"stop_reason": record.stop_reason, "run_id": record.run_id, "warm_start": record.warm_start,
                    "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
                    if t.datetime_complete and t.datetime_start else None})
        rows.append(row)
    return pd.DataFrame(rows)
