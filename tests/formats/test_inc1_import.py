"""INC 1.x / 2.x and LPOT 1.4-1.6 ``weight_compression`` and ``weight_compression_pytorch`` YAML, written as
their examples and tests write it (``!Pruner`` tags), imported with INC's semantics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsesearch.errors import ConfigError
from sparsesearch.formats.files import read_config_file
from sparsesearch.formats.inc1 import import_inc1
from sparsesearch.formats.safe_yaml import parse_yaml
from sparsesearch.pruning.matching import pruner_from_recipe
from sparsesearch.training import train

from helpers import batches_of, image_data, make_cnn

BERT_MINI_PYTORCH_PRUNER = """\
version: 1.0

model:
  name: "bert"
  framework: "pytorch"

pruning:
  approach:
    weight_compression_pytorch:
      start_step: 0
      end_step: 1000
      excluded_names: ["classifier", "pooler", ".*embeddings*", "LayerNorm"]
      prune_layer_type: ["Linear"]
      target_sparsity: 0.9
      update_frequency_on_step: 500
      max_sparsity_ratio_per_layer: 0.98
      prune_domain: "global"
      sparsity_decay_type: "exp"
      pruners:
        - !Pruner
            pattern: "ic_pattern_4x1"
            update_frequency_on_step: 500
            prune_domain: "global"
            prune_type: "snip_momentum"
            sparsity_decay_type: "exp"
"""

INC1_TEST_TWO_PRUNERS = """\
model:
  name: imagenet_prune
  framework: pytorch

pruning:
  approach:
    weight_compression_pytorch:
      initial_sparsity: 0.0
      target_sparsity: 0.9
      start_step: 0
      end_step: 10
      excluded_names: ["classifier"]
      update_frequency_on_step: 1
      sparsity_decay_type: "exp"
      pattern: "tile_pattern_4x1"
      pruners:
        - !Pruner
            start_step: 0
            sparsity_decay_type: "cos"
            end_step: 10
            prune_type: "magnitude"
            names: ['layer1.*']
            extra_excluded_names: ['layer2.*']
            prune_domain: "global"
            pattern: "tile_pattern_4x1"
        - !Pruner
            start_step: 1
            end_step: 1
            target_sparsity: 0.5
            prune_type: "snip_momentum"
            update_frequency: 2
            names: ['layer2.*']
"""

LEGACY = """\
model:
  name: resnet18
  framework: pytorch

pruning:
  approach:
    weight_compression:
      initial_sparsity: 0.0
      target_sparsity: 0.6
      start_epoch: 0
      end_epoch: 3
      pruners:
        - !Pruner
            start_epoch: 1
            end_epoch: 3
            prune_type: basic_magnitude
            names: ['conv1.weight', 'conv2.weight']
        - !Pruner
            target_sparsity: 0.8
            start_epoch: 0
            prune_type: basic_magnitude
            names: ['fc.weight']
