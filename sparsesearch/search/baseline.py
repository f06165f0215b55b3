"""The dense baseline: trained once per study (other workers wait and then reuse it), stored as a checkpoint."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import torch

from sparsesearch.errors import SparseSearchError
from sparsesearch.records.state import StudyState
from sparsesearch.records.study import StudySpec
from sparsesearch.search.context import Context
from sparsesearch.search.events import Events
from sparsesearch.tracking import Tracker
from sparsesearch.training.runs import measure, run

log = logging.getLogger(__name__)

#: seconds without a baseline heartbeat after which another worker takes the baseline over
BASELINE_STALE_S = 60.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _state_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return buf.getvalue()


def ensure_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events,
                    workdir: Path) -> bool:
    """Load the study's dense baseline, or train it once (other workers wait). True when it was reused."""
    me = worker_id()
    while True:
        state = StudyState.of(study.user_attrs)
        if state.baseline:
            ctx.dense = dict(state.baseline)
            ctx.dense_state = load_checkpoint(ctx.dense, tracker.fetch, workdir)
            if ctx.dense_state is None:
                log.warning("the dense baseline's checkpoint %s cannot be read; training it again",
                            ctx.dense.get("checkpoint"))
                break
            events.baseline_done(ctx.dense, reused=True)
            return True
        owner, beat = state.baseline_worker, state.baseline_heartbeat
        if owner and owner != me and beat and time.time() - float(beat) < BASELINE_STALE_S:
            time.sleep(1.0)  # another worker is training it
            continue
        study.set_user_attr("baseline_worker", me)
        study.set_user_attr("baseline_heartbeat", time.time())
        time.sleep(0.3)
        if StudyState.of(study.user_attrs).baseline_worker == me:
            break
    _train_baseline(study, ctx, tracker, events, workdir)
    return False


def _train_baseline(study: optuna.Study, ctx: Context, tracker: Tracker, events: Events, workdir: Path) -> None:
    settings = ctx.settings(dense=True)
    model = ctx.fresh_model()
    metric = ctx.metric.name
    if ctx.spec.budget.init == "scratch":
        log.info("init: scratch — the dense baseline is trained only to measure the metric to compare with")
    curve: list[dict[str, float]] = []
    seconds, epochs = 0.0, 0
    if ctx.pretrained:  # the user's trained weights: measure them once, train nothing
        events.baseline_started(0)
        val, test = measure(model, ctx.task)
    else:
        events.baseline_started(settings.epochs)

        def beat(epoch: int, metrics: dict[str, float]) -> None:
            study.set_user_attr("baseline_heartbeat", time.time())
            events.baseline_epoch(epoch, metrics)

        try:
            result = run(model, ctx.task, settings, on_epoch=beat, steps_per_epoch=ctx.steps_per_epoch)
        except KeyboardInterrupt:
            study.set_user_attr("baseline_heartbeat", 0.0)  # release the claim: a resumed run need not wait
            raise
        val, test, curve, seconds, epochs = result.val, result.test, result.curve, result.seconds, settings.epochs
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint = workdir / "dense.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    data = _state_bytes(state)
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
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def default_workdir(spec: StudySpec) -> Path:
    """Where a worker keeps the study's local files (the baseline checkpoint)."""
    return Path(".sparsesearch") / spec.name
