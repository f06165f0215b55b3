"""Search quality on digits-mlp: the study's Pareto front against uniform gradual magnitude pruning.

For each seed (data split, dense baseline, sampler): run the quickstart study (40 trials), then prune the
same dense baseline with uniform *local* and *global* gradual magnitude pruning (Zhu & Gupta's cubic ramp
over the first 2/3 of training, masks updated every step) to 90/95/98/99 % at the same 12 epochs. The
baselines get the best learning rate of {1e-3, 2e-3, 5e-3, 1e-2} by validation accuracy, as the search
tunes it in [1e-3, 1e-2]. The front's entry at sparsity s is its most accurate trial with sparsity >= s. Accuracies
are reported on validation (what both select on) and test (held out).

Goal (issue 4): the front at least matches the baselines at 90 % and 95 % and beats them at 98 % and 99 %.

    python benchmarks/search_quality.py [--seeds 0 1 2] [--trials 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import torch  # noqa: E402
from search_common import best_at, pct, quickstart_data, run, spec_from  # noqa: E402

from sparsesearch.pruning import PruningConfig, PruningGroup, Schedule  # noqa: E402
from sparsesearch.records.training import TrainingSettings  # noqa: E402
from sparsesearch.search.context import build_context  # noqa: E402
from sparsesearch.training.runs import fresh_model, load_state  # noqa: E402
from sparsesearch.training.runs import run as train_run  # noqa: E402

LEVELS = (0.90, 0.95, 0.98, 0.99)
LRS = (1e-3, 2e-3, 5e-3, 1e-2)


def baseline(ctx, dense_state, scope: str, sparsity: float, epochs: int) -> dict[str, float]:
    best = None
    end = int(round(epochs * ctx.steps_per_epoch * 2 / 3))
    group = PruningGroup(pruning_type="magnitude", pruning_scope=scope, target_sparsity=sparsity,
                         max_sparsity_ratio_per_op=0.999, schedule=Schedule(start_step=0, end_step=end, ramp="cubic"))
    for lr in LRS:
        model = load_state(fresh_model(ctx.task, ctx.spec.seed), dense_state)
        settings = TrainingSettings(epochs=epochs, batch_size=int(ctx.budget.batch_size), optimizer="adam", lr=lr,
                                    seed=ctx.spec.seed)
        r = train_run(model, ctx.splits, settings, pruning=PruningConfig((group,)))
        if best is None or r.val_accuracy > best["val"]:
            best = {"val": r.val_accuracy, "test": r.test_accuracy, "sparsity": r.sparsity, "lr": lr}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = quickstart_data()
    rows: dict[str, dict[float, list[dict]]] = {k: {s: [] for s in LEVELS} for k in ("front", "local", "global")}
    hvs = []
    for seed in args.seeds:
        result, study = run(base, name=f"quality{seed}", seed=seed, n_trials=args.trials)
        hvs.append(result.hypervolume)
        ctx = build_context(spec_from(base, Path(tempfile.gettempdir()), seed=seed, name=f"quality{seed}"))
        state = torch.load(study.user_attrs["baseline"]["local_checkpoint"], weights_only=True)
        epochs = int(ctx.budget.epochs)
        for s in LEVELS:
            rows["front"][s].append(best_at(study, s))
            rows["local"][s].append(baseline(ctx, state, "local", s, epochs))
            rows["global"][s].append(baseline(ctx, state, "global", s, epochs))
        print(f"seed {seed}: dense val {result.dense['val_accuracy']:.4f} test {result.dense['test_accuracy']:.4f}; "
              f"front {len(result.front)} trials, hypervolume {result.hypervolume:.4f}; "
              + "; ".join(f"{int(100 * s)}%: front {rows['front'][s][-1]['val'] if rows['front'][s][-1] else float('nan'):.4f}"
                          f" local {rows['local'][s][-1]['val']:.4f} global {rows['global'][s][-1]['val']:.4f}"
                          for s in LEVELS))
    print()
    print("| sparsity | front val | front test | local GMP val | local GMP test | global GMP val | global GMP test |")
    print("|---|---|---|---|---|---|---|")
    for s in LEVELS:
        cells = []
        for kind in ("front", "local", "global"):
            got = [r for r in rows[kind][s] if r]
            cells += [pct([r["val"] for r in got]), pct([r["test"] for r in got])]
        missing = sum(1 for r in rows["front"][s] if r is None)
        note = f" (front reached it in {len(args.seeds) - missing}/{len(args.seeds)} seeds)" if missing else ""
        print(f"| {int(100 * s)}%{note} | " + " | ".join(cells) + " |")
    print(f"\nhypervolume of the front: {pct(hvs)} (x100), seeds {args.seeds}, {args.trials} trials each")


if __name__ == "__main__":
    main()
