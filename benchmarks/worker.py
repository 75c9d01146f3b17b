"""One benchmark job per process: ``python -m benchmarks.worker JOB_JSON``.

Every run of either library gets a fresh process, so TensorFlow and torch never train in the
same process and each one's thread setting applies cleanly. A job is a JSON object naming its
``worker``; the process prints its result as one JSON line prefixed with ``RESULT_PREFIX`` on
stdout. ``run_worker`` is the launching side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import dqn_worker, floor, learner_anatomy, sb3_worker

REPO = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH_RESULT "
WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "dqn_throughput": dqn_worker.work_throughput,
    "dqn_vector": dqn_worker.work_vector,
    "dqn_library_path": dqn_worker.work_library_path,
    "dqn_solve": dqn_worker.work_solve,
    "dqn_population": dqn_worker.work_population_throughput,
    "dqn_study": dqn_worker.work_study,
    "sb3_throughput": sb3_worker.work_throughput,
    "sb3_solve": sb3_worker.work_solve,
    "matmul": floor.work_matmul,
    "anatomy": learner_anatomy.work,
}


def run_worker(job: dict, extra_env: dict | None = None) -> dict:
    """Run one job in a fresh ``python -m benchmarks.worker`` process; its result, or an error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise RuntimeError(f"worker {job['worker']} failed (exit {proc.returncode}):\n{tail}")


def timed(label: str, job: dict, extra_env: dict | None = None) -> dict | None:
    """run_worker with a progress line on stderr; None (and the error on stderr) if it failed."""
    print(f"  {label} ...", end="", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        out = run_worker(job, extra_env)
    except RuntimeError as exc:
        print(f" FAILED\n{exc}", file=sys.stderr)
        return None
    print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def main(argv: Sequence[str]) -> int:
    """Run the job in ``argv[0]``, print its result as one prefixed JSON line."""
    if not argv or argv[0].startswith("-"):  # --help, or a person trying it: it takes a job
        print("usage: python -m benchmarks.worker JOB_JSON (the bench starts it)", file=sys.stderr)
        return 2
    job = json.loads(argv[0])
    result = WORKERS[job["worker"]](job)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
