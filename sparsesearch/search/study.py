"""Running a study: storage, sampler, the dense baseline, the trial objective, resume and interruption.

``run_study(spec)`` creates the Optuna study (or joins the existing one of the same name: that is how a
study resumes and how several workers share one), makes sure the dense baseline exists exactly once,
opens the tracking parent run, and runs trials until the study has ``n_trials`` finished trials (all
workers together) or ``timeout`` passes. Ctrl-C ends the running trial as interrupted (FAIL in Optuna,
KILLED in MLflow), closes the study run and returns with ``interrupted=True``.

What the study stores on itself (Optuna user attributes): ``spec`` (the spec it started with),
``baseline`` (dense metrics, curve and checkpoint location) and ``tracking`` (the parent run). Each trial
stores ``config`` (the full pruning config), ``training``, ``metrics``, ``curve``, ``run_id`` and, when it
stopped early, ``stop_reason``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import random
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from sparsesearch.config import Budget, StudySpec
from sparsesearch.errors import ConfigError, SparseSearchError, TrainingDiverged
from sparsesearch.search import pareto
from sparsesearch.search.early_stopping import Stopper
from sparsesearch.search.export import build_recipe, recipe_text
from sparsesearch.search.space import Space, TrialPlan
from sparsesearch.search.training import RunResult, Settings, fresh_model, load_state, run
from sparsesearch.tasks import Splits, Task, resolve_task, steps_per_epoch
from sparsesearch.tracking import FAILED, FINISHED, KILLED, Tracker, TrialRun, flatten, make_tracker
from sparsesearch.urls import mask_uri, with_driver

log = logging.getLogger(__name__)

#: seconds without a baseline heartbeat after which another worker takes the baseline over
BASELINE_STALE_S = 60.0
INTERRUPTED = "interrupted by the user"
EPOCH_KEYS = ("val_accuracy", "sparsity", "loss")


class TrialFailed(SparseSearchError):
    """A trial failed (diverged, or its task raised); the study goes on."""


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


# ------------------------------------------------------------------------------------------ plumbing


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


def make_sampler(spec: StudySpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.n_startup_trials, multivariate=True,
                                      group=False, constant_liar=True)


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
        from sparsesearch.errors import closest

        raise ConfigError(f"no study named {name!r} in the storage", key="study", value=name,
                          allowed=", ".join(names) if names else "(the storage has no studies yet)",
                          suggestion=closest(name, names)) from None


def finished_count(trials: list[FrozenTrial]) -> int:
    """Trials that count toward ``n_trials``: complete, stopped early, or failed (but not interrupted)."""
    return sum(1 for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.user_attrs.get("stop_reason") != INTERRUPTED))


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by state; failed trials that were interrupted by the user are counted as INTERRUPTED."""
    counts: dict[str, int] = {}
    for t in trials:
        name = t.state.name
        if t.state == TrialState.FAIL and t.user_attrs.get("stop_reason") == INTERRUPTED:
            name = "INTERRUPTED"
        counts[name] = counts.get(name, 0) + 1
    return counts


# ------------------------------------------------------------------------------------------ context


@dataclass
class Context:
    """Everything trials share: the task, its data, the budget, the space and the dense weights."""

    spec: StudySpec
    task: Task
    splits: Splits
    budget: Budget
    space: Space
    steps_per_epoch: int
    dense_state: dict[str, torch.Tensor] | None = None
    dense: dict[str, Any] = field(default_factory=dict)

    def settings(self, plan: TrialPlan | None = None, *, dense: bool = False) -> Settings:
        b = self.budget
        if dense:
            return Settings(int(b.dense_epochs), int(b.batch_size), str(b.optimizer), float(b.dense_lr),
                            b.weight_decay, b.momentum, self.spec.seed)
        return Settings(plan.epochs if plan else int(b.epochs), int(b.batch_size), str(b.optimizer),
                        plan.lr if plan else float(b.lr), b.weight_decay, b.momentum, self.spec.seed)

    def start_model(self) -> torch.nn.Module:
        """The model a trial starts from: the dense baseline's weights, or fresh initial weights."""
        model = fresh_model(self.task, self.spec.seed)
        if self.spec.budget.init == "dense" and self.dense_state is not None:
            load_state(model, self.dense_state)
        return model

    @property
    def floor(self) -> float | None:
        drop = self.spec.constraints.max_accuracy_drop
        acc = self.dense.get("val_accuracy")
        return None if drop is None or acc is None else acc - drop


