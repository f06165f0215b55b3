"""Progress hooks of a study (the CLI draws bars and log lines with them), and what a study run returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    def trial_on_front(self, number: int, on_front: bool) -> None:
        """Whether the trial that just completed is on the Pareto front (called right before trial_done)."""
    def trial_done(self, number: int, state: str, values: tuple[float, float] | None, reason: str | None,
                   best: pareto.Point | None) -> None: ...
    def baseline_waiting(self, worker: str, silent_s: float, takeover_s: float) -> None:
        """Another worker (``host:pid``) is training the dense baseline; its last heartbeat was ``silent_s``
        seconds ago, and this worker takes the baseline over after ``takeover_s`` seconds of silence."""
    def trial_lost(self, number: int, reason: str, retried: bool) -> None:
        """This worker found trial ``number`` of a lost worker and failed it (``retried``: queued again)."""
    def trials_waiting(self, running: Sequence[int]) -> None:
        """Every remaining trial is running elsewhere: this worker waits for ``running`` to finish (or to be
        found lost, then it runs their retries)."""


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
    #: the signal that stopped this run ("SIGINT", "SIGTERM"); None when it was not interrupted by one
    stopped_by: str | None = None
    #: why the study has nothing to show: every trial failed (the first failure's reason); None otherwise
    error: str | None = None
