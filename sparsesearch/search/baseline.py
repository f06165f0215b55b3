"""The dense baseline: trained once per study (other workers wait and then reuse it), stored as a checkpoint.

The worker training it claims it in the study's attributes (``baseline_worker``) and keeps a heartbeat there
(``baseline_heartbeat``, every :attr:`Liveness.heartbeat_interval` seconds, from a thread). Other workers
wait, saying for whom and how long since its last heartbeat (:meth:`Events.baseline_waiting`), and take the
baseline over when the heartbeat has been silent for the grace period. A baseline that fails (its training
raises or diverges, its checkpoint cannot be written) releases the claim at once, records why
(``baseline_failure``: workers waiting for it stop with the same message) and raises :class:`BaselineFailed`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import torch

from sparsesearch.errors import SparseSearchError, TrainingDiverged
from sparsesearch.records.state import StudyState
from sparsesearch.records.study import StudySpec
from sparsesearch.records.urls import mask_text
from sparsesearch.search.context import Context
from sparsesearch.search.events import Events
from sparsesearch.search.signals import StopSignals
from sparsesearch.search.workers import Beat, Liveness
from sparsesearch.tracking import Tracker
from sparsesearch.training.runs import measure, run

log = logging.getLogger(__name__)

#: seconds between "waiting for the dense baseline" reports
WAIT_REPORT_S = 5.0


class BaselineFailed(SparseSearchError):
    """The dense baseline could not be trained, stored or read; the study cannot go on."""


def worker_id() -> str:
    """This worker's name in the study's records: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _state_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


def ensure_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events, workdir: Path, *,
                    liveness: Liveness | None = None, stop: StopSignals | None = None) -> bool:
    """Load the study's dense baseline, or train it once (other workers wait). True when it was reused."""
    liveness = liveness or Liveness()
    stop = stop or StopSignals()
    me = worker_id()
    started, reported = time.time(), 0.0
    while True:
        state = StudyState.of(study.user_attrs)
        if state.baseline:
            ctx.dense = dict(state.baseline)
            ctx.dense_state = load_checkpoint(ctx.dense, tracker.fetch, workdir)
            if ctx.dense_state is None:
                raise BaselineFailed(
                    f"this worker cannot read the study's dense baseline ({ctx.dense.get('checkpoint')}): every "
                    "worker must reach the study's artifacts. Run the workers with the same tracking URI, and "
                    "keep artifacts where all of them can read them (an MLflow tracking server, or "
                    "tracking.artifact_root / SPARSESEARCH_ARTIFACT_ROOT on shared storage)")
            events.baseline_done(ctx.dense, reused=True)
            return True
        failure = state.baseline_failure
        if failure and failure.get("worker") != me and float(failure.get("at") or 0) > started:
            raise BaselineFailed(f"the dense baseline failed on {failure.get('worker')}: {failure.get('reason')}")
        owner, beat = state.baseline_worker, float(state.baseline_heartbeat or 0)
        silent = time.time() - beat
        if owner and owner != me and beat and silent < liveness.grace_period:
            if time.monotonic() - reported >= WAIT_REPORT_S:  # another worker is training it: say so
                log.info("waiting for %s to train the dense baseline (last heartbeat %.0f s ago; taken over "
                         "after %d s of silence)", owner, silent, liveness.grace_period)
                events.baseline_waiting(owner, silent, float(liveness.grace_period))
                reported = time.monotonic()
            with stop.armed():
                time.sleep(1.0)
            continue
        if owner and owner != me and beat:
            log.warning("taking the dense baseline over from %s: no heartbeat for %.0f s", owner, silent)
        study.set_user_attr("baseline_worker", me)
        study.set_user_attr("baseline_heartbeat", time.time())
        with stop.armed():
            time.sleep(0.3)
        if StudyState.of(study.user_attrs).baseline_worker == me:
            break
    _train_baseline(study, ctx, tracker, events, workdir, liveness, stop)
    return False


