"""How masks are held and kept: one boolean byte per weight, and pruned weights exactly zero after each step.

A :class:`MaskedLayer` keeps the mask of one weight tensor outside the model (the model's ``state_dict``
keys do not change); modules that share one Parameter share one :class:`MaskedLayer`. :class:`MaskKeeper`
puts pruned weights back to zero after every optimizer step (that is what stops momentum, Adam moments and
weight decay from reviving them) and, when asked, zeroes their gradients before the step. Nothing is
monkeypatched and no hook is left on the model.

Masks are ``bool`` (one byte per weight). On the CPU a float multiply by a whole bool or uint8 mask takes
a slow casting path (in a training step 2.5-3x the time of a float-by-float multiply on the development
machine; ``masked_fill_`` and ``torch.where`` were slower still), so the keeper stores the masks of one
device in one flat buffer and converts them, chunk by chunk, into a small float scratch buffer that stays
in cache (``CHUNK`` elements), then multiplies the weights by it with one fused ``_foreach_mul_`` per chunk:
about 1.4x the time of a float mask for a quarter of its memory. When all pruned weights of a device fit
one chunk (small models) the converted masks stay in the scratch buffer until they change. Memory: one
byte per weight plus one constant scratch buffer. Other devices multiply by the boolean masks directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

#: elements per conversion chunk on the CPU (512 KiB of float32: stays in the L2 cache; 2^17 and 2^18 measured
#: alike, 2^15 and 2^21 slower, in the 1.8M-weight MLP of benchmarks/engine_peers.py)
CHUNK = 1 << 17


class MaskedLayer:
    """One pruned weight tensor (a Parameter) and its boolean keep-mask (True = keep).

    ``name`` is the first module holding the weight; ``aliases`` are other modules holding the same
    Parameter (tied weights): they share this mask.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.aliases: list[tuple[str, nn.Module]] = []
        self.weight: nn.Parameter = module.get_parameter("weight")
        self._storage = self.weight.data_ptr()
        self.keep = torch.ones(self.weight.shape, dtype=torch.bool, device=self.weight.device)
        self.pruned = False  # whether the mask has any zero
        self.offset = 0      # where the mask lives in the keeper's flat buffer

    @property
    def names(self) -> list[str]:
        return [self.name] + [n for n, _ in self.aliases]

    @property
    def numel(self) -> int:
        return self.weight.numel()

    @property
    def mask(self) -> torch.Tensor:
        """A copy of the boolean mask, True where the weight is kept."""
        return self.keep.clone()

    def pruned_count(self) -> int:
        return int(self.keep.numel() - self.keep.sum()) if self.pruned else 0

    def set_mask(self, keep: torch.Tensor) -> None:
        """Replace the mask in place and zero the weights it prunes."""
        self.keep.copy_(keep.reshape(self.keep.shape))
        self.pruned = not bool(self.keep.all())
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights (after loading, or when the mask changed)."""
        if self.pruned:
            self.weight.masked_fill_(~self.keep, 0)

    def bound(self) -> bool:
        """Whether every module still holds the Parameter this mask was bound to, on the same storage
        (``load_state_dict(..., assign=True)`` replaces the Parameter, ``model.to()`` its storage)."""
        w = self.weight
        if self.module._parameters.get("weight") is not w or w.data_ptr() != self._storage:
            return False
        return not self.aliases or all(m._parameters.get("weight") is w for _, m in self.aliases)

    def rebind(self, weight: nn.Parameter) -> None:
        """Follow a replaced Parameter (same shape): the mask moves to its device and is applied to it."""
        self.weight = weight
        self._storage = weight.data_ptr()
        if self.keep.device != weight.device:
            self.keep = self.keep.to(weight.device)
        self.apply()


@dataclass
class _Chunk:
    """One conversion chunk: a range of a device's flat mask buffer and the weight pieces it covers."""

    start: int
    stop: int
    # (layer index in the active list, offset in the layer, offset in the chunk, length)
    pieces: list[tuple[int, int, int, int]] = field(default_factory=list)
    weights: list[torch.Tensor] = field(default_factory=list)
    scratch: list[torch.Tensor] = field(default_factory=list)


