"""Time saved by our multi-objective early stopping, and what it costs the front.

The quickstart spec with early stopping on and off, same seeds, 40 trials each. With ``--sampler random``
both runs sample exactly the same configs (random sampling ignores results), so the difference is only
what early stopping cut; with the default TPE the sampler also reacts to the stopped trials, and the two
runs diverge after the first stop. Reported: epochs trained, training CPU time (summed over trials;
stable on a shared machine), total trial wall time (Optuna's start to completion, summed; noisy when
other jobs share the cores), and the front's hypervolume. Goal (issue 4): time saved, with the front's
hypervolume within 2 %.

    python benchmarks/early_stopping.py [--trials 40] [--seeds 0 1 2] [--sampler tpe|random]
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from search_common import quickstart_data, run, trial_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sampler", default="tpe", choices=["tpe", "random", "nsga2"])
    args = parser.parse_args()
    base = quickstart_data()
    rows = {True: [], False: []}
    for seed in args.seeds:
        for enabled in (True, False):
            result, study = run(base, name=f"es-{enabled}-{seed}", seed=seed, n_trials=args.trials,
                                sampler=args.sampler, early_stopping={"enabled": enabled})
            secs = sum(trial_seconds(study))
            trials = study.get_trials()
            epochs = sum(len(t.user_attrs.get("curve", [])) for t in trials)
            cpu = sum(t.user_attrs.get("metrics", {}).get("train_cpu_seconds", 0.0) for t in trials)
            rows[enabled].append((secs, epochs, result.hypervolume, result.counts.get("PRUNED", 0), cpu))
            print(f"seed {seed} early stopping {'on ' if enabled else 'off'}: trials {secs:.1f} s wall, {cpu:.1f} s "
                  f"training CPU, {epochs} epochs, hypervolume {result.hypervolume:.4f}, "
                  f"stopped {result.counts.get('PRUNED', 0)}", flush=True)
    print()
    print("| seed | epochs on / off | training CPU on / off | trial wall on / off | hypervolume on / off | stopped |")
    print("|---|---|---|---|---|---|")
    for seed, on, off in zip(args.seeds, rows[True], rows[False]):
        print(f"| {seed} | {on[1]} / {off[1]} ({100 * (1 - on[1] / off[1]):.0f} % saved) | "
              f"{on[4]:.1f} s / {off[4]:.1f} s ({100 * (1 - on[4] / off[4]):.0f} % saved) | "
              f"{on[0]:.1f} s / {off[0]:.1f} s ({100 * (1 - on[0] / off[0]):.0f} % saved) | "
              f"{on[2]:.4f} / {off[2]:.4f} ({100 * (on[2] / off[2] - 1):+.1f} %) | {on[3]} |")
    c_on, c_off = sum(r[4] for r in rows[True]), sum(r[4] for r in rows[False])
    e_on, e_off = sum(r[1] for r in rows[True]), sum(r[1] for r in rows[False])
    print(f"\ntotal: {100 * (1 - e_on / e_off):.0f} % of epochs and {100 * (1 - c_on / c_off):.0f} % of training CPU saved")
    t_on, t_off = sum(r[0] for r in rows[True]), sum(r[0] for r in rows[False])
    hv_on = statistics.mean(r[2] for r in rows[True])
    hv_off = statistics.mean(r[2] for r in rows[False])
    print(f"wall: {100 * (1 - t_on / t_off):.0f} % of trial wall time saved; mean hypervolume {hv_on:.4f} vs {hv_off:.4f} "
          f"({100 * (hv_on / hv_off - 1):+.1f} %)")


if __name__ == "__main__":
    main()
