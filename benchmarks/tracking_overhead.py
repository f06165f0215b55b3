"""Tracking overhead per trial: the same study with MLflow tracking on and off.

Both runs use the quickstart spec with early stopping off and the same seed, so they run identical trials
(same sampled configs, same training); runs alternate (off, on, on, off, ...) to spread machine noise.
Per-trial time is Optuna's trial start to completion (sampling, training, evaluation and every tracking
call). The overhead is the median over trials of the paired ratio on/off, minus one. Goal: <= 5 %.
On a shared machine wall times swing with other jobs, so the training process's own CPU time with and
without tracking is reported too (the MLflow writer runs in its own process and is reported apart).
Also reported: the CPU time the MLflow writer process spends per trial (it runs beside training), and the
one-off cost of a run with tracking (writer start, store, experiment, study run, baseline upload).

    python benchmarks/tracking_overhead.py [--trials 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

from search_common import quickstart_data, run, trial_seconds  # noqa: E402


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = quickstart_data()
    per_trial: dict[bool, list[list[float]]] = {False: [], True: []}
    totals: dict[bool, list[float]] = {False: [], True: []}
    writer_cpu: list[float] = []
    main_cpu: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for tracking in ((False, True) if repeat % 2 == 0 else (True, False)):
            cpu0, self0, started = children_cpu(), own_cpu(), time.perf_counter()
            _, study = run(base, tracking=tracking, name=f"overhead{repeat}", n_trials=args.trials,
                           early_stopping={"enabled": False})
            totals[tracking].append(time.perf_counter() - started)
            main_cpu[tracking].append(own_cpu() - self0)
            if tracking:
                writer_cpu.append(children_cpu() - cpu0)
            secs = trial_seconds(study)
            per_trial[tracking].append(secs)
            print(f"repeat {repeat} tracking {'on ' if tracking else 'off'}: mean trial {statistics.mean(secs):.3f} s, "
                  f"study {totals[tracking][-1]:.1f} s")
    ratios = [on / off for a, b in zip(per_trial[True], per_trial[False]) for on, off in zip(a, b)]
    off = statistics.median(s for run_ in per_trial[False] for s in run_)
    on = statistics.median(s for run_ in per_trial[True] for s in run_)
    fixed = statistics.median(totals[True]) - statistics.median(totals[False]) - args.trials * (on - off)
    print(f"median trial time: off {off:.3f} s, on {on:.3f} s; median paired ratio on/off "
          f"{statistics.median(ratios):.3f} -> overhead {100 * (statistics.median(ratios) - 1):+.1f} % per trial "
          f"(goal <= 5 %)")
    extra = (statistics.median(main_cpu[True]) - statistics.median(main_cpu[False])) / args.trials
    print(f"training process CPU per trial with tracking minus without (medians over repeats): "
          f"{1000 * extra:+.0f} ms = {100 * extra / off:+.1f} % of a trial")
    print(f"MLflow writer process CPU: {1000 * statistics.median(writer_cpu) / args.trials:.0f} ms per trial "
          f"(on its own core when one is free), including its start-up")
    print(f"one-off wall cost of a run with tracking (writer start, store, experiment, study run, baseline): "
          f"{fixed:.1f} s")


if __name__ == "__main__":
    main()
