"""Export rules on constructed fronts, hypervolume, and our multi-objective early stopping."""

from __future__ import annotations

import pytest

from sparsesearch.records.study import EarlyStopping, Export
from sparsesearch.search.early_stopping import Stopper
from sparsesearch.search.pareto import (
    NoTrialSelected,
    Point,
    hypervolume,
    knee,
    non_dominated,
    select,
    study_hypervolume,
)

FRONT = [
    Point(1, 0.990, 0.50),
    Point(2, 0.985, 0.80),
    Point(3, 0.980, 0.90),
    Point(4, 0.960, 0.95),
    Point(5, 0.900, 0.98),
    Point(6, 0.600, 0.99),
]


def test_max_sparsity_within_drop_picks_the_sparsest_within_the_drop():
    assert select(FRONT, Export(max_drop=0.01), dense=0.99).number == 3
    assert select(FRONT, Export(max_drop=0.03), dense=0.99).number == 4
    assert select(FRONT, Export(max_drop=0.0), dense=0.99).number == 1
    assert select(FRONT, Export(max_drop=0.5), dense=0.99).number == 6


def test_max_sparsity_within_drop_explains_when_nothing_qualifies():
    with pytest.raises(NoTrialSelected, match="validation accuracy 0.9990; the best is trial 1"):
        select(FRONT, Export(max_drop=0.001), dense=0.999, metric="accuracy")


def test_rules_follow_a_metric_where_lower_is_better():
    """Perplexity: lower is better; the drop and the rules turn with it."""
    front = [Point(1, 10.0, 0.5, maximize=False), Point(2, 10.4, 0.8, maximize=False),
             Point(3, 11.0, 0.9, maximize=False), Point(4, 20.0, 0.95, maximize=False)]
    assert select(front, Export(max_drop=0.5), dense=10.0).number == 2
    assert select(front, Export(max_drop=0.1, relative=True), dense=10.0).number == 3
    assert select(front, Export(rule="max_accuracy_at_sparsity", min_sparsity=0.85), None).number == 3
    with pytest.raises(NoTrialSelected, match="best is trial 1"):
        select(front, Export(max_drop=0.0), dense=9.0)
    assert non_dominated(front + [Point(5, 12.0, 0.9, maximize=False)]) == front[::-1]  # sparsest first
    with pytest.raises(NoTrialSelected, match="no Pareto front"):
        select([], Export(), dense=0.99)


def test_max_accuracy_at_sparsity():
    rule = Export(rule="max_accuracy_at_sparsity", min_sparsity=0.9)
    assert select(FRONT, rule, None).number == 3
    assert select(FRONT, Export(rule="max_accuracy_at_sparsity", min_sparsity=0.985), None).number == 6
    with pytest.raises(NoTrialSelected, match="sparsest is trial 6"):
        select(FRONT, Export(rule="max_accuracy_at_sparsity", min_sparsity=0.995), None)


def test_knee_is_the_point_farthest_above_the_line_between_the_ends():
    # scaled over the front: trial 4 -> (0.923, 0.918), sum 1.841, beats trial 3 (1.790) and trial 5 (1.749)
    assert knee(FRONT).number == 4
    assert select(FRONT, Export(rule="knee"), None).number == 4
    assert knee([Point(1, 0.9, 0.5)]).number == 1
    assert knee([Point(1, 0.9, 0.5), Point(2, 0.8, 0.9)]).number == 2


def test_ties_prefer_the_other_objective():
    tied = [Point(1, 0.98, 0.9), Point(2, 0.99, 0.9)]
    assert select(tied, Export(max_drop=0.05), dense=0.99).number == 2


def test_hypervolume_of_a_known_front():
    # staircase under (0.9, 0.5) and (0.5, 0.9): 0.9*0.5 + 0.5*(0.9-0.5) = 0.65
    pts = [Point(0, 0.9, 0.5), Point(1, 0.5, 0.9)]
    assert hypervolume(pts) == pytest.approx(0.65)
    assert hypervolume(pts + [Point(2, 0.4, 0.4)]) == pytest.approx(0.65)  # dominated points add nothing
    assert hypervolume([]) == 0.0


def test_study_hypervolume_is_normalised_to_the_feasible_box():
    pts = [Point(0, 0.97, 0.9)]
    # reference (0.99 - 0.04, 0.5): box 0.05 x 0.5; the point dominates 0.02 x 0.4
    spec = {"constraints": {"max_accuracy_drop": 0.04}, "space": {"sparsity": [0.5, 0.99]}}
    assert study_hypervolume(pts, spec, 0.99) == pytest.approx(0.02 * 0.4 / (0.05 * 0.5))
    assert study_hypervolume([Point(0, 1.0, 1.0)], spec, 0.99) == pytest.approx(1.0)
    no_constraint = {"constraints": {"max_accuracy_drop": None}, "space": {"sparsity": [0.0, 0.99]}}
    assert study_hypervolume(pts, no_constraint, 0.99) == pytest.approx(0.97 * 0.9)


def test_non_dominated():
    pts = FRONT + [Point(7, 0.95, 0.90), Point(8, 0.99, 0.50)]
    assert {p.number for p in non_dominated(pts)} == {1, 2, 3, 4, 5, 6, 8}


# ---------------------------------------------------------------------------------- early stopping


def rules(**kw) -> EarlyStopping:
    return EarlyStopping(**{"min_epochs": 0, "patience": 2, "margin": 0.01, **kw})


