"""Console output for the search commands: progress bars, tables and study summaries (used by the CLI only).

Bars are drawn on stderr only when it is a terminal; otherwise (CI logs, pipes) the commands print just
their summaries.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from sparsesearch.search import pareto
from sparsesearch.search.events import Events, StudyResult


def is_tty() -> bool:
    return sys.stderr.isatty()


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{100.0 * float(value):.{digits}f}%"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    """Plain aligned text: ``columns`` is (key, heading); numbers right-aligned."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    heads = [head for _, head in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    numeric = [all(_is_num(row.get(key)) for row in rows) for key, _ in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return [line(heads)] + [line(c) for c in cells]


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) or value is None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


PARETO_COLUMNS = (("selected", ""), ("trial", "trial"), ("val_accuracy", "val acc"), ("sparsity", "sparsity"),
                  ("test_accuracy", "test acc"), ("drop", "drop"), ("pruning_type", "type"), ("pattern", "pattern"),
                  ("scope", "scope"), ("allocation", "allocation"))


def _metric_of(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = [k for k in (rows[0] if rows else {}) if k.startswith("val_")]
    return keys[0].removeprefix("val_") if keys else "accuracy"


def metric_text(metrics: Mapping[str, Any], prefix: str = "val") -> str:
    """``val <metric> 0.9876`` for the first ``<prefix>_<metric>`` entry of ``metrics`` (empty if none)."""
    for key, value in metrics.items():
        if key.startswith(prefix + "_") and isinstance(value, (int, float)):
            return f"{prefix} {key.removeprefix(prefix + '_')} {value:.4f}"
    return ""


def pareto_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    metric = _metric_of(rows)
    short = "acc" if metric == "accuracy" else metric
    columns = tuple((f"val_{metric}", f"val {short}") if k == "val_accuracy" else
                    (f"test_{metric}", f"test {short}") if k == "test_accuracy" else (k, label)
                    for k, label in PARETO_COLUMNS)
    return ["  " + line for line in table(rows, columns)]


def best_text(best: pareto.Point | None) -> str:
    if best is None:
        return "no feasible trial yet"
    return f"trial {best.number}: val {best.value:.4f} @ sparsity {best.sparsity:.4f}"


#: seconds between two "waiting for the dense baseline" lines
WAITING_REPEAT_S = 15.0


#: baseline epochs per progress line when stderr is not a terminal
EPOCH_GROUP = 5


class ProgressEvents(Events):
    """On a terminal: tqdm bars over trials and epochs with the best-so-far, and one line left behind per
    finished trial. Not on a terminal (CI, nohup, a pipe): plain lines, one per trial and one per group of
    baseline epochs, so a log shows progress."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = is_tty() if enabled is None else enabled
        self._trials = None
        self._epochs = None
        self._best = "no feasible trial yet"
        self._planned: int | None = None
        self._done = 0
        self._baseline_epochs = 0

    def _bar(self, **kwargs: Any):
        from tqdm import tqdm

        return tqdm(file=sys.stderr, dynamic_ncols=True, disable=not self.enabled, **kwargs)

    def baseline_started(self, epochs: int) -> None:
        self._baseline_epochs = epochs
        self._epochs = self._bar(total=epochs, desc="dense baseline", unit="epoch", leave=False)
        if not self.enabled and epochs:
            click.echo(f"dense baseline: training {epochs} epochs", err=True)

    def baseline_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._epochs is not None:
            self._epochs.set_postfix_str(metric_text(metrics), refresh=False)
            self._epochs.update(1)
        if not self.enabled and ((epoch + 1) % EPOCH_GROUP == 0 or epoch + 1 == self._baseline_epochs):
            click.echo(f"dense baseline: epoch {epoch + 1}/{self._baseline_epochs}, {metric_text(metrics)}", err=True)

    def baseline_done(self, metrics: Mapping[str, float], reused: bool) -> None:
        if self._epochs is not None:
            self._epochs.close()
            self._epochs = None
        how = "reused" if reused else "trained"
        how = "measured" if metrics.get("pretrained") else how
        click.echo(f"dense baseline ({how}): {metric_text(metrics)}, {metric_text(metrics, 'test')}", err=True)

    def trials_planned(self, done: int, target: int | None) -> None:
        total = None if target is None else max(target - done, 0)
        self._planned, self._done = target, done
        self._trials = self._bar(total=total, desc="trials", unit="trial")
        if not self.enabled:
            click.echo(f"trials: {done} finished before this run" + (f", {target} wanted" if target else ""),
                       err=True)

    def trial_started(self, number: int, summary: Mapping[str, Any], epochs: int) -> None:
        if self._epochs is not None:
            self._epochs.close()
        label = f"trial {number} {summary.get('pruning_type')} {summary.get('pattern')} {summary.get('scope')} " \
                f"{pct(summary.get('target_sparsity'), 1)}"
        self._epochs = self._bar(total=epochs, desc=label, unit="epoch", leave=False)

    def trial_epoch(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        if self._epochs is not None:
            self._epochs.set_postfix_str(f"{metric_text(metrics)} sparsity {metrics.get('sparsity', 0):.4f}",
                                         refresh=False)
            self._epochs.update(1)

    def trial_on_front(self, number: int, on_front: bool) -> None:
        self._on_front = (number, on_front)

    def trial_done(self, number: int, state: str, values: tuple[float, float] | None, reason: str | None,
                   best: pareto.Point | None) -> None:
        on_front = getattr(self, "_on_front", (None, False)) == (number, True)
        if self._epochs is not None:
            self._epochs.close()
            self._epochs = None
        if best is not None:
            self._best = best_text(best)
        if self._trials is not None and state != "INTERRUPTED":
            self._trials.set_postfix_str(f"best {self._best}", refresh=False)
            self._trials.update(1)
        if state != "INTERRUPTED":
            self._done += 1
        count = f"{self._done}/{self._planned}" if self._planned else f"{self._done}"
        if values is not None:
            what = f"val {values[0]:.4f}, sparsity {values[1]:.4f}" + (", on the front" if on_front else "")
        else:
            what = (reason or "")[:160]
        self._say(f"trial {number} {state.lower()} [{count}]: {what}")

    def _say(self, text: str) -> None:
        """A line of its own, above the bars when they are drawn."""
        if self.enabled and (self._epochs is not None or self._trials is not None):
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            click.echo(text, err=True)

    def baseline_waiting(self, worker: str, silent_s: float, takeover_s: float) -> None:
        now = time.monotonic()
        if now - getattr(self, "_waiting_said", -1e9) < WAITING_REPEAT_S:
            return
        self._waiting_said = now
        self._say(f"waiting for {worker} to train the dense baseline (last heartbeat {silent_s:.0f}s ago; "
                  f"this worker takes it over after {takeover_s:.0f}s of silence)")

    def trial_lost(self, number: int, reason: str, retried: bool) -> None:
        self._say(f"trial {number}: {reason}; " + ("queued again" if retried else "not queued again (retries used up)"))

    def trials_waiting(self, running: Sequence[int]) -> None:
        numbers = ", ".join(str(n) for n in running)
        self._say(f"waiting for trial{'s' if len(running) > 1 else ''} {numbers} on other workers (a lost one is "
                  "run again here)")

    def close(self) -> None:
        for bar in (self._epochs, self._trials):
            if bar is not None:
                bar.close()
        self._epochs = self._trials = None


def counts_text(counts: Mapping[str, int]) -> str:
    parts = [f"{counts.get('COMPLETE', 0)} complete", f"{counts.get('PRUNED', 0)} stopped early",
             f"{counts.get('FAIL', 0)} failed"]
    if counts.get("INTERRUPTED"):
        parts.append(f"{counts['INTERRUPTED']} interrupted")
    if counts.get("LOST"):
        parts.append(f"{counts['LOST']} lost with their worker")
    if counts.get("RUNNING"):
        parts.append(f"{counts['RUNNING']} running")
    return ", ".join(parts)


def result_lines(result: StudyResult, rows: Sequence[Mapping[str, Any]], rule_text: str) -> list[str]:
    total = sum(result.counts.values())
    lines = [f"study {result.name!r}: {total} trials ({counts_text(result.counts)}); this run: "
             f"{result.trials_run} trials in {fmt_duration(result.seconds)}"]
    if result.dense:
        lines.append(f"dense baseline: {metric_text(result.dense)}, {metric_text(result.dense, 'test')}")
    if rows:
        lines.append(f"Pareto front ({len(rows)} trials, hypervolume {result.hypervolume:.4f}; * = exported):")
        lines += pareto_lines(rows)
    if result.selected is not None:
        lines.append(f"selected by {rule_text}: trial {result.selected.number}")
    elif result.selection_error:
        lines.append(f"no trial selected: {result.selection_error}")
    return lines
