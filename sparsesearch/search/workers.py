"""Several workers on one study: liveness settings, lost trials and their retries, and exact trial counts.

Every running trial has a heartbeat in Optuna's RDB storage (:class:`Liveness`: every 5 s by default; a
trial silent for 20 s is stale). Any worker fails the stale trials it finds (``fail_stale_trials``, through
:func:`recover`) when it starts, before each trial and while it waits; the storage writes the reason on each
first (:class:`~sparsesearch.search.storage.HeartbeatStorage`). :class:`LostTrials`, the storage's
stale-trial callback, queues a retry of each with Optuna's ``RetryHeartbeatStaleTrialCallback`` (at most
``max_retry`` retries of one original; the original's number is in the retry's system attrs as
``failed_trial`` and in its ``retry_of`` user attr), ends the lost trial's tracking run as FAILED, and tells
the events.

:func:`slot_lock` makes "count the finished and running trials, then start one" one step between workers (a
PostgreSQL advisory lock, MySQL's GET_LOCK, a lock file beside a SQLite database), so a study ends with
exactly ``n_trials`` finished trials. :class:`Beat` keeps a study attribute fresh from a thread (the dense
baseline's and the tracking run's claims).
"""

from __future__ import annotations

import copy
import logging
import os
import random
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sparsesearch.errors import ConfigError
from sparsesearch.records.state import TrialRecord
from sparsesearch.search.events import Events
from sparsesearch.search.storage import LOST
from sparsesearch.tracking import Tracker
from sparsesearch.tracking.base import sqlite_lock

log = logging.getLogger(__name__)

#: environment variables for the liveness settings (tests and unusual clusters set them)
HEARTBEAT_ENV = "SPARSESEARCH_HEARTBEAT_INTERVAL"
GRACE_ENV = "SPARSESEARCH_GRACE_PERIOD"
RETRY_ENV = "SPARSESEARCH_MAX_RETRY"
#: PostgreSQL advisory-lock class of sparsesearch's slot locks ("SPRS")
_LOCK_CLASS = 0x53505253


@dataclass(frozen=True)
class Liveness:
    """How workers tell that another worker is gone.

    ``heartbeat_interval``: seconds between heartbeats of a running trial (and of the worker training the
    dense baseline); ``grace_period``: seconds of silence after which the trial is failed as lost (and the
    baseline taken over); ``max_retry``: how many times one lost trial is queued again.
    """

    heartbeat_interval: int = 5
    grace_period: int = 20
    max_retry: int = 2

    def __post_init__(self) -> None:
        if self.heartbeat_interval < 1:
            raise ConfigError("the heartbeat interval is whole seconds, at least 1", key=HEARTBEAT_ENV,
                              value=self.heartbeat_interval, allowed="an integer >= 1")
        if self.grace_period <= self.heartbeat_interval:
            raise ConfigError("the grace period must be longer than the heartbeat interval (a few heartbeats)",
                              key=GRACE_ENV, value=self.grace_period,
                              allowed=f"an integer > {self.heartbeat_interval}, e.g. {4 * self.heartbeat_interval}")
        if self.max_retry < 0:
            raise ConfigError("the number of retries cannot be negative", key=RETRY_ENV, value=self.max_retry,
                              allowed="an integer >= 0")

    @classmethod
    def from_env(cls, environ: Any = None) -> Liveness:
        """The defaults, changed by ``SPARSESEARCH_HEARTBEAT_INTERVAL``, ``SPARSESEARCH_GRACE_PERIOD`` and
        ``SPARSESEARCH_MAX_RETRY``."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for name, key in (("heartbeat_interval", HEARTBEAT_ENV), ("grace_period", GRACE_ENV),
                          ("max_retry", RETRY_ENV)):
            text = env.get(key)
            if text:
                try:
                    values[name] = int(text)
                except ValueError:
                    raise ConfigError("expected a whole number of seconds (or retries)", key=key, value=text,
                                      allowed="an integer") from None
        if "grace_period" not in values and "heartbeat_interval" in values:
            values["grace_period"] = 4 * values["heartbeat_interval"]
        return cls(**values)


class LostTrials:
    """The storage's stale-trial callback: queue a retry, end the lost trial's tracking run, tell the events.

    Runs in whichever worker failed the trial; ``tracker`` and ``events`` are that worker's (set once it
    has them).
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry
        self.tracker: Tracker = Tracker()
        self.events: Events = Events()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        record = TrialRecord.of(trial.user_attrs)
        reason = record.stop_reason or f"{LOST}: no heartbeat"
        history = [*trial.system_attrs.get("retry_history", ()), trial.number]
        again = copy.copy(trial)  # the retry keeps the params; of the user attrs only what says where it came from
        again.user_attrs = {**({"warm_start": record.warm_start} if record.warm_start else {}),
                            "retry_of": int(trial.system_attrs.get("failed_trial", trial.number))}
        retried = len(history) <= self.max_retry
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._retry(study, again)
        except Exception as exc:  # noqa: BLE001 - the trial stays failed; the study goes on without its retry
            log.warning("trial %d: cannot queue its retry: %s", trial.number, exc)
            retried = False
        log.warning("trial %d: %s; %s", trial.number, reason,
                    "queued again" if retried else f"not queued again (retried {self.max_retry} times already)")
        try:
            self.tracker.close_lost_trial(trial.number, record.run_id, reason)
            self.events.trial_lost(trial.number, reason, retried)
        except Exception as exc:  # noqa: BLE001 - reporting must not stop the recovery
            log.warning("trial %d: %s", trial.number, exc)


