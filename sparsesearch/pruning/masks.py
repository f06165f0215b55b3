"""How masks are held and kept: pruned weights stay exactly zero and receive zero gradient.

A :class:`MaskedLayer` keeps its mask outside the model (the model's ``state_dict`` keys do not change).
:class:`MaskKeeper` zeroes the gradients of pruned weights before the optimizer step and the weights
themselves after it (that is what stops momentum, Adam moments and weight decay from reviving them), each
with one fused in-place multiply over all pruned layers. Nothing is monkeypatched and no hook is left on
the model.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskedLayer:
    """One pruned weight tensor and its keep-mask (1 = keep, 0 = pruned) in the weight's dtype."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.weight: nn.Parameter = module.weight
        self.keep = torch.ones_like(self.weight, memory_format=torch.contiguous_format).detach()
        self.pruned = False  # whether the mask has any zero

    @property
    def numel(self) -> int:
        return self.weight.numel()

    @property
    def mask(self) -> torch.Tensor:
        """Boolean mask, True where the weight is kept."""
        return self.keep.bool()

    def set_mask(self, keep: torch.Tensor) -> None:
        """Replace the mask in place and zero the weights it prunes."""
        self.keep.copy_(keep.reshape(self.keep.shape))
        self.pruned = bool((self.keep == 0).any())
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights (after an optimizer step, or after loading)."""
        if self.pruned:
            self.weight.mul_(self.keep)


class MaskKeeper:
    """Keeps the masks of many layers with one fused multiply per training step."""

    def __init__(self, layers: list[MaskedLayer]) -> None:
        self.layers = layers
        self.refresh()

    def refresh(self) -> None:
        """Call after masks change: only layers with a zero take part."""
        active = [layer for layer in self.layers if layer.pruned]
        self._weights = [layer.weight for layer in active]
        self._keeps = [layer.keep for layer in active]

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights."""
        pairs = [(w.grad, k) for w, k in zip(self._weights, self._keeps) if w.grad is not None]
        if pairs:
            grads, keeps = zip(*pairs)
            torch._foreach_mul_(list(grads), list(keeps))

    @torch.no_grad()
    def mask_weights(self) -> None:
        """Put pruned weights back to exactly zero."""
        if self._weights:
            torch._foreach_mul_(self._weights, self._keeps)
