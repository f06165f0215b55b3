"""The tracker base class (hooks that record nothing), trial-run handles, and parameter flattening."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: trial run statuses, as MLflow spells them
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


class TrialRun:
    """A handle on one trial's run; a writer working elsewhere may supply ``run_id`` on first use."""

    def __init__(self, number: int, run_id: str | None = None, *, pending: bool = False,
                 resolver: Callable[[], str | None] | None = None) -> None:
        self.number = number
        self._run_id = run_id
        self._resolver = resolver if pending else None

    @property
    def run_id(self) -> str | None:
        """The tracking run id (asked for once from the writer, which has long created it by then)."""
        if self._resolver is not None:
            self._run_id = self._resolver()
            self._resolver = None
        return self._run_id


class Tracker:
    """What the search records; every hook here records nothing (the baseline checkpoint stays a local file).

    Subclasses (:class:`~sparsesearch.tracking.mlflow.MlflowTracker`) override what they record; every method
    must be cheap for the caller (implementations may queue).
    """

    #: whether anything is recorded
    enabled: bool = False

    def open_study(self, study: str, *, experiment: str | None = None, spec: Mapping[str, Any], storage: str,
                   parent_run_id: str | None = None, uid: str | None = None) -> str | None:
        """Start (or, with ``parent_run_id``, reopen) the study's parent run in ``experiment`` (default: the
        study's name); returns its id. ``uid``, the study's unique id, finds a run another worker of the study
        opened. One tracker may record several studies, one after another."""
        return None

    def log_baseline(self, metrics: Mapping[str, float], curve: Sequence[Mapping[str, float]],
                     checkpoint: Path) -> str | None:
        """Record the dense baseline on the parent run; returns a URI :meth:`fetch` can read back."""
        return None

    def fetch(self, uri: str, dst_dir: Path) -> Path:
        """A local copy of an artifact recorded by :meth:`log_baseline`."""
        return Path(uri)

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> TrialRun:
        """Open the trial's run (nested under the study run) with its params."""
        return TrialRun(number, None)

    def log_epoch(self, run: TrialRun, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch metrics (step = epoch)."""

    def finish_trial(self, run: TrialRun, status: str, *, metrics: Mapping[str, float] | None = None,
                     layers: Sequence[Mapping[str, Any]] | None = None, recipe_yaml: str | None = None,
                     tags: Mapping[str, str] | None = None) -> None:
        """Final metrics, per-layer table, recipe, tags; then end the run with ``status``."""

    def set_pareto(self, membership: Mapping[str, bool]) -> None:
        """Tag trial runs (by run id) as on or off the Pareto front."""

    def tag_runs(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        """Set tags on runs (by run id): the selected trial, descriptions."""

    def close_lost_trial(self, number: int, run_id: str | None, reason: str) -> None:
        """End the run of a trial whose worker was lost (another worker's, found by ``run_id`` or by the
        trial-number tag) as FAILED with ``reason``, if it is still running."""

    def close_study(self, status: str | None, *, metrics: Mapping[str, float] | None = None,
                    tables: Mapping[str, str] | None = None, texts: Mapping[str, str] | None = None,
                    tags: Mapping[str, str] | None = None) -> None:
        """Summary metrics, tables (CSV text by file name), texts (by file name) and tags; then end the study
        run with ``status`` (None: leave it running, for other workers still at it)."""

    def flush(self) -> None:
        """Wait until everything queued is written."""

    def describe(self) -> str:
        """Where records go, for the console (credentials masked)."""
        return "tracking off"

    def close(self) -> None:
        """Write what is queued and release resources (the tracker is not used afterwards)."""


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as one level of dotted keys (``groups.0.schedule.end_step``)."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, (list, tuple)) and data and any(isinstance(v, (Mapping, list, tuple)) for v in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    elif data is not None:
        out[prefix] = list(data) if isinstance(data, tuple) else data
    return out


def sqlite_path(url: str | None) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory databases)."""
    if not url or not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: nothing to lock
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


@contextmanager
def file_lock(path: Path | None) -> Iterator[bool]:
    """An exclusive lock between the processes of this machine on ``path`` (``fcntl.flock``; the file is
    created and left in place). Yields False, without locking, when there is no path, the file cannot be
    created (a read-only directory: what is beside it will fail with its own error) or there is no fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    fd = None
    if path is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            fd = None
    if fd is None:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # closing the file releases the lock


def sqlite_lock(url: str | None) -> Any:
    """The lock beside a ``sqlite:///`` database (``FILE.db.lock``) that serialises creating its tables;
    a lock that does nothing for other URLs."""
    db = sqlite_path(url)
    return file_lock(db.with_name(db.name + ".lock") if db is not None and db.parent.is_dir() else None)
