"""What a study and its trials store on themselves (Optuna user attributes), read through typed records.

The search writes these attributes and every reader (``show``, ``export``, ``reproduce``, the report) reads
them through :meth:`StudyState.of` and :meth:`TrialRecord.of`, never by string keys of its own. The records
are plain data (JSON-like), so they are torch- and optuna-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class StudyState:
    """A study's own attributes."""

    #: the spec the study started with (plain data, credentials masked)
    spec: Mapping[str, Any] = field(default_factory=dict)
    steps_per_epoch: int | None = None
    #: dense metrics, curve and checkpoint location (empty until the baseline is trained)
    baseline: Mapping[str, Any] = field(default_factory=dict)
    #: masked tracking URI -> {"parent_run_id": ..., "experiment": ...}
    tracking: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    created_by: str | None = None
    #: a unique id of the study, set when it is created (tags its tracking runs, whoever opens them)
    uid: str | None = None
    #: the objective metric: {"name": ..., "direction": "maximize" | "minimize"}
    objective: Mapping[str, Any] = field(default_factory=dict)
    #: the worker training the dense baseline, and when it last said so (seconds since the epoch)
    baseline_worker: str | None = None
    baseline_heartbeat: float | None = None
    #: the last failure of the dense baseline: {"worker", "reason", "at"} (workers waiting for it stop with it)
    baseline_failure: Mapping[str, Any] = field(default_factory=dict)
    #: masked tracking URI -> {"worker": ..., "at": ...}: the worker opening the study's tracking run
    tracking_claim: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> StudyState:
        """The record for an Optuna study's ``user_attrs`` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in known and v is not None})

    @property
    def metric(self) -> str:
        """The objective metric's name (``accuracy`` for studies made before metrics had names)."""
        return str(self.objective.get("name") or "accuracy")

    @property
    def maximize(self) -> bool:
        return self.objective.get("direction", "maximize") == "maximize"

    @property
    def dense_value(self) -> float | None:
        """The dense baseline's validation value of the objective metric."""
        value = self.baseline.get(f"val_{self.metric}", self.baseline.get("val_accuracy"))
        return None if value is None else float(value)

    @property
    def export(self) -> Mapping[str, Any]:
        """The spec's export rule settings."""
        return self.spec.get("export") or {}

    @property
    def task(self) -> str | None:
        return self.spec.get("task")


@dataclass(frozen=True)
class TrialRecord:
    """What one trial stores on itself: enough to export its recipe losslessly, and to explain it."""

    #: the full pruning config (``{"groups": [...]}``), independent of Optuna's parameter names
    config: Mapping[str, Any] | None = None
    #: the training settings it ran with
    training: Mapping[str, Any] = field(default_factory=dict)
    #: pruning_type, pattern, scope, allocation, target: for tables
    summary: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: (val_accuracy, sparsity) per epoch
    curve: tuple[tuple[float, float], ...] = ()
    run_id: str | None = None
    stop_reason: str | None = None
    warm_start: str | None = None
    #: the worker that ran it (``host:pid``)
    worker: str | None = None
    #: the number of the trial this one re-runs (its worker was lost), as Optuna's ``failed_trial``
    retry_of: int | None = None

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        """The record for an Optuna trial's ``user_attrs`` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in attrs.items() if k in known and v is not None}
        if "curve" in values:
            values["curve"] = tuple((float(a), float(s)) for a, s in values["curve"])
        return cls(**values)


#: attribute names, for the writers
STUDY_KEYS = tuple(f.name for f in fields(StudyState))
TRIAL_KEYS = tuple(f.name for f in fields(TrialRecord))
