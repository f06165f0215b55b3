"""One trial: sample a pruning config, train from the dense weights with the pruner in the loop, record.

The trial names its worker (``worker``) at once and its tracking run's id (``run_id``) after its first
epoch, so that if the worker dies, whoever finds the trial lost can end that run. However the trial ends,
its run is ended with it: FINISHED, KILLED (stopped early, interrupted) or FAILED (diverged, the task
raised, or the worker could not record the trial: that last error stops the study).
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState

from sparsesearch.errors import SparseSearchError, TrainingDiverged
from sparsesearch.records.state import TrialRecord
from sparsesearch.records.urls import mask_text
from sparsesearch.search.context import Context
from sparsesearch.search.early_stopping import Stopper
from sparsesearch.search.events import Events
from sparsesearch.search.export import build_recipe, recipe_text
from sparsesearch.search.signals import StopSignals
from sparsesearch.search.storage import INTERRUPTED
from sparsesearch.tracking import FAILED, FINISHED, KILLED, Tracker, TrialRun
from sparsesearch.training.runs import RunResult, run

log = logging.getLogger(__name__)

#: metrics logged per epoch (the final values are not logged again)
EPOCH_KEYS = ("val_accuracy", "sparsity", "loss")


class TrialFailed(SparseSearchError):
    """A trial failed (diverged, or its task raised); the study goes on."""


class Objective:
    """One trial: sample, build the pruner, train from the dense weights, evaluate, record."""

    def __init__(self, study: optuna.Study, ctx: Context, tracker: Tracker, events: Events,
                 stop: StopSignals | None = None, worker: str | None = None) -> None:
        self.study = study
        self.ctx = ctx
        self.tracker = tracker
        self.events = events
        self.stop = stop or StopSignals()
        self.worker = worker
        self._open: TrialRun | None = None  # the run of the trial in progress, until it is ended

    def _completed_curves(self) -> list[list[tuple[float, float]]]:
        if not (self.ctx.spec.early_stopping.enabled and "dominated" in self.ctx.spec.early_stopping.rules):
            return []
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [list(TrialRecord.of(t.user_attrs).curve) for t in trials]

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        try:
            return self._trial(trial)
        except (KeyboardInterrupt, TrialFailed, optuna.TrialPruned):
            raise  # recorded where it happened
        except optuna.exceptions.UpdateFinishedTrialError:
            reason = ("another worker failed this trial as lost while it ran (this worker sent no heartbeat for "
                      "longer than the grace period: was it suspended?)")
            log.warning("trial %d: %s", trial.number, reason)
            self._end_open_run(reason)
            self.events.trial_done(trial.number, "FAIL", None, reason, None)
            raise TrialFailed(reason) from None
        except Exception as exc:  # the worker could not record the trial (storage, disk): end its run, stop
            self._end_open_run(f"this worker could not record the trial: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._open = None

    def _end_open_run(self, reason: str) -> None:
        if self._open is not None:
            run_handle, self._open = self._open, None
            self.tracker.finish_trial(run_handle, FAILED, tags={"sparsesearch.state": "FAIL",
                                                                "sparsesearch.stop_reason": mask_text(reason)[:5000]})

    def _trial(self, trial: optuna.Trial) -> tuple[float, float]:
        ctx = self.ctx
        if self.worker:
            trial.set_user_attr("worker", self.worker)
        plan = ctx.space.sample(trial)
        settings = ctx.settings(plan)
        config = plan.pruning.to_dict()
        training = settings.core()
        trial.set_user_attr("config", config)
        trial.set_user_attr("training", training)
        trial.set_user_attr("summary", plan.summary)
        # what varies (the sampled values) and what a user filters on; the full config is the recipe artifact
        params: dict[str, Any] = {"pruning_type": plan.summary["pruning_type"], "pattern": plan.summary["pattern"],
                                  "scope": plan.summary["scope"], "target_sparsity": round(plan.target_sparsity, 6)}
        params.update({k: v for k, v in trial.params.items() if not k.startswith("density")})
        record = TrialRecord.of(trial.user_attrs)
        tags = {"sparsesearch.warm_start": record.warm_start} if record.warm_start else {}
        if record.retry_of is not None:
            tags["sparsesearch.retry_of"] = str(record.retry_of)
            log.info("trial %d re-runs trial %d (its worker was lost)", trial.number, record.retry_of)
        run_handle = self.tracker.start_trial(trial.number, params, tags=tags or None)
        self._open = run_handle
        log.info("trial %d started%s", trial.number, f" by {self.worker}" if self.worker else "")
        self.events.trial_started(trial.number, plan.summary, plan.epochs)
        metric = ctx.metric
        key = f"val_{metric.name}"
        stopper = Stopper(ctx.spec.early_stopping, ctx.floor, self._completed_curves(), epochs=plan.epochs,
                          target=plan.target_sparsity, maximize=metric.maximize, metric=metric.name)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> str | None:
            shown = {k: v for k, v in metrics.items() if k != "target_reached"}
            self.tracker.log_epoch(run_handle, epoch, shown)
            if epoch == 0 and self.tracker.enabled:  # the run exists by now: name it on the trial at once
                with self.stop.held():
                    run_id = run_handle.run_id
                    if run_id:
                        trial.set_user_attr("run_id", run_id)
            self.events.trial_epoch(trial.number, epoch, shown)
            return stopper.check(epoch, metrics[key], metrics["sparsity"], bool(metrics.get("target_reached")))

        try:
            with self.stop.armed():
                result = run(ctx.start_model(), ctx.task, settings, pruning=plan.pruning, on_epoch=on_epoch,
                             steps_per_epoch=ctx.steps_per_epoch)
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
        dense = ctx.dense_value
        drop = metric.drop(dense, result.value) if dense is not None else None  # positive = worse than dense
        if drop is not None:
            metrics["drop"] = drop
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("curve", [[round(r[key], 6), round(r["sparsity"], 6)] for r in result.curve if key in r])
        trial.set_user_attr("run_id", run_id)
        recipe = build_recipe(study=self.study.study_name, task=ctx.spec.task, task_args=ctx.spec.task_args,
                              number=trial.number, config=config,
                              training=training, steps_per_epoch=ctx.steps_per_epoch,
                              metrics={**metrics, "stop_reason": result.stop_reason}, dense=ctx.dense,
                              run_id=run_id, init="pretrained" if ctx.pretrained and ctx.spec.budget.init != "scratch"
                              else ctx.spec.budget.init,
                              objective={"name": metric.name, "direction": metric.direction})
        if result.stop_reason:
            trial.set_user_attr("stop_reason", result.stop_reason)
            self._finish(trial, run_handle, KILLED, result, recipe_text(recipe),
                         tags={"sparsesearch.state": "PRUNED", "sparsesearch.stop_reason": result.stop_reason,
                               "mlflow.note.content": f"Stopped early: {result.stop_reason}"})
            self.events.trial_done(trial.number, "PRUNED", None, result.stop_reason, None)
            raise optuna.TrialPruned(result.stop_reason)
        constraints = ctx.spec.constraints
        allowed = None
        if constraints.max_drop is not None and dense is not None:
            allowed = constraints.max_drop * abs(dense) if constraints.relative else constraints.max_drop
        if allowed is not None and drop is not None:
            trial.set_constraint("drop", drop - allowed)
        feasible = allowed is None or drop is None or drop <= allowed
        self._finish(trial, run_handle, FINISHED, result, recipe_text(recipe),
                     tags={"sparsesearch.state": "COMPLETE", "sparsesearch.feasible": str(feasible).lower()})
        return result.value, result.sparsity

    def _fail(self, trial: optuna.Trial, run_handle: TrialRun, reason: str) -> None:
        trial.set_user_attr("stop_reason", reason)
        self._finish(trial, run_handle, FAILED, None, None,
                     tags={"sparsesearch.state": "FAIL", "sparsesearch.stop_reason": reason[:5000],
                           "mlflow.note.content": f"Failed: {reason[:5000]}"})
        self.events.trial_done(trial.number, "FAIL", None, reason, None)

    def _finish(self, trial: optuna.Trial, run_handle: TrialRun, status: str, result: RunResult | None,
                recipe_yaml: str | None, tags: dict[str, str]) -> None:
        metrics = None
        if result is not None:  # the per-epoch curves already end with the final val_accuracy and sparsity
            metrics = {k: v for k, v in TrialRecord.of(trial.user_attrs).metrics.items() if k not in EPOCH_KEYS}
        self._open = None
        self.tracker.finish_trial(run_handle, status, metrics=metrics, layers=result.layers if result else None,
                                  recipe_yaml=recipe_yaml, tags=tags)
