"""Pruner overhead: per-step time with the pruner attached versus the same loop without it, and the time and
peak memory of one global-scope mask update over a 10M-parameter model.

Timings are ratios measured side by side in one run (interleaved blocks, median of blocks), never absolute
goals. Run: ``python benchmarks/overhead.py`` (about a minute on 2 cores). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

from sparsesearch.pruning import Pruner


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.c1(x)), 2)
        return self.fc(torch.relu(self.c2(x)).flatten(1))


def _step(model, opt, x, y, pruner=None) -> None:
    if pruner is not None:
        pruner.on_step_begin()
    loss = F.cross_entropy(model(x), y)
    if pruner is not None:
        reg = pruner.regularization()
        if reg.requires_grad:  # as the reference loop does
            loss = loss + reg
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if pruner is not None:
        pruner.on_before_optimizer_step()
    opt.step()
    if pruner is not None:
        pruner.on_after_optimizer_step()


def per_step(make, x, y, pruning_type: str, blocks: int, steps: int) -> dict[str, float]:
    """Median seconds per step of the same model and optimizer, with and without the pruner's callbacks.

    The model is pruned to 90% first (update steps timed there), then blocks of plain steps and blocks of
    steps with the callbacks (non-update steps: pruned weights put back to zero after each step; gradients
    are not masked, the default ``mask_gradients=False``) alternate, so both see the same weights, caches
    and machine drift. ``benchmarks/engine_peers.py`` compares the same cost with PyTorch's mechanisms.
    """
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    pruner = Pruner(model, {"pruning_type": pruning_type, "target_sparsity": 0.9,
                            "schedule": {"start_step": 1, "end_step": 10, "pruning_frequency": 1}})
    pruner.on_train_begin()
    update_times = []
    for _ in range(11):
        t0 = time.perf_counter()
        _step(model, opt, x, y, pruner)
        update_times.append(time.perf_counter() - t0)
    for _ in range(3):  # warm-up
        _step(model, opt, x, y)
        _step(model, opt, x, y, pruner)
    dense_t, pruned_t = [], []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(steps):
            _step(model, opt, x, y)
        dense_t.append((time.perf_counter() - t0) / steps)
        t0 = time.perf_counter()
        for _ in range(steps):
            _step(model, opt, x, y, pruner)
        pruned_t.append((time.perf_counter() - t0) / steps)
    d, p = statistics.median(dense_t), statistics.median(pruned_t)
    return {"dense_s": d, "pruned_s": p, "overhead": p / d - 1, "update_s": statistics.median(update_times[2:]),
            "update_ratio": statistics.median(update_times[2:]) / d}


def global_update_child(params_m: float) -> None:
    """In a fresh process: peak RSS growth of one global magnitude update over ~params_m million weights."""
    torch.manual_seed(0)
    width = 1024
    layers = max(1, round(params_m * 1e6 / (width * width)))
    model = nn.Sequential(*[nn.Linear(width, width, bias=False) for _ in range(layers)])
    n = sum(p.numel() for p in model.parameters())
    pruner = Pruner(model, {"pruning_scope": "global", "target_sparsity": 0.9, "max_sparsity_ratio_per_op": 1.0,
                            "schedule": {"start_step": 0, "end_step": 0}})
    # the scores of magnitude are |w|: one score-sized buffer is created inside the update
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    pruner.on_step_begin()
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    score_bytes = n * 4
    print(json.dumps({"params": n, "seconds": seconds, "peak_growth_bytes": after - before,
                      "score_bytes": score_bytes, "sparsity": pruner.report().pruned_sparsity}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps the timing steady)")
    parser.add_argument("--global-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.global_child is not None:
        global_update_child(args.global_child)
        return
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    cases = [
        ("MLP 64-256-128-10, batch 64", mlp, torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)),
        ("MLP 64-256-128-10, batch 256", mlp, torch.randn(256, 64, generator=g),
         torch.randint(0, 10, (256,), generator=g)),
        ("CNN 2 conv + fc, batch 32, 16x16", CNN, torch.randn(32, 3, 16, 16, generator=g),
         torch.randint(0, 10, (32,), generator=g)),
    ]
    print("| model | pruning type | step without pruner | step with pruner (non-update) | overhead | update step (x plain) |")
    print("|---|---|---|---|---|---|")
    for label, make, x, y in cases:
        for pruning_type in ("magnitude", "snip_momentum"):
            r = per_step(make, x, y, pruning_type, args.blocks, args.steps)
            print(f"| {label} | {pruning_type} | {r['dense_s'] * 1e3:.3f} ms | {r['pruned_s'] * 1e3:.3f} ms | "
                  f"{r['overhead'] * 100:+.1f}% | {r['update_s'] * 1e3:.2f} ms ({r['update_ratio']:.1f}x) |")
    # large allocations straight from mmap, so the RSS high-water mark follows live tensor memory
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, __file__, "--global-child", "10"], capture_output=True, text=True,
                         check=True, env=env).stdout
    r = json.loads(out)
    print()
    print(f"Global-scope magnitude update over {r['params'] / 1e6:.1f}M weights: {r['seconds']:.2f} s; peak memory "
          f"growth {r['peak_growth_bytes'] / 2**20:.1f} MiB = {r['peak_growth_bytes'] / r['score_bytes']:.2f}x the "
          f"score buffer ({r['score_bytes'] / 2**20:.1f} MiB), i.e. the scores plus "
          f"{r['peak_growth_bytes'] / r['score_bytes'] - 1:.2f} of a score-sized buffer; sparsity reached "
          f"{r['sparsity']:.4f}")


if __name__ == "__main__":
    main()
