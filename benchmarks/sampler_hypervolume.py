"""Hypervolume of the front after 50 trials: the default sampler (multi-objective TPE) versus random
sampling (and NSGA-II), on the quickstart spec, over 3 seeds.

Each study starts with the same warm-start trials (the spec's classic baselines), so the comparison is
of what each sampler does with the remaining trials. Hypervolume is measured against (accuracy 0,
sparsity 0) on the feasible front. Goal (issue 4): TPE >= 1.07x random.

    python benchmarks/sampler_hypervolume.py [--trials 50] [--seeds 0 1 2] [--samplers tpe random nsga2]
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from search_common import quickstart_data, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random", "nsga2"])
    args = parser.parse_args()
    base = quickstart_data()
    hv: dict[str, list[float]] = {s: [] for s in args.samplers}
    for seed in args.seeds:
        for sampler in args.samplers:
            result, _ = run(base, name=f"sampler-{sampler}-{seed}", sampler=sampler, seed=seed, n_trials=args.trials)
            hv[sampler].append(result.hypervolume)
            print(f"seed {seed} {sampler:6s}: hypervolume {result.hypervolume:.4f}, front {len(result.front)} trials, "
                  f"{result.counts}, {result.seconds:.0f}s", flush=True)
    print()
    print("| sampler | hypervolume (mean ± sd) | per seed | vs random |")
    print("|---|---|---|---|")
    ref = statistics.mean(hv["random"]) if "random" in hv else None
    for sampler, values in hv.items():
        mean = statistics.mean(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        ratio = f"{mean / ref:.3f}x" if ref else "-"
        print(f"| {sampler} | {mean:.4f} ± {sd:.4f} | {', '.join(f'{v:.4f}' for v in values)} | {ratio} |")


if __name__ == "__main__":
    main()