def recover(study: optuna.Study) -> None:
    """Fail the study's stale trials now; :class:`LostTrials` queues their retries. A storage hiccup is
    logged, not raised (the next write reports a storage that is really gone)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        log.warning("cannot check for lost trials: %s", exc)


@contextmanager
def trial_heartbeat(storage: Any, trial_id: int, interval: int | None) -> Iterator[None]:
    """Record ``trial_id``'s heartbeat now and every ``interval`` seconds until the block ends."""
    record = getattr(storage, "record_heartbeat", None)
    if not interval or record is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                record(trial_id)
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal; many are
                log.warning("cannot record the heartbeat of the running trial: %s", exc)

    record(trial_id)  # at once: a trial with no heartbeat at all is never found stale
    thread = threading.Thread(target=beat, name="sparsesearch-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


class Beat:
    """Calls ``beat()`` every ``interval`` seconds from a thread while the block runs (study-attribute
    heartbeats: the baseline's claim, the tracking run's claim)."""

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sparsesearch-beat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal; many are
                log.warning("cannot record a heartbeat: %s", exc)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@contextmanager
def slot_lock(storage: Any, study_name: str, timeout: float = 60.0) -> Iterator[bool]:
    """Hold the study's slot lock between workers (yields False when it could not be had in ``timeout``
    seconds, or the database has no such lock: then two workers may overshoot ``n_trials`` by one)."""
    engine = getattr(storage, "engine", None)
    dialect = engine.dialect.name if engine is not None else ""
    if engine is None:
        yield False
        return
    if dialect == "sqlite":
        with sqlite_lock(str(engine.url)) as held:
            yield held
        return
    if dialect not in ("postgresql", "mysql"):
        yield False
        return
    import sqlalchemy as sa

    key = zlib.crc32(study_name.encode()) & 0x7FFFFFFF
    conn = engine.connect()
    held = False
    try:
        deadline = time.monotonic() + timeout
        while True:
            if dialect == "postgresql":
                held = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:a, :b)"),
                                         {"a": _LOCK_CLASS, "b": key}).scalar())
            else:
                held = conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": f"sparsesearch-{key}"}).scalar() == 1
            conn.commit()
            if held or time.monotonic() > deadline:
                break
            time.sleep(0.02 + 0.03 * random.random())
        if not held:
            log.warning("the study's slot lock was busy for %.0f s; starting a trial without it", timeout)
        yield held
    finally:
        try:
            if held:
                unlock = "SELECT pg_advisory_unlock(:a, :b)" if dialect == "postgresql" else "SELECT RELEASE_LOCK(:n)"
                conn.execute(sa.text(unlock), {"a": _LOCK_CLASS, "b": key, "n": f"sparsesearch-{key}"})
                conn.commit()
        except Exception:  # noqa: BLE001 - a dropped connection released the lock with it
            conn.invalidate()
        conn.close()


__all__ = ["Beat", "Liveness", "LostTrials", "recover", "slot_lock", "trial_heartbeat"]
