"""Progress hooks of a study (the CLI draws bars and log lines with them), and what a study run returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparsesearch.search import pareto


class Events:
    """Progress hooks (the CLI draws bars with them); every method may be left as this no-op."""

    def baseline_started(self, epochs: int) -> None: ...
    def baseline_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def baseline_done(self, metrics: Mapping[str, float], reused: bool) -> None: ...
    def trials_planned(self, done: int, target: int | None) -> None: ...
    def trial_started(self, number: int, summary: Mapping[str, Any], epochs: int) -> None: ...
    def trial_epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None: ...
    def trial_done(self, number: int, state: str, values: tuple[float, float] | None, reason: str | None,
                   best: pareto.Point | None) -> None: ...


@dataclass
class StudyResult:
    """What ``run_study`` did and where the study stands."""

    name: str
    storage: str
    trials_run: int
    counts: dict[str, int]
    interrupted: bool
    front: list[pareto.Point]
    hypervolume: float
    dense: dict[str, Any]
    selected: pareto.Point | None
    selection_error: str | None
    seconds: float
    parent_run_id: str | None
    tracking: str
    messages: list[str] = field(default_factory=list)
