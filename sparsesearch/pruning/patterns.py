"""Which weights fall together: unstructured, N×M blocks, N:M, and whole channels.

Every pattern works on a 2-D view of a weight: Linear weights as they are (output rows × input columns);
Conv weights with the input-channel axis moved last, ``(out, *kernel, in) -> (out, kernel·in)``, so that
consecutive columns are consecutive input channels at one kernel position (INC's layout, and the one NVIDIA
sparse tensor cores expect for 2:4). A pattern turns an element score map into one score per group, and a
choice of groups back into a keep-mask.

Spellings follow INC: ``"NxM"`` is a block of N output rows × M input columns; ``"channelx1"`` is a block of
all output rows × one input column (a whole input column), ``"1xchannel"`` one whole output row (a whole
filter for Conv); ``"N:M"`` prunes N of every M consecutive input weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from sparsesearch.errors import ConfigError
from sparsesearch.records.patterns import PatternSpec, parse_pattern


def to_2d(t: torch.Tensor) -> torch.Tensor:
    """(out, in) for Linear; (out, *kernel, in) flattened to (out, kernel*in) for Conv."""
    if t.dim() == 2:
        return t
    if t.dim() < 2:
        return t.reshape(1, -1)
    return t.movedim(1, -1).reshape(t.shape[0], -1)


def from_2d(t2d: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`to_2d`."""
    if len(shape) == 2:
        return t2d
    if len(shape) < 2:
        return t2d.reshape(shape)
    return t2d.reshape(shape[0], *shape[2:], shape[1]).movedim(-1, 1).contiguous()


def _reduce(t: torch.Tensor, how: str, dims: tuple[int, ...]) -> torch.Tensor:
    if how == "sum":
        return t.sum(dims)
    if how == "max":
        return t.amax(dims)
    return t.mean(dims)


class Pattern(ABC):
    """The group structure of a pattern. Subclasses are tiny; register them in :data:`PATTERNS`.

    Capabilities (largest sparsity, global scope, whole structures) are declared by the parsed
    :class:`~sparsesearch.records.patterns.PatternSpec` the pattern was built from. ``examples`` are
    spellings the contract tests (:mod:`sparsesearch.testing`) run the class with.
    """

    name: str
    spec: PatternSpec
    examples: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: PatternSpec) -> Pattern:
        """The pattern for a parsed spelling."""

    @property
    def max_sparsity(self) -> float:
        """The largest share of a layer this pattern can prune (N/M for N:M, else 1)."""
        return self.spec.max_sparsity

    @property
    def supports_global(self) -> bool:
        return self.spec.supports_global

    def group_count(self, shape2d: torch.Size) -> int:
        """How many groups a weight of this 2-D shape has."""
        return (shape2d[0] * shape2d[1]) // self.group_size(shape2d)

    @abstractmethod
    def check(self, layer: str, shape: torch.Size) -> None:
        """Raise ConfigError naming ``layer`` when its weight cannot be cut into this pattern's groups."""

    @abstractmethod
    def group_scores(self, score2d: torch.Tensor, reduce: str) -> torch.Tensor:
        """One score per group (flat), larger = more important."""

    @abstractmethod
    def group_size(self, shape2d: torch.Size) -> int:
        """How many weights choosing one group prunes."""

    @abstractmethod
    def expand(self, prune: torch.Tensor, score2d: torch.Tensor) -> torch.Tensor:
        """The 2-D boolean keep-mask for the flat boolean group choice ``prune``."""

    @abstractmethod
    def group_norms(self, w2d: torch.Tensor) -> torch.Tensor:
        """L2 norm of each group (differentiable, for group lasso; a zero group has a zero gradient)."""

    @abstractmethod
    def conforms(self, keep2d: torch.Tensor) -> bool:
        """Whether a 2-D boolean keep-mask has this pattern's structure (what ``expand`` can produce)."""

    def __repr__(self) -> str:
        return f"<pattern {self.name}>"


