"""Running a study: create or join it, make sure the dense baseline exists once, open the tracking run, run
trials until the study has ``n_trials`` finished trials (all workers together) or ``timeout`` passes.

``run_study(spec)`` creates the Optuna study (or joins the existing one of the same name: that is how a
study resumes and how several workers share one). Ctrl-C ends the running trial as interrupted (FAIL in
Optuna, KILLED in MLflow), closes the study run and returns with ``interrupted=True``.

What the study stores on itself (Optuna user attributes) is described by
:class:`sparsesearch.records.state.StudyState`; what each trial stores by
:class:`sparsesearch.records.state.TrialState`.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sparsesearch.records.state import StudyState, TrialRecord
from sparsesearch.records.study import StudySpec
from sparsesearch.records.urls import mask_uri
from sparsesearch.search import pareto
from sparsesearch.search.baseline import default_workdir, ensure_baseline, worker_id
from sparsesearch.search.context import Context, build_context, set_threads
from sparsesearch.search.events import Events, StudyResult
from sparsesearch.search.export import recipe_for_trial, recipe_text
from sparsesearch.search.objective import Objective, TrialFailed
from sparsesearch.search.storage import finished_count, make_storage, open_or_create, quiet_optuna, state_counts
from sparsesearch.tracking import FINISHED, KILLED, Tracker, flatten, make_tracker


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
        now = {TrialRecord.of(t.user_attrs).run_id for t in front} - {None}
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
              source: str | None = None) -> StudyResult:
    """Run (or resume, or join) the study described by ``spec``. See the module docstring.

    ``task`` (a task object or factory given in Python, or a reference the user named) replaces the spec's;
    a spec naming a ``module:callable`` task runs that code only with ``trust_task`` (``source``, the spec's
    file, is named in the refusal).
    """
    started = time.perf_counter()
    events = events or Events()
    quiet_optuna()
    messages: list[str] = []
    ctx = build_context(spec, task=task, trust_task=trust_task, source=source)  # validates the spec against the task's model before anything starts
    own_tracker = tracker is None
    tracker = tracker if tracker is not None else make_tracker(spec.tracking.uri)
    try:
        return _run(spec, ctx, events, tracker, workdir, messages, started)
    finally:
        if own_tracker:
            tracker.close()


def _run(spec: StudySpec, ctx: Context, events: Events, tracker: Tracker, workdir: Path | None, messages: list[str],
         started: float) -> StudyResult:
    set_threads(spec.num_threads, ctx.task)
    storage = make_storage(spec.storage)
    metric = ctx.metric
    study, created = open_or_create(spec, storage, metric.direction)
    spec_data = spec.public_dict()
    if created:
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
    parent_id = _open_tracking(study, spec, tracker, created)
    workdir = workdir or default_workdir(spec)
    trials_run = {"n": 0}
    try:
        ensure_baseline(study, ctx, tracker, events, workdir)
        _optimize(study, spec, ctx, tracker, events, created, trials_run, messages)
        interrupted = False
    except KeyboardInterrupt:  # Ctrl-C: the running trial has been marked; close the study run cleanly
        interrupted = True
    return _summarise(study, ctx, tracker, spec, interrupted, trials_run["n"], started, parent_id, messages)


def _optimize(study: optuna.Study, spec: StudySpec, ctx: Context, tracker: Tracker, events: Events, created: bool,
              trials_run: dict[str, int], messages: list[str]) -> None:
    """Run trials until the study has ``n_trials`` finished trials (all workers) or the timeout passes."""
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
    objective = Objective(study, ctx, tracker, events)
    tags = _Pareto(tracker)
    tags.update(study)
    failures = {"in_a_row": 0}

    def after_trial(st: optuna.Study, frozen: FrozenTrial) -> None:
        trials_run["n"] += 1
        front = tags.update(st) if frozen.state == TrialState.COMPLETE else pareto.front_trials(st)
        if frozen.state == TrialState.COMPLETE:
            events.trial_done(frozen.number, "COMPLETE", tuple(frozen.values), None, _best(front, ctx))
        failures["in_a_row"] = failures["in_a_row"] + 1 if frozen.state == TrialState.FAIL else 0
        if failures["in_a_row"] >= 3:
            messages.append("stopped after 3 failed trials in a row; see the log above (-v) for the errors")
            st.stop()
        if target is not None:
            trials = st.get_trials(deepcopy=False)
            running = sum(1 for t in trials if t.state == TrialState.RUNNING)
            if finished_count(trials) + running >= target:
                st.stop()

    study.optimize(objective, n_trials=None, timeout=spec.timeout, catch=(TrialFailed,), callbacks=[after_trial],
                   gc_after_trial=False, show_progress_bar=False)


def _open_tracking(study: optuna.Study, spec: StudySpec, tracker: Tracker, created: bool) -> str | None:
    if not tracker.enabled:
        return None
    key = mask_uri(spec.tracking.uri) or ""
    for _ in range(20 if not created else 1):
        info = StudyState.of(study.user_attrs).tracking.get(key)
        if info or created:
            break
        time.sleep(0.5)  # the worker that created the study is opening its run
    info = StudyState.of(study.user_attrs).tracking.get(key)
    parent = tracker.open_study(study.study_name, experiment=spec.experiment, spec=spec.public_dict(),
                                storage=spec.storage, parent_run_id=info.get("parent_run_id") if info else None)
    if parent and (not info or info.get("parent_run_id") != parent):
        all_info = dict(StudyState.of(study.user_attrs).tracking)
        all_info[key] = {"parent_run_id": parent, "experiment": spec.experiment}
        study.set_user_attr("tracking", all_info)
    return parent

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


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv

    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def _summarise(study: optuna.Study, ctx: Context, tracker: Tracker, spec: StudySpec, interrupted: bool,
               trials_run: int, started: float, parent_id: str | None, messages: list[str]) -> StudyResult:
    trials = study.get_trials(deepcopy=False)
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
        others_running = counts.get("RUNNING", 0) > 0  # other workers still at it: the last one out ends the run
        tracker.close_study(
            None if others_running else KILLED if interrupted else FINISHED,
            metrics={"hypervolume": hv, "front_size": len(front), "trials_complete": counts.get("COMPLETE", 0),
                     "trials_pruned": counts.get("PRUNED", 0), "trials_failed": counts.get("FAIL", 0)},
            tables={"pareto.csv": _csv(pareto_table(study, front, ctx.dense, selected))},
            texts=texts,
            tags={"sparsesearch.selected_trial": str(selected.number) if selected else "none",
                  "sparsesearch.interrupted": str(interrupted).lower()})
    return StudyResult(
        name=study.study_name, storage=mask_uri(spec.storage) or "", trials_run=trials_run, counts=state_counts(trials),
        interrupted=interrupted, front=pts, hypervolume=hv, dense=ctx.dense, selected=selected,
        selection_error=error, seconds=time.perf_counter() - started, parent_run_id=parent_id,
        tracking=tracker.describe(), messages=messages)


__all__ = ["StudyResult", "make_sampler", "pareto_table", "run_study"]
