"""How far a population's gradient step can get to the compute floor: ``python -m
benchmarks.learner_anatomy [--members 25] [--hidden 256]``.

The loss study's target (p2) is a wall time within 1.25x of its compute floor, the matmul FLOPs of
its gradient steps at numpy's one-thread [64, H] x [H, H] rate. In one process (one thread), side
by side, this measures:

- numpy: that rate (``benchmarks.floor.matmul_rate``, the floor's own measurement), and the
  rate of a [1024, 1024] x [1024, 1024] product, the core's best float32 matmul rate, which says
  how close the floor's rate already is to what the core can do at all;
- XLA matmuls: the hidden layer's four [64, H] x [H, H]-sized products of a DQN step (forward of
  the online and of the target net, dx and dW of the backward pass) for M stacked members, as
  batched matmuls in one compiled loop per group of members (the learner's groups), with nothing
  else in it but an add that keeps every product used;
- the whole step of ``dqn.tf_population`` for the same members (what ``population_scaling``
  times), alternately with the same program with Adam's update swapped for a plain gradient
  step (the same passes over the gradient and parameters, without the moments): what Adam's
  elementwise work costs of the step;
- the Q-head's two backward products alone, through ``tf.matmul``'s gradient (XLA dots) and as
  the learner computes them (``narrow_matmul``), in microseconds per member and step.

If XLA's matmuls alone run slower than numpy's, a TensorFlow learner cannot reach the floor
whatever else it saves: the ratio numpy rate / XLA rate is a lower bound of learner / floor.
A wall time of ``x`` times the floor means the study's matmul FLOPs, over its whole wall time
and all cores, ran at ``floor rate / x``: (p2)'s 1.25x asks for 80% of the floor's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks.args import Parser, positive_float, positive_int
from benchmarks.population_scaling import BATCH, K, default_shapes

# (p2)'s target: the loss study's wall time at most this many times its compute floor.
P2_TARGET = 1.25
# The side of the square product whose rate stands for the core's best float32 matmul rate:
# large enough that packing and loop overheads vanish (numpy's rate is flat from here on).
BEST = 1024


def xla_matmul_rate(members: int, hidden: int, repeats: int = 3) -> float:
    """FLOP/s of the step's four hidden-layer products, batched over members, in XLA, in the
    learner's groups of members (``dqn.tf_population.group_size``), each through all K steps."""
    import numpy as np
    import tensorflow as tf

    from dqn.tf_population import group_size

    group = group_size(default_shapes(hidden))
    spans = [(a, min(a + group, members)) for a in range(0, members, group)]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((members, BATCH, hidden), dtype=np.float32))
    d = tf.constant(rng.standard_normal((members, BATCH, hidden), dtype=np.float32))
    w = tf.constant(0.01 * rng.standard_normal((members, hidden, hidden), dtype=np.float32))

    def chain(x, d, w):
        def body(i, x, d, acc):
            online = tf.matmul(x, w)
            target = tf.matmul(d, w)
            dx = tf.matmul(d, w, transpose_b=True)
            dw = tf.matmul(x, d, transpose_a=True)
            # Each product feeds the next iteration, so none is dead code and none is hoisted.
            return i + 1, online + target, dx, acc + dw

        start = (tf.constant(0), x, d, tf.zeros_like(w))
        return tf.while_loop(lambda i, *_: i < K, body, start)[3]

    @tf.function(jit_compile=True)
    def groups(x, d, w):
        return [chain(x[a:b], d[a:b], w[a:b]) for a, b in spans]

    [t.numpy() for t in groups(x, d, w)]  # compiles
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        [t.numpy() for t in groups(x, d, w)]
        best = min(best, time.perf_counter() - t0)
    return 4 * 2 * BATCH * hidden * hidden * members * K / best


def head_backward_us(members: int, hidden: int, actions: int = 2, repeats: int = 3) -> dict:
    """Microseconds per member and step of a Q-head's two backward products, dy W^T and x^T dy
    ([B, hidden] -> ``actions``), through ``tf.matmul``'s gradient (XLA dots) and through
    ``dqn.tf_population.narrow_matmul``'s (column-by-column multiply-adds), each taken by a tape
    as the learner takes it, in a compiled K-step loop (neither gradient reads the forward's
    output, so XLA drops that matmul in both)."""
    import numpy as np
    import tensorflow as tf

    from dqn.tf_population import narrow_matmul

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((members, BATCH, hidden), dtype=np.float32))
    w = tf.constant(rng.standard_normal((members, hidden, actions), dtype=np.float32))
    dy = tf.constant(rng.standard_normal((members, BATCH, actions), dtype=np.float32))

    def through(layer):  # both gradients of the layer, as the learner's tape takes them
        def products(x, w, dy):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = layer(x, w)
            return tape.gradient(y, [x, w], output_gradients=dy)

        return products

    out = {}
    for name, products in (("dots", through(tf.matmul)), ("columns", through(narrow_matmul))):

        @tf.function(jit_compile=True)
        def loop(x, w, dy, products=products):
            def body(i, x, acc):
                dx, dw = products(x, w, dy)
                # dx feeds the next step and dw a sum, so neither product is dead or hoisted.
                return i + 1, x + 1e-3 * dx, acc + dw

            return tf.while_loop(lambda i, *_: i < K, body, (0, x, tf.zeros_like(w)))[2]

        loop(x, w, dy).numpy()  # compiles
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            loop(x, w, dy).numpy()
            best = min(best, time.perf_counter() - t0)
        out[name] = best / (K * members) * 1e6
    return out


