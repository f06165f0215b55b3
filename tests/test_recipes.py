"""The recipe format: strict loading, exact round trips, applying to a model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from sparsesearch import apply
from sparsesearch.errors import ConfigError
from sparsesearch.formats.recipe import load_recipe, recipe_from_data, recipe_to_yaml, write_recipe
from sparsesearch.pruning import Pruner, PruningConfig, PruningGroup, Schedule, match_model
from sparsesearch.pruning.matching import classifier_head, pruning_for
from sparsesearch.records.recipe import RECIPE_VERSION, Recipe, Selection, make_recipe
from sparsesearch.training import train

from helpers import batches_of, classification_data, image_data, make_cnn, make_mlp


def full_recipe() -> Recipe:
    groups = [
        PruningGroup(pruning_type="magnitude", pattern="4x1", pruning_scope="global", target_sparsity=0.8,
                     op_names=("conv",), schedule=Schedule(start_step=2, end_step=10, pruning_frequency=2,
                                                           ramp="cubic")),
        PruningGroup(pruning_type="snip_momentum", pattern="1x1", layer_targets={"fc": 0.55},
                     schedule=Schedule(start_epoch=1, end_epoch=3, frequency=1, init_sparsity=0.1, ramp="cos")),
    ]
    return make_recipe(
        PruningConfig(tuple(groups)),
        training={"task": "helpers:make_cnn", "epochs": 4, "steps_per_epoch": 2, "batch_size": 32,
                  "optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "seed": 7},
        provenance={"study": "demo", "trial": 12, "run_id": "0123456789e12345", "created": "2025-01-31T12:00:00+00:00",
                    "metrics": {"val_accuracy": 0.91, "test_accuracy": 0.9, "sparsity": 0.7123456789,
                                "total_sparsity": 0.69, "dense_val_accuracy": 0.93}},
    )


def test_write_read_write_is_identical(tmp_path) -> None:
    recipe = full_recipe()
    first = write_recipe(recipe, tmp_path / "r.yaml")
    loaded = load_recipe(first)
    assert loaded == recipe
    second = write_recipe(loaded, tmp_path / "r2.yaml")
    assert second.read_bytes() == first.read_bytes()
    text = first.read_text()
    assert text.index("version:") < text.index("pruning:") < text.index("training:") < text.index("provenance:")
    assert "run_id: '0123456789e12345'" in text  # quoted: a YAML reader could take it for a float
    assert "start_step" not in text.split("- pruning_type: snip_momentum")[1].split("training:")[0]


def test_stamp_and_version() -> None:
    recipe = make_recipe({"groups": [{"target_sparsity": 0.5}]})
    assert recipe.version == RECIPE_VERSION
    assert recipe.provenance.sparsesearch_version and recipe.provenance.created
    assert recipe_from_data({"version": 1, "pruning": {"groups": [{}]}}).pruning.groups[0] == PruningGroup()


@pytest.mark.parametrize("version, needle", [(2, "newer than this sparsesearch"), ("1", "integer"), (0, "unknown")])
def test_version_errors(version, needle) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        recipe_from_data({"version": version, "pruning": {"groups": [{}], "future_key": 1}})
    assert "allowed: 1" in str(info.value)


def test_errors_carry_file_line_and_key_path(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\npruning:\n  groups:\n    - pattern: 4x1\n    - pattern: 4x1\n      target_sparsty: 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: pruning.groups[1].target_sparsty: unknown key")
    assert "Did you mean 'target_sparsity'?" in message


def test_inc_file_loaded_as_recipe_says_to_convert(tmp_path) -> None:
    path = tmp_path / "inc.yaml"
    path.write_text("pruning_configs: [{}]\ntarget_sparsity: 0.8\n")
    with pytest.raises(ConfigError, match="sparsesearch convert"):
        load_recipe(path)


def test_classifier_head_follows_inc_rule() -> None:
    assert classifier_head(make_mlp()) == "4"
    assert classifier_head(make_cnn()) == "fc"
    assert classifier_head(nn.Sequential(nn.Linear(4, 4), nn.ReLU())) is None
    assert classifier_head(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2), nn.Dropout())) == "1"
    assert classifier_head(nn.Sequential(nn.Conv1d(2, 2, 1))) is None  # INC only looks for Linear and Conv2d


def test_pruning_for_excludes_exactly_the_head() -> None:
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(8, 8))
    model.add_module("fc", nn.Linear(8, 2))
    recipe = make_recipe({"groups": [{"op_names": ["fc"], "target_sparsity": 0.5}]},
                         selection={"exclude_classifier_head": True})
    config = pruning_for(recipe, model)
    assert config.groups[0].excluded_op_names == ("^fc$",)
    assert Pruner(model, config).layer_names == ["fc1"]  # INC's unanchored regex would have dropped fc1 too


def test_skip_incompatible_layers() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    recipe = make_recipe({"groups": [{"pattern": "2x1", "target_sparsity": 0.5}]},
                         selection=Selection(skip_incompatible_layers=True))
    assert Pruner(model, pruning_for(recipe, model)).layer_names == ["0"]
    with pytest.raises(ConfigError, match="cannot be cut"):
        Pruner(model, recipe.pruning)


def test_match_model_reports_layers_targets_and_unpruned() -> None:
    recipe = make_recipe({"groups": [{"layer_targets": {"conv1": 0.3, "conv2": 0.6}}]})
    match = match_model(recipe, make_cnn())
    assert [(layer.name, layer.target) for layer in match.groups[0].layers] == [("conv1", 0.3), ("conv2", 0.6)]
    assert match.unpruned == ("fc",)


def test_unknown_layer_names_list_nearest_matches() -> None:
    recipe = make_recipe({"groups": [{"layer_targets": {"conv3": 0.3}}]})
    with pytest.raises(ConfigError) as info:
        match_model(recipe, make_cnn())
    assert "pruning.groups[0].layer_targets.conv3" in str(info.value)
    assert "conv1" in str(info.value) and "Did you mean" in str(info.value)
    regex = make_recipe({"groups": [{"op_names": ["^conv1$", "^convv2$"]}]})
    with pytest.raises(ConfigError) as info:
        match_model(regex, make_cnn())
    assert "pruning.groups[0].op_names[1]" in str(info.value) and "nearest layer names: conv2" in str(info.value)


def test_from_recipe_runs_in_a_training_loop(tmp_path) -> None:
    recipe = make_recipe({"groups": [{"pruning_type": "magnitude", "target_sparsity": 0.75, "pruning_scope": "local",
                                      "schedule": {"start_step": 0, "end_step": 4, "ramp": "linear"}}]},
                         training={"epochs": 1, "lr": 0.05})
    path = write_recipe(recipe, tmp_path / "r.yaml")
    model = make_mlp()
    pruner = apply(model, str(path))
    x, y = classification_data(n=160)
    train(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), batches_of(x, y), epochs=1,
          pruner=pruner)
    report = pruner.report()
    for layer in report.layers:
        assert layer.zeros == round(0.75 * layer.params)


def test_pruner_from_recipe_applies_layer_rules_and_reports_dense_layers(tmp_path, caplog) -> None:
    recipe = make_recipe({"groups": [{"op_names": ["conv1"], "target_sparsity": 0.5}]},
                         selection={"exclude_classifier_head": True})
    path = write_recipe(recipe, tmp_path / "r.yaml")
    with caplog.at_level("WARNING", logger="sparsesearch.pruning.matching"):
        pruner = apply(make_cnn(), path)
    assert pruner.layer_names == ["conv1"]
    assert "leaves these prunable layers dense: conv2" in caplog.text and "fc" not in caplog.text.split(":")[-1]
    head = make_recipe({"groups": [{"target_sparsity": 0.5}]}, selection={"exclude_classifier_head": True})
    assert apply(make_cnn(), head).layer_names == ["conv1", "conv2"]


def test_epoch_based_recipe_runs_with_steps_per_epoch(tmp_path) -> None:
    recipe = make_recipe({"groups": [{"target_sparsity": 0.5, "schedule": {"start_epoch": 0, "end_epoch": 2,
                                                                           "ramp": "linear"}}]},
                         training={"steps_per_epoch": 2})
    loaded = load_recipe(write_recipe(recipe, tmp_path / "r.yaml"))
    model = make_cnn()
    pruner = Pruner(model, pruning_for(loaded, model), steps_per_epoch=loaded.steps_per_epoch)
    x, y = image_data(n=64)
    train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches_of(x, y), epochs=3, pruner=pruner)
    assert all(layer.zeros == round(0.5 * layer.params) for layer in pruner.report().layers)


def test_recipe_objects_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        full_recipe().version = 2  # type: ignore[misc]


def test_yaml_text_mentions_how_to_apply() -> None:
    assert "sparsesearch.apply(model, PATH)" in recipe_to_yaml(full_recipe()).splitlines()[1]
