"""Contract tests over every registered criterion and every pattern form: a new one is tested automatically."""

from __future__ import annotations

import copy

import pytest
import torch

from sparsesearch.pruning import CRITERIA, Pruner
from sparsesearch.pruning.patterns import to_2d
from sparsesearch.training import train

from helpers import batches_of, classification_data, image_data, make_cnn, make_mlp

PATTERNS = ["1x1", "4x1", "1x4", "2:4", "1xchannel", "channelx1"]
TYPES = sorted(CRITERIA)


def _target(pattern: str) -> float:
    return 0.5 if ":" in pattern else 0.75


def _run(make, data, pruning_type: str, pattern: str, steps_split: int | None = None):
    model = make(7)
    if pruning_type == "pattern_lock":  # lock the zeros of a model that is already sparse
        with torch.no_grad():
            for p in model.parameters():
                p[torch.rand(p.shape, generator=torch.Generator().manual_seed(0)) < 0.3] = 0.0
    x, y = data
    config = {"pruning_type": pruning_type, "pattern": pattern, "target_sparsity": _target(pattern),
              "reg_coeff": 1e-3, "schedule": {"start_step": 2, "end_step": 14, "pruning_frequency": 4}}
    if pattern == "1x1" and pruning_type == "magnitude":
        config["pruning_scope"] = "global"
    pruner = Pruner(model, config)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train(model, opt, batches_of(x, y, 16), epochs=4, pruner=pruner)
    return model, pruner


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("pruning_type", TYPES)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_every_type_and_pattern_reaches_target_with_its_structure(pruning_type, pattern, kind):
    make, data = (make_mlp, classification_data(n=64)) if kind == "mlp" else (make_cnn, image_data(n=64))
    model, pruner = _run(make, data, pruning_type, pattern)
    report = pruner.report()
    masks = pruner.masks
    for row in report.rows():   # the report is counted from the weights and agrees with the masks
        assert row["zeros"] == int((~masks[row["name"]]).sum())
    if pruning_type == "pattern_lock":
        assert report.pruned_sparsity == pytest.approx(0.3, abs=0.05)
        return
    assert report.pruned_sparsity == pytest.approx(_target(pattern), abs=0.03)
    for name, mask in masks.items():
        m2 = to_2d(mask)
        if pattern == "2:4":
            zeros = (~m2).reshape(m2.shape[0], -1, 4).sum(-1)
            assert bool(((zeros == 0) | (zeros == 2)).all()), name
        elif pattern == "4x1":
            kept = m2.reshape(m2.shape[0] // 4, 4, -1).sum(1)
            assert bool(((kept == 0) | (kept == 4)).all()), name
        elif pattern == "1x4":
            kept = m2.reshape(m2.shape[0], -1, 4).sum(-1)
            assert bool(((kept == 0) | (kept == 4)).all()), name
        elif pattern == "1xchannel":
            assert bool((m2.all(1) | (~m2).all(1)).all()), name
        elif pattern == "channelx1":
            assert bool((m2.all(0) | (~m2).all(0)).all()), name


@pytest.mark.parametrize("pruning_type", TYPES)
def test_every_type_resumes_from_state_dict_identically(pruning_type):
    """Train 4 epochs straight, versus 2 epochs + save + fresh objects + load + 2 epochs: same masks, weights."""
    x, y = classification_data(n=64)
    batches = batches_of(x, y, 16)
    config = {"pruning_type": pruning_type, "pattern": "1x1", "target_sparsity": 0.8, "reg_coeff": 1e-3,
              "schedule": {"start_step": 1, "end_step": 14, "pruning_frequency": 3}}

    def fresh():
        model = make_mlp(11)
        if pruning_type == "pattern_lock":
            with torch.no_grad():
                model[0].weight[:, ::2] = 0.0
        return model, Pruner(model, config)

    straight, pruner = fresh()
    opt = torch.optim.Adam(straight.parameters(), lr=0.01)
    train(straight, opt, batches, epochs=4, pruner=pruner)

    first, pruner1 = fresh()
    opt1 = torch.optim.Adam(first.parameters(), lr=0.01)
    train(first, opt1, batches, epochs=2, pruner=pruner1)
    saved = copy.deepcopy({"model": first.state_dict(), "opt": opt1.state_dict(), "pruner": pruner1.state_dict()})
    assert 0 < pruner1.step < 14  # interrupted mid-pruning

    resumed, pruner2 = fresh()
    resumed.load_state_dict(saved["model"])
    opt2 = torch.optim.Adam(resumed.parameters(), lr=0.01)
    opt2.load_state_dict(saved["opt"])
    pruner2.load_state_dict(saved["pruner"])
    train(resumed, opt2, batches, epochs=2, pruner=pruner2)

    assert pruner2.step == pruner.step == 16
    for name in pruner.masks:
        assert torch.equal(pruner.masks[name], pruner2.masks[name]), name
    for (n, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), n


def test_state_dict_from_another_config_is_rejected():
    model = make_mlp()
    state = Pruner(model, {"op_names": ["^0$"]}).state_dict()
    with pytest.raises(ValueError, match="does not match"):
        Pruner(make_mlp(), {"op_names": ["^2$"]}).load_state_dict(state)
