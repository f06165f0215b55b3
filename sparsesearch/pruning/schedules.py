"""Sparsity schedules: pure functions of the optimizer step.

With progress ``p = (step - start) / (end - start)`` clipped to [0, 1], the ramps take a layer from
``init`` (s0) to its ``target`` (st):

========  ============================================  ==========================================
ramp      sparsity at progress p                         shape
========  ============================================  ==========================================
cubic     st + (s0 - st) * (1 - p)**3                    Zhu & Gupta 2017: fast early, slow late
linear    s0 + (st - s0) * p
exp       1 - (1 - s0) * ((1 - st) / (1 - s0))**p        density shrinks by a constant factor (INC)
cos       s0 + (st - s0) * (1 - cos(p * pi / 2))         INC's "cos": slow early, fast late
cube      s0 + (st - s0) * p**3                          INC's "cube": the mirror of cubic, back-loaded
========  ============================================  ==========================================

Before ``start`` nothing is pruned (0.0); from ``end`` on the target holds. One-shot when start == end.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sparsesearch.records.names import RAMPS as RAMP_NAMES
from sparsesearch.records.pruning import Schedule


def _cubic(s0: float, st: float, p: float) -> float:
    return st + (s0 - st) * (1.0 - p) ** 3


def _linear(s0: float, st: float, p: float) -> float:
    return s0 + (st - s0) * p


def _exp(s0: float, st: float, p: float) -> float:
    return 1.0 - (1.0 - s0) * ((1.0 - st) / (1.0 - s0)) ** p


def _cos(s0: float, st: float, p: float) -> float:
    return s0 + (st - s0) * (1.0 - math.cos(p * math.pi / 2.0))


def _cube(s0: float, st: float, p: float) -> float:
    return s0 + (st - s0) * p**3


RAMPS: dict[str, Callable[[float, float, float], float]] = {
    "cubic": _cubic,
    "linear": _linear,
    "exp": _exp,
    "cos": _cos,
    "cube": _cube,
}
if tuple(RAMPS) != RAMP_NAMES:  # the records' name table and this registry must name the same ramps
    raise ImportError(f"ramp registry {tuple(RAMPS)} differs from sparsesearch.records.names.RAMPS {RAMP_NAMES}")


def progress(schedule: Schedule, step: int) -> float:
    """Fraction of the ramp done at ``step``: 0 at start (and before), 1 at end (and after)."""
    if step >= schedule.end_step:
        return 1.0
    if step <= schedule.start_step:
        return 0.0
    return (step - schedule.start_step) / (schedule.end_step - schedule.start_step)


def sparsity_at(schedule: Schedule, target: float, step: int) -> float:
    """The sparsity a layer with ``target`` should have at ``step``."""
    if step < schedule.start_step:
        return 0.0
    s0 = min(schedule.init_sparsity, target)
    if step >= schedule.end_step:
        return target
    value = RAMPS[schedule.ramp](s0, target, progress(schedule, step))
    return min(max(value, 0.0), target)


def is_update_step(schedule: Schedule, step: int) -> bool:
    """True when masks are recomputed at ``step``: start, every ``pruning_frequency`` after it, and end."""
    if step < schedule.start_step or step > schedule.end_step:
        return False
    return step == schedule.end_step or (step - schedule.start_step) % schedule.pruning_frequency == 0


def update_steps(schedule: Schedule) -> list[int]:
    """Every step at which masks are recomputed, in order."""
    steps = list(range(schedule.start_step, schedule.end_step + 1, schedule.pruning_frequency))
    if steps[-1] != schedule.end_step:
        steps.append(schedule.end_step)
    return steps
