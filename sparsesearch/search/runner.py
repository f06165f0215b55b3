"""Running a study: create or join it, make sure the dense baseline exists once, open the tracking run, run
trials until the study has ``n_trials`` finished trials (all workers together) or ``timeout`` passes.

``run_study(spec)`` creates the Optuna study (or joins the existing one of the same name: that is how a
study resumes and how several workers share one). Ctrl-C or SIGTERM ends the running trial as interrupted
(FAIL in Optuna, KILLED in MLflow), closes the study run and returns with ``interrupted=True``.

Several workers: each trial has a heartbeat; trials of a worker that died are failed with the reason and
queued again by whichever worker finds them (:mod:`~sparsesearch.search.workers`), and each worker starts a
trial only while the finished and running trials leave room for it (under a lock shared by the workers),
so the study ends with exactly ``n_trials`` finished trials; when every remaining trial is running
elsewhere a worker waits for them, to run the retries of any that turn out lost. One worker opens the
study's tracking run (claimed in the study's attributes), the others join it. An error that stops the
worker (a storage or disk that fails, a dense baseline that fails) ends its trial and runs as FAILED and
raises a :class:`~sparsesearch.errors.SparseSearchError` with one line saying what failed.

What the study stores on itself (Optuna user attributes) is described by
:class:`sparsesearch.records.state.StudyState`; what each trial stores by
:class:`sparsesearch.records.state.TrialState`.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sparsesearch.errors import SparseSearchError
from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.records.study import StudySpec
from sparsesearch.records.urls import mask_text, mask_uri
from sparsesearch.search import pareto
from sparsesearch.search.baseline import default_workdir, ensure_baseline, worker_id
from sparsesearch.search.context import Context, build_context, set_threads
from sparsesearch.search.events import Events, StudyResult
from sparsesearch.search.export import recipe_for_trial, recipe_text
from sparsesearch.search.objective import Objective, TrialFailed
from sparsesearch.search.signals import StopSignals
from sparsesearch.search.storage import (
    INTERRUPTED,
    HeartbeatStorage,
    finished_count,
    is_lost,
    make_storage,
    open_or_create,
    quiet_optuna,
    state_counts,
)
from sparsesearch.search.tables import pareto_table
from sparsesearch.search.workers import Beat, Liveness, LostTrials, recover, slot_lock, trial_heartbeat
from sparsesearch.tracking import FAILED, FINISHED, KILLED, Tracker, flatten, make_tracker

log = logging.getLogger(__name__)


class StudyFailed(SparseSearchError):
    """Something this worker depends on failed (the study storage, the disk); the message says what."""


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.n_startup_trials, multivariate=True,
                                      group=False, constant_liar=True)



class _Pareto:
    """Keeps the trials' Pareto tags in the tracker in step with the front."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.members: set[str] = set()

    def update(self, study: optuna.Study) -> list[FrozenTrial]:
        front = pareto.front_trials(study)
        now = {rid for t in front if (rid := TrialRecord.of(t.user_attrs).run_id) is not None}
        changes = {rid: True for rid in now - self.members} | {rid: False for rid in self.members - now}
        if changes and self.tracker.enabled:
            self.tracker.set_pareto(changes)
        self.members = now
        return front


def _best(front: list[FrozenTrial], ctx: Context) -> pareto.Point | None:
    pts = pareto.points(front, ctx.metric.maximize)
    try:
        return pareto.select(pts, ctx.spec.export, ctx.dense_value, metric=ctx.metric.name)
    except pareto.NoTrialSelected:
        return max(pts, key=lambda p: p.score) if pts else None


