"""Workers on PostgreSQL: throughput with 1 and 2 workers, recovery from a killed worker, time to an error.

1. Throughput: the same study (digits-mlp, magnitude pruning only so that trials cost about the same,
   random sampler, early stopping off, one torch thread per worker) run by 1 worker, then by 2 workers
   started together, each time in new PostgreSQL databases. Trials per minute are counted while every
   worker runs trials (Optuna's timestamps: see :func:`window`), so worker start-up and the dense baseline
   (trained once, by one worker) are left out. Goal: 2 workers >= 1.8x one worker on two
   cores. Measured with tracking off and with MLflow tracking on PostgreSQL (each worker then has its own
   writer process beside it). On a shared machine the second core is often busy with other jobs, so the
   same pair is measured for a plain CPU-bound torch loop (one thread, 1 process then 2 at once) just
   before: its speed-up is the most that 2 workers could get at that moment.
2. Recovery: 2 workers with the default liveness settings (heartbeat 5 s, grace 20 s); one is killed with
   SIGKILL mid-trial. Reported: seconds from the kill until the lost trial is failed (with its reason) and
   until its retry starts, and whether the study still ends with exactly n_trials finished trials.
3. Time to error: ``sparsesearch run`` against stores that cannot be reached (a refused port, and a server
   that accepts connections but never answers), from the command's start to its exit, start-up included.

    python benchmarks/workers.py [--trials 24] [--epochs 10] [--repeats 1] [--skip-tracking] [--skip-recovery]
                                 [--skip-errors]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; the databases are created and dropped).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

PG = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def databases(*kinds: str):
    import psycopg2

    admin = psycopg2.connect(host="127.0.0.1", port=5432, dbname="test", user="postgres", connect_timeout=3)
    admin.autocommit = True
    names = [f"ss_bench_{k}_{uuid.uuid4().hex[:8]}" for k in kinds]
    try:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        yield [f"{PG}/{n}" for n in names]
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def spec_file(folder: Path, name: str, storage: str, tracking: str | None, trials: int, epochs: int) -> Path:
    data: dict[str, Any] = {
        "name": name, "task": "digits-mlp", "seed": 0, "n_trials": trials, "num_threads": 1,
        "budget": {"epochs": epochs, "dense_epochs": 10},
        "space": {"pruning_types": ["magnitude"], "patterns": ["1x1"], "scopes": ["local", "global"],
                  "sparsity": [0.5, 0.95], "schedule": {"finetune_epochs": [0, 0]}},
        "early_stopping": {"enabled": False}, "warm_start": [], "sampler": "random",
        "storage": storage, "tracking": {"uri": tracking},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start(spec: Path, cwd: Path, env: dict[str, str] | None = None, verbose: bool = False) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "sparsesearch.cli"] + (["-v"] if verbose else []) + ["run", str(spec)]
    return subprocess.Popen(args, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        out = proc.communicate(timeout=1800)[0]
        if proc.returncode != 0:
            print(out, file=sys.stderr)
            raise SystemExit(f"a worker failed (exit {proc.returncode})")


def window(storage: str, name: str) -> tuple[int, float, int]:
    """(trials finished while every worker was running trials, that window's seconds, workers seen).

    The window runs from the last worker's first trial start to the first worker's last trial end: the
    workers do not start their first trials together (one trains the dense baseline, the others fetch it),
    and the last trials end apart. With one worker it is its first trial's start to its last one's end."""
    import optuna

    from sparsesearch.records.urls import with_driver
    from sparsesearch.search.storage import finished_count

    trials = optuna.load_study(study_name=name, storage=with_driver(storage)).get_trials()
    done = [t for t in trials if t.datetime_complete is not None]
    names = {t.user_attrs.get("worker") for t in done}
    first = max(min(t.datetime_start for t in done if t.user_attrs.get("worker") == w) for w in names)
    last = min(max(t.datetime_complete for t in done if t.user_attrs.get("worker") == w) for w in names)
    inside = sum(1 for t in done if first < t.datetime_complete <= last)
    workers = len(names)
    each = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    gaps = []  # from a worker's trial end to its next trial's start: the search's own time between trials
    for worker in {t.user_attrs.get("worker") for t in done}:
        mine = sorted((t for t in done if t.user_attrs.get("worker") == worker), key=lambda t: t.datetime_start)
        gaps += [(b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(mine, mine[1:])]
    gaps.sort()
    print(f"    trial seconds: median {each[len(each) // 2]:.2f} (min {each[0]:.2f}, max {each[-1]:.2f}); "
          f"between trials: median {gaps[len(gaps) // 2] if gaps else 0:.3f} s")
    assert finished_count(trials) == len(trials), "a trial did not finish"
    return inside, (last - first).total_seconds(), workers


CALIBRATION = ("import time, torch\ntorch.set_num_threads(1)\na = torch.randn(192, 192)\nt = time.perf_counter()\n"
               "for _ in range(6000):\n    a = torch.tanh(a @ a * 0.01)\nprint(time.perf_counter() - t)")


def ceiling() -> float:
    """Throughput of 2 one-thread torch loops at once over 1 alone: what this machine gives 2 workers now."""
    def loops(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", CALIBRATION], stdout=subprocess.PIPE, text=True)
                 for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    one, two = loops(1), loops(2)
    return 2 * one / two


def children_cpu() -> float:
    """CPU seconds of the finished child processes (the workers and their writers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def throughput(workers: int, trials: int, epochs: int, tracking: bool, folder: Path) -> float:
    with databases("optuna", "mlflow") as (storage, mlflow):
        name = f"w{workers}{'t' if tracking else ''}"
        spec = spec_file(folder, name, storage, mlflow if tracking else None, trials, epochs)
        cpu_before, wall_before = children_cpu(), time.perf_counter()
        procs = [start(spec, folder / f"{name}-{i}") for i in range(workers)]
        finish(procs)
        cores = (children_cpu() - cpu_before) / (time.perf_counter() - wall_before)
        done, seconds, seen = window(storage, name)
    rate = 60.0 * done / seconds
    print(f"  {workers} worker{'s' if workers > 1 else ' '}, tracking {'MLflow/PG' if tracking else 'off      '}: "
          f"{done} trials ended in {seconds:6.1f} s = {rate:5.1f} trials/min ({seen} worker(s) ran trials; "
          f"the workers got {cores:.2f} cores on average, start-up included)", flush=True)
    return rate


def recovery(folder: Path, trials: int, epochs: int) -> None:
    import optuna
    from optuna.trial import TrialState

    from sparsesearch.records.urls import with_driver
    from sparsesearch.search.storage import finished_count

    with databases("optuna") as (storage,):
        spec = spec_file(folder, "recover", storage, None, trials, epochs * 3)
        procs = [start(spec, folder / f"recover-{i}") for i in range(2)]
        pids = {p.pid: p for p in procs}
        study_storage = with_driver(storage)
        victim, number = None, None
        while victim is None:
            try:
                running = optuna.load_study(study_name="recover", storage=study_storage).get_trials(deepcopy=False)
            except KeyError:
                running = []
            for t in running:
                worker = t.user_attrs.get("worker", "")
                if t.state == TrialState.RUNNING and worker and int(worker.rsplit(":", 1)[1]) in pids \
                        and time.time() - t.datetime_start.timestamp() > 1.0:
                    victim, number = pids[int(worker.rsplit(":", 1)[1])], t.number
                    break
            time.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        failed_at = retry_at = None
        while retry_at is None:
            trials_now = optuna.load_study(study_name="recover", storage=study_storage).get_trials(deepcopy=False)
            if failed_at is None and trials_now[number].state == TrialState.FAIL:
                failed_at = time.monotonic() - killed
            if any(t.user_attrs.get("retry_of") == number and t.state != TrialState.WAITING for t in trials_now):
                retry_at = time.monotonic() - killed
            time.sleep(0.2)
        victim.wait()
        finish([p for p in procs if p is not victim])
        final = optuna.load_study(study_name="recover", storage=study_storage).get_trials()
        reason = final[number].user_attrs.get("stop_reason", "")
        print(f"  killed a worker mid-trial {number}: failed as lost after {failed_at:.1f} s, its retry started after "
              f"{retry_at:.1f} s (heartbeat 5 s, grace 20 s); finished trials {finished_count(final)} of {trials}; "
              f"reason: {reason!r}", flush=True)


def time_to_error(folder: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    spec = spec_file(folder, "errors", f"sqlite:///{folder}/errors.db", None, 2, 2)
    cases = [("storage, refused port", ["--storage", "postgresql://postgres@127.0.0.1:1/x"]),
             ("storage, silent server", ["--storage", f"postgresql://postgres@127.0.0.1:{port}/x"]),
             ("tracking, refused HTTP port", ["--tracking-uri", "http://127.0.0.1:1"]),
             ("tracking, silent HTTP server", ["--tracking-uri", f"http://127.0.0.1:{port}"]),
             ("tracking, refused PostgreSQL port", ["--tracking-uri", "postgresql://postgres@127.0.0.1:1/x"]),
             ("tracking, silent PostgreSQL server", ["--tracking-uri", f"postgresql://postgres@127.0.0.1:{port}/x"])]
    try:
        for label, flags in cases:
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "sparsesearch.cli", "run", str(spec), *flags], cwd=folder,
                                  capture_output=True, text=True, timeout=600)
            seconds = time.perf_counter() - started
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  {label:36s} exit {proc.returncode} after {seconds:5.1f} s: {last[:150]}", flush=True)
    finally:
        silent.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="Throughput pairs per tracking setting.")
    parser.add_argument("--skip-tracking", action="store_true", help="Measure throughput with tracking off only.")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-errors", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sparsesearch-workers-"))
    print(f"cpu cores: {os.cpu_count()}; load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    print("throughput (trials per minute while every worker runs trials):", flush=True)
    for tracking in (False,) if args.skip_tracking else (False, True):
        for _ in range(args.repeats):
            cap = ceiling()
            one = throughput(1, args.trials, args.epochs, tracking, folder)
            two = throughput(2, args.trials, args.epochs, tracking, folder)
            print(f"  speed-up with 2 workers, tracking {'on' if tracking else 'off'}: {two / one:.2f}x (goal >= 1.8x); "
                  f"2 plain torch loops got {cap:.2f}x just before", flush=True)
    if not args.skip_recovery:
        print("recovery from SIGKILL (defaults):", flush=True)
        recovery(folder, args.trials // 2, args.epochs)
    if not args.skip_errors:
        print("time to an error (whole command, start-up included):", flush=True)
        time_to_error(folder)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
