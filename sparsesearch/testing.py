"""Contract checks for pruning criteria and patterns, for sparsesearch's own tests and for third-party ones.

Each check is a plain function that raises ``AssertionError`` saying what broke (no pytest needed, as in
``optuna.testing``). A new criterion is one :class:`~sparsesearch.pruning.criteria.Criterion` subclass;
check it with::

    from sparsesearch import testing

    def test_my_criterion():
        testing.check_criterion(MyCriterion)   # registers it for the duration of the checks

What is checked: scores have each weight's shape and a float dtype and are fresh tensors; the pruner reaches
its target with the criterion under every registered pattern, with the pattern's structure; pruned weights
stay exactly zero through SGD-with-momentum, Adam and AdamW steps (and get zero gradients with
``mask_gradients=True``); and a run interrupted mid-pruning resumes from ``state_dict`` to the same masks and
weights. :func:`check_pattern` does the same for a pattern spelling. The models are tiny (CPU, a second or
two per check).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.pruning.criteria import CRITERIA, OBSERVE_POLICIES, Criterion
from sparsesearch.pruning.patterns import PATTERNS, Pattern, build_pattern, to_2d
from sparsesearch.pruning.pruner import Pruner
from sparsesearch.records import names
from sparsesearch.records.pruning import PruningGroup, Schedule

__all__ = [
    "OPTIMIZERS",
    "PATTERN_EXAMPLES",
    "check_criterion",
    "check_pattern",
    "check_reaches_target",
    "check_scores",
    "check_state_dict_round_trip",
    "check_zeros_stay_zero",
    "registered",
    "small_model",
    "train_steps",
]

#: every registered pattern class's example spellings
PATTERN_EXAMPLES: tuple[str, ...] = tuple(s for cls in PATTERNS.values() for s in cls.examples)

OPTIMIZERS: dict[str, Callable[[Any], torch.optim.Optimizer]] = {
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw_decay": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}

_CLASSES = 8


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, _CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def small_model(kind: str = "mlp", seed: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A tiny model (``"mlp"`` or ``"cnn"``) whose layer sizes fit every built-in pattern, and 4 batches of
    16 generated examples for it."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        model: nn.Module = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                         nn.Linear(32, _CLASSES))
        x = torch.randn(64, 16, generator=g)
    elif kind == "cnn":
        model = _SmallCNN()
        x = torch.randn(64, 4, 4, 4, generator=g)
    else:
        raise ValueError(f"kind must be 'mlp' or 'cnn', not {kind!r}")
    y = torch.randint(0, _CLASSES, (64,), generator=g)
    return model, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]


def train_steps(model: nn.Module, pruner: Pruner, optimizer: torch.optim.Optimizer,
                batches: Sequence[tuple[torch.Tensor, torch.Tensor]], epochs: int,
                after_step: Callable[[int], None] | None = None,
                before_step: Callable[[int], None] | None = None, end: bool = True) -> None:
    """The callback loop (as :func:`sparsesearch.training.train` runs it), with optional checks between;
    ``end=False`` leaves out ``on_train_end`` (a run checkpointed to be resumed)."""
    pruner.on_train_begin()
    for epoch in range(epochs):
        pruner.on_epoch_begin(epoch)
        for x, y in batches:
            pruner.on_step_begin()
            loss = F.cross_entropy(model(x), y)
            reg = pruner.regularization()
            if reg.requires_grad:
                loss = loss + reg
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            pruner.on_before_optimizer_step()
            if before_step is not None:
                before_step(pruner.step)
            optimizer.step()
            pruner.on_after_optimizer_step()
            if after_step is not None:
                after_step(pruner.step)
        pruner.on_epoch_end()
    if end:
        pruner.on_train_end()


@contextmanager
def registered(criterion_cls: type[Criterion]) -> Iterator[str]:
    """Register ``criterion_cls`` under its ``name`` (engine registry and the torch-free name table) for the
    duration of the block; yields the name. A name already registered to another class is an error."""
    name = criterion_cls.name
    present = CRITERIA.get(name)
    if present is not None and present is not criterion_cls:
        raise AssertionError(f"criterion name {name!r} is already registered to {present.__qualname__}")
    if present is not None:
        yield name
        return
    CRITERIA[name] = criterion_cls
    names.CRITERIA[name] = names.CriterionTraits(needs_grad=criterion_cls.needs_grad,
                                                 locks_pattern=criterion_cls.locks_pattern)
    try:
        yield name
    finally:
        CRITERIA.pop(name, None)
        names.CRITERIA.pop(name, None)


def _lock_zeros(model: nn.Module, share: float = 0.3) -> None:
    """Give a model the zeros a pattern_lock-type criterion keeps."""
    with torch.no_grad():
        for p in model.parameters():
            p[torch.rand(p.shape, generator=torch.Generator().manual_seed(0)) < share] = 0.0


def _target(pattern: Pattern) -> float:
    return min(0.75, pattern.max_sparsity)


def _config(criterion_cls: type[Criterion], pattern: str, target: float, scope: str = "local",
            **schedule: int) -> dict[str, Any]:
    sched = {"start_step": 2, "end_step": 14, "pruning_frequency": 4, **schedule}
    config = {"pruning_type": criterion_cls.name, "pattern": pattern, "target_sparsity": target,
              "pruning_scope": scope, "reg_coeff": 1e-3, "schedule": sched}
    if scope == "global":
        config["max_sparsity_ratio_per_op"] = 1.0
    return config


def _weights(model: nn.Module, pruner: Pruner) -> dict[str, torch.Tensor]:
    modules = dict(model.named_modules())
    return {name: modules[name].weight for name in pruner.layer_names}


def check_traits(criterion_cls: type[Criterion]) -> None:
    """Class attributes are consistent with each other and with the torch-free name table."""
    assert isinstance(getattr(criterion_cls, "name", None), str), "a criterion needs a class attribute `name`"
    assert criterion_cls.observes in OBSERVE_POLICIES, \
        f"{criterion_cls.name}: observes={criterion_cls.observes!r}, allowed {OBSERVE_POLICIES}"
    if criterion_cls.needs_grad:
        assert criterion_cls.observes != "never", \
            f"{criterion_cls.name} needs gradients but never observes them (set observes)"
    traits = names.CRITERIA.get(criterion_cls.name)
    assert traits is not None, f"{criterion_cls.name} is missing from sparsesearch.records.names.CRITERIA"
    assert (traits.needs_grad, traits.locks_pattern) == (criterion_cls.needs_grad, criterion_cls.locks_pattern), \
        f"{criterion_cls.name}: class traits differ from sparsesearch.records.names.CRITERIA"


def check_scores(criterion_cls: type[Criterion], pattern: str = "1x1") -> None:
    """Scores: one per weight tensor, the weight's shape, a float dtype, fresh tensors (no aliasing)."""
    with registered(criterion_cls) as name:
        model, batches = small_model("mlp")
        if criterion_cls.locks_pattern:
            _lock_zeros(model)
        weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        pat = build_pattern(pattern)
        group = PruningGroup(pruning_type=name, pattern=pattern, target_sparsity=_target(pat),
                             schedule=Schedule(start_step=2, end_step=14, pruning_frequency=4))
        criterion = criterion_cls.from_group(weights, group, pat)
        if criterion.observes != "never":
            x, y = batches[0]
            F.cross_entropy(model(x), y).backward()
            criterion.observe()
        scores = criterion.scores()
        assert isinstance(scores, list) and len(scores) == len(weights), \
            f"{name}: scores() must return a list with one tensor per weight ({len(weights)})"
        state = list(_tensors(criterion.state_dict()))
        for i, (s, w) in enumerate(zip(scores, weights)):
            assert isinstance(s, torch.Tensor), f"{name}: score {i} is not a tensor"
            assert s.shape == w.shape, f"{name}: score {i} has shape {tuple(s.shape)}, weight {tuple(w.shape)}"
            assert s.dtype.is_floating_point, f"{name}: score {i} has dtype {s.dtype}; a float dtype is needed"
            assert s.device == w.device, f"{name}: score {i} is on {s.device}, its weight on {w.device}"
            assert s.data_ptr() != w.data_ptr(), f"{name}: score {i} aliases its weight (return a fresh tensor)"
            assert all(s.data_ptr() != t.data_ptr() for t in state if t.numel()), \
                f"{name}: score {i} aliases the criterion's state (the pruner modifies scores in place)"
            assert not bool(torch.isnan(s).any()), f"{name}: score {i} has NaN"


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def check_reaches_target(criterion_cls: type[Criterion], pattern: str = "1x1", kind: str = "mlp",
                         scope: str = "local") -> None:
    """Trained with the callbacks, the pruner ends exactly at its target with the pattern's structure, and
    the report (counted from the weights) agrees with the masks."""
    with registered(criterion_cls):
        pat = build_pattern(pattern)
        model, batches = small_model(kind, seed=7)
        if criterion_cls.locks_pattern:
            _lock_zeros(model)
        before = {n: (p == 0).clone() for n, p in model.named_parameters()}
        target = _target(pat)
        pruner = Pruner(model, _config(criterion_cls, pattern, target, scope))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        train_steps(model, pruner, opt, batches, epochs=4)
        report = pruner.report()
        masks = pruner.masks
        label = f"{criterion_cls.name} x {pattern} ({kind}, {scope})"
        assert not report.warnings, f"{label}: unexpected warnings {report.warnings}"
        for row in report.rows():
            assert row["zeros"] == int((~masks[row["name"]]).sum()), f"{label}: report and mask differ: {row}"
        if criterion_cls.locks_pattern:
            for n, p in model.named_parameters():
                if n.removesuffix(".weight") in masks:
                    assert torch.equal(p == 0, before[n]), f"{label}: {n} gained or lost zeros"
            return
        total = pruned = 0
        largest = 0
        for name, mask in masks.items():
            m2 = to_2d(mask)
            assert pat.conforms(m2), f"{label}: the mask of {name} does not have the {pattern} structure"
            size = pat.group_size(m2.shape)
            largest = max(largest, size)
            zeros = int((~mask).sum())
            if scope == "local":
                expected = round(round(target * mask.numel()) / size) * size
                assert zeros == expected, f"{label}: {name} has {zeros} zeros, expected {expected}"
            total += mask.numel()
            pruned += zeros
        if scope == "global":
            assert abs(pruned - round(target * total)) <= largest / 2, \
                f"{label}: {pruned} of {total} weights pruned, expected {round(target * total)}"


