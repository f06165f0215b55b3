"""Step time with 90 % unstructured masks kept during training: sparsesearch against PyTorch's own mechanisms.

Each mechanism trains its own copy of one MLP (same initial weights), pruned to 90 % unstructured first, with
SGD + momentum, one torch thread; only non-update steps are timed. Blocks of steps of the dense loop and of
each mechanism alternate (``--blocks`` rounds, the order rotated every round) so that machine drift hits all
alike. Time is the CPU time of the benchmark thread (``time.thread_time``: on a shared machine, time spent
descheduled is not counted); the figure is the median over rounds of the mechanism's block time over the
dense loop's block time in the same round.

* ``sparsesearch``: the Pruner's callbacks (pruned weights re-zeroed after each step; one byte per mask).
  ``sparsesearch +grad`` also zeroes pruned gradients before the step (``mask_gradients=True``).
* ``float mask``: for reference, what a float mask costs: one ``_foreach_mul_`` of the weights by float
  masks (4 bytes per weight) after each step (the engine's earlier scheme, without its gradient pass).
* ``previous engine``: the scheme before issue 7: float masks, pruned gradients multiplied before the step
  and weights after it.
* ``nn.utils.prune``: ``l1_unstructured`` on every Linear weight (a forward pre-hook computes
  ``weight_orig * weight_mask`` each forward; the mask is a float tensor).
* ``torch.ao``: ``WeightNormSparsifier(sparsity_level=0.9, sparse_block_shape=(1, 1), zeros_per_block=1)``,
  one ``step()`` to build the masks, then training with its parametrization (``squash_mask`` not called).

Run: ``python benchmarks/engine_peers.py`` (a few minutes on 2 cores). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune as tprune

from sparsesearch.pruning.pruner import Pruner

SPARSITY = 0.9


def mlp(dims: tuple[int, ...]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class Loop:
    """One model, its optimizer and the mechanism's hooks around a training step."""

    def __init__(self, model: nn.Module, before: Callable[[], None] | None = None,
                 after: Callable[[], None] | None = None, begin: Callable[[], None] | None = None) -> None:
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        self.before, self.after, self.begin = before, after, begin

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.begin is not None:
            self.begin()
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.before is not None:
            self.before()
        self.opt.step()
        if self.after is not None:
            self.after()


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def make_loops(dims: tuple[int, ...]) -> dict[str, Loop]:
    torch.manual_seed(0)
    base = mlp(dims)
    loops: dict[str, Loop] = {"dense": Loop(copy.deepcopy(base))}

    for label, mask_gradients in (("sparsesearch", False), ("sparsesearch +grad", True)):
        model = copy.deepcopy(base)
        pruner = Pruner(model, {"target_sparsity": SPARSITY, "schedule": {"start_step": 0, "end_step": 0}},
                        mask_gradients=mask_gradients)
        pruner.on_train_begin()
        pruner.on_step_begin()   # the one update (step 0); the timed steps are non-update steps
        loops[label] = Loop(model, before=pruner.on_before_optimizer_step, after=pruner.on_after_optimizer_step,
                            begin=pruner.on_step_begin)

    # reference: the engine's previous scheme, a float mask (4 bytes per weight) and one multiply after the step
    model = copy.deepcopy(base)
    weights = [layer.weight for layer in linears(model)]
    keeps = [(w.detach().abs() > w.detach().abs().flatten().kthvalue(round(SPARSITY * w.numel())).values).float()
             for w in weights]

    @torch.no_grad()
    def float_mask() -> None:
        torch._foreach_mul_(weights, keeps)

    float_mask()
    loops["float mask"] = Loop(model, after=float_mask)

    # reference: the engine before issue 7 (float masks; pruned gradients and weights multiplied every step)
    model = copy.deepcopy(base)
    old_weights = [layer.weight for layer in linears(model)]
    old_keeps = [k.clone() for k in keeps]

    @torch.no_grad()
    def old_grads() -> None:
        torch._foreach_mul_([w.grad for w in old_weights], old_keeps)

    @torch.no_grad()
    def old_after() -> None:
        torch._foreach_mul_(old_weights, old_keeps)

    old_after()
    loops["previous engine"] = Loop(model, before=old_grads, after=old_after)

    model = copy.deepcopy(base)
    for layer in linears(model):
        tprune.l1_unstructured(layer, "weight", amount=SPARSITY)
    loops["nn.utils.prune"] = Loop(model)

    from torch.ao.pruning import WeightNormSparsifier

    model = copy.deepcopy(base)
    sparsifier = WeightNormSparsifier(sparsity_level=SPARSITY, sparse_block_shape=(1, 1), zeros_per_block=1)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    sparsifier.prepare(model, config=[{"tensor_fqn": f"{n}.weight"} for n in names])
    sparsifier.step()
    loops["torch.ao"] = Loop(model)
    return loops


def check_sparsity(loops: dict[str, Loop]) -> dict[str, float]:
    """Share of zeros each mechanism's model computes with (its effective weights)."""
    out = {}
    for label, loop in loops.items():
        weights = [m.weight for m in linears(loop.model)]   # the masked weight for the hook/parametrization ones
        out[label] = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    return out


def measure(dims: tuple[int, ...], batch: int, blocks: int, steps: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, dims[0], generator=g)
    y = torch.randint(0, dims[-1], (batch,), generator=g)
    loops = make_loops(dims)
    for loop in loops.values():  # warm-up
        for _ in range(3):
            loop.step(x, y)
    labels = list(loops)
    times: dict[str, list[float]] = {k: [] for k in labels}
    for r in range(blocks):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            loop = loops[label]
            t0 = time.thread_time()
            for _ in range(steps):
                loop.step(x, y)
            times[label].append((time.thread_time() - t0) / steps)
    sparsity = check_sparsity(loops)
    out = {"dense_ms": statistics.median(times["dense"]) * 1e3}
    for label in labels[1:]:
        out[label] = statistics.median(m / d for m, d in zip(times[label], times["dense"]))
        assert sparsity[label] >= SPARSITY - 1e-3, (label, sparsity[label])
    return out


CASES = [
    ("MLP 64-256-128-10, batch 64", (64, 256, 128, 10), 64, 100),
    ("MLP 64-256-128-10, batch 256", (64, 256, 128, 10), 256, 60),
    ("MLP 784-1024-1024-10, batch 128", (784, 1024, 1024, 10), 128, 8),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=21)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the steps per block")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, "
          f"{args.blocks} alternating blocks, medians\n")
    header = ["sparsesearch", "sparsesearch +grad", "float mask", "previous engine", "nn.utils.prune", "torch.ao"]
    print("| model | dense step | " + " | ".join(header) + " |")
    print("|---|---|" + "---|" * len(header))
    for label, dims, batch, steps in CASES:
        r = measure(dims, batch, args.blocks, max(1, round(steps * args.scale)))
        print(f"| {label} | {r['dense_ms']:.3f} ms | " + " | ".join(f"{r[h]:.3f}" for h in header) + " |", flush=True)


if __name__ == "__main__":
    main()
