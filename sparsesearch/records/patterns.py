"""Pattern spellings (INC's: ``"4x1"``, ``"2:4"``, ``"channelx1"``, ``"1xchannel"``) parsed without torch.

A :class:`PatternSpec` says what a spelling means and what the pattern can do (its largest sparsity, whether
one threshold may span layers, whether it removes whole structures that compaction can cut out). The engine
builds the tensor-level pattern from it (:func:`sparsesearch.pruning.patterns.build_pattern`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparsesearch.errors import ConfigError

PATTERN_FORMS = "1x1 (unstructured), NxM blocks such as 4x1, N:M such as 2:4, channelx1, 1xchannel"

_BLOCK = re.compile(r"^(\d+|channel)x(\d+|channel)$")
_NINM = re.compile(r"^(\d+):(\d+)$")


@dataclass(frozen=True)
class PatternSpec:
    """A parsed pattern. ``kind`` is ``"block"`` (rows × cols, None = the whole extent) or ``"n_in_m"``."""

    name: str
    kind: str
    rows: int | None = 1
    cols: int | None = 1
    n: int = 0
    m: int = 0

    @property
    def max_sparsity(self) -> float:
        """The largest share of a layer this pattern can prune (N/M for N:M, else 1)."""
        return self.n / self.m if self.kind == "n_in_m" else 1.0

    @property
    def supports_global(self) -> bool:
        """Whether one threshold may rank this pattern's groups across layers (N:M prunes a fixed share of
        every group of M, so it is local by nature)."""
        return self.kind != "n_in_m"

    @property
    def unstructured(self) -> bool:
        return self.kind == "block" and self.rows == 1 and self.cols == 1

    @property
    def whole_channels(self) -> bool:
        """Whole input columns or output rows: structures compaction can remove physically."""
        return self.kind == "block" and (self.rows is None or self.cols is None)


def parse_pattern(text: object, key: str = "pattern") -> PatternSpec:
    """The pattern for an INC-style spelling; ConfigError listing the valid forms otherwise."""
    if not isinstance(text, str):
        raise ConfigError("expected a pattern string", key=key, value=text, allowed=PATTERN_FORMS)
    spelled = text.strip()
    block = _BLOCK.match(spelled)
    if block:
        rows, cols = (None if g == "channel" else int(g) for g in block.groups())
        if rows == 0 or cols == 0 or (rows is None and cols is None):
            raise ConfigError("block sides must be positive and at most one side may be 'channel'", key=key,
                              value=text, allowed=PATTERN_FORMS)
        return PatternSpec(spelled, "block", rows, cols)
    ninm = _NINM.match(spelled)
    if ninm:
        n, m = int(ninm.group(1)), int(ninm.group(2))
        if not 0 < n < m:
            raise ConfigError("an N:M pattern prunes N of every M weights, so it needs 0 < N < M", key=key,
                              value=text, allowed="N:M with 0 < N < M, such as 2:4 or 1:4")
        return PatternSpec(spelled, "n_in_m", n=n, m=m)
    fixed = re.sub(r"\s+", "", spelled.lower()).replace("*", "x").replace("×", "x").replace("/", ":")
    fixed = fixed.replace("channels", "channel")
    suggestion = fixed if fixed != spelled and (_BLOCK.match(fixed) or _NINM.match(fixed)) else None
    raise ConfigError("unknown pattern", key=key, value=text, allowed=PATTERN_FORMS, suggestion=suggestion)
