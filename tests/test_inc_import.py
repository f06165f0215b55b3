"""INC WeightPruningConfig and LPOT YAML import, and INC export: faithful to INC, explicit about losses."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.formats.detect import detect_format
from sparsesearch.formats.files import read_config_file
from sparsesearch.formats.inc import OP_TYPE_REMARK, WeightPruningConfig, export_inc, export_inc_yaml, import_inc
from sparsesearch.formats.lpot import import_lpot
from sparsesearch.formats.safe_yaml import parse_yaml
from sparsesearch.pruning import Pruner, match_model
from sparsesearch.pruning.matching import pruning_for
from sparsesearch.records.recipe import make_recipe
from sparsesearch.training import train

from helpers import batches_of, classification_data, image_data, make_cnn, make_mlp

SEED_004_YAML = """\
pruning:
  magnitude:
      prune1:
        # weights: ['layer1.0.conv1.weight',  'layer1.0.conv2.weight']
        # target_sparsity: 0.3
        # start_epoch: 1
  start_epoch: 0
  end_epoch: 4
  frequency: 1
  init_sparsity: 0.05
  target_sparsity: 0.25
"""


def seed_000():
    return WeightPruningConfig([{"start_step": 0, "end_step": 2}], target_sparsity=0.9, pruning_scope="local",
                               pruning_type="magnitude")


def test_seed_000_imports_with_inc_defaults() -> None:
    recipe = import_inc(seed_000())
    (group,) = recipe.pruning.groups
    assert (group.pruning_type, group.pattern, group.pruning_scope, group.target_sparsity) == \
        ("magnitude", "4x1", "local", 0.9)  # INC's default pattern is 4x1
    s = group.schedule
    assert (s.start_step, s.end_step, s.pruning_frequency, s.ramp, s.init_sparsity) == (0, 2, 1, "exp", 0.0)
    assert group.op_types == ("Conv", "Linear") and group.max_sparsity_ratio_per_op == 0.98
    assert recipe.selection.exclude_classifier_head and recipe.selection.skip_incompatible_layers
    assert recipe.provenance.imported_from == "inc"


def test_seed_000_runs_and_reaches_its_sparsity() -> None:
    model = make_mlp()
    recipe = import_inc(seed_000())
    pruner = Pruner(model, pruning_for(recipe, model))
    assert pruner.layer_names == ["0", "2"]  # INC leaves the last Linear (the classifier head "4") dense
    x, y = classification_data(n=128)
    train(model, torch.optim.SGD(model.parameters(), lr=0.05), batches_of(x, y), epochs=1, pruner=pruner)
    report = {layer.name: layer for layer in pruner.report().layers}
    for name in ("0", "2"):
        layer = report[name]
        assert abs(layer.zeros - 0.9 * layer.params) <= 4  # 4x1 blocks: within one block of the target
        blocks = (model[int(name)].weight.detach() == 0).reshape(-1, 4, model[int(name)].weight.shape[1])
        assert bool((blocks.all(1) | ~blocks.any(1)).all())  # whole 4x1 blocks
    assert int((model[4].weight == 0).sum()) == 0


def test_seed_004_lpot_yaml_imports_and_runs() -> None:
    doc = parse_yaml(SEED_004_YAML, "lpot.yaml")
    assert detect_format(doc.data) == "lpot"
    assert detect_format({"version": 1.0, **doc.data}) == "lpot"  # LPOT files may carry a version too
    recipe = import_lpot(doc.data, doc=doc)
    (group,) = recipe.pruning.groups
    s = group.schedule
    assert (group.pruning_type, group.pattern, group.pruning_scope, group.target_sparsity, group.op_names) == \
        ("magnitude", "1x1", "local", 0.25, ())  # no weights listed: every layer
    assert (s.start_epoch, s.end_epoch, s.frequency, s.init_sparsity, s.ramp) == (0, 4, 1, 0.05, "linear")

    model = make_cnn()
    pruner = Pruner(model, pruning_for(recipe, model), steps_per_epoch=2)
    x, y = image_data(n=32)
    seen = []
    train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches_of(x, y, 16), epochs=5, pruner=pruner,
          on_epoch_end=lambda epoch, loss: seen.append(pruner.report().pruned_sparsity))
    assert [round(v, 2) for v in seen] == [0.05, 0.1, 0.15, 0.2, 0.25]  # LPOT's linear ramp, one step per epoch
    for layer in pruner.report().layers:
        assert layer.zeros == round(0.25 * layer.params)


def test_lpot_weights_and_overrides() -> None:
    data = yaml.safe_load("""
