"""Imported schedules update on the steps INC updates on and ask for the sparsity INC asks for, float steps
and INC's early stops included. INC's own code is re-enacted here line by line as the reference."""

from __future__ import annotations

import math

import pytest

from sparsesearch.formats.inc import import_inc
from sparsesearch.formats.inc1 import _epoch_schedule, _epoch_values
from sparsesearch.formats.inc_rules import inc1_updates, inc3_updates
from sparsesearch.pruning.schedules import is_update_step, sparsity_at
from sparsesearch.records.pruning import Schedule


def _inc_decay(decay: str, target: float, done: float, total: float) -> float:
    """neural_compressor/compression/pruner/schedulers.py IterativeScheduler.update_sparsity_ratio (init 0)."""
    if decay == "cos":
        value = target * (1.0 - math.cos(float(done) / total * (math.pi / 2)))
    elif decay == "exp":
        value = 1.0 - ((1.0 - target) ** (1 / total)) ** done
    elif decay == "linear":
        value = target * float(done) / total
    else:  # cube
        value = target * (float(done) / total) ** 3
    return min(target, value)


def inc3_reference(start: float, end: float, freq: int, target: float, decay: str) -> dict[int, float]:
    """INC 3.x: pruners/base.py BasePruner.__init__ / check_is_pruned_step, basic.py update_masks."""
    total = (end - start + freq) // freq
    done = 0
    total -= 1
    if total == 0:
        total, done = 1, 1
    out = {}
    for step in range(0, int(end) + 3):
        if step < start or step > end or int(step - start) % freq != 0:
            continue
        out[step] = target if start == end else _inc_decay(decay, target, done, total)
        done += 1
    return out


def inc1_reference(start: int, end: int, freq: int, target: float, decay: str) -> dict[int, float]:
    """INC 1.x/2.x experimental/pytorch_pruner: pruner.py Pruner._init / on_step_begin, scheduler.py."""
    total = (end - start + 1) // freq
    done, out = 0, {}
    for step in range(0, end + 3):
        if step < start or step > end or int(step - start) % freq != 0:
            continue
        out[step] = target if start == end else _inc_decay(decay, target, done, total)
        done += 1
    return out


CASES = [(0, 10, 1), (0, 10, 3), (2, 30, 4), (5, 5, 1), (3, 4, 5), (0, 1, 2), (12.5, 110.7, 10), (3.5, 25.9, 3),
         (2.5, 10.9, 2), (0.5, 7, 1), (4.2, 4.9, 1), (2.5, 3.9, 1)]


@pytest.mark.parametrize("start, end, freq", CASES)
@pytest.mark.parametrize("decay", ["exp", "linear", "cube"])
def test_inc3_schedules_are_reproduced_update_by_update(start, end, freq, decay) -> None:
    reference = inc3_reference(start, end, freq, 0.8, decay)
    recipe = import_inc({"pruning_type": "magnitude", "target_sparsity": 0.8, "start_step": start, "end_step": end,
                         "pruning_frequency": freq, "sparsity_decay_type": decay})
    group = recipe.pruning.groups[0]
    schedule, target = group.schedule, group.target_sparsity
    for step, value in reference.items():
        assert sparsity_at(schedule, target, step) == pytest.approx(value, abs=1e-9), (step, value)
    ours = [s for s in range(0, int(end) + 3) if is_update_step(schedule, s) and sparsity_at(schedule, target, s) > 0]
    assert set(ours) == {s for s, v in reference.items() if v > 0}  # masks change exactly where INC's do
    if not any(reference.values()):
        assert target == 0.0


def test_float_steps_note_says_how_they_are_rounded() -> None:
    recipe = import_inc({"pruning_type": "magnitude", "start_step": 2.5, "end_step": 10.9, "pruning_frequency": 2,
                         "target_sparsity": 0.8})
    schedule = recipe.pruning.groups[0].schedule
    assert (schedule.start_step, schedule.end_step) == (3, 9)
    notes = "\n".join(recipe.provenance.notes)
    assert "start_step rounded up" in notes and "never reaches target 0.8" in notes


@pytest.mark.parametrize("start, end, freq", [(0, 10, 1), (0, 40, 8), (0, 24, 4), (2, 20, 1), (1, 1, 2), (0, 9, 4)])
@pytest.mark.parametrize("decay", ["exp", "linear", "cube"])
def test_inc1_pytorch_pruner_schedules(start, end, freq, decay) -> None:
    from sparsesearch.formats.inc_rules import schedule_for

    reference = inc1_reference(start, end, freq, 0.9, decay)
    data, target = schedule_for(inc1_updates(start, end, freq), 0.9, decay, "p", [])
    schedule = Schedule(**data)
    for step, value in reference.items():
        assert sparsity_at(schedule, target, step) == pytest.approx(value, abs=1e-9), (step, value)


def test_inc3_update_plan_examples() -> None:
    plan = inc3_updates(12.5, 110.7, 10)
    assert (plan.first, plan.last, plan.count, plan.progress) == (13, 103, 10, 1.0)
    assert inc3_updates(4.5, 4.5, 1).count == 0  # a float start == end is never a whole step: INC prunes nothing
    plan = inc1_updates(0, 10, 1)
    assert (plan.last, plan.progress) == (10, pytest.approx(10 / 11))  # INC 1.x stops one update short


def _legacy_reference(s: int, end: int, f: float, init: float, target: float, flavor: str) -> dict[int, float]:
    """INC 1.x pruners/pruner.py Pruner.update_sparsity and LPOT 1.6 lpot/pruners/pruner.py, per epoch."""
    out = {}
    for e in range(s, end + 1):
        if flavor == "inc":
            out[e] = target if s == end else init + (target - init) * ((e - s + 1) // f) * f / (end - s + 1)
        else:
            out[e] = init if s == end else init + (target - init) * ((e - s) // f) * f / (end - s)
    return out


@pytest.mark.parametrize("flavor", ["inc", "lpot"])
@pytest.mark.parametrize("s, end, f, init", [(0, 4, 1, 0.0), (1, 3, 1, 0.0), (0, 4, 2, 0.0), (0, 9, 3, 0.0),
                                              (0, 4, 1, 0.2), (2, 2, 1, 0.1), (0, 5, 2, 0.0)])
def test_legacy_epoch_staircase_is_reproduced(flavor, s, end, f, init) -> None:
    reference = _legacy_reference(s, end, f, init, 0.7, flavor)
    assert dict(_epoch_values(s, end, f, init, 0.7, flavor)) == pytest.approx(reference)
    data, target = _epoch_schedule(_epoch_values(s, end, f, init, 0.7, flavor), "p", [])
    schedule = Schedule(**data).in_steps(1)  # one step per epoch: epoch e begins at step e
    for epoch, value in reference.items():
        updates = [s for s in range(epoch + 1) if is_update_step(schedule, s)]
        held = sparsity_at(schedule, target, updates[-1]) if updates else 0.0  # the masks of the last update
        if value > 0:
            assert held == pytest.approx(value), (epoch, value)