def _spec_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    if not old:
        return []
    ignore = ("n_trials", "timeout", "storage", "tracking", "export", "num_threads")
    a = {k: v for k, v in flatten(dict(old)).items() if k.split(".")[0] not in ignore}
    b = {k: v for k, v in flatten(dict(new)).items() if k.split(".")[0] not in ignore}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def run_study(spec: StudySpec, *, events: Events | None = None, tracker: Tracker | None = None,
              workdir: Path | None = None, task: Any = None, trust_task: bool = False,
              source: str | None = None, liveness: Liveness | None = None) -> StudyResult:
    """Run (or resume, or join) the study described by ``spec``. See the module docstring.

    ``task`` (a task object or factory given in Python, or a reference the user named) replaces the spec's;
    a spec naming a ``module:callable`` task runs that code only with ``trust_task`` (``source``, the spec's
    file, is named in the refusal). ``liveness`` sets the heartbeats (default: :meth:`Liveness.from_env`).
    """
    started = time.perf_counter()
    events = events or Events()
    quiet_optuna()
    messages: list[str] = []
    liveness = liveness or Liveness.from_env()
    with StopSignals() as stop:  # SIGTERM is Ctrl-C; neither lands in the middle of a write
        ctx = build_context(spec, task=task, trust_task=trust_task, source=source)  # validates the spec against the task's model before anything starts
        lost = LostTrials(liveness.max_retry)
        storage = make_storage(spec.storage, heartbeat_interval=liveness.heartbeat_interval,
                               grace_period=liveness.grace_period, on_stale=lost)  # an unreachable one fails here
        own_tracker = tracker is None
        if tracker is None:
            tracker = make_tracker(spec.tracking.uri, artifact_root=spec.tracking.artifact_root)
        try:
            return _run(spec, ctx, events, tracker, storage, lost, workdir, messages, started, liveness, stop)
        finally:
            if own_tracker:
                tracker.close()


def _run(spec: StudySpec, ctx: Context, events: Events, tracker: Tracker, storage: Any, lost: LostTrials,
         workdir: Path | None, messages: list[str], started: float, liveness: Liveness,
         stop: StopSignals) -> StudyResult:
    set_threads(spec.num_threads, ctx.task)
    metric = ctx.metric
    study, created = open_or_create(spec, storage, metric.direction)
    spec_data = spec.public_dict()
    if created:
        study.set_user_attr("uid", uuid.uuid4().hex)  # tags the study's tracking runs, whoever opens them
        study.set_user_attr("objective", {"name": metric.name, "direction": metric.direction})
        with warnings.catch_warnings():  # "experimental" in Optuna, and exactly what its plots need
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([f"val_{metric.name}", "sparsity"])  # real names in Optuna's plots
        study.set_user_attr("spec", spec_data)
        study.set_user_attr("steps_per_epoch", ctx.steps_per_epoch)
        study.set_user_attr("created_by", worker_id())
        for params, label in ctx.space.warm_start(spec.warm_start):
            study.enqueue_trial(params, user_attrs={"warm_start": label})
    else:
        changed = _spec_changes(StudyState.of(study.user_attrs).spec, spec_data)
        if changed:
            messages.append("the spec differs from the one this study started with (" + ", ".join(changed[:8])
                            + (", ..." if len(changed) > 8 else "") + "); new trials use the new spec")
    lost.tracker, lost.events = tracker, events  # lost trials this worker finds end their runs here
    workdir = workdir or default_workdir(spec)
    trials_run = {"n": 0}
    parent_id: str | None = None
    interrupted = False
    try:
        parent_id = _open_tracking(study, spec, tracker, liveness, stop)
        ensure_baseline(study, ctx, tracker, events, workdir, liveness=liveness, stop=stop)
        _optimize(study, storage, spec, ctx, tracker, events, created, trials_run, messages, liveness, stop)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the running trial has been marked; close the study run cleanly
        interrupted = True
    except Exception as exc:
        raise _stopped(study, storage, spec, tracker, exc, liveness) from exc
    return _summarise(study, storage, ctx, tracker, spec, interrupted, trials_run["n"], started, parent_id, messages,
                      stop, liveness)


def _stopped(study: optuna.Study, storage: Any, spec: StudySpec, tracker: Tracker, exc: Exception,
             liveness: Liveness) -> SparseSearchError:
    """An error stopped this worker: end the study run as FAILED (unless other workers are still at it) and
    return the error to raise, in one line."""
    message = exc if isinstance(exc, SparseSearchError) else StudyFailed(failure_text(exc, spec.storage))
    log.debug("the study stopped", exc_info=exc)
    if tracker.enabled:
        try:
            others = _others_running(study, storage, liveness)
        except Exception:  # noqa: BLE001 - the storage may be what failed
            others = False
        try:
            tracker.close_study(None if others else FAILED, tags={"sparsesearch.error": mask_text(str(message))[:5000]})
        except Exception as close_exc:  # noqa: BLE001 - already on the way out with an error
            log.warning("cannot close the study's tracking run: %s", close_exc)
    return message