"""


def _doc(text: str):
    return parse_yaml(text, "inc1.yaml")


def test_pytorch_pruner_doc_example(tmp_path) -> None:
    path = tmp_path / "bert.yaml"
    path.write_text(BERT_MINI_PYTORCH_PRUNER)
    loaded = read_config_file(path)
    assert loaded.kind == "inc-yaml"
    (group,) = loaded.recipe.pruning.groups
    assert (group.pruning_type, group.pattern, group.pruning_scope, group.target_sparsity) == (
        "snip_momentum", "4x1", "global", 0.9)
    assert group.op_types == ("Linear",)
    assert group.excluded_op_names == ("classifier", "pooler", ".*embeddings*", "LayerNorm")
    assert (group.schedule.start_step, group.schedule.end_step, group.schedule.pruning_frequency) == (0, 1000, 500)
    selection = loaded.recipe.selection
    assert not selection.exclude_classifier_head and selection.skip_incompatible_layers  # INC 1.x had no head rule
    notes = "\n".join(loaded.recipe.provenance.notes)
    assert "'ic_pattern_4x1' read as '4x1'" in notes and "never protected a classifier head" in notes


def test_pytorch_pruner_overrides_defaults_and_early_stop() -> None:
    recipe = import_inc1(_doc(INC1_TEST_TWO_PRUNERS).data)
    first, second = recipe.pruning.groups
    # 11 updates counted, 10 made: INC's cos schedule stops at progress 10/11, short of 0.9
    assert first.op_names == ("layer1.*",) and first.excluded_op_names == ("classifier", "layer2.*")
    assert first.schedule.ramp == "cos" and first.target_sparsity < 0.9
    assert first.target_sparsity == pytest.approx(0.9 * (1 - __import__("math").cos(10 / 11 * __import__("math").pi / 2)))
    # a pruner without pattern prunes 1x1: INC's Pruner class default hides the global tile_pattern_4x1
    assert second.pattern == "1x1" and second.pruning_type == "snip_momentum"
    assert (second.schedule.start_step, second.schedule.end_step, second.target_sparsity) == (1, 1, 0.5)
    notes = "\n".join(recipe.provenance.notes)
    assert "hides the global pattern 'tile_pattern_4x1'" in notes
    assert "never reaches target 0.9" in notes and "signed weights" in notes


def test_pytorch_pruner_refusals_say_why() -> None:
    one_shot_snip = BERT_MINI_PYTORCH_PRUNER.replace("end_step: 1000", "end_step: 0", 1)
    with pytest.raises(ConfigError, match="INC requires end_step > 0"):
        import_inc1(_doc(one_shot_snip).data)  # the doc's YAML as written: INC's scripts set the steps
    text = BERT_MINI_PYTORCH_PRUNER.replace("end_step: 1000", "end_step: 10", 1)
    with pytest.raises(ConfigError, match="divides by its update count") as info:
        import_inc1(_doc(text).data)  # (10 - 0 + 1) // 500 == 0: INC fails with ZeroDivisionError
    assert "update_frequency_on_step" in str(info.value)
    bad_type = BERT_MINI_PYTORCH_PRUNER.replace('prune_type: "snip_momentum"', 'prune_type: "snip_momentun"')
    with pytest.raises(ConfigError, match="no such prune_type.*Did you mean 'snip_momentum'"):
        import_inc1(_doc(bad_type).data)
    global_nm = BERT_MINI_PYTORCH_PRUNER.replace('"ic_pattern_4x1"', '"2:4"').replace("target_sparsity: 0.9",
                                                                                     "target_sparsity: 0.4")
    with pytest.raises(ConfigError, match="global 2:4 at target 0.4.*would differ"):
        import_inc1(_doc(global_nm).data)


def test_legacy_weight_compression_epochs_and_truthy_overrides() -> None:
    recipe = import_inc1(_doc(LEGACY).data)
    convs, fc = recipe.pruning.groups
    assert convs.layer_targets == {"conv1": 0.6, "conv2": 0.6} and convs.pruning_scope == "local"
    s = convs.schedule  # INC: (e - 1 + 1) / 3 * 0.6 at epochs 1, 2, 3
    assert (s.start_epoch, s.end_epoch, s.frequency, s.ramp) == (1, 3, 1, "linear")
    assert s.init_sparsity == pytest.approx(0.2) and convs.criterion_reduce_type == "sum"
    assert fc.layer_targets == {"fc": 0.8} and fc.schedule.init_sparsity == pytest.approx(0.2)
    lpot = import_inc1(_doc(LEGACY).data, flavor="lpot")
    assert lpot.pruning.groups[0].schedule.start_epoch == 2  # LPOT: (e - 1) / 2 * 0.6: 0 at epoch 1
    assert lpot.provenance.imported_from == "lpot"
    notes = "\n".join(recipe.provenance.notes)
    assert "LPOT 1.4-1.6 computed" in notes and "steps_per_epoch" in notes and "+ 1 blocks" in notes


def test_legacy_truthy_fallback_is_reproduced() -> None:
    text = LEGACY.replace("      start_epoch: 0\n      end_epoch: 3", "      start_epoch: 1\n      end_epoch: 3")
    recipe = import_inc1(_doc(text).data)
    fc = recipe.pruning.groups[1]
    assert fc.schedule.start_epoch == 1  # the pruner's start_epoch: 0 is falsy, so INC took the global 1
    assert any("is falsy" in note for note in recipe.provenance.notes)


def test_legacy_runs_the_inc_staircase_epoch_by_epoch() -> None:
    recipe = import_inc1(_doc(LEGACY).data)
    model = make_cnn()
    pruner = pruner_from_recipe(model, recipe, steps_per_epoch=2)
    x, y = image_data(n=32)
    seen = []
    train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches_of(x, y, 16), epochs=4, pruner=pruner,
          on_epoch_end=lambda epoch, loss: seen.append({layer.name: round(layer.zeros / layer.params, 2)
                                                        for layer in pruner.report().layers}))
    assert [s["conv1"] for s in seen] == [0.0, 0.2, 0.4, 0.6]  # INC's (e - start + 1) / (end - start + 1) · 0.6
    assert [s["fc"] for s in seen] == [0.2, 0.4, 0.6, 0.8]


@pytest.mark.parametrize("pruner, needle", [
    ("{prune_type: gradient_sensitivity, parameters: {target: 8, stride: 64}}", "prunes attention heads"),
    ("{prune_type: basic_magnitude, method: per_channel}", "per_channel method"),
    ("{prune_type: snip}", "no prune_type 'snip'"),
    ("{prune_type: group_lasso}", "reads parameters.alpha"),
])
def test_legacy_refusals(pruner, needle) -> None:
    text = f"pruning:\n  approach:\n    weight_compression:\n      pruners:\n        - !Pruner {pruner}\n"
    with pytest.raises(ConfigError, match=needle) as info:
        import_inc1(_doc(text).data, doc=_doc(text))
    assert "inc1.yaml:5: pruning.approach.weight_compression.pruners[0]" in str(info.value)


def test_legacy_without_names_prunes_linear_and_conv2d() -> None:
    text = ("pruning:\n  approach:\n    weight_compression:\n      target_sparsity: 0.5\n      end_epoch: 1\n"
            "      pruners:\n        - !Pruner {prune_type: group_lasso, parameters: {alpha: 0.001}}\n")
    (group,) = import_inc1(_doc(text).data).pruning.groups
    assert group.op_types == ("Linear", "Conv2d") and group.pruning_type == "group_lasso"
    assert group.reg_coeff == 0.001
    model = nn.Sequential(nn.Conv1d(2, 4, 1), nn.Linear(4, 4))
    recipe = import_inc1(_doc(text).data)
    assert pruner_from_recipe(model, recipe, steps_per_epoch=1).layer_names == ["1"]  # Conv1d weights are 3-D


def test_missing_pruners_list_is_an_error() -> None:
    text = "pruning:\n  approach:\n    weight_compression_pytorch:\n      target_sparsity: 0.5\n"
    with pytest.raises(ConfigError, match="needs a pruners list"):
        import_inc1(_doc(text).data)