def build_context(spec: StudySpec) -> Context:
    """Resolve the task, split the data, and validate the space against the real model (before any trial)."""
    task = resolve_task(spec.task, spec.task_args)
    budget = spec.budget.resolved(task.budget_hints)
    splits = task.splits(spec.seed)
    spe = steps_per_epoch(len(splits.x_train), int(budget.batch_size))
    model = fresh_model(task, spec.seed)
    space = Space(spec.space, budget, model, spe, seed=spec.seed)
    return Context(spec, task, splits, budget, space, spe)


def set_threads(configured: int | None, task: Task | None = None) -> int:
    """torch CPU threads: the spec's ``num_threads``, else the task's hint, else 1.

    One thread is fastest for small models on a shared machine (measured on digits-mlp: 2 threads were
    several times slower on 2 busy cores); large models should set ``num_threads``.
    """
    hint = (task.budget_hints.get("num_threads") if task is not None else None) or 1
    threads = max(1, int(configured or hint))
    torch.set_num_threads(threads)
    return threads


# ------------------------------------------------------------------------------------------ baseline


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _state_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


def ensure_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events,
                    workdir: Path) -> bool:
    """Load the study's dense baseline, or train it once (other workers wait). True when it was reused."""
    me = _worker_id()
    while True:
        attrs = study.user_attrs
        if "baseline" in attrs:
            ctx.dense = dict(attrs["baseline"])
            ctx.dense_state = load_checkpoint(ctx.dense, tracker.fetch, workdir)
            if ctx.dense_state is None:
                log.warning("the dense baseline's checkpoint %s cannot be read; training it again",
                            ctx.dense.get("checkpoint"))
                break
            events.baseline_done(ctx.dense, reused=True)
            return True
        owner, beat = attrs.get("baseline_worker"), attrs.get("baseline_heartbeat")
        if owner and owner != me and beat and time.time() - float(beat) < BASELINE_STALE_S:
            time.sleep(1.0)  # another worker is training it
            continue
        study.set_user_attr("baseline_worker", me)
        study.set_user_attr("baseline_heartbeat", time.time())
        time.sleep(0.3)
        if study.user_attrs.get("baseline_worker") == me:
            break
    _train_baseline(study, ctx, tracker, events, workdir)
    return False


def _train_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events, workdir: Path) -> None:
    settings = ctx.settings(dense=True)
    model = fresh_model(ctx.task, ctx.spec.seed)
    if ctx.spec.budget.init == "scratch":
        log.info("init: scratch — the dense baseline is trained only to measure the accuracy to compare with")
    events.baseline_started(settings.epochs)

    def beat(epoch: int, metrics: dict[str, float]) -> None:
        study.set_user_attr("baseline_heartbeat", time.time())
        events.baseline_epoch(epoch, metrics)

    try:
        result = run(model, ctx.splits, settings, on_epoch=beat)
    except KeyboardInterrupt:
        study.set_user_attr("baseline_heartbeat", 0.0)  # release the claim: a resumed run need not wait
        raise
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint = workdir / "dense.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    data = _state_bytes(state)
    checkpoint.write_bytes(data)
    metrics = {"val_accuracy": result.val_accuracy, "test_accuracy": result.test_accuracy,
               "train_seconds": result.seconds}
    uri = tracker.log_baseline(metrics, [{"val_accuracy": r["val_accuracy"], "loss": r["loss"]} for r in result.curve],
                               checkpoint)
    ctx.dense = {**metrics, "epochs": settings.epochs, "lr": settings.lr, "batch_size": settings.batch_size,
                 "optimizer": settings.optimizer, "seed": settings.seed,
                 "checkpoint": uri or str(checkpoint.resolve()), "local_checkpoint": str(checkpoint.resolve()),
                 "sha256": hashlib.sha256(data).hexdigest(),
                 "curve": [round(r["val_accuracy"], 6) for r in result.curve]}
    ctx.dense_state = state
    study.set_user_attr("baseline", ctx.dense)
    events.baseline_done(ctx.dense, reused=False)


