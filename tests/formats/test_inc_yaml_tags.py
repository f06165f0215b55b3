"""INC's YAML tags: !PrunerV2 (INC 2.x) and !Pruner (INC 1.x, LPOT 1.4-1.6) read as plain mappings, nothing
else; no code runs."""

from __future__ import annotations

import pytest

from sparsesearch.errors import ConfigError
from sparsesearch.formats.files import read_config_file
from sparsesearch.formats.safe_yaml import parse_yaml

INC2_YAML = """\
version: 1.0

model:
  name: "bert-mini"
  framework: "pytorch"

pruning:
  approach:
    weight_compression_v2:
      start_step: 2
      end_step: 30
      target_sparsity: 0.8
      pruning_frequency: 2
      pruning_op_types: ["Linear"]
      pruners:
        - !PrunerV2
            pattern: "4x1"
            pruning_type: "snip_momentum"
            pruning_scope: "global"
            excluded_op_names: ["classifier", "pooler", ".*embeddings*"]
        - !PrunerV2 {pattern: "1x1", op_names: ["pooler"], pruning_type: magnitude}
"""


def test_prunerv2_and_pruner_tags_are_plain_mappings_with_lines() -> None:
    doc = parse_yaml(INC2_YAML, "inc2.yaml")
    pruners = doc.data["pruning"]["approach"]["weight_compression_v2"]["pruners"]
    assert pruners == [{"pattern": "4x1", "pruning_type": "snip_momentum", "pruning_scope": "global",
                        "excluded_op_names": ["classifier", "pooler", ".*embeddings*"]},
                       {"pattern": "1x1", "op_names": ["pooler"], "pruning_type": "magnitude"}]
    assert type(pruners[0]) is dict
    assert doc.lines["pruning.approach.weight_compression_v2.pruners[0].pruning_scope"] == 19
    old = parse_yaml("pruners:\n  - !Pruner\n      prune_type: basic_magnitude\n      names: ['fc.weight']\n")
    assert old.data == {"pruners": [{"prune_type": "basic_magnitude", "names": ["fc.weight"]}]}


def test_inc2_yaml_file_imports(tmp_path) -> None:
    path = tmp_path / "inc2.yaml"
    path.write_text(INC2_YAML)
    loaded = read_config_file(path)
    assert loaded.kind == "inc-yaml"
    first, second = loaded.recipe.pruning.groups
    assert (first.pattern, first.pruning_type, first.target_sparsity, first.op_types) == ("4x1", "snip_momentum",
                                                                                        0.8, ("Linear",))
    assert first.excluded_op_names == ("classifier", "pooler", ".*embeddings*")
    assert (second.pattern, second.op_names) == ("1x1", ("pooler",))


@pytest.mark.parametrize("text, needle", [
    ("a: !!python/object/apply:os.system ['echo hacked']\n", "python/object/apply:os.system"),
    ("a: !!python/name:os.system\n", "python/name:os.system"),
    ("a: !Foo {x: 1}\n", "'!Foo'"),
    ("a: !PrunerV3 {x: 1}\n", "'!PrunerV3'"),
    ("a: !Pruner 3\n", "the tag !Pruner must be on a mapping"),
    ("a: !PrunerV2 [1, 2]\n", "the tag !PrunerV2 must be on a mapping"),
])
def test_every_other_tag_is_an_error(text, needle) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, "bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml:1: not valid YAML") and needle in message
    assert "allowed: YAML text (safe subset: no tags but INC's !Pruner and !PrunerV2, no code)" in message


def test_tags_do_not_leak_into_pyyaml_safe_loader() -> None:
    import yaml

    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("a: !PrunerV2 {x: 1}\n")
