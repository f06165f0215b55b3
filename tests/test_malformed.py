"""A battery of malformed recipes, study specs, INC and LPOT configs and broken files.

Each case asserts that the message names the key (with the file and, where YAML gives it, the line) and
what is allowed, and that ``sparsesearch validate`` exits with 2 and prints one ``error:`` line, no traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sparsesearch.cli import main
from sparsesearch.errors import ConfigError
from sparsesearch.formats.files import read_config_file

RECIPE = "version: 1\npruning:\n  groups:\n    - {body}\n"


def recipe(body: str) -> str:
    return RECIPE.format(body=body)


# (case id, file text or bytes, extra CLI args, substrings the message must contain)
CASES: list[tuple[str, str | bytes, list[str], list[str]]] = [
    # ---------------------------------------------------------------- recipes
    ("recipe-typo-key", recipe("target_sparsty: 0.5"), [],
     [":4: pruning.groups[0].target_sparsty: unknown key", "allowed: criterion_reduce_type",
      "Did you mean 'target_sparsity'?"]),
    ("recipe-comma-decimal", recipe("target_sparsity: 0,9"), [],
     ["pruning.groups[0].target_sparsity", "a comma is not a decimal point", "allowed: a number in [0.0, 1.0)",
      "Did you mean '0.9'?"]),
    ("recipe-sparsity-range", recipe("target_sparsity: 1.5"), [],
     ["pruning.groups[0].target_sparsity: out of range", "allowed: a number in [0.0, 1.0)"]),
    ("recipe-wrong-type", "version: 1\npruning:\n  groups:\n    - schedule:\n        start_step: ten\n", [],
     [":5: pruning.groups[0].schedule.start_step: expected an integer", "allowed: a number >= 0"]),
    ("recipe-unknown-pattern", recipe("pattern: 4*1"), [],
     ["pruning.groups[0].pattern: unknown pattern", "allowed: 1x1 (unstructured)", "Did you mean '4x1'?"]),
    ("recipe-unknown-type", recipe("pruning_type: magnitud"), [],
     ["pruning.groups[0].pruning_type: unknown pruning_type", "allowed: gradient, group_lasso, magnitude",
      "Did you mean 'magnitude'?"]),
    ("recipe-bad-regex", recipe("op_names: ['fc[']"), [],
     ["pruning.groups[0].op_names[0]: not a valid regular expression", "allowed: a Python regular expression"]),
    ("recipe-start-after-end", "version: 1\npruning:\n  groups:\n    - schedule: {start_step: 5, end_step: 2}\n", [],
     ["pruning.groups[0].schedule.start_step: start_step must not be after end_step", "allowed: 0 .. 2"]),
    ("recipe-missing-version", "pruning:\n  groups:\n    - {}\n", [],
     ["version: missing required key", "allowed: 1"]),
    ("recipe-newer-version", "version: 7\npruning:\n  groups: [{}]\n  new_thing: 1\n", [],
     [":1: version: recipe format version 7 is newer", "upgrade sparsesearch", "allowed: 1"]),
    ("recipe-version-string", "version: '1'\npruning:\n  groups: [{}]\n", [],
     ["version: expected the recipe format version as an integer", "allowed: 1"]),
    ("recipe-missing-pruning", "version: 1\ntraining: {epochs: 2}\n", [],
     ["pruning: missing required key", "allowed: pruning"]),
    ("recipe-no-groups", "version: 1\npruning:\n  groups: []\n", [],
     ["pruning.groups: a pruning config needs at least one group", "allowed: a list of one or more"]),
    ("recipe-nm-too-sparse", recipe("{pattern: '2:4', target_sparsity: 0.7}").replace("- {{", "- {"), [],
     ["pruning.groups[0].target_sparsity: the 2:4 pattern can prune at most 0.5", "allowed: 0 .. 0.5"]),
    ("recipe-nm-global", recipe("{pattern: '2:4', target_sparsity: 0.5, pruning_scope: global}"), [],
     ["pruning.groups[0].pruning_scope", "local by nature", "allowed: local"]),
    ("recipe-layer-map-global", recipe("{layer_targets: {fc: 0.5}, pruning_scope: global}"), [],
     ["pruning.groups[0].pruning_scope", "per-layer target map", "allowed: local (with layer_targets)"]),
    ("recipe-top-level-typo", "version: 1\npruning: {groups: [{}]}\nprovenence: {study: x}\n", [],
     [":3: provenence: unknown key", "allowed: provenance, pruning, selection, training, version",
      "Did you mean 'provenance'?"]),
    ("recipe-optimizer", "version: 1\npruning: {groups: [{}]}\ntraining: {optimizer: sgdd}\n", [],
     ["training.optimizer: unknown optimizer", "allowed: adam, adamw, sgd", "Did you mean 'sgd'?"]),
    ("recipe-bad-time", "version: 1\npruning: {groups: [{}]}\nprovenance: {created: yesterday}\n", [],
     ["provenance.created: not an ISO 8601 time", "allowed: a time such as 2025-01-31T12:00:00+00:00"]),
    ("recipe-accuracy-range", "version: 1\npruning: {groups: [{}]}\nprovenance: {metrics: {val_accuracy: 91}}\n", [],
     ["provenance.metrics.val_accuracy: out of range", "allowed: a number in [0.0, 1.0]"]),
    ("recipe-unknown-layer", recipe("layer_targets: {conv3: 0.5}"), ["--model", "helpers:make_cnn"],
     [":4: pruning.groups[0].layer_targets.conv3", "nearest: conv2, conv1", "allowed: conv1, conv2, fc",
      "Did you mean 'conv2'?"]),
    ("recipe-regex-matches-nothing", recipe("op_names: ['^encoder\\.']"), ["--model", "helpers:make_cnn"],
     ["pruning.groups[0].op_names[0]: matches no prunable layer", "allowed: conv1, conv2, fc"]),
    ("recipe-block-does-not-divide", recipe("pattern: 3x1"), ["--model", "helpers:make_cnn"],
     ["pruning.groups[0].pattern", "cannot be cut into 3x1 blocks", "allowed: a block whose sides divide"]),
    # ---------------------------------------------------------------- files that are not YAML mappings
    ("duplicate-key", "version: 1\nversion: 1\npruning: {groups: [{}]}\n", [],
     [":2: version: duplicate key (first given on line 1)", "allowed: each key once"]),
    ("tabs", "version: 1\npruning:\n\tgroups: []\n", [], [":3: a tab character in the indentation",
                                                           "allowed: indentation with spaces"]),
    ("empty-file", "", [], ["the file is empty", "allowed: a YAML mapping"]),
    ("comments-only", "# nothing here\n\n", [], ["the file is empty", "allowed: a YAML mapping"]),
    ("not-yaml", "version: 1\npruning: {groups: [\n", [], ["not valid YAML", "allowed: YAML text"]),
    ("top-level-list", "- version: 1\n", [], [":1: expected a mapping of keys to values at the top level",
                                               "allowed: a YAML mapping"]),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd", [], ["not a UTF-8 text file", "allowed: a UTF-8 YAML text file"]),
    ("python-tag", "version: !!python/object/apply:os.system ['echo hacked']\n", [],
     [":1: not valid YAML", "could not determine a constructor", "allowed: YAML text (safe subset"]),
    ("unknown-kind", "pruning_config: []\nsparsity: 0.5\n", [],
     [":1: pruning_config: not a file sparsesearch knows", "allowed: a recipe (version, pruning)",
      "Did you mean 'pruning_configs'?"]),
    # ---------------------------------------------------------------- INC
    ("inc-comma-decimal", "target_sparsity: 0,9\npruning_type: magnitude\n", [],
     [":1: target_sparsity: expected a number; a comma is not a decimal point", "allowed: a number in [0.0, 1.0)",
      "Did you mean '0.9'?"]),
    ("inc-sparse-gpt", "pruning_configs:\n  - pruning_type: sparse_gpt\n    end_step: 1\n", [],
     [":2: pruning_configs[0].pruning_type: INC pruning type 'sparse_gpt' is not supported",
      "allowed: magnitude, gradient, snip, snip_momentum"]),
    ("inc-mha-pattern", "pruning_type: magnitude\npattern: mha\n", [],
     [":2: pattern: INC's mha", "allowed: 1x1, NxM"]),
    ("inc-decay", "pruning_type: magnitude\nsparsity_decay_type: cubicc\n", [],
     ["sparsity_decay_type: unknown sparsity_decay_type", "allowed: exp, cos, linear, cube, cubic",
      "Did you mean 'cubic'?"]),
    ("inc-default-end-step", "target_sparsity: 0.8\n", [],
     ["end_step: pruning_type 'snip_momentum' scores weights with gradients, so INC requires end_step > 0",
      "allowed: an end_step of 1 or more"]),
    ("inc-op-types", "pruning_type: magnitude\npruning_op_types: [Embedding]\n", [],
     [":2: pruning_op_types: no group selects a layer type sparsesearch can prune", "allowed: pruning_op_types naming "
      "Linear or Conv"]),
    ("inc-end-before-start", "pruning_type: magnitude\nstart_step: 5\nend_step: 2\n", [],
     [":3: end_step: end_step must not be before start_step (5)", "allowed: >= 5"]),
    ("inc-min-over-max", "pruning_type: magnitude\nmin_sparsity_ratio_per_op: 0.9\nmax_sparsity_ratio_per_op: 0.5\n",
     [], [":2: min_sparsity_ratio_per_op: min_sparsity_ratio_per_op must not exceed", "allowed: 0 .. 0.5"]),
    ("inc-reg-type", "pruning_type: magnitude\nreg_type: l1\n", [],
     [":2: reg_type: unknown reg_type", "allowed: group_lasso"]),
    ("inc-configs-not-list", "pruning_type: magnitude\npruning_configs: {op_names: [fc]}\n", [],
     [":2: pruning_configs: expected a list", "allowed: a list of"]),
    ("inc-op-names-string", "pruning_type: magnitude\nop_names: fc\n", [],
     [":2: op_names: expected a list", "allowed: a list of strings"]),
    ("inc-bad-regex", "pruning_type: magnitude\npruning_configs:\n  - op_names: ['(']\n", [],
     ["pruning_configs[0].op_names[0]: not a valid regular expression", "allowed: a Python regular expression"]),
    # ---------------------------------------------------------------- LPOT
    ("lpot-unknown-algorithm", "pruning:\n  snip:\n    p1: {}\n  target_sparsity: 0.5\n", [],
     [":2: pruning.snip: unknown key", "allowed: end_epoch, frequency, init_sparsity, magnitude"]),
    ("lpot-not-a-weight", "pruning:\n  magnitude:\n    p1:\n      weights: ['fc.bias']\n  target_sparsity: 0.5\n", [],
     [":4: pruning.magnitude.p1.weights[0]: only the weights of Linear and Conv layers",
      "allowed: parameter names ending in .weight", "Did you mean 'fc.weight'?"]),
    ("lpot-missing-target", "pruning:\n  magnitude:\n    p1: {}\n  end_epoch: 3\n", [],
     ["pruning.target_sparsity: missing required key", "allowed: a number in [0.0, 1.0)"]),
    ("lpot-per-channel", "pruning:\n  magnitude:\n    p1: {method: per_channel}\n  target_sparsity: 0.5\n", [],
     [":3: pruning.magnitude.p1.method: unknown method", "allowed: per_tensor"]),
    ("lpot-no-instances", "pruning:\n  magnitude: {}\n  target_sparsity: 0.5\n", [],
     [":2: pruning.magnitude: needs at least one pruner instance", "allowed: a mapping of instance names"]),
    ("lpot-init-over-target", "pruning:\n  magnitude:\n    p1: {init_sparsity: 0.6}\n  target_sparsity: 0.5\n", [],
     [":3: pruning.magnitude.p1.init_sparsity: init_sparsity must not exceed target_sparsity",
      "allowed: 0 .. 0.5"]),
    ("lpot-epochs", "pruning:\n  magnitude:\n    p1: {}\n  start_epoch: 4\n  end_epoch: 1\n  target_sparsity: 0.5\n",
     [], [":5: pruning.end_epoch: end_epoch must not be before start_epoch (4)", "allowed: >= 4"]),
    ("lpot-weights-model", "pruning:\n  magnitude:\n    p1: {weights: ['conv9.weight']}\n  target_sparsity: 0.5\n",
     ["--model", "helpers:make_cnn", "--steps-per-epoch", "2"],
     [":3: pruning.magnitude.p1.weights[0]", "named 'conv9'; nearest: conv2, conv1", "allowed: conv1, conv2, fc"]),
    ("inc-regex-matches-nothing", "pruning_type: magnitude\nop_names: ['^conv1$']\npruning_configs:\n  - {}\n"
     "  - op_names: ['^conv7$']\n", ["--model", "helpers:make_cnn"],
     [":5: pruning_configs[1].op_names[0]: matches no prunable layer", "nearest layer names: conv2, conv1",
      "allowed: conv1, conv2, fc"]),
    ("inc-global-regex-matches-nothing", "pruning_type: magnitude\nop_names: ['^dense$']\n",
     ["--model", "helpers:make_cnn"], [":2: op_names[0]: matches no prunable layer", "allowed: conv1, conv2, fc"]),
    # ---------------------------------------------------------------- study specs
    ("study-typo", "name: s1\ntask: digits-mlp\nn_trails: 10\n", [],
     [":3: n_trails: unknown key", "Did you mean 'n_trials'?"]),
    ("study-sampler", "name: s1\ntask: digits-mlp\nsampler: bayes\n", [],
     [":3: sampler: unknown sampler", "allowed: tpe, random, nsga2"]),
    ("study-space-type", "name: s1\ntask: digits-mlp\nspace:\n  pruning_types: [magnitud]\n", [],
     [":4: space.pruning_types[0]: unknown pruning_types[0]", "Did you mean 'magnitude'?"]),
    # ---------------------------------------------------------------- command-line references
    ("model-missing-module", recipe("{}"), ["--model", "no_such_module_xyz:make"],
     ["--model: cannot import", "'no_such_module_xyz'"]),
    ("model-missing-callable", recipe("{}"), ["--model", "helpers:make_cnnn"],
     ["--model: module 'helpers' has no attribute 'make_cnnn'", "Did you mean 'helpers:make_cnn'?"]),
    ("unknown-task", recipe("{}"), ["--task", "digits-mpl"],
     ["--task: unknown task", "allowed: digits-mlp", "Did you mean 'digits-mlp'?"]),
]


def test_battery_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("case_id, content, args, needles", CASES, ids=[c[0] for c in CASES])
def test_validate_reports_the_key_and_allowed_values(tmp_path, case_id, content, args, needles) -> None:
    path = _write(tmp_path, content)
    if not args:  # the library raises the same message the CLI prints
        with pytest.raises(ConfigError) as info:
            read_config_file(path)
        message = str(info.value)
        assert message.startswith(str(path)), message
        for needle in needles:
            assert needle in message, f"{needle!r} not in {message!r}"
    result = CliRunner().invoke(main, ["validate", str(path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def test_missing_file(tmp_path) -> None:
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml: file not found" in result.output
    assert "Traceback" not in result.output