pruning:
  magnitude:
    convs:
      weights: ['conv1.weight', 'conv2.weight']
      target_sparsity: 0.3
      start_epoch: 1
    rest: {}
  start_epoch: 0
  end_epoch: 4
  target_sparsity: 0.6
""")
    recipe = import_lpot(data)
    convs, rest = recipe.pruning.groups
    assert convs.layer_targets == {"conv1": 0.3, "conv2": 0.3} and convs.schedule.start_epoch == 1
    assert rest.target_sparsity == 0.6 and rest.excluded_op_names == ("^conv1$", "^conv2$")
    match = match_model(recipe, make_cnn(), steps_per_epoch=1)
    assert [[layer.name for layer in g.layers] for g in match.groups] == [["conv1", "conv2"], ["fc"]]
    assert any("honoured as LPOT's documentation says" in n for n in recipe.provenance.notes)


def test_globals_defaults_and_overrides_as_in_inc() -> None:
    recipe = import_inc({
        "target_sparsity": 0.7, "pattern": "1x1", "pruning_type": "snip_momentum", "end_step": 10,
        "op_names": ["layer"], "excluded_op_names": ["skip"],
        "pruning_configs": [
            {"op_names": ["conv"], "target_sparsity": None},  # null: take the global
            {"pruning_type": "magnitude_progressive", "pattern": "tile_pattern_2x1", "pruning_scope": "local",
             "excluded_op_names": [], "start_step": 2, "pruning_frequency": 3},
        ],
    })
    a, b = recipe.pruning.groups
    assert (a.op_names, a.excluded_op_names, a.target_sparsity, a.pruning_type) == (("conv",), ("skip",), 0.7,
                                                                                     "snip_momentum")
    assert a.pruning_scope == "global" and a.schedule.ramp == "exp"  # INC's defaults
    assert (b.pruning_type, b.pattern, b.op_names, b.excluded_op_names) == ("magnitude", "2x1", ("layer",), ())
    # (10 - 2) is not a multiple of 3: INC's last update is at step 8, so the target is reached there
    assert (b.schedule.start_step, b.schedule.end_step) == (2, 8)
    notes = "\n".join(recipe.provenance.notes)
    assert "progressive" in notes and "tile_pattern_2x1" in notes and "step 8" in notes


def test_inc_caps_target_at_max_ratio_and_nm_at_n_over_m() -> None:
    recipe = import_inc({"target_sparsity": 0.99, "pruning_type": "magnitude", "pruning_configs": [{}]})
    assert recipe.pruning.groups[0].target_sparsity == 0.98
    nm = import_inc({"target_sparsity": 0.5, "pattern": "2:4", "pruning_type": "magnitude"})
    group = nm.pruning.groups[0]
    assert group.pruning_scope == "local" and group.max_sparsity_ratio_per_op == 0.5  # default global became local
    explicit = import_inc({"target_sparsity": 0.5, "pattern": "2:4", "pruning_type": "magnitude",
                           "pruning_scope": "global"})  # INC's own 2:4 examples: at N/M global == local
    assert explicit.pruning.groups[0].pruning_scope == "local"
    assert any("same" in note and "2:4" in note for note in explicit.provenance.notes)
    with pytest.raises(ConfigError, match="pruning_scope: INC's global 2:4 at target 0.4.*would differ"):
        import_inc({"target_sparsity": 0.4, "pattern": "2:4", "pruning_type": "magnitude", "pruning_scope": "global"})
    with pytest.raises(ConfigError, match="N/M = 0.5"):
        import_inc({"target_sparsity": 0.6, "pattern": "2:4", "pruning_type": "magnitude"})


def test_group_lasso_regulariser() -> None:
    recipe = import_inc({"pruning_type": "snip_momentum", "end_step": 5, "reg_type": "group_lasso",
                         "parameters": {"reg_coeff": 0.02}})
    group = recipe.pruning.groups[0]
    assert group.pruning_type == "group_lasso" and group.reg_coeff == 0.02
    zero = import_inc({"pruning_type": "magnitude", "reg_type": "group_lasso"})
    assert zero.pruning.groups[0].pruning_type == "magnitude"  # INC's default reg_coeff 0 does nothing
    with pytest.raises(ConfigError, match="NxM"):
        import_inc({"pruning_type": "magnitude", "pattern": "2:4", "target_sparsity": 0.5, "reg_type": "group_lasso"})


def test_cube_is_back_loaded() -> None:
    recipe = import_inc({"pruning_type": "magnitude", "sparsity_decay_type": "cube", "end_step": 10})
    from sparsesearch.pruning import sparsity_at

    schedule = recipe.pruning.groups[0].schedule
    assert sparsity_at(schedule, 0.9, 5) == pytest.approx(0.9 * 0.125)  # little pruned at half way
    assert any("back-loaded" in note for note in recipe.provenance.notes)


@pytest.mark.parametrize("ptype", ["sparse_gpt", "retrain_free", "snip_momentum_block", "wanda"])
def test_unsupported_inc_types_are_errors(ptype) -> None:
    with pytest.raises(ConfigError, match="not supported") as info:
        import_inc({"pruning_configs": [{"pruning_type": ptype, "end_step": 3}]})
    assert "pruning_configs[0].pruning_type" in str(info.value) and "allowed: magnitude" in str(info.value)


def test_inc_object_and_inc_yaml_forms() -> None:
    class IncConfig:  # the shape of INC's own WeightPruningConfig object
        def __init__(self) -> None:
            self.pruning_configs = [{"op_names": ["fc"]}]
            self.weight_compression = {"target_sparsity": 0.5, "pruning_type": "magnitude", "pattern": "1x1"}

    assert import_inc(IncConfig()).pruning.groups[0].op_names == ("fc",)
    data = yaml.safe_load("""
