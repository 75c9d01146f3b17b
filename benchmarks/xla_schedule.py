"""What XLA:CPU's concurrent schedule costs a one-thread learner: ``python -m
benchmarks.xla_schedule [--pairs 3]``.

With ``num_threads: 1`` dqn asks XLA to schedule its programs for memory, which runs them on the
calling thread (``dqn.runtime.SEQUENTIAL_XLA_FLAG``); XLA's default schedules them for
concurrency and hands their independent parts to TensorFlow's one-thread pool. A process's XLA
flags are fixed at its first compilation, so each side runs in its own fresh process: dqn's
setting, and the same process started with ``XLA_FLAGS`` setting that flag ``=true`` (the
caller's setting wins). Pairs alternate which side goes first.

Each process times, best of 3 loops, one thread: one gradient step of the TF learner
(``DQNAgent.update_rows``) for regime (b)'s [64, 64] net on a batch of 64 and regime (e)'s
[120, 84] on 128; a population call of 16 [64, 64] members taking one step each, as (p1)
calls it; and a step of 25 [256, 256] members inside a 128-step burst, as (p2) runs it. It also
counts the process's voluntary context switches per call: a call that waits for TF's pool
thread blocks on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

from benchmarks.args import Parser, positive_int
from benchmarks.call_overhead import best_of, random_replay
from dqn.runtime import XLA_SCHEDULER

CONCURRENT = f"--{XLA_SCHEDULER}=true"
ROWS = (
    ("step_64", "TF learner, one [64, 64] step, batch 64 (b)"),
    ("step_120", "TF learner, one [120, 84] step, batch 128 (e)"),
    ("pop16", "population call, 16 x [64, 64], one step each (p1)"),
    ("pop25", "population, 25 x [256, 256], per step of a 128-step burst (p2)"),
)


def timed(fn, loops: int) -> tuple[float, float]:
    """(``call_overhead.best_of``: best us per call of 3 loops, then voluntary context switches
    per call over one more loop of as many calls)."""
    us = best_of(fn, loops)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    for _ in range(loops):
        fn()
    return us, (resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - before) / loops


def measure() -> dict:
    from dqn.runtime import configure_blas, import_tensorflow_quietly

    import_tensorflow_quietly(1)
    configure_blas(1)
    import gymnasium as gym

    from benchmarks.population_scaling import random_population
    from dqn import DQNAgent, DQNConfig

    out = {}
    env = gym.make("CartPole-v1")
    replay = random_replay()
    for key, hidden, batch in (("step_64", (64, 64), 64), ("step_120", (120, 84), 128)):
        config = DQNConfig(hidden_sizes=hidden, batch_size=batch, learning_rate_end=None)
        agent = DQNAgent(env.observation_space, env.action_space, config)
        rows = replay.sample_rows(batch, 1)
        out[key] = timed(lambda agent=agent, rows=rows: agent.update_rows(rows), 1000)
    pop, rows, active = random_population(16, 64)
    one = rows[:, :1]
    out["pop16"] = timed(lambda: pop.burst(one, active), 300)
    pop, rows, active = random_population(25, 256)
    pop.burst(rows, active)  # compiles
    us, switches = timed(lambda: pop.burst(rows, active), 1)
    out["pop25"] = (us / rows.shape[1], switches)
    return out


def table(runs: dict[str, list[dict]]) -> list[str]:
    """The printed table: per work, each side's median us per call (and context switches per
    call) over its processes, and their ratio."""
    n = len(runs["sequential"])
    lines = [
        f"median of {n} processes per side; us per call (voluntary context switches per call)",
        "| work | dqn: sequential | XLA's default: concurrent | concurrent / sequential |",
        "|---|---:|---:|---:|",
    ]
    for key, label in ROWS:
        us = {side: statistics.median(r[key][0] for r in runs[side]) for side in runs}
        sw = {side: statistics.median(r[key][1] for r in runs[side]) for side in runs}
        a, b = (f"{us[side]:.0f} ({sw[side]:.1f})" for side in ("sequential", "concurrent"))
        lines.append(f"| {label} | {a} | {b} | {us['concurrent'] / us['sequential']:.2f}x |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--pairs", type=positive_int, default=3)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child's job
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure()))
        return 0
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    base.update(TF_CPP_MIN_LOG_LEVEL="2", OPENBLAS_NUM_THREADS="1")
    sides = {"sequential": base, "concurrent": {**base, "XLA_FLAGS": CONCURRENT}}
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for i in range(args.pairs):
        for name in list(sides)[:: 1 if i % 2 == 0 else -1]:
            cmd = [sys.executable, "-m", "benchmarks.xla_schedule", "--one"]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=sides[name])
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  pair {i + 1}, {name}: done", file=sys.stderr)
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
