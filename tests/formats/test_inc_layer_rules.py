"""INC's layer rules on a model: the classifier head as INC excludes it (by regex search), layers a pattern does
not divide, pruning_op_types by substring, unknown keys, N:M with global scope, and what export reports."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from sparsesearch.cli import main
from sparsesearch.errors import ConfigError
from sparsesearch.formats.inc import WeightPruningConfig, export_inc, import_inc
from sparsesearch.formats.recipe import recipe_from_data
from sparsesearch.pruning import match_model
from sparsesearch.pruning.matching import pruner_from_recipe, pruning_for
from sparsesearch.records.recipe import make_recipe


class TinyDistilBert(nn.Module):
    """DistilBertForSequenceClassification's names and registration order: distilbert, pre_classifier,
    classifier, dropout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.distilbert = nn.Module()
        self.distilbert.transformer = nn.Module()
        layer = nn.Module()
        layer.attention = nn.Module()
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            setattr(layer.attention, name, nn.Linear(16, 16))
        layer.ffn = nn.Module()
        layer.ffn.lin1, layer.ffn.lin2 = nn.Linear(16, 40), nn.Linear(40, 16)
        self.distilbert.transformer.layer = nn.ModuleList([layer])
        self.pre_classifier = nn.Linear(16, 16)
        self.classifier = nn.Linear(16, 2)
        self.dropout = nn.Dropout(0.1)


def test_distilbert_pre_classifier_is_protected_as_inc_does(caplog) -> None:
    recipe = import_inc(WeightPruningConfig([{"op_names": [".*"]}], pruning_type="magnitude", pattern="1x1",
                                            target_sparsity=0.9, pruning_scope="local"))
    assert recipe.selection.classifier_head_match == "search"
    model = TinyDistilBert()
    with caplog.at_level(logging.WARNING, logger="sparsesearch.pruning.matching"):
        pruner = pruner_from_recipe(model, recipe)
    assert "pre_classifier" not in pruner.layer_names and "classifier" not in pruner.layer_names
    assert len(pruner.layer_names) == 6
    assert "pre_classifier left dense by INC's classifier-head rule" in caplog.text
    assert "leaves these prunable layers dense" not in caplog.text  # protected on purpose, not reported as forgotten
    exact = make_recipe(recipe.pruning, selection={"exclude_classifier_head": True})  # sparsesearch's own rule
    assert "pre_classifier" in pruner_from_recipe(TinyDistilBert(), exact).layer_names


def test_head_rule_search_is_a_regex_search_like_inc() -> None:
    model = nn.Sequential()
    model.add_module("encoder", nn.Linear(8, 8))
    model.add_module("fc1", nn.Linear(8, 8))
    model.add_module("fc2", nn.Linear(8, 8))
    model.add_module("fc", nn.Linear(8, 2))
    inc_rule = make_recipe({"groups": [{"target_sparsity": 0.5}]},
                           selection={"exclude_classifier_head": True, "classifier_head_match": "search"})
    match = match_model(inc_rule, model)
    assert [layer.name for layer in match.groups[0].layers] == ["encoder"]
    assert match.protected == ("fc", "fc1", "fc2")  # INC excludes "fc" with re.search: fc1 and fc2 too


def test_head_only_group_prunes_nothing_and_is_dropped(caplog) -> None:
    recipe = import_inc(WeightPruningConfig([{"op_names": ["classifier"]}, {"op_names": ["ffn"]}],
                                            pruning_type="magnitude", pattern="1x1", pruning_scope="local"))
    with caplog.at_level(logging.WARNING, logger="sparsesearch.pruning.matching"):
        config = pruning_for(recipe, TinyDistilBert())
    assert len(config.groups) == 1 and config.groups[0].op_names == ("ffn",)
    assert "groups[0] prunes nothing on this model" in caplog.text


def test_incompatible_layers_skipped_with_their_shape_in_inc_import(caplog) -> None:
    recipe = import_inc(WeightPruningConfig([{"op_names": ["ffn"]}], pruning_type="magnitude", pattern="5x1",
                                            pruning_scope="local", target_sparsity=0.5))
    with caplog.at_level(logging.WARNING, logger="sparsesearch.pruning.matching"):
        pruner = pruner_from_recipe(TinyDistilBert(), recipe)
    assert pruner.layer_names == ["distilbert.transformer.layer.0.ffn.lin1"]  # 40 rows divide by 5, 16 do not
    assert "layer distilbert.transformer.layer.0.ffn.lin2, weight shape (16, 40): pattern 5x1 does not divide it" \
        in caplog.text and "16 output rows are not a multiple of 5" in caplog.text


def test_when_no_layer_fits_the_error_names_the_cause_not_generated_patterns() -> None:
    recipe = import_inc(WeightPruningConfig([{"op_names": ["attention"]}], pruning_type="magnitude",
                                            pattern="5x1", pruning_scope="local"))
    with pytest.raises(ConfigError) as info:
        match_model(recipe, TinyDistilBert())
    message = str(info.value)
    assert "no group prunes any layer" in message and "q_lin" in message and "not a multiple of 5" in message
    assert "^distilbert" not in message  # no list of generated exclusion patterns
    native = make_recipe({"groups": [{"op_names": ["attention"], "pattern": "5x1"}]})
    with pytest.raises(ConfigError) as info:
        match_model(native, TinyDistilBert())
    assert "(16, 16)) cannot be cut into 5x1 blocks: its 16 output rows are not a multiple of 5" in str(info.value)


