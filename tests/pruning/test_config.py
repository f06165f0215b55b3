"""Bad pruning configs raise ConfigError naming the key, the bad value and what is allowed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparsesearch.errors import ConfigError
from sparsesearch.pruning import Pruner, PruningConfig, PruningGroup, prune

from helpers import make_cnn, make_mlp


@pytest.mark.parametrize("data,key,allowed", [
    ({"target_sparsity": 1.0}, "target_sparsity", "[0.0, 1.0)"),
    ({"target_sparsity": -0.1}, "target_sparsity", "[0.0, 1.0)"),
    ({"target_sparsity": "0,9"}, "target_sparsity", "[0.0, 1.0)"),
    ({"pruning_type": "magnitud"}, "pruning_type", "magnitude"),
    ({"pruning_type": "sparse_gpt"}, "pruning_type", "snip_momentum"),
    ({"pattern": "4y1"}, "pattern", "N:M"),
    ({"pattern": "2:4", "target_sparsity": 0.6}, "target_sparsity", "0 .. 0.5"),
    ({"pattern": "2:4", "pruning_scope": "global", "target_sparsity": 0.5}, "pruning_scope", "local"),
    ({"schedule": {"start_step": 9, "end_step": 3}}, "schedule.start_step", "0 .. 3"),
    ({"schedule": {"pruning_frequency": 0}}, "schedule.pruning_frequency", "> 0"),
    ({"min_sparsity_ratio_per_op": 0.5, "max_sparsity_ratio_per_op": 0.2}, "min_sparsity_ratio_per_op", "0 .. 0.2"),
    ({"pruning_scope": "globl"}, "pruning_scope", "global"),
    ({"target_sparsty": 0.9}, "target_sparsty", "target_sparsity"),
    ({"op_names": ["fc[1"]}, "op_names[0]", "regular expression"),
    ({"op_types": ["Dense"]}, "op_types[0]", "Linear"),
    ({"layer_targets": {"0": 0.5}, "pruning_scope": "global"}, "pruning_scope", "local"),
    ({"schedule": {"ramp": "cubicc"}}, "schedule.ramp", "cubic"),
    ({"reg_coeff": "a lot"}, "reg_coeff", "a number"),
])
def test_bad_values_name_key_value_and_allowed(data, key, allowed):
    with pytest.raises(ConfigError) as info:
        PruningConfig.from_dict({"groups": [data]})
    err = info.value
    assert isinstance(err, ValueError)
    assert err.key == f"groups[0].{key}", str(err)
    assert allowed in str(err)
    assert "got" in str(err) or err.value is ...


def test_typos_get_the_closest_name():
    with pytest.raises(ConfigError) as info:
        PruningConfig.from_dict({"groups": [{"pruning_type": "snip_momentun"}]})
    assert info.value.suggestion == "snip_momentum"
    with pytest.raises(ConfigError) as info:
        PruningConfig.from_dict({"groups": [{"target_sparsty": 0.5}]})
    assert "Did you mean 'target_sparsity'?" in str(info.value)
    with pytest.raises(ConfigError) as info:
        PruningConfig.from_dict({"groups": [{"target_sparsity": "0,9"}]})
    assert "Did you mean '0.9'?" in str(info.value)


def test_selection_that_matches_nothing_lists_prunable_layers():
    with pytest.raises(ConfigError) as info:
        Pruner(make_cnn(), {"op_names": ["^encoder\\."]})
    text = str(info.value)
    assert "selects no layer" in text and "conv1, conv2, fc" in text and info.value.key == "groups[0].op_names"


def test_unknown_layer_in_target_map_suggests_nearest():
    with pytest.raises(ConfigError) as info:
        Pruner(make_cnn(), {"layer_targets": {"conv_1": 0.5}})
    assert info.value.suggestion == "conv1"
    assert "groups[0].layer_targets.conv_1" in str(info.value)


def test_overlapping_groups_are_rejected():
    with pytest.raises(ConfigError, match="selected by groups\\[0\\] and groups\\[1\\]"):
        Pruner(make_cnn(), [{"op_names": ["conv"]}, {"op_names": ["conv2"]}])


def test_groups_select_by_type_regex_and_exclusion():
    pruner = Pruner(make_cnn(), [
        {"op_types": ["Conv2d"], "excluded_op_names": ["conv2"], "target_sparsity": 0.5},
        {"op_names": ["^fc$"], "layer_targets": {}, "target_sparsity": 0.9},
    ])
    assert pruner.layer_names == ["conv1", "fc"]
    assert pruner.target_sparsities() == {"conv1": 0.5, "fc": 0.9}


def test_per_layer_target_map():
    model = make_mlp()
    pruner = prune(model, {"layer_targets": {"0": 0.25, "4": 0.75}})
    rows = {r["name"]: r["sparsity"] for r in pruner.report().rows()}
    assert rows == {"0": 0.25, "4": 0.75}


def test_global_scope_with_per_layer_bounds():
    model = make_mlp(8)
    pruner = prune(model, {"pruning_scope": "global", "target_sparsity": 0.7,
                           "min_sparsity_ratio_per_op": 0.6, "max_sparsity_ratio_per_op": 0.75})
    for row in pruner.report().rows():
        assert round(0.6 * row["params"]) <= row["zeros"] <= round(0.75 * row["params"]), row


def test_python_objects_are_validated_too():
    with pytest.raises(ConfigError):
        PruningGroup(target_sparsity=1.5)
    group = PruningGroup(op_names=["0"])  # lists become tuples: the config is immutable
    assert group.op_names == ("0",)


def test_report_counts_from_weights():
    model = make_mlp()
    report = prune(model, {"target_sparsity": 0.5, "op_names": ["^0$"]}).report()
    assert [r["name"] for r in report.rows()] == ["0"]
    assert report.pruned_sparsity == 0.5
    total = sum(p.numel() for p in model.parameters())
    assert report.total_params == total and report.total_zeros == 256
    assert report.to_dict()["layers"][0]["shape"] == [32, 16]


def test_importing_the_core_loads_no_search_or_tracking_libraries():
    code = ("import sys, sparsesearch.pruning, sparsesearch.training; "
            "print(sorted(m for m in ('optuna', 'mlflow', 'yaml', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