def check_zeros_stay_zero(criterion_cls: type[Criterion], optimizers: Sequence[str] = tuple(OPTIMIZERS),
                          pattern: str = "1x1") -> None:
    """After every optimizer step pruned weights are exactly zero, sparsity never decreases and ends at the
    target; with ``mask_gradients=True`` pruned weights also get zero gradients before the step."""
    if criterion_cls.locks_pattern:
        return _check_lock_keeps_zeros(criterion_cls, optimizers)
    with registered(criterion_cls):
        for opt_name in optimizers:
            for mask_gradients in (False, True):
                label = f"{criterion_cls.name} with {opt_name} (mask_gradients={mask_gradients})"
                model, batches = small_model("mlp", seed=1)
                target = 0.6
                # dense warm-up so momentum and Adam moments are non-zero when pruning starts
                config = _config(criterion_cls, pattern, target, start_step=6, end_step=18, pruning_frequency=6)
                pruner = Pruner(model, config, mask_gradients=mask_gradients)
                opt = OPTIMIZERS[opt_name](model.parameters())
                weights = _weights(model, pruner)
                seen: list[float] = []

                def before(step: int, pruner: Pruner = pruner, weights: dict = weights, label: str = label,
                           mask_gradients: bool = mask_gradients) -> None:
                    if not mask_gradients:
                        return
                    for name, mask in pruner.masks.items():
                        g = weights[name].grad
                        assert g is None or bool((g[~mask] == 0).all()), f"{label}: gradient of pruned {name}"

                def after(step: int, pruner: Pruner = pruner, weights: dict = weights, label: str = label,
                          seen: list = seen) -> None:
                    zeros = 0
                    for name, mask in pruner.masks.items():
                        w = weights[name]
                        assert bool((w[~mask] == 0).all()), \
                            f"{label}: a pruned weight of {name} is non-zero after step {step}"
                        zeros += int((w == 0).sum())
                    seen.append(zeros / sum(w.numel() for w in weights.values()))

                train_steps(model, pruner, opt, batches, epochs=6, after_step=after, before_step=before)
                assert all(b >= a for a, b in zip(seen, seen[1:])), f"{label}: sparsity decreased: {seen}"
                expected = sum(round(target * w.numel()) for w in weights.values()) / sum(
                    w.numel() for w in weights.values())
                assert seen[-1] == expected, f"{label}: ended at {seen[-1]}, expected {expected}"
    return None


