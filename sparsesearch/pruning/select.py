"""Choosing the least important groups across one or many tensors, exactly and in linear time.

Local scope is this applied to one layer, global scope to all of a group's layers at once. The k-th
smallest score is found by a two-pass radix select over the float32 bit patterns (16 high bits, then 16
low bits): no sort, no concatenation of all scores, and only layer-sized temporaries, so a global update
over a large model needs no score-sized buffer beyond the scores themselves. Ties at the threshold are
broken by order (earlier tensor, then lower flat index), so results are deterministic.

Per-tensor bounds (``lower``/``upper``, in groups) make it water-filling: one threshold, each tensor's
count clipped into its bounds, and the threshold solved so that the clipped counts add up to the budget.
The histograms of the radix passes are turned into clipped counts bin by bin, so the bounds cost no extra
pass over the scores beyond one count pass and the final choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_BINS = 1 << 16
_OFFSET = 1 << 15


def sortable_keys(scores: torch.Tensor) -> torch.Tensor:
    """int32 keys ordered like the float32 ``scores`` (NaN counts as -inf, i.e. least important)."""
    s = scores.detach().to(torch.float32).reshape(-1)
    if torch.isnan(s).any():
        s = torch.nan_to_num(s, nan=float("-inf"))
    bits = s.contiguous().view(torch.int32)
    keys = bits >> 31           # -1 where negative, else 0 (one layer-sized temporary, reused in place)
    keys &= 0x7FFFFFFF          # flip the 31 low bits of negative floats so that they order correctly
    keys ^= bits
    return keys


def _hist(values: torch.Tensor) -> torch.Tensor:
    """Histogram of 16-bit values, counted where the values live and returned on the CPU as int64."""
    return torch.bincount(values, minlength=_BINS).to(device="cpu", dtype=torch.int64)


def _first_at_least(total: torch.Tensor, budget: int) -> int:
    """Index of the first entry of the non-decreasing ``total`` that reaches ``budget``."""
    return int(torch.searchsorted(total, torch.tensor([budget], dtype=total.dtype), right=False)[0])


def _clipped(counts: torch.Tensor, lo: int, hi: int, size: int) -> torch.Tensor:
    return counts.clamp(lo, hi) * size


def _take_lowest(flat: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean choice of exactly ``count`` lowest entries of one tensor (ties by index)."""
    return choose_lowest([flat], [1], count)[0]


def choose_lowest(scores: Sequence[torch.Tensor], sizes: Sequence[int], budget: int, *,
                  lower: Sequence[int] | None = None, upper: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Boolean choices (one flat tensor per input) of the lowest-scored groups.

    ``sizes[i]`` is how many weights one group of ``scores[i]`` stands for; the chosen groups add up to
    the ``budget`` in weights as nearly as group sizes allow: exactly for unstructured pruning, and
    ``round(budget / size)`` groups when every tensor has the same group size (the budget is then counted
    in groups, as INC counts blocks). ``lower[i]``/``upper[i]`` bound how many groups of tensor ``i`` are
    chosen (default 0 and all of them); a budget outside the bounds' range is clipped into it (the caller
    checks feasibility and says why). Within each tensor the chosen groups are always its lowest-scored.
    """
    flat = [s.reshape(-1) for s in scores]
    sizes = list(sizes)
    if len(set(sizes)) == 1 and sizes and sizes[0] != 1:
        # equal groups: choose round(budget / size) of them (as round(s * n) for single weights)
        budget, sizes = round(budget / sizes[0]), [1] * len(sizes)
    counts = [f.numel() for f in flat]
    lo = [0] * len(flat) if lower is None else [min(max(int(v), 0), n) for v, n in zip(lower, counts)]
    hi = list(counts) if upper is None else [min(max(int(v), lo_i), n) for v, lo_i, n in zip(upper, lo, counts)]
    floor_total = sum(lo_i * s for lo_i, s in zip(lo, sizes))
    ceil_total = sum(hi_i * s for hi_i, s in zip(hi, sizes))
    if budget <= floor_total or budget >= ceil_total:
        take = lo if budget <= floor_total else hi
        return [_take_lowest(f, t) if 0 < t < f.numel() else torch.full((f.numel(),), t > 0, dtype=torch.bool,
                                                                          device=f.device)
                for f, t in zip(flat, take)]
    unbounded = lower is None and upper is None

    # pass 1: histogram of the high 16 bits; clipped cumulative counts, weighted by group size
    total = torch.zeros(_BINS, dtype=torch.int64)
    for f, size, lo_i, hi_i in zip(flat, sizes, lo, hi):
        keys = sortable_keys(f)
        keys >>= 16
        keys += _OFFSET
        cum = torch.cumsum(_hist(keys), 0)
        del keys
        total += cum * size if unbounded else _clipped(cum, lo_i, hi_i, size)
    high = _first_at_least(total, budget)

    # pass 2: among keys in bucket ``high``, histogram of the low 16 bits, on top of each tensor's count below
    total = torch.zeros(_BINS, dtype=torch.int64)
    for f, size, lo_i, hi_i in zip(flat, sizes, lo, hi):
        keys = sortable_keys(f)
        top = keys >> 16
        n_below = int((top < high - _OFFSET).sum())
        in_bucket = keys[top == high - _OFFSET]
        del keys, top
        cum = n_below + (torch.cumsum(_hist(in_bucket & 0xFFFF), 0) if in_bucket.numel()
                       else torch.zeros(_BINS, dtype=torch.int64))
        total += cum * size if unbounded else _clipped(cum, lo_i, hi_i, size)
    threshold = ((high - _OFFSET) << 16) | _first_at_least(total, budget)

    # each tensor takes its count below the threshold clipped into its bounds, then ties in order
    chosen: list[torch.Tensor] = []
    ties: list[torch.Tensor] = []
    base: list[int] = []
    room: list[int] = []
    for f, lo_i, hi_i in zip(flat, lo, hi):
        keys = sortable_keys(f)
        below = keys < threshold
        tie = torch.nonzero(keys == threshold).reshape(-1)
        del keys
        a = int(below.sum())
        b = a + tie.numel()
        if hi_i <= a or lo_i >= b:
            # held by a bound away from the threshold: the tensor's own lowest groups up to that bound
            count = hi_i if hi_i <= a else lo_i
            chosen.append(below if count == a else _take_lowest(f, count))
            ties.append(tie[:0])
            base.append(count)
            room.append(0)
            continue
        first = max(a, lo_i)          # ties a lower bound forces in
        if first > a:
            below[tie[:first - a]] = True
        chosen.append(below)
        ties.append(tie[first - a:])
        base.append(first)
        room.append(min(b, hi_i) - first)
    remaining = budget - sum(c * s for c, s in zip(base, sizes))
    for c, tie, r, size in zip(chosen, ties, room, sizes):
        if remaining <= 0:
            break
        extra = min(r, round(remaining / size))
        if extra > 0:
            c[tie[:extra]] = True
            remaining -= extra * size
    return chosen
