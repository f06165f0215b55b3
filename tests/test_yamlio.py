"""Safe YAML reading with line numbers, and the deterministic writer."""

from __future__ import annotations

import math
import os

import pytest
import yaml

from sparsesearch.errors import ConfigError
from sparsesearch.formats.safe_yaml import dump_yaml, parse_yaml, read_yaml, write_text_safely


def test_yaml_1_2_scalars_keep_pruning_values_intact() -> None:
    data = parse_yaml("pattern: 2:4\nlr: 1e-4\nflag: on\nwhen: 2024-01-01\nt: 0,9\nok: true\nn: 12\nh: 0x10\n").data
    assert data == {"pattern": "2:4", "lr": 1e-4, "flag": "on", "when": "2024-01-01", "t": "0,9", "ok": True,
                    "n": 12, "h": 16}


def test_line_numbers_per_key_path() -> None:
    doc = parse_yaml("a: 1\ngroups:\n  - x: 1\n    pattern: 4x1\n  - x: 2\n", "f.yaml")
    assert doc.lines["groups[1]"] == 5
    assert doc.lines["groups[0].pattern"] == 4
    assert doc.line_of("groups[0].missing") == 3  # the parent's line for a key the file lacks
    err = doc.locate(ConfigError("bad", key="groups[0].pattern"))
    assert str(err).startswith("f.yaml:4: groups[0].pattern: bad")


def test_writer_is_deterministic_and_readable_by_plain_pyyaml() -> None:
    data = {"z": 1e-05, "y": 0.1 + 0.2, "pattern": "2:4", "flag": "on", "run": "1234e567", "date": "2024-01-01",
            "empty": [], "items": (1, 2), "big": 1e20, "three": 3.0, "name": "fc1", "blank": "", "neg": -0.5}
    text = dump_yaml(data)
    again = parse_yaml(text).data
    assert again == {**data, "items": [1, 2]}
    assert yaml.safe_load(text) == again  # PyYAML's YAML 1.1 rules read the same values
    assert dump_yaml(again) == text
    assert list(again) == list(data)  # key order kept


def test_float_text_round_trips_exactly() -> None:
    values = [0.1, 1 / 3, 1e-7, 123456789.125, 5e-324, 0.9, 2.5e300]
    text = dump_yaml({"v": values})
    read = parse_yaml(text).data["v"]
    assert read == values and all(type(v) is float for v in read)
    assert not any(math.isnan(v) for v in read)


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_yaml("a: !!python/object/apply:os.system ['echo hacked']\n", "evil.yaml")


def test_alias_bomb_is_cheap() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    doc = parse_yaml("\n".join(lines) + "\n")
    assert len(doc.lines) < 200


def test_duplicate_keys_are_an_error_with_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nb: 2\na: 3\n", "d.yaml")
    assert "d.yaml:3" in str(info.value) and "first given on line 1" in str(info.value)


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("# only a comment\n", "empty"),
    ("- 1\n- 2\n", "mapping"),
    ("just text\n", "mapping"),
    ("a:\n\tb: 1\n", "tab"),
    ("a: [1, 2\n", "not valid YAML"),
])
def test_malformed_text(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_yaml(text, "x.yaml")


def test_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="directory"):
        read_yaml(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8|not a text file"):
        read_yaml(binary)


def test_write_text_safely_never_clobbers(tmp_path) -> None:
    target = tmp_path / "out.yaml"
    write_text_safely(target, "a: 1\n")
    with pytest.raises(ConfigError, match="already exists"):
        write_text_safely(target, "a: 2\n")
    assert target.read_text() == "a: 1\n"
    write_text_safely(target, "a: 3\n", overwrite=True)
    assert target.read_text() == "a: 3\n"
    assert sorted(os.listdir(tmp_path)) == ["out.yaml"]  # no temporary files left behind
    with pytest.raises(ConfigError, match="does not exist"):
        write_text_safely(tmp_path / "no" / "such" / "dir.yaml", "a: 1\n")