def test_pruning_op_types_by_substring_as_inc() -> None:
    recipe = import_inc(WeightPruningConfig([{"pruning_op_types": ["Attention", "Linear"]}],
                                            pruning_type="magnitude", pattern="4x1"))
    assert recipe.pruning.groups[0].op_types == ("Linear",)
    notes = "\n".join(recipe.provenance.notes)
    assert "'Attention' matches no layer class that has a weight" in notes
    only = import_inc(WeightPruningConfig([{"pruning_op_types": ["Attention"]}, {"op_names": ["ffn"]}],
                                          pruning_type="magnitude"))
    assert len(only.pruning.groups) == 1 and only.pruning.groups[0].op_names == ("ffn",)
    assert any("hooks no layer" in note for note in only.provenance.notes)
    convs = import_inc({"pruning_type": "magnitude", "pruning_op_types": ["Conv2d", "Conv"]})
    assert convs.pruning.groups[0].op_types == ("Conv",)


def test_unknown_keys_warn_in_inc_import_and_stay_errors_in_recipes(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        recipe = import_inc({"pruning_type": "magnitude", "target_sparisty": 0.5,
                             "pruning_configs": [{"op_names": ["fc"], "false_key": "test"}]})
    assert recipe.pruning.groups[0].target_sparsity == 0.9  # INC ignores the typo and keeps its default
    assert "target_sparisty: unknown key ignored, as INC does" in caplog.text and "'target_sparsity'" in caplog.text
    assert any("pruning_configs[0].false_key" in note for note in recipe.provenance.notes)
    with pytest.raises(ConfigError, match="target_sparisty: unknown key"):
        recipe_from_data({"version": 1, "pruning": {"groups": [{"target_sparisty": 0.5}]}})


def test_nm_global_scope() -> None:
    at_nm = import_inc({"pruning_type": "snip_momentum", "pattern": "2:4", "pruning_scope": "global",
                        "target_sparsity": 0.5, "end_step": 10})
    assert at_nm.pruning.groups[0].pruning_scope == "local"
    lock = import_inc({"pruning_type": "pattern_lock", "pattern": "2:4", "pruning_scope": "global"})
    assert lock.pruning.groups[0].pruning_scope == "local"
    with pytest.raises(ConfigError) as info:
        import_inc({"pruning_type": "magnitude", "pattern": "1:4", "target_sparsity": 0.2})
    message = str(info.value)
    assert "pruning_scope" in message and "80% of M-groups" in message and "allowed: local (every layer at 0.2)" \
        in message and "global with target_sparsity 0.25 (identical to INC)" in message


def test_pattern_lock_is_one_shot_and_its_granularity_is_noted() -> None:
    recipe = import_inc({"pruning_type": "pattern_lock"})
    assert any("all-zero blocks" in note for note in recipe.provenance.notes)
    with pytest.raises(ConfigError, match="pattern_lock runs one-shot only"):
        import_inc({"pruning_type": "pattern_lock", "start_step": 0, "end_step": 5})


def test_export_reports_what_inc_does_differently() -> None:
    recipe = make_recipe({"groups": [
        {"pruning_type": "pattern_lock", "pattern": "4x1", "schedule": {"start_step": 2, "end_step": 8}},
        {"pruning_type": "magnitude", "pattern": "1xchannel", "pruning_scope": "global", "op_names": ["ffn"],
         "min_sparsity_ratio_per_op": 0.3, "target_sparsity": 0.6},
    ]}, selection={"exclude_classifier_head": True})
    data, lost = export_inc(recipe)
    text = "\n".join(lost)
    assert data["pruning_configs"][0]["end_step"] == 2  # INC's pattern_lock is one-shot
    for needle in ("pattern_lock one-shot only", "only blocks whose weights sum to zero", "budget counts channels",
                   "does not lift layers to min_sparsity_ratio_per_op 0.3", "also protects 'pre_classifier'"):
        assert needle in text


def test_convert_prints_the_differences(tmp_path) -> None:
    path = tmp_path / "distilbert.yaml"
    path.write_text("version: 1.0\npruning:\n  approach:\n    weight_compression_v2:\n      target_sparsity: 0.5\n"
                    "      pruners:\n        - !PrunerV2\n            pattern: '2:4'\n            pruning_type: magnitude\n"
                    "            pruning_scope: global\n")
    result = CliRunner().invoke(main, ["convert", str(path), "--to", "sparsesearch", "-o", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    assert "notes (differences from the original):" in result.output
    assert "pattern 2:4 with global scope at target N/M = 0.5" in result.output
    assert "also protects 'pre_classifier'" in result.output


def test_inc_imports_stay_torch_free(tmp_path) -> None:
    path = tmp_path / "inc1.yaml"
    path.write_text("pruning:\n  approach:\n    weight_compression_pytorch:\n      end_step: 4\n      pruners:\n"
                    "        - !Pruner {prune_type: magnitude, pattern: tile_pattern_4x1}\n")
    code = ("import sys\nfrom sparsesearch.formats.files import read_config_file\n"
            f"read_config_file({str(path)!r})\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