class MaskKeeper:
    """Keeps the masks of many layers: one pass over the pruned weights per step, one byte per mask."""

    def __init__(self, layers: Sequence[MaskedLayer]) -> None:
        self.layers = list(layers)
        self._buffers: dict[torch.device, torch.Tensor] = {}
        by_device: dict[torch.device, list[MaskedLayer]] = {}
        for layer in self.layers:
            by_device.setdefault(layer.keep.device, []).append(layer)
        for device, group in by_device.items():  # one flat bool buffer per device; layer masks become views
            buffer = torch.empty(sum(layer.keep.numel() for layer in group), dtype=torch.bool, device=device)
            offset = 0
            for layer in group:
                n = layer.keep.numel()
                view = buffer[offset:offset + n].view(layer.keep.shape)
                view.copy_(layer.keep)
                layer.keep = view
                layer.offset = offset
                offset += n
            self._buffers[device] = buffer
        self.refresh()

    def refresh(self) -> None:
        """Call after masks change or a weight is re-bound: only layers with a zero take part."""
        active = [layer for layer in self.layers if layer.pruned]
        self._active = active
        self._direct: list[MaskedLayer] = []      # multiplied by their bool mask directly
        # per (device, dtype): scratch buffer, flat uint8 masks (None: converted once, the scratch holds them)
        self._chunks: list[tuple[torch.Tensor, torch.Tensor | None, list[_Chunk]]] = []
        scratch: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        plans: dict[tuple[torch.device, torch.dtype], list[_Chunk]] = {}
        for i, layer in enumerate(active):
            w = layer.weight
            if w.device.type != "cpu" or not w.is_contiguous() or not w.dtype.is_floating_point:
                self._direct.append(layer)
                continue
            key = (w.device, w.dtype)
            chunks = plans.setdefault(key, [])
            start, n = layer.offset, layer.keep.numel()
            done = 0
            while done < n:
                pos = start + done
                last = chunks[-1] if chunks else None
                if last is None or pos != last.stop or last.stop - last.start >= CHUNK:
                    last = _Chunk(pos, pos)
                    chunks.append(last)
                length = min(n - done, CHUNK - (last.stop - last.start))
                last.pieces.append((i, done, last.stop - last.start, length))
                last.stop += length
                done += length
        for (device, dtype), chunks in plans.items():
            buf = scratch.setdefault((device, dtype), torch.empty(CHUNK, dtype=dtype, device=device))
            flat_mask = self._buffers[device].view(torch.uint8)
            for chunk in chunks:
                for i, offset, at, length in chunk.pieces:
                    chunk.weights.append(active[i].weight.detach().view(-1)[offset:offset + length])
                    chunk.scratch.append(buf[at:at + length])
            if len(chunks) == 1:  # everything fits the scratch buffer: convert once, until the masks change
                chunk = chunks[0]
                buf[:chunk.stop - chunk.start].copy_(flat_mask[chunk.start:chunk.stop])
            self._chunks.append((buf, flat_mask if len(chunks) > 1 else None, chunks))
        self._direct_ids = {id(layer) for layer in self._direct}
        self._direct_weights = [layer.weight for layer in self._direct]
        self._direct_keeps = [layer.keep for layer in self._direct]

    @torch.no_grad()
    def mask_weights(self) -> None:
        """Put pruned weights back to exactly zero."""
        for buf, flat_mask, chunks in self._chunks:
            for chunk in chunks:
                if flat_mask is not None:
                    buf[:chunk.stop - chunk.start].copy_(flat_mask[chunk.start:chunk.stop])
                torch._foreach_mul_(chunk.weights, chunk.scratch)
        if self._direct:
            torch._foreach_mul_(self._direct_weights, self._direct_keeps)  # type: ignore[arg-type]

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights (for loops that clip or read gradients)."""
        active = self._active
        for buf, flat_mask, chunks in self._chunks:
            for chunk in chunks:
                grads, scratch = [], []
                for (i, offset, _, length), piece in zip(chunk.pieces, chunk.scratch):
                    g = active[i].weight.grad
                    if g is not None and g.is_contiguous():
                        grads.append(g.view(-1)[offset:offset + length])
                        scratch.append(piece)
                if grads:
                    if flat_mask is not None:
                        buf[:chunk.stop - chunk.start].copy_(flat_mask[chunk.start:chunk.stop])
                    torch._foreach_mul_(grads, scratch)
        for layer in self._active:
            g = layer.weight.grad
            if g is not None and (id(layer) in self._direct_ids or not g.is_contiguous()):
                g.mul_(layer.keep)
