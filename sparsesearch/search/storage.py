"""Optuna storage: opening it (with heartbeats), finding studies, creating or joining one, counting trials."""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sparsesearch.errors import ConfigError, closest
from sparsesearch.records.state import TrialRecord
from sparsesearch.records.study import StudySpec
from sparsesearch.records.urls import mask_uri, with_driver

#: the stop reason of a trial the user interrupted (it does not count toward n_trials)
INTERRUPTED = "interrupted by the user"


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; the search reports trials itself (a caller may quieten it further)."""
    if optuna.logging.get_verbosity() < optuna.logging.WARNING:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_storage(url: str, attempts: int = 30) -> optuna.storages.BaseStorage:
    """An Optuna RDB storage with heartbeats (a crashed worker's trial is marked FAIL, not left RUNNING).

    Workers starting together on a new database race to create Optuna's tables; the losers retry.
    """
    from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and exactly what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(with_driver(url), engine_kwargs=kwargs, heartbeat_interval=30,
                                                  grace_period=120)
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


def finished_count(trials: list[FrozenTrial]) -> int:
    """Trials that count toward ``n_trials``: complete, stopped early, or failed (but not interrupted)."""
    return sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and TrialRecord.of(t.user_attrs).stop_reason != INTERRUPTED))


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state; failed trials that were interrupted by the user are counted as INTERRUPTED."""
    counts: dict[str, int] = {}
    for t in trials:
        name = t.state.name
        if t.state == TrialState.FAIL and TrialRecord.of(t.user_attrs).stop_reason == INTERRUPTED:
            name = "INTERRUPTED"
        counts[name] = counts.get(name, 0) + 1
    return counts


def open_or_create(spec: StudySpec, storage: optuna.storages.BaseStorage,
                   direction: str = "maximize") -> tuple[optuna.Study, bool]:
    """The study named in the spec: created (True) or, when it exists, joined (False).

    Its objectives are the task metric (in ``direction``) and sparsity (maximised).
    """
    directions = [direction, "maximize"]
    try:
        study = optuna.create_study(storage=storage, study_name=spec.name, directions=directions)
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