def _train_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events, workdir: Path,
                    liveness: Liveness, stop: StopSignals) -> None:
    """Train (or measure) the baseline under this worker's claim; release the claim however it ends."""
    try:
        with Beat(lambda: study.set_user_attr("baseline_heartbeat", time.time()), liveness.heartbeat_interval):
            _train_and_store(study, ctx, tracker, events, workdir, stop)
    except KeyboardInterrupt:
        _release(study)  # a resumed run need not wait for a claim nobody holds
        raise
    except Exception as exc:
        reason = _failure_reason(exc)
        log.debug("the dense baseline failed", exc_info=True)
        _release(study, reason)
        raise BaselineFailed(f"the dense baseline failed: {reason}. Nothing was recorded for it; fix the cause "
                             "and run the study again") from exc


def _release(study: optuna.Study, reason: str | None = None) -> None:
    """Give the baseline claim up (and record why it failed), if the storage still takes writes."""
    try:
        study.set_user_attr("baseline_heartbeat", 0.0)
        if reason is not None:
            study.set_user_attr("baseline_failure", {"worker": worker_id(), "reason": reason, "at": time.time()})
    except Exception as exc:  # noqa: BLE001 - the storage itself may be what failed
        log.warning("cannot release the dense baseline's claim: %s", exc)


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, (TrainingDiverged, SparseSearchError)):
        return mask_text(str(exc))
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot write {exc.filename}: {exc.strerror or exc}"
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return mask_text(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))


def _train_and_store(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events, workdir: Path,
                     stop: StopSignals) -> None:
    settings = ctx.settings(dense=True)
    model = ctx.fresh_model()
    metric = ctx.metric.name
    if ctx.spec.budget.init == "scratch":
        log.info("init: scratch — the dense baseline is trained only to measure the metric to compare with")
    curve: list[dict[str, float]] = []
    seconds, epochs = 0.0, 0
    if ctx.pretrained:  # the user's trained weights: measure them once, train nothing
        events.baseline_started(0)
        with stop.armed():
            val, test = measure(model, ctx.task)
    else:
        log.info("training the dense baseline (%d epochs)", settings.epochs)
        events.baseline_started(settings.epochs)
        with stop.armed():
            result = run(model, ctx.task, settings, on_epoch=events.baseline_epoch,
                         steps_per_epoch=ctx.steps_per_epoch)
        val, test, curve, seconds, epochs = result.val, result.test, result.curve, result.seconds, settings.epochs
    bad = [f"val_{k}" for k, v in val.items() if not math.isfinite(v)]
    if metric in val and not math.isfinite(val[metric]):
        raise TrainingDiverged(f"its validation {metric} is {val[metric]} ({', '.join(bad)} not finite); lower "
                               "budget.dense_lr or check the task's data and loss")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint = workdir / "dense.pt"
    data = _state_bytes(state)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(data)
    metrics = {**{f"val_{k}": v for k, v in val.items()}, **{f"test_{k}": v for k, v in test.items()},
               "train_seconds": seconds}
    key = f"val_{metric}"
    uri = tracker.log_baseline(metrics, [{k: r[k] for k in (key, "loss") if k in r} for r in curve], checkpoint)
    ctx.dense = {**metrics, "pretrained": ctx.pretrained, "epochs": epochs, "lr": settings.lr,
                 "batch_size": settings.batch_size, "optimizer": settings.optimizer, "seed": settings.seed,
                 "checkpoint": uri or str(checkpoint.resolve()), "local_checkpoint": str(checkpoint.resolve()),
                 "sha256": hashlib.sha256(data).hexdigest(),
                 "curve": [round(r[key], 6) for r in curve if key in r]}
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
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
    except OSError as exc:  # only a cache
        log.info("cannot keep a local copy of the dense baseline in %s: %s", local, exc.strerror or exc)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def default_workdir(spec: StudySpec) -> Path:
    """Where a worker keeps the study's local files (the baseline checkpoint)."""
    return Path(".sparsesearch") / spec.name