def load_checkpoint(baseline: Mapping[str, Any], fetch: Callable[[str, Path], Path],
                    workdir: Path) -> dict[str, torch.Tensor] | None:
    """The baseline's weights: from this worker's local copy when its checksum matches, else the tracker."""
    want = baseline.get("sha256")
    candidates: list[Any] = [workdir / "dense.pt", baseline.get("local_checkpoint")]
    uri = baseline.get("checkpoint")
    for path in candidates:
        if path and Path(path).is_file():
            data = Path(path).read_bytes()
            if want is None or hashlib.sha256(data).hexdigest() == want:
                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not uri:
        return None
    try:
        path = fetch(uri, Path(tempfile.mkdtemp(prefix="sparsesearch-dense-")))
        data = Path(path).read_bytes()
    except (OSError, RuntimeError, ValueError, SparseSearchError) as exc:
        log.warning("cannot fetch the dense baseline from %s: %s", uri, exc)
        return None
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        log.warning("the dense baseline at %s does not match the study's checksum", uri)
        return None
    local = workdir / "dense.pt"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def default_workdir(spec: StudySpec) -> Path:
    """Where a worker keeps the study's local files (the baseline checkpoint)."""
    return Path(".sparsesearch") / spec.name


# ------------------------------------------------------------------------------------------ objective


class Objective:
    """One trial: sample, build the pruner, train from the dense weights, evaluate, record."""

    def __init__(self, study: optuna.Study, ctx: Context, tracker: Tracker, events: Events) -> None:
        self.study = study
        self.ctx = ctx
        self.tracker = tracker
        self.events = events

    def _completed_curves(self) -> list[list[tuple[float, float]]]:
        if not (self.ctx.spec.early_stopping.enabled and "dominated" in self.ctx.spec.early_stopping.rules):
            return []
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [[(float(a), float(s)) for a, s in t.user_attrs.get("curve", [])] for t in trials]

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        ctx = self.ctx
        plan = ctx.space.sample(trial)
        settings = ctx.settings(plan)
        config = plan.pruning.to_dict()
        training = {**dataclasses.asdict(settings), "finetune_epochs": plan.finetune_epochs}
        trial.set_user_attr("config", config)
        trial.set_user_attr("training", training)
        trial.set_user_attr("summary", plan.summary)
        params = {**flatten({"pruning": config["groups"][0]}), **flatten({"training": training}),
                  "allocation": plan.summary.get("allocation")}
        warm = trial.user_attrs.get("warm_start")
        run_handle = self.tracker.start_trial(trial.number, params,
                                              tags={"sparsesearch.warm_start": warm} if warm else None)
        self.events.trial_started(trial.number, plan.summary, plan.epochs)
        stopper = Stopper(ctx.spec.early_stopping, ctx.floor, self._completed_curves(), epochs=plan.epochs,
                          target=plan.target_sparsity)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> str | None:
            shown = {k: v for k, v in metrics.items() if k != "target_reached"}
            self.tracker.log_epoch(run_handle, epoch, shown)
            self.events.trial_epoch(trial.number, epoch, shown)
            return stopper.check(epoch, metrics["val_accuracy"], metrics["sparsity"],
                                 bool(metrics.get("target_reached")))

        try:
            result = run(ctx.start_model(), ctx.splits, settings, pruning=plan.pruning, on_epoch=on_epoch)
        except KeyboardInterrupt:
            trial.set_user_attr("stop_reason", INTERRUPTED)
            self._finish(trial, run_handle, KILLED, None, None, tags={"sparsesearch.state": "FAIL",
                                                                      "sparsesearch.stop_reason": INTERRUPTED})
            self.events.trial_done(trial.number, "INTERRUPTED", None, INTERRUPTED, None)
            raise
        except TrainingDiverged as exc:
            log.warning("trial %d failed: %s", trial.number, exc)
            self._fail(trial, run_handle, str(exc))
            raise TrialFailed(str(exc)) from None
        except Exception as exc:  # the task's own code may raise anything: record the trial as failed, go on
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            log.debug("trial %d traceback", trial.number, exc_info=True)
            self._fail(trial, run_handle, f"{type(exc).__name__}: {exc}")
            raise TrialFailed(f"{type(exc).__name__}: {exc}") from exc

        run_id = run_handle.run_id
        metrics = result.metrics()
        drop = (ctx.dense["val_accuracy"] - result.val_accuracy) if "val_accuracy" in ctx.dense else None
        if drop is not None:
            metrics["accuracy_drop"] = drop
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("curve", [[round(r["val_accuracy"], 6), round(r["sparsity"], 6)] for r in result.curve])
        trial.set_user_attr("run_id", run_id)
        recipe = build_recipe(study=self.study.study_name, task=ctx.spec.task, task_args=ctx.spec.task_args,
                              number=trial.number, config=config,
                              training=training, steps_per_epoch=ctx.steps_per_epoch,
                              metrics={**metrics, "stop_reason": result.stop_reason}, dense=ctx.dense,
                              run_id=run_id, init=ctx.spec.budget.init)
        if result.stop_reason:
            trial.set_user_attr("stop_reason", result.stop_reason)
            self._finish(trial, run_handle, KILLED, result, recipe_text(recipe),
                         tags={"sparsesearch.state": "PRUNED", "sparsesearch.stop_reason": result.stop_reason})
            self.events.trial_done(trial.number, "PRUNED", None, result.stop_reason, None)
            raise optuna.TrialPruned(result.stop_reason)
        max_drop = ctx.spec.constraints.max_accuracy_drop
        if max_drop is not None and drop is not None:
            trial.set_constraint("accuracy_drop", drop - max_drop)
        feasible = max_drop is None or drop is None or drop <= max_drop
        self._finish(trial, run_handle, FINISHED, result, recipe_text(recipe),
                     tags={"sparsesearch.state": "COMPLETE", "sparsesearch.feasible": str(feasible).lower()})
        return result.val_accuracy, result.sparsity

    def _fail(self, trial: optuna.Trial, run_handle: TrialRun, reason: str) -> None:
        trial.set_user_attr("stop_reason", reason)
        self._finish(trial, run_handle, FAILED, None, None,
                     tags={"sparsesearch.state": "FAIL", "sparsesearch.stop_reason": reason[:5000]})
        self.events.trial_done(trial.number, "FAIL", None, reason, None)

    def _finish(self, trial: optuna.Trial, run_handle: TrialRun, status: str, result: RunResult | None,
                recipe_yaml: str | None, tags: dict[str, str]) -> None:
        metrics = None
        if result is not None:  # the per-epoch curves already end with the final val_accuracy and sparsity
            metrics = {k: v for k, v in trial.user_attrs.get("metrics", {}).items() if k not in EPOCH_KEYS}
        self.tracker.finish_trial(run_handle, status, metrics=metrics, layers=result.layers if result else None,
                                  recipe_yaml=recipe_yaml, tags=tags)


