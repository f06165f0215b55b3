"""How masks are held and kept: pruned weights stay exactly zero and receive zero gradient.

A :class:`MaskedLayer` keeps its mask outside the model (the model's ``state_dict`` keys do not change).
Gradients are masked by a tensor hook on the weight (registered only once the layer has a zero in its
mask, removed by :meth:`MaskedLayer.release`); weights are re-zeroed after every optimizer step, which is
what stops momentum, Adam moments and weight decay from reviving them. Nothing is monkeypatched.
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
        self._hook: torch.utils.hooks.RemovableHandle | None = None

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
        if self.pruned:
            self.hold()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights (after an optimizer step, or after loading)."""
        if self.pruned:
            self.weight.mul_(self.keep)

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * self.keep

    def hold(self) -> None:
        """Mask this weight's gradient from now on."""
        if self._hook is None and self.weight.requires_grad:
            self._hook = self.weight.register_hook(self._mask_grad)

    def release(self) -> None:
        """Stop masking the gradient (the weights keep their zeros until something changes them)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
