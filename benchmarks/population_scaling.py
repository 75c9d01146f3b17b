"""How a member's gradient step costs with the population's size: ``python -m
benchmarks.population_scaling [--members 1 4 13 25 50] [--hidden 256] [--burst 128]``.

For each size M, in a fresh process (one thread, as dqn's default), a population learner of M
members of the default network runs bursts of 128 steps on batches of 64; it prints the time of
one step for all members, per member, and the matmul rate it reaches. ``--burst 1`` times calls
of one step each instead, as a population that trains on every env step makes them: what a
call costs beyond its step shows there. The [256, 256] network's
stacked state ([M, P] parameters, Adam moments, activations of M batches) outgrows the CPU's
caches as M grows, which is why ``dqn-compare`` caps population chunks (``study_runs.MAX_CHUNK``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.args import positive_int

REPEATS = 3  # timed bursts after the compiling one; the best is kept
K, BATCH = 128, 64  # the default config's burst and batch


def default_shapes(hidden: int) -> list[tuple[int, ...]]:
    """Parameter shapes of the default CartPole network with two hidden layers of ``hidden``."""
    return [(4, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, 2), (2,)]


def random_population(members: int, hidden: int, learner: str = "tensorflow"):
    """(learner, rows [M, K, B, W], active [M]): a population learner of ``members`` default
    networks with random parameters, and one burst of random replay rows for it."""
    import numpy as np

    from dqn.config import DQNConfig
    from dqn.replay import row_layout

    shapes = default_shapes(hidden)
    # One-step targets: the digests and timings in the docs were taken with them (n_step was 1
    # by default then); the discount changes the numbers, not the cost.
    config = DQNConfig(hidden_sizes=(hidden, hidden), n_step=1, learner=learner)
    configs = [config.replace(seed=i) for i in range(members)]
    size = sum(int(np.prod(s)) for s in shapes)
    rng = np.random.default_rng(0)
    online = (0.05 * rng.normal(size=(members, size))).astype(np.float32)
    if learner == "numpy":
        from dqn.numpy_population import NumpyPopulationLearner as Learner
    else:
        from dqn.tf_population import TFPopulationLearner as Learner
    pop = Learner(shapes, ["relu", "relu", "linear"], configs, online)
    at = row_layout(4)
    rows = np.zeros((members, K, BATCH, at.width), np.float32)
    rows[..., at.obs] = rng.normal(size=(members, K, BATCH, 4))
    rows[..., at.next_obs] = rng.normal(size=(members, K, BATCH, 4))
    rows[..., at.action] = rng.integers(0, 2, (members, K, BATCH))
    rows[..., at.reward] = 1.0
    return pop, rows, np.ones(members, bool)


def best_burst_seconds(learner, rows, active, repeats: int = REPEATS) -> float:
    """The shortest wall time of ``repeats`` bursts of an already compiled ``learner``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        learner.burst(rows, active)
        best = min(best, time.perf_counter() - t0)
    return best


def measure(members: int, hidden: int, learner: str, k: int = K) -> dict:
    import numpy as np

    from benchmarks.floor import grad_step_flops
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    pop, rows, active = random_population(members, hidden, learner)
    rows = np.ascontiguousarray(rows[:, :k])
    pop.burst(rows, active)  # compiles
    # As many timed steps as in the default bursts: the best of 128 one-step calls, say.
    best = best_burst_seconds(pop, rows, active, max(REPEATS, REPEATS * K // k)) / k
    flops = grad_step_flops(4, (hidden, hidden), 2, BATCH) * members
    return {"members": members, "step_ms": best * 1e3, "gflops": flops / best / 1e9}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=positive_int, nargs="+", default=[1, 4, 13, 25, 50])
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--learner", choices=("tensorflow", "numpy"), default="tensorflow")
    p.add_argument(
        "--burst",
        type=positive_int,
        default=K,
        help=f"gradient steps per call, at most {K} (default {K}, the default config's; 1 is "
        "a call per env step, as in the bench's regimes (b) and (c))",
    )
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's job
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.hidden, args.learner, args.burst)))
        return 0
    if args.burst > K:
        p.error(f"--burst {args.burst}: at most {K}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}
    print(
        f"| members | step, all members (ms) | per member (us) | GFLOP/s | ({args.learner}, "
        f"[{args.hidden}, {args.hidden}], {args.burst} step{'s' * (args.burst > 1)} a call)"
    )
    print("|---:|---:|---:|---:|")
    for m in args.members:
        cmd = [sys.executable, "-m", "benchmarks.population_scaling", "--one", str(m)]
        cmd += ["--hidden", str(args.hidden), "--learner", args.learner]
        cmd += ["--burst", str(args.burst)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {m} | {r['step_ms']:.2f} | {r['step_ms'] * 1e3 / m:.0f} | {r['gflops']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