def _study_note(name: str, ctx: Context, counts: dict[str, int], pts: list[pareto.Point], hv: float,
                selected: pareto.Point | None, error: str | None) -> str:
    """The study run's description (MLflow shows it on the run's overview)."""
    metric = ctx.metric
    dense = ctx.dense_value
    lines = [f"Sparsity search **{name}** on task `{ctx.spec.task}`: val {metric.name} "
             f"({'higher' if metric.maximize else 'lower'} is better) against sparsity.",
             f"{sum(counts.values())} trials: {counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} stopped "
             f"early, {counts.get('FAIL', 0)} failed. Dense baseline: val {metric.name} "
             + (f"{dense:.4f}." if dense is not None else "not measured yet."),
             f"Pareto front: {len(pts)} trials, hypervolume {hv:.4f} (trial runs tagged sparsesearch.pareto=true)."]
    if selected is not None:
        lines.append(f"Selected: trial {selected.number}, val {metric.name} {selected.value:.4f} at sparsity "
                     f"{selected.sparsity:.4f} (tag sparsesearch.selected=true); its recipe is recipe.yaml here.")
    elif error:
        lines.append(f"No trial selected: {error}")
    lines.append("The report (report.html, figures/) shows the front, the per-layer profiles and the trajectories.")
    return "\n\n".join(lines)


def failure_text(exc: BaseException, storage_url: str) -> str:
    """One line for an error that stopped a worker: what failed, and why."""
    from sqlalchemy.exc import SQLAlchemyError

    cause: BaseException = exc
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        cause = exc.__cause__
    if isinstance(cause, SQLAlchemyError):
        lines = str(getattr(cause, "orig", None) or cause).strip().splitlines()
        return mask_text(f"the study storage {mask_uri(storage_url)} failed: {lines[0] if lines else type(cause).__name__}")
    if isinstance(cause, OSError):
        where = f": {cause.filename}" if cause.filename else ""
        return mask_text(f"{cause.strerror or cause}{where}")
    return mask_text(f"{type(exc).__name__}: {exc} (run with -vv for the traceback)")


def _others_running(study: optuna.Study, storage: Any, liveness: Liveness) -> bool:
    """Whether another worker is running a trial of the study now (a recent heartbeat: a trial of a worker
    that died does not keep the study's run open)."""
    running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    if not running or not isinstance(storage, HeartbeatStorage):
        return bool(running)
    ids = [t._trial_id for t in running]
    silent = storage._silence(ids)
    return any(silent.get(i, 0.0) <= 2 * liveness.heartbeat_interval + 1 for i in ids)


def _optimize(study: optuna.Study, storage: Any, spec: StudySpec, ctx: Context, tracker: Tracker, events: Events,
              created: bool, trials_run: dict[str, int], messages: list[str], liveness: Liveness,
              stop: StopSignals) -> None:
    """Run trials until the study has ``n_trials`` finished trials (all workers) or the timeout passes."""
    recover(study)  # what workers that died left running
    existing = study.get_trials(deepcopy=False)
    # a joining or resuming worker must not replay the first worker's random start-up samples
    base = spec.seed_of("sampler")
    seed = base if created or not existing else base + 7919 * len(existing) + os.getpid() % 7919
    study.sampler = make_sampler(spec, seed)
    target = spec.n_trials
    done_before = finished_count(existing)
    if target is not None and done_before >= target:
        messages.append(f"the study already has {done_before} finished trials (n_trials: {target}); "
                        f"pass --n-trials {done_before + 10} to add more")
        return
    events.trials_planned(done_before, target)
    objective = Objective(study, ctx, tracker, events, stop, worker_id())
    tags = _Pareto(tracker)
    tags.update(study)
    in_a_row = 0
    deadline = time.monotonic() + spec.timeout if spec.timeout else None
    waiting_for: tuple[int, ...] = ()
    while True:
        stop.check()
        if deadline is not None and time.monotonic() >= deadline:
            break
        trial, running = _next_trial(study, storage, target)
        if trial is None and not running:
            break  # the study has its n_trials
        if trial is None:  # every remaining trial runs elsewhere: wait for them (or for their retries)
            if running != waiting_for:
                log.info("waiting for trial(s) %s of other workers to finish", ", ".join(map(str, running)))
                events.trials_waiting(running)
                waiting_for = running
            with stop.armed():
                time.sleep(min(1.0, float(liveness.heartbeat_interval)))
            continue
        waiting_for = ()
        frozen = _run_trial(study, storage, trial, objective, liveness)
        trials_run["n"] += 1
        if frozen.state == TrialState.COMPLETE:
            front = tags.update(study)
            events.trial_on_front(frozen.number, any(t.number == frozen.number for t in front))
            events.trial_done(frozen.number, "COMPLETE", tuple(frozen.values), None, _best(front, ctx))
        in_a_row = in_a_row + 1 if frozen.state == TrialState.FAIL else 0
        if in_a_row >= 3:
            messages.append("stopped after 3 failed trials in a row; see the log above (-v) for the errors")
            break