class BlockPattern(Pattern):
    """Blocks of ``rows`` × ``cols`` weights (None = the whole extent: a channel), pruned all together."""

    examples = ("1x1", "4x1", "1x4", "1xchannel", "channelx1")

    def __init__(self, name: str, rows: int | None, cols: int | None, *, spec: PatternSpec | None = None) -> None:
        self.name, self.rows, self.cols = name, rows, cols
        self.spec = spec or PatternSpec(name, "block", rows, cols)

    @classmethod
    def from_spec(cls, spec: PatternSpec) -> BlockPattern:
        return cls(spec.name, spec.rows, spec.cols, spec=spec)

    def _block(self, shape2d: torch.Size) -> tuple[int, int]:
        return (self.rows or shape2d[0], self.cols or shape2d[1])

    def check(self, layer: str, shape: torch.Size) -> None:
        shape2d = torch.Size((shape[0], int(torch.Size(shape[1:]).numel())))
        bh, bw = self._block(shape2d)
        problems = []
        if shape2d[0] % bh:
            problems.append(f"its {shape2d[0]} output rows are not a multiple of {bh}")
        if len(shape) > 2 and self.cols and shape[1] % bw:
            problems.append(f"its {shape[1]} input channels are not a multiple of {bw}")
        elif shape2d[1] % bw:
            problems.append(f"its {shape2d[1]} input columns are not a multiple of {bw}")
        if problems:
            raise ConfigError(f"layer {layer!r} (weight shape {tuple(shape)}) cannot be cut into {self.name} blocks: "
                              + " and ".join(problems), key="pattern", value=self.name,
                              allowed="a block whose sides divide every selected layer's shape, or exclude the "
                              "layer with excluded_op_names")

    def group_scores(self, score2d: torch.Tensor, reduce: str) -> torch.Tensor:
        if self.rows == 1 and self.cols == 1:
            return score2d.reshape(-1)
        r, c = score2d.shape
        bh, bw = self._block(score2d.shape)
        return _reduce(score2d.reshape(r // bh, bh, c // bw, bw), reduce, (1, 3)).reshape(-1)

    def group_size(self, shape2d: torch.Size) -> int:
        bh, bw = self._block(shape2d)
        return bh * bw

    def expand(self, prune: torch.Tensor, score2d: torch.Tensor) -> torch.Tensor:
        r, c = score2d.shape
        if self.rows == 1 and self.cols == 1:
            return (~prune).reshape(r, c)
        bh, bw = self._block(score2d.shape)
        keep = (~prune).reshape(r // bh, 1, c // bw, 1)
        return keep.expand(r // bh, bh, c // bw, bw).reshape(r, c)

    def _blocks(self, t2d: torch.Tensor) -> torch.Tensor:
        r, c = t2d.shape
        bh, bw = self._block(t2d.shape)
        return t2d.reshape(r // bh, bh, c // bw, bw)

    def group_norms(self, w2d: torch.Tensor) -> torch.Tensor:
        if self.rows == 1 and self.cols == 1:
            return w2d.abs()
        return torch.linalg.vector_norm(self._blocks(w2d), dim=(1, 3))

    def conforms(self, keep2d: torch.Tensor) -> bool:
        blocks = self._blocks(keep2d)
        return bool((blocks.all(3).all(1) | ~blocks.any(3).any(1)).all())


class NInMPattern(Pattern):
    """N of every M consecutive input weights pruned (2:4 is what NVIDIA sparse tensor cores run).

    Below the full N/M sparsity, only some M-groups are pruned, each to exactly N zeros: the groups whose
    N least important weights matter least.
    """

    examples = ("2:4", "1:4")

    def __init__(self, name: str, n: int, m: int, *, spec: PatternSpec | None = None) -> None:
        self.name, self.n, self.m = name, n, m
        self.spec = spec or PatternSpec(name, "n_in_m", n=n, m=m)

    @classmethod
    def from_spec(cls, spec: PatternSpec) -> NInMPattern:
        return cls(spec.name, spec.n, spec.m, spec=spec)

    def check(self, layer: str, shape: torch.Size) -> None:
        cols = shape[1] if len(shape) > 2 else int(torch.Size(shape[1:]).numel())
        if cols % self.m:
            what = "input channels" if len(shape) > 2 else "input columns"
            raise ConfigError(f"layer {layer!r} (weight shape {tuple(shape)}) cannot be cut into groups of "
                              f"{self.m} consecutive input weights: its {cols} {what} are not a multiple of "
                              f"{self.m}", key="pattern", value=self.name,
                              allowed="an N:M pattern whose M divides every selected layer's input size, or "
                              "exclude the layer with excluded_op_names")

    def _lowest(self, score2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r, c = score2d.shape
        return torch.topk(score2d.reshape(r, c // self.m, self.m), self.n, dim=-1, largest=False, sorted=False)

    def group_scores(self, score2d: torch.Tensor, reduce: str) -> torch.Tensor:
        values, _ = self._lowest(score2d)
        return _reduce(values, reduce, (-1,)).reshape(-1)

    def group_size(self, shape2d: torch.Size) -> int:
        return self.n

    def group_count(self, shape2d: torch.Size) -> int:
        return (shape2d[0] * shape2d[1]) // self.m

    def expand(self, prune: torch.Tensor, score2d: torch.Tensor) -> torch.Tensor:
        r, c = score2d.shape
        _, idx = self._lowest(score2d)
        keep = torch.ones(r, c // self.m, self.m, dtype=torch.bool, device=score2d.device)
        src = (~prune).reshape(r, c // self.m, 1).expand(r, c // self.m, self.n)
        keep.scatter_(-1, idx, src)
        return keep.reshape(r, c)

    def group_norms(self, w2d: torch.Tensor) -> torch.Tensor:
        r, c = w2d.shape
        return torch.linalg.vector_norm(w2d.reshape(r, c // self.m, self.m), dim=-1)

    def conforms(self, keep2d: torch.Tensor) -> bool:
        r, c = keep2d.shape
        zeros = (~keep2d).reshape(r, c // self.m, self.m).sum(-1)
        return bool(((zeros == 0) | (zeros == self.n)).all())


#: pattern kinds (as parsed in :mod:`sparsesearch.records.patterns`) -> the class that implements them
PATTERNS: dict[str, type[Pattern]] = {
    "block": BlockPattern,
    "n_in_m": NInMPattern,
}


def build_pattern(pattern: str | PatternSpec, key: str = "pattern") -> Pattern:
    """The tensor-level pattern for a spelling such as ``"4x1"`` or a parsed :class:`PatternSpec`."""
    spec = pattern if isinstance(pattern, PatternSpec) else parse_pattern(pattern, key=key)
    return PATTERNS[spec.kind].from_spec(spec)
