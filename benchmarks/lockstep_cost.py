"""What a population pays per member-step to step its envs: ``python -m benchmarks.lockstep_cost``.

M CartPoles (each its own seeded gymnasium env, as a population's members have) stepped with
the same random actions, one by one through gymnasium and together through ``dqn.lockstep``,
alternating, resets included; both ways are timed in this one run and their ratio printed.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from benchmarks.args import Parser, positive_int
from dqn.lockstep import Lockstep, lockstep


def run(steps: Lockstep, m: int, n: int, seed: int) -> float:
    """Seconds for n loop steps of m envs with random actions, resetting ended episodes."""
    for i in range(m):
        steps.reset(i, seed=seed + i)
    actions = np.random.default_rng(seed).integers(0, 2, (n, m))
    idx = np.arange(m)
    t0 = time.perf_counter()
    for t in range(n):
        _, _, terminated, truncated = steps.step(actions[t], idx)
        for i in np.flatnonzero(terminated | truncated):
            steps.reset(i)
    return time.perf_counter() - t0


def verdict(ratio: float) -> str:
    """``ratio`` (one-by-one seconds / lockstep seconds) in words: a few members can make
    lockstep the slower, and "0.6x faster" read as a speed-up."""
    if ratio >= 1:
        return f"lockstep is {ratio:.1f}x faster"
    return f"lockstep is {1 / ratio:.1f}x slower"


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=16)
    p.add_argument("--steps", type=positive_int, default=5_000)
    p.add_argument("--repeats", type=positive_int, default=3)
    args = p.parse_args(argv)
    m, n = args.members, args.steps
    best = {"gymnasium, one by one": float("inf"), "dqn.lockstep": float("inf")}
    for r in range(args.repeats):
        envs = [gym.make("CartPole-v1") for _ in range(m)]
        best["gymnasium, one by one"] = min(
            best["gymnasium, one by one"], run(Lockstep(envs), m, n, r)
        )
        envs = [gym.make("CartPole-v1") for _ in range(m)]
        best["dqn.lockstep"] = min(best["dqn.lockstep"], run(lockstep(envs), m, n, r))
    print(f"{m} CartPoles, {n} loop steps, random actions, best of {args.repeats}:")
    for name, seconds in best.items():
        print(f"  {name:24s} {seconds / (m * n) * 1e6:6.2f} us per member-step")
    print(f"  {verdict(best['gymnasium, one by one'] / best['dqn.lockstep'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