def _next_trial(study: optuna.Study, storage: Any, target: int | None) -> tuple[optuna.Trial | None, tuple[int, ...]]:
    """The next trial to run here (a queued retry first), or None with the trials running elsewhere that
    fill the study's remaining slots (none: the study is done). Counting and starting are one step between
    workers (the slot lock), so no two workers take the last slot."""
    with slot_lock(storage, study.study_name):
        recover(study)
        trials = study.get_trials(deepcopy=False)
        running = tuple(t.number for t in trials if t.state == TrialState.RUNNING)
        if target is not None:
            done = finished_count(trials)
            if done >= target:
                return None, ()
            if done + len(running) >= target:
                return None, running
        with warnings.catch_warnings():  # Optuna warns that heartbeats are meant for optimize(): here they are ours
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            return study.ask(), running


def _run_trial(study: optuna.Study, storage: Any, trial: optuna.Trial, objective: Objective,
               liveness: Liveness) -> FrozenTrial:
    """Run one trial with its heartbeat and record how it ended (a trial another worker already failed as
    lost stays as it is)."""
    state: TrialState | None = None
    values: tuple[float, float] | None = None
    try:
        with trial_heartbeat(storage, trial._trial_id, liveness.heartbeat_interval):
            try:
                values = objective(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except TrialFailed:
                state = TrialState.FAIL
    except BaseException:  # interrupted, or this worker cannot go on: the trial ends here, as failed
        try:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except Exception as exc:  # noqa: BLE001 - the storage may be what failed; the error says so
            log.warning("cannot record trial %d as failed: %s", trial.number, exc)
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a NaN value is recorded as a failed trial; we report it ourselves
        return study.tell(trial, values if state is None else None, state=state, skip_if_finished=True)


def _open_tracking(study: optuna.Study, spec: StudySpec, tracker: Tracker, liveness: Liveness,
                   stop: StopSignals) -> str | None:
    """The study's tracking run: opened by one worker (claimed in the study's attributes, with a heartbeat
    while it opens it), joined by the others, whatever order they start in."""
    if not tracker.enabled:
        return None
    key = mask_uri(spec.tracking.uri) or ""
    me = worker_id()
    owner = False
    while True:
        state = StudyState.of(study.user_attrs)
        info = state.tracking.get(key)
        if info and info.get("parent_run_id"):
            break
        claim = state.tracking_claim.get(key) or {}
        if claim.get("worker") not in (None, me) and time.time() - float(claim.get("at") or 0) < liveness.grace_period:
            with stop.armed():
                time.sleep(0.3)  # another worker is opening the study's run
            continue
        _claim_tracking(study, key, me)
        with stop.armed():
            time.sleep(0.3)
        if (StudyState.of(study.user_attrs).tracking_claim.get(key) or {}).get("worker") == me:
            owner, info = True, StudyState.of(study.user_attrs).tracking.get(key)
            break
    uid = StudyState.of(study.user_attrs).uid
    if owner and not uid:  # a study from before unique ids
        uid = uuid.uuid4().hex
        study.set_user_attr("uid", uid)
    with Beat(lambda: _claim_tracking(study, key, me), liveness.heartbeat_interval) if owner else nullcontext():
        parent = tracker.open_study(study.study_name, experiment=spec.experiment, spec=spec.public_dict(),
                                    storage=spec.storage, parent_run_id=info.get("parent_run_id") if info else None,
                                    uid=uid)
    if parent and (not info or info.get("parent_run_id") != parent):
        all_info = dict(StudyState.of(study.user_attrs).tracking)
        all_info[key] = {"parent_run_id": parent, "experiment": spec.experiment}
        study.set_user_attr("tracking", all_info)
    return parent


def _claim_tracking(study: optuna.Study, key: str, me: str) -> None:
    claims = dict(StudyState.of(study.user_attrs).tracking_claim)
    claims[key] = {"worker": me, "at": time.time()}
    study.set_user_attr("tracking_claim", claims)

def _csv(rows: list[dict[str, Any]]) -> str:
    import csv

    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _first_failure(trials: list[FrozenTrial]) -> str | None:
    """When no trial of the study completed and some failed: the first failure, for the error message."""
    if any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials):
        return None
    failed = [t for t in trials if t.state == TrialState.FAIL and not is_lost(t)
              and TrialRecord.of(t.user_attrs).stop_reason != INTERRUPTED]
    if not failed:
        return None
    first = min(failed, key=lambda t: t.number)
    reason = TrialRecord.of(first.user_attrs).stop_reason or "no reason recorded"
    return f"every trial failed; the first, trial {first.number}: {reason}"


