"""What a burst costs through the learner process against in place, in a process where
TensorFlow ran first (its pools then have one thread per core): the round trip that
``dqn.learner_process.MIN_BURST_FLOP`` weighs against the fixed threads.

    python -m benchmarks.learner_process_cost            # [64, 64] x 1 step, default x 128
    python -m benchmarks.learner_process_cost --shape 120,84:1

Each shape is HIDDEN:K (hidden sizes, gradient steps per burst), batch 64, on random rows.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.args import Parser


def measure(hidden: tuple[int, ...], k: int) -> dict[str, float]:
    from benchmarks.rows import random_rows
    from dqn import DQNConfig, losses
    from dqn.learner_process import ProcessLearner, burst_flop
    from dqn.networks import FlatNetwork, build_mlp
    from dqn.tf_learner import TFLearner

    config = DQNConfig(hidden_sizes=hidden, batch_size=64, gradient_steps_per_train=k)
    net = FlatNetwork(build_mlp(4, 2, hidden, "relu", 0))
    rows = random_rows((k, 64), 4, 2, terminated=0.0)
    here = TFLearner(net.forward, losses.get(config.loss), config, 4, net.read())
    there = ProcessLearner(config, 4, 2, net.read())
    there.start()
    calls = max(20, 2000 // k)
    out = {"gflop": burst_flop(config, net.shapes) / 1e9}
    try:
        for name, learner in (("in place", here), ("learner process", there)):
            learner.burst(rows)  # compile
            t = time.perf_counter()
            for _ in range(calls):
                learner.burst(rows)
            out[name] = (time.perf_counter() - t) / calls * 1e3
        out["mb"] = resident_mb(there._proc.pid)
    finally:
        there.close()
    return out


def resident_mb(pid: int) -> float:
    """Resident memory of a process (Linux VmRSS), in MB; NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            line = next(x for x in fh if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1000
    except (OSError, StopIteration):
        return float("nan")


def shape(text: str) -> tuple[tuple[int, ...], int]:
    """A ``--shape``, HIDDEN:K (hidden sizes, gradient steps per burst): ((sizes), K)."""
    hidden, colon, k = text.partition(":")
    try:
        sizes, steps = tuple(int(h) for h in hidden.split(",")), int(k)
    except ValueError:
        sizes, steps = (), 0
    if not colon or not sizes or min(*sizes, steps) <= 0:
        raise argparse.ArgumentTypeError(
            f"must be HIDDEN:K, hidden sizes and gradient steps per burst as positive integers "
            f"(e.g. 64,64:1 or 120,84:128), got {text!r}"
        )
    return sizes, steps


def main(argv: list[str] | None = None) -> None:
    p = Parser(__file__, __doc__)
    p.add_argument("--shape", nargs="+", type=shape, default=[((64, 64), 1), ((256, 256), 128)])
    args = p.parse_args(argv)
    import tensorflow as tf

    (tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()  # TensorFlow first, as in a notebook
    for sizes, k in args.shape:
        r = measure(sizes, k)
        hidden = ",".join(map(str, sizes))
        print(
            f"[{hidden}] x {k} steps ({r['gflop']:.3f} GFLOP): ms per burst in place "
            f"{r['in place']:.3f}, through the learner process {r['learner process']:.3f}; "
            f"learner process resident {r['mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
