"""How a member's gradient step costs with the population's size: ``python -m
benchmarks.population_scaling [--members 1 4 13 25 50] [--hidden 256] [--burst 128]``.

For each size M, in a fresh process (one thread, as dqn's default), a population learner of M
members of the default network runs bursts of 128 steps on batches of 64; it prints the time of
one step for all members, per member, and the matmul rate it reaches. ``--burst 1`` times calls
of one step each instead, as a population that trains on every env step makes them: what a
call costs beyond its step shows there. The [256, 256] network's
stacked state ([M, P] parameters, Adam moments, activations of M batches) outgrows the CPU's
caches as M grows, which is why ``dqn-compare`` caps population chunks (``study_runs.MAX_CHUNK``).

``--processes N`` asks what sharing the machine costs, as a study's N chunk processes share it:
each round times the measurement in one process alone and then in N identical processes at
once (they share the L3 cache and the memory bus), alternating, and prints the medians and their
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.args import Parser, positive_int

REPEATS = 3  # timed bursts after the compiling one; the best is kept
ROUNDS = 3  # with --processes: rounds of (one alone, N at once)
K, BATCH = 128, 64  # the default config's burst and batch


def default_shapes(hidden: int) -> list[tuple[int, ...]]:
    """Parameter shapes of the default CartPole network with two hidden layers of ``hidden``."""
    return [(4, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, 2), (2,)]


def random_population(members: int, hidden: int, learner: str = "tensorflow", configs=None):
    """(learner, rows [M, K, B, W], active [M]): a population learner of ``members`` default
    networks with random parameters, and one burst of random replay rows for it. ``configs``
    (one per member) replaces the default members' update settings."""
    import numpy as np

    from dqn.config import DQNConfig

    shapes = default_shapes(hidden)
    if configs is None:
        # One-step targets: the digests and timings in the docs were taken with them (n_step
        # was 1 by default then); the discount changes the numbers, not the cost.
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
    return pop, random_rows(rng, (members, K, BATCH)), np.ones(members, bool)


def random_rows(rng, lead: tuple[int, ...], obs_dim: int = 4, n_actions: int = 2):
    """Random packed replay rows [*lead, W]: normal observations and next observations, uniform
    actions, reward 1, nothing terminal. Timings only; the arithmetic does not depend on them."""
    import numpy as np

    from dqn.replay import row_layout

    at = row_layout(obs_dim)
    rows = np.zeros((*lead, at.width), np.float32)
    rows[..., at.obs] = rng.normal(size=(*lead, obs_dim))
    rows[..., at.next_obs] = rng.normal(size=(*lead, obs_dim))
    rows[..., at.action] = rng.integers(0, n_actions, lead)
    rows[..., at.reward] = 1.0
    return rows


def best_burst_seconds(learner, rows, active, repeats: int = REPEATS) -> float:
    """The shortest wall time of ``repeats`` bursts of an already compiled ``learner``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        learner.burst(rows, active)
        best = min(best, time.perf_counter() - t0)
    return best


def wait_for_all(barrier: str | None) -> None:
    """With ``barrier`` "folder:N", wait until N processes have reached this point (each leaves
    a file in the folder), so that processes measured together time their bursts together."""
    if barrier is None:
        return
    folder, _, n = barrier.rpartition(":")
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 600
    while len(os.listdir(folder)) < int(n):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited 600 s for {n} processes at {folder}")
        time.sleep(0.01)


def measure(
    members: int, hidden: int, learner: str, k: int = K, barrier: str | None = None
) -> dict:
    import numpy as np

    from benchmarks.floor import grad_step_flops
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    pop, rows, active = random_population(members, hidden, learner)
    rows = np.ascontiguousarray(rows[:, :k])
    pop.burst(rows, active)  # compiles
    wait_for_all(barrier)
    # As many timed steps as in the default bursts: the best of 128 one-step calls, say.
    best = best_burst_seconds(pop, rows, active, max(REPEATS, REPEATS * K // k)) / k
    flops = grad_step_flops(4, (hidden, hidden), 2, BATCH) * members
    return {"members": members, "step_ms": best * 1e3, "gflops": flops / best / 1e9}


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
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
    p.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="N > 1: time each size alone and in N processes at once, alternating",
    )
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's job
    p.add_argument("--barrier", help=argparse.SUPPRESS)  # a child's: folder:N, see wait_for_all
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.hidden, args.learner, args.burst, args.barrier)))
        return 0
    if args.burst > K:
        p.error(f"--burst {args.burst}: at most {K}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}

    def child(m: int) -> list[str]:
        cmd = [sys.executable, "-m", "benchmarks.population_scaling", "--one", str(m)]
        cmd += ["--hidden", str(args.hidden), "--learner", args.learner]
        return cmd + ["--burst", str(args.burst)]

    what = (
        f"({args.learner}, [{args.hidden}, {args.hidden}], {args.burst} step"
        f"{'s' * (args.burst > 1)} a call)"
    )
    if args.processes > 1:
        n = args.processes
        print(
            f"| members | alone: per member (us) | {n} at once: per member (us) | at once / alone "
            f"| {what}, median of {ROUNDS} rounds, alternating"
        )
        print("|---:|---:|---:|---:|")
        for m in args.members:
            alone, shared = [], []
            for _ in range(ROUNDS):
                alone += [r["step_ms"] for r in run_children([child(m)], env)]
                shared += [r["step_ms"] for r in run_children([child(m)] * n, env)]
            a, s = statistics.median(alone) * 1e3 / m, statistics.median(shared) * 1e3 / m
            print(f"| {m} | {a:.0f} | {s:.0f} | {s / a:.2f}x |")
        return 0
    print(f"| members | step, all members (ms) | per member (us) | GFLOP/s | {what}")
    print("|---:|---:|---:|---:|")
    for m in args.members:
        (r,) = run_children([child(m)], env)
        print(f"| {m} | {r['step_ms']:.2f} | {r['step_ms'] * 1e3 / m:.0f} | {r['gflops']:.1f} |")
    return 0


def run_children(cmds: list[list[str]], env: dict) -> list[dict]:
    """Run the measuring children all at once, timing together; each one's result. A child
    that fails stops the others (they would wait for it at the barrier) and raises."""
    barrier = tempfile.mkdtemp(prefix="population-scaling-")
    logs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in cmds]
    procs = []
    try:
        for cmd, (out, err) in zip(cmds, logs):
            argv = [*cmd, "--barrier", f"{barrier}:{len(cmds)}"]
            procs.append(subprocess.Popen(argv, stdout=out, stderr=err, text=True, env=env))
        while any(proc.poll() is None for proc in procs):
            for proc, files in zip(procs, logs):
                if proc.poll():  # failed: raise now, not after the others time out
                    child_result(proc, *files)
            time.sleep(0.05)
        return [child_result(proc, *files) for proc, files in zip(procs, logs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for files in logs:
            for f in files:
                f.close()
        shutil.rmtree(barrier, ignore_errors=True)


def child_result(proc: subprocess.Popen, out, err) -> dict:
    """A finished child's result (its last line of output), or its failure, raised."""
    out.seek(0)
    err.seek(0)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out.read(), err.read())
    return json.loads(out.read().strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
