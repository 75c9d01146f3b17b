"""What one update costs on this machine, and how much of it is TensorFlow's call overhead.

    python -m benchmarks.call_overhead      # from the repository root

Prints microseconds per call, best of 3 timed loops, one thread:
- a trivial XLA-compiled function (4 small tensors in, 4 out) called through the public
  ``ConcreteFunction`` and through ``dqn.fastcall``: the fixed cost of any TF call;
- one gradient step of a [64, 64] Q-network on a batch of 64 (regimes (b), (c) of
  benchmarks/bench.py) and of a [120, 84] one on a batch of 128 (regime (e)) through
  ``DQNAgent.update_rows``, with ``learner: tensorflow`` and ``learner: numpy``.
"""

from __future__ import annotations

import os
import sys
import time

from benchmarks.args import Parser

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def best_of(fn, loops: int, repeats: int = 3) -> float:
    """Microseconds per call of ``fn()``, the best of ``repeats`` timed loops."""
    for _ in range(loops // 10):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best * 1e6


def random_replay():
    """A replay of 5,000 random CartPole-shaped transitions to sample update rows from."""
    import numpy as np

    from dqn.replay import ReplayBuffer

    replay = ReplayBuffer(10_000, 4, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(5_000):
        replay.add(
            rng.normal(size=4), rng.integers(2), 1.0, rng.normal(size=4), rng.random() < 0.05
        )
    return replay


def main(argv: list[str] | None = None) -> int:
    # No options: the parser gives --help and refuses stray arguments (exit 2) before timing.
    Parser(__file__, __doc__).parse_args(argv)
    from dqn.runtime import configure_blas, import_tensorflow_quietly

    tf = import_tensorflow_quietly(1)
    configure_blas(1)
    import gymnasium as gym

    from dqn import DQNAgent, DQNConfig
    from dqn.fastcall import flat_caller, is_fast, public_caller

    size = 4_610  # parameters of a [4 -> 64 -> 64 -> 2] MLP
    args = (
        tf.zeros([size]),
        tf.zeros([3 * size + 1]),
        tf.constant(0, tf.int64),
        tf.zeros([1, 64, 11]),
    )

    @tf.function(jit_compile=True)
    def trivial(online, rest, steps, rows):
        return online + 1.0, rest + 1.0, steps + 1, tf.reduce_sum(rows, axis=[0, 1])

    concrete = trivial.get_concrete_function(*args)
    fast, public = flat_caller(concrete, args), public_caller(concrete)
    public_us = best_of(lambda: public(*args), 2000)
    print(f"trivial XLA call, public ConcreteFunction call: {public_us:6.0f} us")
    print(
        f"trivial XLA call, dqn.fastcall ({'direct' if is_fast(fast) else 'fallback'}):"
        f"{best_of(lambda: fast(*args), 2000):14.0f} us"
    )

    env = gym.make("CartPole-v1")
    replay = random_replay()
    for hidden, batch in (((64, 64), 64), ((120, 84), 128)):
        rows = replay.sample_rows(batch, 1)
        for learner in ("tensorflow", "numpy"):
            config = DQNConfig(
                hidden_sizes=hidden,
                batch_size=batch,
                max_grad_norm=10.0,
                learning_rate_end=None,
                learner=learner,
            )
            agent = DQNAgent(env.observation_space, env.action_space, config)
            us = best_of(lambda agent=agent, rows=rows: agent.update_rows(rows), 1000)
            net = f"[{hidden[0]}, {hidden[1]}]"
            print(
                f"one {net} gradient step, batch {batch}, learner {learner + ':':11s} {us:6.0f} us"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
