"""Tables of a study for the console, CSV and the tracker (plain rows: no torch, no pandas)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.search import pareto


def pareto_table(study: optuna.Study, front: list[FrozenTrial], dense: Mapping[str, Any],
                 selected: pareto.Point | None) -> list[dict[str, Any]]:
    """One row per front trial, sparsest first (for the console, CSV and the tracker). ``drop`` is how much
    worse than dense the trial's metric is, whatever its direction."""
    state = StudyState.of(study.user_attrs)
    metric, sign = state.metric, 1.0 if state.maximize else -1.0
    dense_value = dense.get(f"val_{metric}", dense.get("val_accuracy"))
    rows = []
    for t in front:
        record = TrialRecord.of(t.user_attrs)
        m, s = record.metrics, record.summary
        rows.append({
            "trial": t.number,
            f"val_{metric}": t.values[0],
            "sparsity": t.values[1],
            f"test_{metric}": m.get(f"test_{metric}"),
            "drop": sign * (dense_value - t.values[0]) if dense_value is not None else None,
            "pruning_type": s.get("pruning_type"),
            "pattern": s.get("pattern"),
            "scope": s.get("scope"),
            "allocation": s.get("allocation"),
            "selected": selected is not None and selected.number == t.number,
            "run_id": record.run_id,
        })
    return rows
