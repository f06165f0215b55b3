"""Wall time of the quickstart study (40 trials, MLflow tracking on), as a user runs it.

Runs ``sparsesearch run studies/quickstart.yaml`` in a fresh temporary directory (so the MLflow and Optuna
databases are created from nothing, as on a first run) and reports the wall time of the whole command.
Goal: <= 3 minutes on 2 CPU cores.

    python benchmarks/quickstart_time.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        workdir = Path(tempfile.mkdtemp(prefix="sparsesearch-quickstart-"))
        shutil.copy(ROOT / "studies" / "quickstart.yaml", workdir / "quickstart.yaml")
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sparsesearch.cli", "run", "quickstart.yaml"], cwd=workdir,
                              capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        times.append(elapsed)
        summary = next(line for line in proc.stdout.splitlines() if line.startswith("study "))
        print(f"quickstart: {elapsed:.1f} s wall  ({summary})")
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"cpu cores: {os.cpu_count()}; runs: {', '.join(f'{t:.1f}' for t in times)} s; goal <= 180 s")


if __name__ == "__main__":
    main()