def _summarise(study: optuna.Study, storage: Any, ctx: Context, tracker: Tracker, spec: StudySpec, interrupted: bool,
               trials_run: int, started: float, parent_id: str | None, messages: list[str], stop: StopSignals,
               liveness: Liveness) -> StudyResult:
    trials = study.get_trials(deepcopy=False)
    failure = None if interrupted else _first_failure(trials)
    front = pareto.front_trials(study)
    pts = pareto.points(front, ctx.metric.maximize)
    hv = pareto.study_hypervolume(pts, spec.public_dict(), ctx.dense_value)
    selected, error = None, None
    try:
        selected = pareto.select(pts, spec.export, ctx.dense_value, metric=ctx.metric.name)
    except pareto.NoTrialSelected as exc:
        error = str(exc)
    if tracker.enabled:
        texts = {}
        if selected is not None:
            chosen = next(t for t in front if t.number == selected.number)
            texts["recipe.yaml"] = recipe_text(recipe_for_trial(study, chosen, spec_data=spec.public_dict()))
        counts = state_counts(trials)
        others_running = _others_running(study, storage, liveness)  # other workers still at it: the last one out ends the run
        tags = {"sparsesearch.selected_trial": str(selected.number) if selected else "none",
                "sparsesearch.interrupted": str(interrupted).lower(),
                "mlflow.note.content": _study_note(study.study_name, ctx, counts, pts, hv, selected, error)}
        chosen_run = TrialRecord.of(chosen.user_attrs).run_id if selected is not None else None
        if chosen_run and selected is not None:
            tracker.tag_runs({chosen_run: {
                "sparsesearch.selected": "true",
                "mlflow.note.content": f"The trial `sparsesearch export` picks ({spec.export.rule}): val "
                                       f"{ctx.metric.name} {selected.value:.4f} at sparsity {selected.sparsity:.4f}. "
                                       "Its recipe is this run's recipe.yaml."}})
        if failure:
            tags["sparsesearch.error"] = failure[:5000]
        tracker.close_study(
            None if others_running else KILLED if interrupted else FAILED if failure else FINISHED,
            metrics={"hypervolume": hv, "front_size": len(front), "trials_complete": counts.get("COMPLETE", 0),
                     "trials_pruned": counts.get("PRUNED", 0), "trials_failed": counts.get("FAIL", 0),
                     "trials_lost": counts.get("LOST", 0)},
            tables={"pareto.csv": _csv(pareto_table(study, front, ctx.dense, selected))},
            texts=texts, tags=tags)
    return StudyResult(
        name=study.study_name, storage=mask_uri(spec.storage) or "", trials_run=trials_run, counts=state_counts(trials),
        interrupted=interrupted, front=pts, hypervolume=hv, dense=ctx.dense, selected=selected,
        selection_error=error, seconds=time.perf_counter() - started, parent_run_id=parent_id,
        tracking=tracker.describe(), messages=messages, stopped_by=stop.name if interrupted else None, error=failure)


__all__ = ["StudyFailed", "StudyResult", "failure_text", "make_sampler", "pareto_table", "run_study"]
