"""One burst of the default config's learner (128 gradient steps of [256, 256], batch 64) with
TensorFlow's pools at one thread and at two, each in fresh processes: the reason the learner
moves to a process of its own when TensorFlow ran before dqn could set its threads.

    python -m benchmarks.burst_threads [--processes 5] [--bursts 20]

Prints ms per burst and the CPU seconds per wall second of each process (2 = both cores busy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.args import Parser, positive_int

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"

CHILD = """
import json, os, sys, time
import tensorflow as tf
threads, bursts = int(sys.argv[1]), int(sys.argv[2])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
import gymnasium as gym
from dqn import DQNConfig, losses
from dqn.networks import FlatNetwork, build_mlp
from dqn.tf_learner import TFLearner
from benchmarks.rows import random_rows
config = DQNConfig.from_yaml(sys.argv[3])
env = gym.make(config.env_id)
obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)
net = FlatNetwork(build_mlp(obs_dim, n_actions, config.hidden_sizes, config.activation, 0))
learner = TFLearner(net.forward, losses.get(config.loss), config, obs_dim, net.read())
k, b = config.gradient_steps_per_train, config.batch_size
rows = random_rows((k, b), obs_dim, n_actions, terminated=0.05)
learner.burst(rows)  # compile
t, c = time.perf_counter(), os.times()
for _ in range(bursts):
    learner.burst(rows)
wall, c1 = time.perf_counter() - t, os.times()
cpu = c1.user - c.user + c1.system - c.system
print(json.dumps({"ms": 1000 * wall / bursts, "cpu_per_wall": cpu / wall}))
"""


def one(threads: int, bursts: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(bursts), str(CONFIG)],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", **__import__("os").environ},
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = Parser(__file__, __doc__)
    p.add_argument("--processes", type=positive_int, default=5)
    p.add_argument("--bursts", type=positive_int, default=20)
    args = p.parse_args(argv)
    for threads in (1, 2):
        runs = [one(threads, args.bursts) for _ in range(args.processes)]
        ms = ", ".join(f"{r['ms']:.0f}" for r in runs)
        cpu = ", ".join(f"{r['cpu_per_wall']:.1f}" for r in runs)
        print(f"{threads} thread{'s' if threads > 1 else ''}: ms per burst {ms}; cpu/wall {cpu}")


if __name__ == "__main__":
    main()
