"""Optuna storage: opening it (with heartbeats), finding studies, creating or joining one, counting trials.

The storage records a heartbeat for every running trial; a trial whose heartbeat stopped for longer than
the grace period (its worker was killed, or its machine lost) is *stale*. Whoever finds stale trials (any
worker, through ``optuna.storages.fail_stale_trials``) first writes the reason on each ("worker lost: no
heartbeat since ..."), then fails it and hands it to the storage's stale-trial callback, which queues a
retry (:mod:`sparsesearch.search.workers`). A lost trial that was retried does not count toward
``n_trials``; its retry does.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sparsesearch.errors import ConfigError, closest
from sparsesearch.records.state import TrialRecord
from sparsesearch.records.study import StudySpec
from sparsesearch.records.urls import mask_uri, with_driver
from sparsesearch.tracking.base import sqlite_lock

#: the stop reason of a trial the user interrupted (it does not count toward n_trials)
INTERRUPTED = "interrupted by the user"
#: how the stop reason of a trial whose worker was lost begins
LOST = "worker lost"
#: seconds a database server may take to accept a connection
CONNECT_TIMEOUT_S = 10


class HeartbeatStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, writing why on each stale trial before Optuna fails it."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        ids = super()._get_stale_trial_ids(study_id)
        if ids:
            self._write_reasons(ids)
        return ids

    def _write_reasons(self, trial_ids: list[int]) -> None:
        silent = self._silence(trial_ids)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        for trial_id in trial_ids:
            try:
                worker = TrialRecord.of(self.get_trial(trial_id).user_attrs).worker
                seconds = silent.get(trial_id)
                if seconds is None:
                    reason = f"{LOST}: no heartbeat for more than {grace} s"
                else:
                    since = datetime.now(timezone.utc) - timedelta(seconds=seconds)
                    reason = f"{LOST}: no heartbeat since {since:%Y-%m-%d %H:%M:%S} UTC ({seconds:.0f} s ago; " \
                             f"grace period {grace} s)"
                reason += f"; it ran on {worker}" if worker else ""
                self.set_trial_user_attr(trial_id, "stop_reason", reason)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker failed it first

    def _silence(self, trial_ids: list[int]) -> dict[int, float]:
        """Seconds since each trial's last heartbeat, on the database's clock."""
        import sqlalchemy as sa

        beats = sa.table("trial_heartbeats", sa.column("trial_id", sa.Integer), sa.column("heartbeat", sa.DateTime))
        try:
            with self.engine.connect() as conn:
                now = conn.execute(sa.select(sa.func.now())).scalar()
                rows = conn.execute(sa.select(beats.c.trial_id, beats.c.heartbeat)
                                    .where(beats.c.trial_id.in_(trial_ids))).all()
        except sa.exc.SQLAlchemyError:
            return {}
        if now is None:
            return {}
        now = now.replace(tzinfo=None)
        return {int(tid): max(0.0, (now - beat.replace(tzinfo=None)).total_seconds()) for tid, beat in rows if beat}


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; the search reports trials itself (a caller may quieten it further)."""
    if optuna.logging.get_verbosity() < optuna.logging.WARNING:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_storage(url: str, attempts: int = 30, *, heartbeat_interval: int | None = 5, grace_period: int | None = 20,
                 on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage with heartbeats (a dead worker's trial is failed with a reason, not left RUNNING;
    ``on_stale`` is called with each one this process fails).

    A database that does not answer fails within ``CONNECT_TIMEOUT_S`` seconds. Workers starting together
    on a new database race to create Optuna's tables: on SQLite one at a time creates them (a lock file
    beside the database), on a server the losers retry.
    """
    from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgres", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings(), sqlite_lock(url):  # heartbeats are "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return HeartbeatStorage(with_driver(url), engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                                        grace_period=grace_period, heartbeat_stale_trial_callback=on_stale)
        except ImportError:
            raise ConfigError("the database driver for this URL is not installed (for PostgreSQL: pip install "
                              "psycopg2-binary)", key="storage", value=mask_uri(url),
                              allowed="sqlite:///FILE.db, postgresql://USER@HOST/DB, mysql://...") from None
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"not a database URL: {exc}", key="storage", value=mask_uri(url),
                              allowed="sqlite:///FILE.db, postgresql://USER@HOST/DB, mysql://...") from None
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())  # another worker is creating the tables
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ConfigError(f"cannot open the study storage: {reason}", key="storage", value=mask_uri(url),
                              allowed="a reachable database URL such as sqlite:///sparsesearch.db") from None
    raise AssertionError("unreachable")  # pragma: no cover


def list_studies(storage_url: str) -> list[optuna.study.StudySummary]:
    quiet_optuna()
    return optuna.get_all_study_summaries(make_storage(storage_url), include_best_trial=False)


def load(name: str, storage_url: str) -> optuna.Study:
    """An existing study; ConfigError listing the storage's studies when there is none of that name."""
    quiet_optuna()
    storage = make_storage(storage_url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        raise ConfigError(f"no study named {name!r} in the storage", key="study", value=name,
                          allowed=", ".join(names) if names else "(the storage has no studies yet)",
                          suggestion=closest(name, names)) from None


def retried(trials: list[FrozenTrial]) -> set[int]:
    """The numbers of trials that were queued again (their worker was lost): Optuna's ``retry_history``."""
    return {int(n) for t in trials for n in t.system_attrs.get("retry_history", ())}


def is_lost(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because its worker was lost."""
    reason = TrialRecord.of(trial.user_attrs).stop_reason
    return trial.state == TrialState.FAIL and bool(reason) and str(reason).startswith(LOST)


def finished_count(trials: list[FrozenTrial]) -> int:
    """Trials that count toward ``n_trials``: complete, stopped early, or failed (but neither interrupted nor
    lost and retried: the retry counts instead)."""
    again = retried(trials)
    return sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and TrialRecord.of(t.user_attrs).stop_reason != INTERRUPTED
                   and t.number not in again))


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state; failed trials that were interrupted by the user are counted as INTERRUPTED, those
    whose worker was lost as LOST."""
    again = retried(trials)
    counts: dict[str, int] = {}
    for t in trials:
        name = t.state.name
        if t.state == TrialState.FAIL and TrialRecord.of(t.user_attrs).stop_reason == INTERRUPTED:
            name = "INTERRUPTED"
        elif t.state == TrialState.FAIL and (t.number in again or is_lost(t)):
            name = "LOST"
        counts[name] = counts.get(name, 0) + 1
    return counts


def open_or_create(spec: StudySpec, storage: optuna.storages.BaseStorage,
                   direction: str = "maximize") -> tuple[optuna.Study, bool]:
    """The study named in the spec: created (True) or, when it exists, joined (False).

    Its objectives are the task metric (in ``direction``) and sparsity (maximised).
    """
    directions = [direction, "maximize"]
    try:
        study = optuna.create_study(storage=storage, study_name=spec.name,
                                    directions=directions)  # type: ignore[arg-type]
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage)
        created = False
        if [d.name.lower() for d in study.directions] != directions:
            raise ConfigError(f"a study named {spec.name!r} exists in this storage with other objectives "
                              f"({', '.join(d.name.lower() for d in study.directions)}; this task's are "
                              f"{', '.join(directions)})", key="name", value=spec.name,
                              allowed="a new study name, or another storage") from None
    return study, created
