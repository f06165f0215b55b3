"""Compaction: does removing pruned channels make the model faster, and is our channel pruning as accurate as
Torch-Pruning's own at the same size?

1. **Speed.** For digits-mlp and digits-cnn, the dense trained model is pruned with ``1xchannel`` magnitude
   masks (local scope, the hidden layers, the classifier head kept) and compacted. The per-layer target is
   searched so that compaction removes s = 50 %, 80 %, 90 % of the forward FLOPs; the ideal speedup is then
   1/(1-s). Forward time of the dense and the compacted model is measured side by side on one CPU thread at
   a batch where compute dominates (MLP 8192, CNN 512): interleaved blocks, median of many passes.
2. **Accuracy at equal parameter count.** From the same dense model, at each level: (a) sparsesearch one-shot
   (masks at step 0, fine-tuned with them, then compacted), (b) sparsesearch gradual (cubic ramp over the
   first half of fine-tuning), (c) Torch-Pruning's ``MagnitudePruner`` with ``GroupMagnitudeImportance``
   (one-shot, ratio searched so that its parameter count equals (a)'s compacted count), fine-tuned the same
   way (same epochs, optimizer, learning rate, batch order; the best validation epoch is kept, as in a
   trial). Test accuracy is reported.

Ratios are measured in one run on one machine. Run: ``python benchmarks/compaction.py`` (about 15 minutes
on 2 cores; needs ``pip install sparsesearch[compact]``). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from typing import Any

import torch
from torch import nn

from sparsesearch.pruning import prune
from sparsesearch.pruning.compact import compact, parameter_count
from sparsesearch.records.pruning import PruningConfig
from sparsesearch.records.training import TrainingSettings
from sparsesearch.tasks import resolve_task
from sparsesearch.training.costs import flops
from sparsesearch.training.runs import fresh_model, run, task_steps_per_epoch

LEVELS = (0.5, 0.8, 0.9)
TASKS = {
    # task: (pruned layers, head, timing batch, dense epochs, fine-tuning epochs, fine-tuning lr)
    "digits-mlp": (["0", "2"], "4", 8192, 30, 8, 1e-3),
    "digits-cnn": (["features.0", "features.3", "features.7", "classifier.1"], "classifier.3", 512, 12, 5, 1e-3),
}


def config(layers: list[str], target: float, end_step: int = 0) -> PruningConfig:
    return PruningConfig.from_dict({"groups": [{
        "pruning_type": "magnitude", "pattern": "1xchannel", "target_sparsity": target, "pruning_scope": "local",
        "op_names": [f"^{name}$" for name in layers], "max_sparsity_ratio_per_op": 0.99,
        "schedule": {"start_step": 0, "end_step": end_step, "pruning_frequency": max(1, end_step // 8)}}]})


def first_inputs(task: Any) -> torch.Tensor:
    return next(iter(task.val_data))[0]


def oneshot_compacted(dense: nn.Module, layers: list[str], target: float, x: torch.Tensor) -> nn.Module:
    model = copy.deepcopy(dense)
    pruner = prune(model, config(layers, target))
    return compact(model, pruner, x, exact=False).model


def target_for(dense: nn.Module, layers: list[str], s: float, x: torch.Tensor) -> tuple[float, nn.Module]:
    """The per-layer 1xchannel target whose compacted model has (1 - s) of the dense FLOPs."""
    one = x[:1]
    full = flops(dense, one)
    lo, hi = 0.0, 0.99
    best = (1.0, 0.0, dense)
    for _ in range(14):
        mid = (lo + hi) / 2
        small = oneshot_compacted(dense, layers, mid, x)
        removed = 1 - flops(small, one) / full
        if abs(removed - s) < best[0]:
            best = (abs(removed - s), mid, small)
        lo, hi = (mid, hi) if removed < s else (lo, mid)
    return best[1], best[2]


@torch.no_grad()
def speedup(dense: nn.Module, small: nn.Module, x: torch.Tensor, blocks: int = 7, per_block: int = 15) -> float:
    """Median dense time / median compacted time, interleaved blocks on one thread."""
    dense, small = dense.eval(), small.eval()
    for _ in range(3):
        dense(x), small(x)
    times: dict[str, list[float]] = {"dense": [], "small": []}
    for _ in range(blocks):
        for name, model in (("dense", dense), ("small", small)):
            for _ in range(per_block):
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return statistics.median(times["dense"]) / statistics.median(times["small"])


def settings(task_name: str, epochs: int, lr: float, seed: int = 0) -> TrainingSettings:
    return TrainingSettings(task=task_name, epochs=epochs, optimizer="adam", lr=lr, batch_size=64, seed=seed,
                            lr_schedule="cosine")


def tp_pruned(dense: nn.Module, head: str, x: torch.Tensor, params: int) -> tuple[nn.Module, float]:
    """Torch-Pruning's magnitude pruner at the ratio whose parameter count is closest to ``params``."""
    import torch_pruning as tp

    modules = dict(dense.named_modules())

    def pruned(ratio: float) -> nn.Module:
        model = copy.deepcopy(dense)
        local = dict(model.named_modules())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner = tp.pruner.MagnitudePruner(model, x[:2], importance=tp.importance.GroupMagnitudeImportance(p=2),
                                               pruning_ratio=ratio, ignored_layers=[local[head]])
            pruner.step()
        return model

    assert head in modules
    lo, hi = 0.0, 0.99
    best = (float("inf"), 0.0, dense)
    for _ in range(14):
        mid = (lo + hi) / 2
        model = pruned(mid)
        count = parameter_count(model)
        if abs(count - params) < best[0]:
            best = (abs(count - params), mid, model)
        lo, hi = (mid, hi) if count > params else (lo, mid)
    return best[2], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run, not the benchmark)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    speed_rows, acc_rows = [], []
    for name in args.tasks:
        layers, head, batch, dense_epochs, ft_epochs, ft_lr = TASKS[name]
        if args.quick:
            dense_epochs, ft_epochs = 2, 1
        task = resolve_task(name)
        x = first_inputs(task)
        dense = fresh_model(task, 0)
        hints = task.budget_hints
        started = time.perf_counter()
        trained = run(dense, task, TrainingSettings(task=name, epochs=dense_epochs, optimizer="adam",
                                                    lr=float(hints.get("dense_lr", 2e-3)), batch_size=64))
        print(f"# {name}: dense test accuracy {trained.test_value:.4f} ({time.perf_counter() - started:.0f}s)",
              flush=True)
        spe = task_steps_per_epoch(task)
        timing_x = x.repeat(-(-batch // len(x)), *([1] * (x.dim() - 1)))[:batch]
        dense_params = parameter_count(dense)
        for s in LEVELS:
            target, small = target_for(dense, layers, s, x)
            removed = 1 - flops(small, x[:1]) / flops(dense, x[:1])
            ratio = speedup(dense, small, timing_x)
            ideal = 1 / (1 - removed)
            speed_rows.append((name, s, target, removed, ideal, ratio, ratio / ideal,
                               parameter_count(small) / dense_params))
            print(f"  speed s={s}: target {target:.3f}, FLOPs removed {removed:.3f}, ideal {ideal:.2f}x, "
                  f"measured {ratio:.2f}x ({ratio / ideal:.2f} of ideal)", flush=True)
            results = {}
            for label, end in (("sparsesearch one-shot", 0), ("sparsesearch gradual", ft_epochs * spe // 2)):
                model = copy.deepcopy(dense)
                r = run(model, task, settings(name, ft_epochs, ft_lr), pruning=config(layers, target, end))
                result = compact(model, {n: m.weight != 0 for n, m in model.named_modules()
                                         if n in layers}, x)
                results[label] = (r.test_value, parameter_count(result.model), result.kept)
                print(f"  {label}: test {r.test_value:.4f}, params {results[label][1]:,}, kept {result.kept}: "
                      f"{result.message}", flush=True)
            tp_model, tp_ratio = tp_pruned(dense, head, x, results["sparsesearch one-shot"][1])
            r = run(tp_model, task, settings(name, ft_epochs, ft_lr))
            results[f"Torch-Pruning (ratio {tp_ratio:.3f})"] = (r.test_value, parameter_count(tp_model), 0)
            print(f"  Torch-Pruning ratio {tp_ratio:.3f}: test {r.test_value:.4f}, params "
                  f"{parameter_count(tp_model):,}", flush=True)
            for label, (acc, count, _kept) in results.items():
                acc_rows.append((name, s, label, count, count / dense_params, acc, trained.test_value))
    print("\n| task | s (FLOPs removed, target) | per-layer 1xchannel target | ideal 1/(1-s) | measured speedup | "
          "of ideal | params left |")
    print("|---|---|---|---|---|---|---|")
    for name, s, target, removed, ideal, ratio, share, left in speed_rows:
        print(f"| {name} | {removed:.3f} ({s:.0%}) | {target:.3f} | {ideal:.2f}× | {ratio:.2f}× | {share:.2f} | "
              f"{left:.1%} |")
    print("\n| task | s | method | params | of dense | test accuracy | dense |")
    print("|---|---|---|---|---|---|---|")
    for name, s, label, count, share, acc, dense_acc in acc_rows:
        print(f"| {name} | {s:.0%} | {label} | {count:,} | {share:.1%} | {acc:.4f} | {dense_acc:.4f} |")


if __name__ == "__main__":
    main()