version: 1.0
model: {name: bert_mini, framework: pytorch}
pruning:
  approach:
    weight_compression_v2:
      target_sparsity: 0.6
      pruning_type: magnitude
      pruners:
        - op_names: ['conv']
          pattern: 1x1
""")
    assert detect_format(data) == "inc-yaml"
    assert import_inc(data).pruning.groups[0].target_sparsity == 0.6


def test_imported_recipe_round_trips_through_yaml(tmp_path) -> None:
    path = tmp_path / "inc.yaml"
    path.write_text(yaml.safe_dump(seed_000()))
    loaded = read_config_file(path)
    assert loaded.kind == "inc"
    from sparsesearch.formats.recipe import load_recipe, write_recipe

    out = write_recipe(loaded.recipe, tmp_path / "recipe.yaml")
    again = load_recipe(out)
    assert again == loaded.recipe
    assert write_recipe(again, tmp_path / "again.yaml").read_bytes() == out.read_bytes()


def test_export_expressible_recipe_round_trips_through_inc() -> None:
    recipe = make_recipe({"groups": [
        {"pruning_type": "snip_momentum", "pattern": "4x1", "pruning_scope": "global", "target_sparsity": 0.8,
         "op_names": ["conv"], "schedule": {"start_step": 0, "end_step": 9, "pruning_frequency": 3, "ramp": "exp"}},
    ]}, selection={"exclude_classifier_head": True, "classifier_head_match": "search",
                   "skip_incompatible_layers": True})
    data, lost = export_inc(recipe)
    assert lost == [OP_TYPE_REMARK]  # only the remark that depends on the model's layer classes
    back = import_inc(data)
    assert back.pruning.groups == recipe.pruning.groups


def test_export_states_what_is_lost() -> None:
    recipe = make_recipe({"groups": [
        {"pruning_type": "magnitude", "layer_targets": {"conv1": 0.3, "fc": 0.99},
         "schedule": {"start_step": 0, "end_step": 10, "pruning_frequency": 3, "ramp": "cubic",
                      "init_sparsity": 0.1}},
    ]})
    data, lost = export_inc(recipe)
    assert [g["op_names"] for g in data["pruning_configs"]] == [["^conv1$"], ["^fc$"]]
    text = "\n".join(lost)
    for needle in ("one INC group per layer", "cubic", "init_sparsity 0.1", "step 9", "caps the target",
                   "last layer"):
        assert needle in text
    yaml_text, _ = export_inc_yaml(recipe)
    assert yaml.safe_load(yaml_text) == data and "# Not expressed exactly in INC:" in yaml_text


def test_export_refuses_what_inc_cannot_run() -> None:
    with pytest.raises(ConfigError, match="INC has no 'movement'"):
        export_inc(make_recipe({"groups": [{"pruning_type": "movement", "schedule": {"start_step": 1,
                                                                                      "end_step": 3}}]}))
    epochs = make_recipe({"groups": [{"schedule": {"start_epoch": 0, "end_epoch": 2}}]})
    with pytest.raises(ConfigError, match="steps per epoch"):
        export_inc(epochs)
    data, lost = export_inc(epochs, steps_per_epoch=5)
    assert data["pruning_configs"][0]["end_step"] == 10 and any("5 steps per epoch" in x for x in lost)


def test_lpot_classifier_rule_is_not_applied() -> None:
    recipe = import_lpot(yaml.safe_load(SEED_004_YAML))
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    assert Pruner(model, pruning_for(recipe, model), steps_per_epoch=1).layer_names == ["0", "1"]