# ------------------------------------------------------------------------------------------ the study


class _Pareto:
    """Keeps the trials' Pareto tags in the tracker in step with the front."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.members: set[str] = set()

    def update(self, study: optuna.Study) -> list[FrozenTrial]:
        front = pareto.front_trials(study)
        now = {t.user_attrs.get("run_id") for t in front} - {None}
        changes = {rid: True for rid in now - self.members} | {rid: False for rid in self.members - now}
        if changes and self.tracker.enabled:
            self.tracker.set_pareto(changes)
        self.members = now
        return front


def _best(front: list[FrozenTrial], ctx: Context) -> pareto.Point | None:
    pts = pareto.points(front)
    try:
        return pareto.select(pts, ctx.spec.export, ctx.dense.get("val_accuracy"))
    except pareto.NoTrialSelected:
        return max(pts, key=lambda p: p.accuracy) if pts else None


def open_or_create(spec: StudySpec, storage: optuna.storages.BaseStorage) -> tuple[optuna.Study, bool]:
    """The study named in the spec: created (True) or, when it exists, joined (False)."""
    directions = ["maximize", "maximize"]
    try:
        study = optuna.create_study(storage=storage, study_name=spec.name, directions=directions)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage)
        created = False
        if [d.name for d in study.directions] != ["MAXIMIZE", "MAXIMIZE"]:
            raise ConfigError(f"a study named {spec.name!r} exists in this storage but is not a sparsesearch study "
                              "(its objectives differ)", key="name", value=spec.name,
                              allowed="a new study name, or another storage") from None
    return study, created


def _spec_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    if not old:
        return []
    ignore = ("n_trials", "timeout", "storage", "tracking", "export", "num_threads")
    a = {k: v for k, v in flatten(dict(old)).items() if k.split(".")[0] not in ignore}
    b = {k: v for k, v in flatten(dict(new)).items() if k.split(".")[0] not in ignore}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def run_study(spec: StudySpec, *, events: Events | None = None, tracker: Tracker | None = None,
              workdir: Path | None = None) -> StudyResult:
    """Run (or resume, or join) the study described by ``spec``. See the module docstring."""
    started = time.perf_counter()
    events = events or Events()
    quiet_optuna()
    messages: list[str] = []
    ctx = build_context(spec)  # validates the spec against the task's model before anything starts
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
    study, created = open_or_create(spec, storage)
    spec_data = spec.to_dict()
    if created:
        study.set_user_attr("spec", spec_data)
        study.set_user_attr("steps_per_epoch", ctx.steps_per_epoch)
        study.set_user_attr("created_by", _worker_id())
        for params, label in ctx.space.warm_start(spec.warm_start):
            study.enqueue_trial(params, user_attrs={"warm_start": label})
    else:
        changed = _spec_changes(study.user_attrs.get("spec"), spec_data)
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
    seed = spec.seed if created or not existing else spec.seed + 7919 * len(existing) + os.getpid() % 7919
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
        info = study.user_attrs.get("tracking", {}).get(key)
        if info or created:
            break
        time.sleep(0.5)  # the worker that created the study is opening its run
    info = study.user_attrs.get("tracking", {}).get(key)
    parent = tracker.open_study(study.study_name, experiment=spec.experiment, spec=spec.to_dict(),
                                storage=spec.storage, parent_run_id=info.get("parent_run_id") if info else None)
    if parent and (not info or info.get("parent_run_id") != parent):
        all_info = dict(study.user_attrs.get("tracking", {}))
        all_info[key] = {"parent_run_id": parent, "experiment": spec.experiment}
        study.set_user_attr("tracking", all_info)
    return parent


def pareto_table(study: optuna.Study, front: list[FrozenTrial], dense: Mapping[str, Any],
                 selected: pareto.Point | None) -> list[dict[str, Any]]:
    """One row per front trial, sparsest first (for the console, CSV and the tracker)."""
    rows = []
    dense_acc = dense.get("val_accuracy")
    for t in front:
        m = t.user_attrs.get("metrics", {})
        s = t.user_attrs.get("summary", {})
        rows.append({
            "trial": t.number,
            "val_accuracy": t.values[0],
            "sparsity": t.values[1],
            "test_accuracy": m.get("test_accuracy"),
            "drop": (dense_acc - t.values[0]) if dense_acc is not None else None,
            "pruning_type": s.get("pruning_type"),
            "pattern": s.get("pattern"),
            "scope": s.get("scope"),
            "allocation": s.get("allocation"),
            "selected": selected is not None and selected.number == t.number,
            "run_id": t.user_attrs.get("run_id"),
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
    pts = pareto.points(front)
    hv = pareto.study_hypervolume(pts, spec.to_dict(), ctx.dense.get("val_accuracy"))
    selected, error = None, None
    try:
        selected = pareto.select(pts, spec.export, ctx.dense.get("val_accuracy"))
    except pareto.NoTrialSelected as exc:
        error = str(exc)
    if tracker.enabled:
        texts = {}
        if selected is not None:
            chosen = next(t for t in front if t.number == selected.number)
            texts["recipe.yaml"] = recipe_text(recipe_for_trial(study, chosen, spec_data=spec.to_dict()))
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
        name=study.study_name, storage=spec.storage, trials_run=trials_run, counts=state_counts(trials),
        interrupted=interrupted, front=pts, hypervolume=hv, dense=ctx.dense, selected=selected,
        selection_error=error, seconds=time.perf_counter() - started, parent_run_id=parent_id,
        tracking=tracker.describe(), messages=messages)


def recipe_for_trial(study: optuna.Study, trial: FrozenTrial, *, spec_data: Mapping[str, Any] | None = None):
    """The recipe of a finished trial, from what it stored on itself (lossless)."""
    if "config" not in trial.user_attrs:
        raise ConfigError(f"trial {trial.number} stored no pruning config (was it run by sparsesearch?)",
                          key="trial", value=trial.number, allowed="a trial of a sparsesearch study")
    spec_data = spec_data or study.user_attrs.get("spec", {})
    metrics = dict(trial.user_attrs.get("metrics", {}))
    if trial.user_attrs.get("stop_reason"):
        metrics["stop_reason"] = trial.user_attrs["stop_reason"]
    return build_recipe(study=study.study_name, task=spec_data.get("task"), task_args=spec_data.get("task_args"),
                        number=trial.number,
                        config=trial.user_attrs["config"], training=trial.user_attrs.get("training", {}),
                        steps_per_epoch=study.user_attrs.get("steps_per_epoch"), metrics=metrics,
                        dense=study.user_attrs.get("baseline"), run_id=trial.user_attrs.get("run_id"),
                        init=spec_data.get("budget", {}).get("init", "dense"))


__all__ = ["Context", "Events", "StudyResult", "TrialFailed", "build_context", "list_studies", "load",
           "make_storage", "open_or_create", "pareto_table", "recipe_for_trial", "run_study"]