def test_floor_rule_waits_for_the_target_and_two_settled_epochs():
    stopper = Stopper(rules(rules=("floor",)), floor=0.9, completed=[], epochs=10)
    assert stopper.check(0, 0.5, 0.5, target_reached=False) is None  # still ramping
    assert stopper.check(1, 0.5, 0.9, target_reached=True) is None  # first epoch at target
    assert stopper.check(2, 0.5, 0.9, target_reached=True) is None  # settled; below the floor once
    reason = stopper.check(3, 0.5, 0.9, target_reached=True)  # flat, far below: cannot reach the floor
    assert reason is not None and "constraint's floor" in reason


def test_floor_rule_spares_a_trial_that_is_recovering_fast_enough():
    stopper = Stopper(rules(rules=("floor",)), floor=0.9, completed=[], epochs=12)
    curve = [0.6, 0.3, 0.45, 0.6, 0.7, 0.78, 0.84, 0.88, 0.9, 0.91, 0.92, 0.92]  # recovers to the floor
    assert all(stopper.check(e, a, 0.99, target_reached=e >= 1) is None for e, a in enumerate(curve))


def test_floor_rule_stops_a_trial_recovering_too_slowly():
    stopper = Stopper(rules(rules=("floor",)), floor=0.9, completed=[], epochs=12)
    curve = [0.6, 0.3, 0.31, 0.32, 0.33, 0.34]
    reasons = [stopper.check(e, a, 0.99, target_reached=e >= 1) for e, a in enumerate(curve)]
    assert reasons[:3] == [None, None, None] and reasons[3] is not None


def test_floor_rule_resets_when_the_projection_recovers():
    stopper = Stopper(rules(rules=("floor",), margin=0.0, patience=3), floor=0.9, completed=[], epochs=20)
    assert [stopper.check(e, a, 0.9, True) for e, a in enumerate([0.5, 0.5, 0.5])] == [None, None, None]
    assert stopper.check(3, 0.7, 0.9, True) is None  # climbing: the projection is back above the floor
    assert stopper._streak["floor"] == 0


def test_dominated_rule_compares_at_the_same_epoch_and_at_the_end():
    completed = [[(0.9, 0.95), (0.96, 0.95), (0.97, 0.95), (0.98, 0.95), (0.98, 0.95), (0.98, 0.95)]]
    stopper = Stopper(rules(rules=("dominated",)), floor=None, completed=completed, epochs=6)
    assert stopper.check(0, 0.90, 0.90, True) is None
    assert stopper.check(1, 0.93, 0.90, True) is None  # still climbing: projects above the completed trial
    assert stopper.check(2, 0.93, 0.90, True) is None
    assert stopper.check(3, 0.93, 0.90, True) is None  # flat now: dominated once
    reason = stopper.check(4, 0.93, 0.90, True)
    assert reason is not None and "dominated at epoch 4" in reason


def test_sparser_trials_are_not_dominated():
    completed = [[(0.99, 0.90)] * 6]
    stopper = Stopper(rules(rules=("dominated",), patience=1), floor=None, completed=completed, epochs=6)
    assert all(stopper.check(e, 0.5, 0.95, True) is None for e in range(6))


def test_the_last_epoch_is_never_cut_and_disabled_never_stops():
    stopper = Stopper(rules(rules=("floor",), patience=1), floor=0.99, completed=[], epochs=3)
    # at target from epoch 1: settled only at epoch 2, which is the last, and the last epoch is never cut
    assert [stopper.check(e, 0.1, 0.9, e >= 1) for e in range(3)] == [None, None, None]
    stopper = Stopper(EarlyStopping(enabled=False), floor=0.99, completed=[[(1.0, 1.0)] * 5], epochs=5)
    assert all(stopper.check(e, 0.0, 0.5, True) is None for e in range(5))


def test_dominated_rule_can_stop_a_trial_during_its_ramp():
    # the completed trial was sparser and more accurate at every epoch and ended sparser than our target
    completed = [[(0.98, 0.5), (0.97, 0.8), (0.97, 0.95), (0.97, 0.95), (0.97, 0.95), (0.97, 0.95)]]
    stopper = Stopper(rules(rules=("dominated",)), floor=None, completed=completed, epochs=6, target=0.9)
    assert stopper.check(0, 0.95, 0.3, False) is None
    reason = stopper.check(1, 0.90, 0.6, False)
    assert reason is not None and "ramping" in reason
    # but not when the completed trial ended less sparse than this trial's target
    stopper = Stopper(rules(rules=("dominated",)), floor=None, completed=completed, epochs=6, target=0.99)
    assert [stopper.check(e, 0.90, 0.3 + 0.1 * e, False) for e in range(5)] == [None] * 5


def test_early_stopping_follows_a_metric_where_lower_is_better():
    """Perplexity must stay below dense + drop; a trial whose perplexity stays above the floor is stopped."""
    stopper = Stopper(rules(rules=("floor",), patience=2), floor=12.0, completed=[], epochs=10, maximize=False,
                      metric="perplexity")
    reasons = [stopper.check(e, 20.0, 0.9, True) for e in range(6)]
    stopped = [r for r in reasons if r]
    assert stopped and "validation perplexity 20.0000" in stopped[0] and "above the constraint's floor 12.0000" in stopped[0]
    fine = Stopper(rules(rules=("floor",), patience=2), floor=12.0, completed=[], epochs=10, maximize=False)
    assert not any(fine.check(e, 11.0, 0.9, True) for e in range(6))
