"""The Pareto front (from Optuna), its hypervolume (Optuna's implementation), and the export rules.

Points are (validation accuracy, sparsity), both maximised. The study's hypervolume is the share of the
box between its reference point and (1, 1) that the front dominates, a number in [0, 1]. The reference is
(the accuracy floor, the lowest sparsity searched): the accuracy floor is dense accuracy minus the
allowed drop (0 without a constraint). Measured against (0, 0) instead, every decent front scores about
0.98 on digits-mlp and samplers cannot be told apart.

Selection rules pick one front trial:

- ``max_sparsity_within_drop`` (default): the sparsest trial whose validation accuracy is within
  ``max_drop`` of the dense baseline (ties: the more accurate);
- ``knee``: the trial farthest above the straight line joining the front's two ends, with both objectives
  scaled to [0, 1] over the front (ties: the more accurate);
- ``max_accuracy_at_sparsity``: the most accurate trial with sparsity at least ``min_sparsity`` (ties: the
  sparser).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG implementation (no public alias)
from optuna.trial import FrozenTrial

from sparsesearch.errors import ConfigError, SparseSearchError
from sparsesearch.records.study import RULES, Export

REFERENCE = (0.0, 0.0)


@dataclass(frozen=True)
class Point:
    """One trial on (or off) the front."""

    number: int
    accuracy: float
    sparsity: float


class NoTrialSelected(SparseSearchError):
    """No front trial satisfies the selection rule."""


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Optuna's Pareto front (feasible trials only when the study has constraints), sparsest first."""
    return sorted(study.best_trials, key=lambda t: (-t.values[1], -t.values[0], t.number))


def points(trials: Sequence[FrozenTrial]) -> list[Point]:
    return [Point(t.number, float(t.values[0]), float(t.values[1])) for t in trials if t.values]


def hypervolume(pts: Sequence[Point], reference: tuple[float, float] = REFERENCE, *,
                normalize: bool = False) -> float:
    """Area dominated by ``pts`` above ``reference`` (maximised objectives), via Optuna's WFG; with
    ``normalize``, as a share of the box from ``reference`` to (1, 1)."""
    usable = [p for p in pts if p.accuracy >= reference[0] and p.sparsity >= reference[1]]
    if not usable:
        return 0.0
    losses = np.array([[-p.accuracy, -p.sparsity] for p in usable], dtype=float)
    volume = float(compute_hypervolume(losses, -np.asarray(reference, dtype=float)))
    if normalize:
        box = (1.0 - reference[0]) * (1.0 - reference[1])
        return volume / box if box > 0 else 0.0
    return volume


def reference_point(dense_accuracy: float | None, max_drop: float | None, sparsity_low: float) -> tuple[float, float]:
    """The study's hypervolume reference: (accuracy floor, lowest sparsity searched)."""
    floor = dense_accuracy - max_drop if dense_accuracy is not None and max_drop is not None else 0.0
    return (max(0.0, floor), sparsity_low)


def study_hypervolume(pts: Sequence[Point], spec_data: dict | None, dense_accuracy: float | None) -> float:
    """The normalised hypervolume of a study's front (see the module docstring)."""
    spec_data = spec_data or {}
    drop = (spec_data.get("constraints") or {}).get("max_accuracy_drop", 0.05)
    low = ((spec_data.get("space") or {}).get("sparsity") or [0.0])[0]
    return hypervolume(pts, reference_point(dense_accuracy, drop, float(low)), normalize=True)


def non_dominated(pts: Sequence[Point]) -> list[Point]:
    """The points no other point dominates (for fronts built outside Optuna, e.g. in benchmarks)."""
    out = []
    for p in pts:
        if not any((q.accuracy >= p.accuracy and q.sparsity >= p.sparsity)
                   and (q.accuracy > p.accuracy or q.sparsity > p.sparsity) for q in pts):
            out.append(p)
    return sorted(out, key=lambda p: (-p.sparsity, -p.accuracy, p.number))


def select(front: Sequence[Point], rule: Export, dense_accuracy: float | None) -> Point:
    """The front point ``rule`` picks; NoTrialSelected explains why none qualifies."""
    if not front:
        raise NoTrialSelected("the study has no completed feasible trial yet, so there is no Pareto front; "
                              "run more trials (sparsesearch run SPEC)")
    if rule.rule == "max_sparsity_within_drop":
        if dense_accuracy is None:
            raise NoTrialSelected("the dense baseline's accuracy is unknown, so no drop can be measured")
        floor = dense_accuracy - rule.max_drop
        ok = [p for p in front if p.accuracy >= floor - 1e-12]
        if not ok:
            best = max(front, key=lambda p: p.accuracy)
            raise NoTrialSelected(
                f"no front trial is within {rule.max_drop:g} of the dense validation accuracy {dense_accuracy:.4f}; "
                f"the most accurate is trial {best.number} ({best.accuracy:.4f} at sparsity {best.sparsity:.4f}). "
                "Allow a larger drop (--max-drop) or use another rule (--rule knee)")
        return max(ok, key=lambda p: (p.sparsity, p.accuracy, -p.number))
    if rule.rule == "max_accuracy_at_sparsity":
        ok = [p for p in front if p.sparsity >= rule.min_sparsity - 1e-12]
        if not ok:
            top = max(front, key=lambda p: p.sparsity)
            raise NoTrialSelected(f"no front trial reaches sparsity {rule.min_sparsity:g}; the sparsest is trial "
                                  f"{top.number} at {top.sparsity:.4f}. Lower --min-sparsity")
        return max(ok, key=lambda p: (p.accuracy, p.sparsity, -p.number))
    if rule.rule == "knee":
        return knee(front)
    raise ConfigError("unknown rule", key="export.rule", value=rule.rule, allowed=RULES)


def knee(front: Sequence[Point]) -> Point:
    """The point farthest above the line joining the front's ends (objectives scaled over the front)."""
    pts = non_dominated(front)
    if len(pts) <= 2:
        return max(pts, key=lambda p: (p.accuracy + p.sparsity, p.accuracy, -p.number))
    acc = np.array([p.accuracy for p in pts])
    sp = np.array([p.sparsity for p in pts])
    a = (acc - acc.min()) / max(acc.max() - acc.min(), 1e-12)
    s = (sp - sp.min()) / max(sp.max() - sp.min(), 1e-12)
    # ends: the most accurate point (a=1) and the sparsest point (s=1); line a + s = 1 after scaling
    distance = (a + s - 1.0) / np.sqrt(2.0)
    best = max(range(len(pts)), key=lambda i: (round(float(distance[i]), 12), pts[i].accuracy, -pts[i].number))
    return pts[best]
