"""Choosing the least important groups across one or many tensors, exactly and in linear time.

Local scope is this applied to one layer, global scope to all of a group's layers at once. The k-th
smallest score is found by a two-pass radix select over the float32 bit patterns (16 high bits, then 16
low bits): no sort, no concatenation of all scores, and only layer-sized temporaries, so a global update
over a large model needs no score-sized buffer beyond the scores themselves. Ties at the threshold are
broken by order (earlier tensor, then lower flat index), so results are deterministic.
"""

from __future__ import annotations

import torch

_BINS = 1 << 16


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


def _hist(values: torch.Tensor, weight: int) -> torch.Tensor:
    """Weighted histogram of 16-bit values, counted where the values live and returned on the CPU."""
    return torch.bincount(values, minlength=_BINS).to(device="cpu", dtype=torch.int64) * weight


def choose_lowest(scores: list[torch.Tensor], sizes: list[int], budget: int) -> list[torch.Tensor]:
    """Boolean choices (one flat tensor per input) of the lowest-scored groups.

    ``sizes[i]`` is how many weights one group of ``scores[i]`` stands for; the chosen groups add up to
    the ``budget`` in weights as nearly as group sizes allow (exactly for unstructured pruning).
    """
    flat = [s.reshape(-1) for s in scores]
    if len(set(sizes)) == 1 and sizes[0] != 1:
        # equal groups: choose round(budget / size) of them (as round(s * n) for single weights)
        budget, sizes = round(budget / sizes[0]), [1] * len(sizes)
    total = sum(f.numel() * size for f, size in zip(flat, sizes))
    if budget <= 0 or total == 0:
        return [torch.zeros(f.numel(), dtype=torch.bool, device=f.device) for f in flat]
    if budget >= total:
        return [torch.ones(f.numel(), dtype=torch.bool, device=f.device) for f in flat]

    # pass 1: histogram of the high 16 bits
    hist = torch.zeros(_BINS, dtype=torch.int64)
    for f, size in zip(flat, sizes):
        keys = sortable_keys(f)
        keys >>= 16
        keys += 32768
        hist += _hist(keys, size)
        del keys
    cum = torch.cumsum(hist, 0)
    hi = int(torch.searchsorted(cum, torch.tensor([budget]), right=False)[0])
    before = int(cum[hi - 1]) if hi > 0 else 0

    # pass 2: histogram of the low 16 bits among keys in bucket ``hi``
    hist = torch.zeros(_BINS, dtype=torch.int64)
    for f, size in zip(flat, sizes):
        keys = sortable_keys(f)
        in_bucket = keys[(keys >> 16) == hi - 32768]
        del keys
        if in_bucket.numel():
            hist += _hist(in_bucket & 0xFFFF, size)
    cum = before + torch.cumsum(hist, 0)
    lo = int(torch.searchsorted(cum, torch.tensor([budget]), right=False)[0])
    threshold = ((hi - 32768) << 16) | lo

    # everything strictly below the threshold, then ties in order until the budget is met
    chosen = [sortable_keys(f) < threshold for f in flat]
    remaining = budget - sum(int(c.sum()) * size for c, size in zip(chosen, sizes))
    for f, size, c in zip(flat, sizes, chosen):
        if remaining <= 0:
            break
        ties = torch.nonzero(sortable_keys(f) == threshold).reshape(-1)
        take = min(ties.numel(), round(remaining / size))
        if take:
            c[ties[:take]] = True
            remaining -= take * size
    return chosen
