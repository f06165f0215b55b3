"""Contract tests over every registered criterion and pattern, through sparsesearch.testing (one implementation:
a third-party criterion or pattern runs the same checks)."""

from __future__ import annotations

import pytest
import torch

from sparsesearch import testing
from sparsesearch.errors import ConfigError
from sparsesearch.pruning import CRITERIA, Pruner
from sparsesearch.pruning.criteria import Criterion
from sparsesearch.pruning.patterns import PATTERNS, build_pattern
from sparsesearch.records import names

from helpers import make_mlp

TYPES = sorted(CRITERIA)


def test_registries_agree_with_the_torch_free_name_table():
    assert set(CRITERIA) == set(names.CRITERIA)
    for cls in CRITERIA.values():
        testing.check_traits(cls)
    assert set(PATTERNS) == {"block", "n_in_m"}
    assert "1x1" in testing.PATTERN_EXAMPLES and "2:4" in testing.PATTERN_EXAMPLES


@pytest.mark.parametrize("pattern", testing.PATTERN_EXAMPLES)
@pytest.mark.parametrize("pruning_type", TYPES)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_every_type_and_pattern_reaches_target_with_its_structure(pruning_type, pattern, kind):
    testing.check_reaches_target(CRITERIA[pruning_type], pattern, kind)


@pytest.mark.parametrize("pruning_type", TYPES)
def test_every_type_scores_like_its_weights(pruning_type):
    testing.check_scores(CRITERIA[pruning_type])


@pytest.mark.parametrize("pruning_type", TYPES)
def test_every_type_keeps_zeros_through_sgd_adam_adamw(pruning_type):
    testing.check_zeros_stay_zero(CRITERIA[pruning_type])


@pytest.mark.parametrize("pruning_type", TYPES)
def test_every_type_resumes_from_state_dict_identically(pruning_type):
    testing.check_state_dict_round_trip(CRITERIA[pruning_type])


@pytest.mark.parametrize("pattern", testing.PATTERN_EXAMPLES)
def test_every_pattern_meets_its_contract(pattern):
    testing.check_pattern(pattern)


@pytest.mark.parametrize("pattern", [p for p in testing.PATTERN_EXAMPLES if build_pattern(p).supports_global])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_global_scope_with_every_global_pattern(pattern, kind):
    testing.check_reaches_target(CRITERIA["magnitude"], pattern, kind, scope="global")


class _LargestFirst(Criterion):
    """A third-party criterion: prunes the largest weights (silly, but valid)."""

    name = "largest_first"

    def scores(self) -> list[torch.Tensor]:
        return [-w.detach().abs().float() for w in self.weights]


class _WrongShape(_LargestFirst):
    name = "wrong_shape"

    def scores(self) -> list[torch.Tensor]:
        return [s.reshape(-1) for s in super().scores()]


def test_a_third_party_criterion_runs_the_whole_contract_and_is_unregistered_after():
    testing.check_criterion(_LargestFirst, patterns=["1x1", "4x1", "2:4"])
    assert "largest_first" not in CRITERIA and "largest_first" not in names.CRITERIA
    with pytest.raises(ConfigError, match="unknown pruning_type"):
        Pruner(make_mlp(), {"pruning_type": "largest_first"})


def test_a_broken_criterion_fails_the_contract_with_a_reason():
    with pytest.raises(AssertionError, match="wrong_shape: score 0 has shape"):
        testing.check_scores(_WrongShape)


def test_state_dict_from_another_config_is_rejected():
    model = make_mlp()
    state = Pruner(model, {"op_names": ["^0$"]}).state_dict()
    with pytest.raises(ConfigError, match="does not match"):
        Pruner(make_mlp(), {"op_names": ["^2$"]}).load_state_dict(state)