def _check_lock_keeps_zeros(criterion_cls: type[Criterion], optimizers: Sequence[str]) -> None:
    with registered(criterion_cls):
        for opt_name in optimizers:
            model, batches = small_model("mlp", seed=1)
            _lock_zeros(model)
            before = {n: (p == 0).clone() for n, p in model.named_parameters() if n.endswith("weight")}
            pruner = Pruner(model, _config(criterion_cls, "1x1", 0.0))
            train_steps(model, pruner, OPTIMIZERS[opt_name](model.parameters()), batches, epochs=4)
            for n, p in model.named_parameters():
                if n in before:
                    assert torch.equal(p == 0, before[n]), f"{criterion_cls.name} with {opt_name}: {n} changed"


def check_state_dict_round_trip(criterion_cls: type[Criterion], pattern: str = "1x1") -> None:
    """4 epochs straight == 2 epochs, save (model, optimizer, pruner), fresh objects, load, 2 epochs."""
    with registered(criterion_cls):
        config = _config(criterion_cls, pattern, 0.8, start_step=1, end_step=14, pruning_frequency=3)

        def fresh() -> tuple[nn.Module, list, Pruner, torch.optim.Optimizer]:
            model, batches = small_model("mlp", seed=11)
            if criterion_cls.locks_pattern:
                _lock_zeros(model)
            return model, batches, Pruner(model, config), torch.optim.Adam(model.parameters(), lr=0.01)

        straight, batches, pruner, opt = fresh()
        train_steps(straight, pruner, opt, batches, epochs=4)

        first, _, pruner1, opt1 = fresh()
        train_steps(first, pruner1, opt1, batches, epochs=2, end=False)
        saved = copy.deepcopy({"model": first.state_dict(), "opt": opt1.state_dict(), "pruner": pruner1.state_dict()})

        resumed, _, pruner2, opt2 = fresh()
        resumed.load_state_dict(saved["model"])
        opt2.load_state_dict(saved["opt"])
        pruner2.load_state_dict(saved["pruner"])
        train_steps(resumed, pruner2, opt2, batches, epochs=2)

        label = criterion_cls.name
        assert pruner2.step == pruner.step, f"{label}: resumed at step {pruner2.step}, straight at {pruner.step}"
        for name in pruner.masks:
            assert torch.equal(pruner.masks[name], pruner2.masks[name]), f"{label}: mask of {name} differs"
        for (n, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
            assert torch.equal(a, b), f"{label}: parameter {n} differs after resuming"


def check_criterion(criterion_cls: type[Criterion], patterns: Sequence[str] | None = None) -> None:
    """Every criterion check, under every registered pattern (or ``patterns``)."""
    with registered(criterion_cls):
        check_traits(criterion_cls)
        check_scores(criterion_cls)
        for pattern in patterns if patterns is not None else PATTERN_EXAMPLES:
            for kind in ("mlp", "cnn"):
                check_reaches_target(criterion_cls, pattern, kind)
        check_zeros_stay_zero(criterion_cls)
        check_state_dict_round_trip(criterion_cls)


def check_pattern(pattern: str) -> None:
    """A pattern spelling's tensor-level contract (group scores, expand, norms, structure test) and the
    pruner reaching a target with it in local scope, and in global scope when it supports that."""
    pat = build_pattern(pattern)
    assert isinstance(pat, Pattern), f"build_pattern({pattern!r}) did not give a Pattern"
    g = torch.Generator().manual_seed(0)
    for shape in ((16, 32), (8, 4, 3, 3)):
        weight = torch.randn(shape, generator=g)
        pat.check("layer", weight.shape)
        s2 = to_2d(weight.abs())
        count, size = pat.group_count(s2.shape), pat.group_size(s2.shape)
        for reduce in names.REDUCE_TYPES:
            gs = pat.group_scores(s2, reduce)
            assert gs.dim() == 1 and gs.numel() == count, \
                f"{pattern}: group_scores gave {tuple(gs.shape)} for {count} groups ({shape}, {reduce})"
        choice = torch.rand(count, generator=g) < 0.5
        keep = pat.expand(choice, s2)
        assert keep.dtype == torch.bool and keep.shape == s2.shape, f"{pattern}: expand gave {keep.dtype} {keep.shape}"
        assert int((~keep).sum()) == int(choice.sum()) * size, \
            f"{pattern}: {int(choice.sum())} groups of {size} chosen but {int((~keep).sum())} weights pruned"
        assert pat.conforms(keep) and pat.conforms(torch.ones_like(keep)), f"{pattern}: conforms() rejects expand()"
        w2 = to_2d(weight).clone()
        w2[keep.logical_not()] = 0.0
        w2.requires_grad_(True)
        norms = pat.group_norms(w2)
        assert norms.numel() == count, f"{pattern}: group_norms gave {norms.numel()} norms for {count} groups"
        norms.sum().backward()
        assert w2.grad is not None and bool(torch.isfinite(w2.grad).all()), \
            f"{pattern}: a zero group gives a non-finite gradient"
    check_reaches_target(CRITERIA["magnitude"], pattern, "mlp")
    check_reaches_target(CRITERIA["magnitude"], pattern, "cnn")
    if pat.supports_global:
        check_reaches_target(CRITERIA["magnitude"], pattern, "mlp", scope="global")
