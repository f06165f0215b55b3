"""Measured costs of a pruned model: latency, non-zero parameters, saved bytes, FLOPs.

* :func:`latency_ms` — the median of timed forward passes at a batch size, after warm-up, at a fixed
  number of CPU threads, on the given device (CUDA is synchronised around every pass);
* :func:`params` — non-zero parameters (a tied Parameter once);
* :func:`size_bytes` — the bytes of the sparse save (:mod:`sparsesearch.pruning.sparse_state`);
* :func:`flops` — floating-point operations of one forward pass through the Linear and convolution layers,
  counted with forward hooks: 2 per multiply-accumulate of a non-zero weight (``sparse=False``: of every
  weight), plus the bias additions;
* :func:`semi_structured_latency_ms` — the latency with 2:4 weights run by NVIDIA's sparse tensor cores
  (``torch.sparse.to_sparse_semi_structured``); on anything but a CUDA GPU that supports them it says why it
  is unavailable instead of giving a number.

:func:`measure_costs` measures them all on the compacted model when the masks remove whole channels (and
Torch-Pruning is installed), else on the masked model, and says which it measured.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.pruning.compact import Compaction, call, compact, compacts, torch_pruning
from sparsesearch.pruning.sparse_state import sparse_size

log = logging.getLogger(__name__)

#: timed forward passes and warm-up passes of :func:`latency_ms` by default
REPEATS = 30
WARMUP = 5


# ------------------------------------------------------------------------------------------ inputs


def example_inputs(task: Any) -> Any | None:
    """The inputs of the task's first validation batch (None for a task with its own loop, which has no data
    sparsesearch can read)."""
    from sparsesearch.tasks.base import Task
    from sparsesearch.tasks.data import split_batch

    if not isinstance(task, Task):
        return None
    for batch in task.val_data:
        return (task.batch or split_batch)(batch)[0]
    return None


def batch_of(inputs: Any, batch_size: int | None) -> Any:
    """``inputs`` cut or repeated along the first dimension to ``batch_size`` rows (None: as they are)."""
    if batch_size is None:
        return inputs
    if isinstance(inputs, torch.Tensor):
        if inputs.dim() == 0:
            return inputs
        reps = -(-batch_size // max(inputs.shape[0], 1))
        whole = inputs if reps == 1 else inputs.repeat(reps, *([1] * (inputs.dim() - 1)))
        return whole[:batch_size]
    if isinstance(inputs, Mapping):
        return {k: batch_of(v, batch_size) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(batch_of(v, batch_size) for v in inputs)
    return inputs


def _to(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, Mapping):
        return {k: _to(v, device) for k, v in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(_to(v, device) for v in inputs)
    return inputs


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------ the measurements


@torch.no_grad()
def latency_ms(model: nn.Module, inputs: Any, *, device: str | torch.device = "cpu", threads: int | None = 1,
               batch_size: int | None = None, warmup: int = WARMUP, repeats: int = REPEATS) -> float:
    """Median milliseconds of one forward pass of ``model`` on ``inputs`` (cut or repeated to ``batch_size``
    rows), after ``warmup`` passes, with ``threads`` CPU threads, on ``device``; the model is put in eval
    mode on a copy, so the caller's model is not moved."""
    if repeats < 1:
        raise ConfigError("latency needs at least one timed pass", key="repeats", value=repeats, allowed=">= 1")
    where = torch.device(device)
    net = copy.deepcopy(model).to(where).eval()
    x = _to(batch_of(inputs, batch_size), where)
    sync = torch.cuda.synchronize if where.type == "cuda" else (lambda: None)
    times = []
    with _threads(threads):
        for _ in range(warmup):
            call(net, x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            call(net, x)
            sync()
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def params(model: nn.Module, *, nonzero: bool = True) -> int:
    """Parameters of ``model`` (non-zero ones by default), each tied Parameter counted once."""
    unique = {id(p): p for p in model.parameters()}.values()
    return sum(int(torch.count_nonzero(p)) if nonzero else p.numel() for p in unique)


def size_bytes(model: nn.Module) -> int:
    """Bytes of the model's sparse save (what ``sparsesearch export --save FILE`` writes)."""
    return sparse_size(model)


@torch.no_grad()
def flops(model: nn.Module, inputs: Any, *, sparse: bool = True) -> int:
    """Floating-point operations of one forward pass on ``inputs`` through Linear and convolution layers:
    2 per multiply-accumulate of a non-zero weight (every weight with ``sparse=False``) and one per bias
    element of the output. Other layers (norms, activations, attention's matrix products) are not counted."""
    total = 0

    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        if not isinstance(output, torch.Tensor):
            return
        weight, bias = module.weight, module.bias
        assert isinstance(weight, torch.Tensor)
        used = int(torch.count_nonzero(weight)) if sparse else weight.numel()
        if isinstance(module, nn.Linear):
            positions = output.numel() // max(module.out_features, 1)
            per_weight = positions
        else:  # a convolution: each weight is used once per output position of its group
            out_channels = output.shape[1] if output.dim() > 1 else 1
            per_weight = output.numel() // max(out_channels, 1)
            positions = per_weight
        total += 2 * used * per_weight
        if isinstance(bias, torch.Tensor):
            total += positions * bias.numel()

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    was_training = model.training
    model.eval()
    try:
        call(model, inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return total


@dataclass(frozen=True)
class Unavailable:
    """A measurement that cannot be made here, and why."""

    reason: str

    def __bool__(self) -> bool:
        return False


def semi_structured_support(device: str | torch.device) -> str | None:
    """Why 2:4 sparse kernels cannot run on ``device`` (None when they can)."""
    where = torch.device(device)
    if where.type != "cuda":
        return (f"2:4 sparse kernels (torch.sparse.to_sparse_semi_structured) run on NVIDIA GPUs only; the "
                f"device is {where.type}")
    if not torch.cuda.is_available():
        return "2:4 sparse kernels need CUDA, and no CUDA GPU is available"
    major, minor = torch.cuda.get_device_capability(where)
    if major < 8:
        return f"2:4 sparse kernels need a GPU of compute capability 8.0 or newer (this one has {major}.{minor})"
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return "this PyTorch has no torch.sparse.to_sparse_semi_structured"
    return None


def _two_four(weight: torch.Tensor) -> bool:
    """Whether every group of 4 consecutive input weights of every row has at least 2 zeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.reshape(weight.shape[0], -1, 4) == 0).sum(-1) >= 2).all())


@torch.no_grad()
def semi_structured_latency_ms(model: nn.Module, inputs: Any, *, device: str | torch.device = "cuda",
                               batch_size: int | None = None, dtype: torch.dtype = torch.float16,
                               warmup: int = WARMUP, repeats: int = REPEATS) -> float | Unavailable:
    """Median milliseconds of a forward pass with every 2:4-sparse Linear weight converted to NVIDIA's
    semi-structured format (in ``dtype``), or :class:`Unavailable` saying why it cannot be measured here."""
    reason = semi_structured_support(device)
    if reason is not None:
        return Unavailable(reason)
    from torch.sparse import to_sparse_semi_structured

    where = torch.device(device)
    net = copy.deepcopy(model).to(where, dtype).eval()
    converted = 0
    for module in net.modules():
        if isinstance(module, nn.Linear) and _two_four(module.weight):
            try:
                module.weight = nn.Parameter(to_sparse_semi_structured(module.weight), requires_grad=False)
                converted += 1
            except (RuntimeError, ValueError) as exc:  # shapes the kernels refuse (too small, not aligned)
                log.info("2:4 kernels refuse a %s weight: %s", tuple(module.weight.shape), exc)
    if not converted:
        return Unavailable("no Linear weight of this model is 2:4 sparse in a shape the 2:4 kernels accept")
    x = batch_of(inputs, batch_size)
    x = _to(x, where)
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        x = x.to(dtype)
    return latency_ms(net, x, device=where, threads=None, warmup=warmup, repeats=repeats)


# ------------------------------------------------------------------------------------------ all at once


@dataclass
class Costs:
    """The measured costs of one model: ``latency_ms`` at ``batch_size``, ``flops`` of one sample, ``params``
    non-zero, ``size_bytes`` of the sparse save; ``measured`` says which form was measured (compacted or
    masked); ``latency_2to4_ms`` is None unless 2:4 kernels ran (``notes`` say why not)."""

    latency_ms: float
    params: int
    size_bytes: int
    flops: int
    measured: str
    batch_size: int | None = None
    threads: int | None = None
    device: str = "cpu"
    latency_2to4_ms: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_costs(model: nn.Module, inputs: Any, *, masks: Any = None, patterns: Sequence[str] = (),
                  compaction: str | bool = "auto", device: str | torch.device = "cpu", threads: int | None = 1,
                  batch_size: int | None = None, repeats: int = REPEATS) -> tuple[Costs, Compaction | None]:
    """Every cost of ``model`` (pruned in place: its pruned weights are zero), measured on the compacted
    model where compaction applies, else on the masked one.

    ``compaction``: ``"auto"`` compacts when a pattern (``patterns``, or those of a Pruner given as
    ``masks``) removes whole channels and Torch-Pruning is installed; True always tries (ConfigError
    without Torch-Pruning); False measures the masked model. ``inputs`` are example inputs (several samples:
    they also serve to check the compaction); ``batch_size`` the batch the latency is timed at. 2:4 latency is
    measured only on a CUDA device; elsewhere a note says it was not.
    """
    if compaction not in ("auto", True, False):
        raise ConfigError("unknown compaction choice", key="compaction", value=compaction, allowed="auto, True, False")
    config = getattr(masks, "config", None)
    names = list(patterns) or ([g.pattern for g in config.groups] if config is not None else [])
    notes: list[str] = []
    result: Compaction | None = None
    target = model
    wanted = compaction is True or (compaction == "auto" and any(compacts(p) for p in names))
    if wanted:
        try:
            torch_pruning()
        except ConfigError:
            if compaction is True:
                raise
            wanted = False
            notes.append("Torch-Pruning is not installed, so the masked model was measured "
                         "(pip install sparsesearch[compact])")
    if wanted:
        result = compact(model, masks, inputs)
        target = result.model
        if not result.compacted:
            notes.append(result.message)
    measured = "compacted" if result is not None and result.compacted else "masked"
    costs = Costs(
        latency_ms=latency_ms(target, inputs, device=device, threads=threads, batch_size=batch_size, repeats=repeats),
        params=params(target), size_bytes=size_bytes(target), flops=flops(target, batch_of(inputs, 1)),
        measured=measured, batch_size=batch_size, threads=threads, device=str(device), notes=notes)
    if any(p == "2:4" for p in names):
        fast = semi_structured_latency_ms(model, inputs, device=device, batch_size=batch_size, repeats=repeats)
        if isinstance(fast, Unavailable):
            notes.append(f"2:4 latency not measured: {fast.reason}")
        else:
            costs.latency_2to4_ms = fast
    return costs, result
