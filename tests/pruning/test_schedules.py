"""Schedule values pinned at start, middle and end for each ramp; update steps; epoch conversion."""

from __future__ import annotations

import math

import pytest

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Schedule, is_update_step, sparsity_at, update_steps

S = Schedule(start_step=10, end_step=110, pruning_frequency=10, init_sparsity=0.0)


@pytest.mark.parametrize("ramp,middle", [
    ("cubic", 0.8 * (1 - 0.5**3)),        # Zhu & Gupta: 0.7 at half-way, fast early
    ("linear", 0.4),
    ("exp", 1 - 0.2**0.5),                # density shrinks geometrically
    ("cos", 0.8 * (1 - math.cos(math.pi / 4))),
    ("cube", 0.8 * 0.5**3),               # INC's back-loaded cube: 0.1 at half-way
])
def test_ramps_pinned_at_start_middle_end(ramp, middle):
    s = Schedule(start_step=10, end_step=110, pruning_frequency=10, ramp=ramp)
    assert sparsity_at(s, 0.8, 0) == 0.0          # before start nothing is pruned
    assert sparsity_at(s, 0.8, 10) == pytest.approx(0.0)
    assert sparsity_at(s, 0.8, 60) == pytest.approx(middle)
    assert sparsity_at(s, 0.8, 110) == 0.8
    assert sparsity_at(s, 0.8, 1000) == 0.8


def test_cubic_is_the_mirror_of_cube():
    fast = Schedule(start_step=0, end_step=100, ramp="cubic")
    slow = Schedule(start_step=0, end_step=100, ramp="cube")
    for step in range(0, 101, 10):
        assert sparsity_at(fast, 0.9, step) == pytest.approx(0.9 - sparsity_at(slow, 0.9, 100 - step))
    assert sparsity_at(fast, 0.9, 25) > sparsity_at(slow, 0.9, 25)


def test_cubic_pinned_with_init_sparsity():
    s = Schedule(start_step=0, end_step=100, init_sparsity=0.2, ramp="cubic")
    assert sparsity_at(s, 0.9, 0) == pytest.approx(0.2)
    assert sparsity_at(s, 0.9, 50) == pytest.approx(0.9 + (0.2 - 0.9) * 0.125)
    assert sparsity_at(s, 0.9, 100) == 0.9


@pytest.mark.parametrize("ramp", ["cubic", "linear", "exp", "cos", "cube"])
def test_ramps_are_monotone_and_bounded(ramp):
    s = Schedule(start_step=3, end_step=97, pruning_frequency=7, init_sparsity=0.1, ramp=ramp)
    values = [sparsity_at(s, 0.95, t) for t in range(0, 120)]
    assert all(b >= a - 1e-12 for a, b in zip(values, values[1:]))
    assert max(values) == 0.95 and min(values) == 0.0


def test_update_steps_include_start_every_frequency_and_end():
    s = Schedule(start_step=5, end_step=27, pruning_frequency=10)
    assert update_steps(s) == [5, 15, 25, 27]
    assert [t for t in range(40) if is_update_step(s, t)] == [5, 15, 25, 27]
    assert update_steps(S) == list(range(10, 111, 10))


def test_one_shot_when_start_equals_end():
    s = Schedule(start_step=7, end_step=7)
    assert update_steps(s) == [7]
    assert sparsity_at(s, 0.6, 6) == 0.0
    assert sparsity_at(s, 0.6, 7) == 0.6


def test_epochs_convert_to_steps():
    s = Schedule(start_epoch=1, end_epoch=4, frequency=2, init_sparsity=0.05)
    steps = s.in_steps(steps_per_epoch=25)
    assert (steps.start_step, steps.end_step, steps.pruning_frequency, steps.init_sparsity) == (25, 100, 50, 0.05)
    assert update_steps(steps) == [25, 75, 100]
    with pytest.raises(ConfigError, match="steps per epoch"):
        s.in_steps(None)


@pytest.mark.parametrize("kwargs,key", [
    ({"start_step": 10, "end_step": 5}, "start_step"),
    ({"pruning_frequency": 0}, "pruning_frequency"),
    ({"pruning_frequency": -3}, "pruning_frequency"),
    ({"init_sparsity": 1.0}, "init_sparsity"),
    ({"ramp": "cubical"}, "ramp"),
    ({"start_epoch": 3, "end_epoch": 1}, "start_epoch"),
    ({"end_epoch": 3}, "end_epoch"),
    ({"start_epoch": 0, "end_epoch": 2, "end_step": 5}, "start_epoch"),
])
def test_bad_schedules_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as info:
        Schedule(**kwargs)
    assert info.value.key == key
    assert "allowed" in str(info.value)


def test_ramp_typo_suggests_closest():
    with pytest.raises(ConfigError) as info:
        Schedule(ramp="cubik")
    assert info.value.suggestion == "cubic"
