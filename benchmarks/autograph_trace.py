"""What AutoGraph cost a learner's first call: ``python -m benchmarks.autograph_trace
[--rounds 3] [--members 25]``.

dqn's tf.functions run with ``autograph=False``: the bursts' loops are explicit
``tf.while_loop``s and nothing in them branches on a tensor, so AutoGraph's conversion of their
Python source was work with no effect (and left its converted sources in the temporary folder of
a process that was killed). This times the first call of the default config's single-run
learner and of a population learner of ``--members`` default networks (one burst of 128 steps:
trace, XLA compilation, the run) with AutoGraph forced on and left off, each in a fresh process
(AutoGraph caches its conversions per process), the two ways alternating round by round. It
prints each process's CPU seconds and wall seconds of that call, and the medians' difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from benchmarks.args import Parser, positive_int

KINDS = ("single", "population")


def first_call(kind: str, autograph: bool, members: int) -> tuple[float, float]:
    """(CPU s, wall s) of the first burst of a new learner, in this process."""
    import tensorflow as tf

    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    function = tf.function

    def forced(*args, **kwargs):  # what every tf.function of dqn is built with
        return function(*args, **{**kwargs, "autograph": autograph})

    tf.function = forced
    try:
        call = _new_learner_call(kind, members)
    finally:
        tf.function = function
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return time.process_time() - cpu, time.perf_counter() - wall


def _new_learner_call(kind: str, members: int):
    import numpy as np

    if kind == "single":
        import gymnasium as gym

        from dqn import DQNAgent, DQNConfig

        config = DQNConfig()
        env = gym.make(config.env_id)
        agent = DQNAgent(env.observation_space, env.action_space, config)
        rows = np.zeros((config.gradient_steps_per_train, config.batch_size, 11), np.float32)
        call = lambda: agent.learner.burst(rows)  # noqa: E731
    else:
        from benchmarks.population_scaling import random_population

        pop, rows, active = random_population(members, 256)
        call = lambda: pop.burst(rows, active)  # noqa: E731
    return call


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--rounds", type=positive_int, default=3)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--child", nargs=2, metavar=("KIND", "ON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, on = args.child
        print(json.dumps(first_call(kind, on == "on", args.members)))
        return 0
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for kind in KINDS:
        for r in range(args.rounds):
            for on in ("on", "off")[:: 1 if r % 2 == 0 else -1]:  # who goes first alternates
                command = [sys.executable, "-m", "benchmarks.autograph_trace", "--child", kind, on]
                command += ["--members", str(args.members)]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                cpu, wall = json.loads(done.stdout.splitlines()[-1])
                results.setdefault((kind, on), []).append((cpu, wall))
                print(
                    f"{kind:<10} autograph {on:<3}  first call {cpu:6.2f} s CPU {wall:6.2f} s wall"
                )
    print()
    for kind in KINDS:
        cpu = {on: statistics.median(c for c, _ in results[kind, on]) for on in ("on", "off")}
        wall = {on: statistics.median(w for _, w in results[kind, on]) for on in ("on", "off")}
        label = "default config" if kind == "single" else f"population of {args.members}"
        print(
            f"{label}: median first call {cpu['on']:.2f} -> {cpu['off']:.2f} s CPU, "
            f"{wall['on']:.2f} -> {wall['off']:.2f} s wall without AutoGraph "
            f"(saves {cpu['on'] - cpu['off']:.2f} s CPU)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