def sgd_update(params, grads, m, v, step, learning_rate, **_):
    """``adam_update``'s signature, a plain gradient step: the moments pass through unchanged."""
    return params - learning_rate * grads, m, v, step + 1.0


def plain_step_population(members: int, hidden: int):
    """``random_population``'s learner with ``sgd_update`` in Adam's place, after one burst:
    the program is traced with the plain step, so it keeps it for every later call."""
    from unittest import mock

    import dqn.tf_population
    from benchmarks.population_scaling import random_population

    with mock.patch.object(dqn.tf_population, "adam_update", sgd_update):
        learner, rows, active = random_population(members, hidden)
        learner.burst(rows, active)
    return learner


def adam_share(members: int, hidden: int, rounds: int = 5) -> dict:
    """Seconds per step of the population learner and of the same learner with ``sgd_update``
    in Adam's place, each the best of ``rounds`` bursts taken alternately (one of each per
    round, so that a change in the machine's speed reaches both)."""
    from benchmarks.population_scaling import random_population

    adam, rows, active = random_population(members, hidden)
    adam.burst(rows, active)  # compiles
    sgd = plain_step_population(members, hidden)
    best = {"adam": float("inf"), "sgd": float("inf")}
    for _ in range(rounds):
        for name, learner in (("adam", adam), ("sgd", sgd)):
            t0 = time.perf_counter()
            learner.burst(rows, active)
            best[name] = min(best[name], (time.perf_counter() - t0) / K)
    return best


def measure(members: int, hidden: int, seconds: float) -> dict:
    from benchmarks.floor import grad_step_flops, matmul_rate
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    numpy_rate = matmul_rate(BATCH, hidden, hidden, seconds=seconds)
    best_rate = matmul_rate(BEST, BEST, BEST, seconds=seconds)
    xla_rate = xla_matmul_rate(members, hidden)
    head = head_backward_us(members, hidden)
    share = adam_share(members, hidden)  # its Adam learner is the whole step's measurement
    flops = grad_step_flops(4, (hidden, hidden), 2, BATCH) * members
    return {
        "numpy": numpy_rate / 1e9,
        "best": best_rate / 1e9,
        "xla": xla_rate / 1e9,
        "step": flops / share["adam"] / 1e9,
        "adam_fraction": 1.0 - share["sgd"] / share["adam"],
        "head_dots_us": head["dots"],
        "head_columns_us": head["columns"],
    }


def work(job: dict) -> dict:
    """Worker ``anatomy`` (``benchmarks.worker``): the three rates, in GFLOP/s."""
    return measure(job["members"], job["hidden"], job["seconds"])


def report(r: dict, members: int, hidden: int) -> str:
    """The printout for rates ``r`` (GFLOP/s of ``numpy``, ``xla`` and ``step``; when measured,
    ``best``, the large product's rate, the Q-head's ``head_*_us`` and ``adam_fraction``)."""
    m, h = members, hidden
    lines = [
        f"| one thread, {m} members of [{h}, {h}], batch {BATCH} | GFLOP/s | floor rate / this |",
        "|---|---:|---:|",
        f"| numpy [{BATCH}, {h}] x [{h}, {h}] (the floor's rate) | {r['numpy']:.1f} | 1.00 |",
    ]
    rows = [
        ("XLA: the step's four hidden-layer products alone", r["xla"]),
        ("XLA: the whole population step (matmul FLOPs / time)", r["step"]),
    ]
    lines += [f"| {label} | {rate:.1f} | {r['numpy'] / rate:.2f} |" for label, rate in rows]
    if "head_dots_us" in r:
        lines += [
            "",
            f"| the Q-head's backward ([{BATCH}, {h}] -> 2: dy W^T and x^T dy) | us per "
            "member-step |",
            "|---|---:|",
            f"| backward as XLA dots (tf.matmul's gradient) | {r['head_dots_us']:.1f} |",
            f"| backward column by column (dqn.tf_population.narrow_matmul) | "
            f"{r['head_columns_us']:.1f} |",
        ]
    if "adam_fraction" in r:
        lines.append(
            f"\nAdam's update is {r['adam_fraction']:.0%} of the whole step: the step with a plain "
            "gradient step in its place (the same program otherwise, timed alternately with it) "
            f"takes {1 - r['adam_fraction']:.0%} of its time."
        )
    if "best" in r:
        lines.append(
            f"\nThe floor's rate is {r['numpy'] / r['best']:.0%} of numpy's [{BEST}, {BEST}] x "
            f"[{BEST}, {BEST}] rate, {r['best']:.1f} GFLOP/s, the core's best: a study at "
            f"{P2_TARGET}x its floor runs its matmuls at {r['numpy'] / r['best'] / P2_TARGET:.0%} "
            "of that over its whole wall time."
        )
    lines.append(
        f"\nFrom its matmuls alone, a TensorFlow learner of these members takes at least "
        f"{r['numpy'] / r['xla']:.2f}x the compute floor; its whole step takes "
        f"{r['numpy'] / r['step']:.2f}x."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--hidden", type=positive_int, default=256)
    p.add_argument("--seconds", type=positive_float, default=2.0, help="timing of the numpy rate")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child's job
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.members, args.hidden, args.seconds)))
        return 0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.learner_anatomy", "--one"]
    cmd += ["--members", str(args.members), "--hidden", str(args.hidden)]
    cmd += ["--seconds", str(args.seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    print(report(json.loads(out.stdout.strip().splitlines()[-1]), args.members, args.hidden))
    return 0


if __name__ == "__main__":
    sys.exit(main())
