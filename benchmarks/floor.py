"""The compute floor of a run: matmul FLOPs of its gradient steps over a measured matmul rate.

No library can train faster than the arithmetic of its forward and backward passes at the
machine's one-thread matmul speed; the ratio of a library's wall time to this floor says how
much of its time goes to everything else (framework calls, replay, bookkeeping).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from benchmarks.settings import Settings, dqn_overrides
from dqn.config import DQNConfig, total_grad_steps


def mlp_forward_flops(batch: int, sizes: Sequence[int]) -> int:
    """Matmul FLOPs of one forward pass of an MLP with layer widths ``sizes`` (input first).

    [m, k] x [k, n] is m*n dot products of length k: 2*m*k*n FLOPs (a multiply and an add each).
    Bias adds and activations are O(m*n) and left out.
    """
    return sum(2 * batch * k * n for k, n in zip(sizes[:-1], sizes[1:]))


def grad_step_flops(
    obs_dim: int, hidden_sizes: Sequence[int], n_actions: int, batch: int, double_dqn: bool = False
) -> int:
    """Matmul FLOPs of one DQN gradient step on a batch.

    Forward of the online net on s_tm1, forward of the target net on s_t (and of the online net
    on s_t too for double DQN), then backward through the online net: per layer dW = x^T dout
    costs one forward's worth, dx = dout W^T another, except at the input layer, where no dx is
    needed. So backward is a little under twice the forward.
    """
    sizes = [obs_dim, *hidden_sizes, n_actions]
    forward = mlp_forward_flops(batch, sizes)
    backward = 2 * forward - 2 * batch * sizes[0] * sizes[1]
    next_forwards = 2 if double_dqn else 1
    return forward * (1 + next_forwards) + backward


def grad_steps(s: Settings) -> int:
    """Gradient steps of a whole run with these settings, as dqn counts them.

    ``dqn.config.total_grad_steps`` of the matching config: a burst after every env step that is
    a multiple of train_every and past learning_starts. SB3 takes as many (it collects
    train_freq steps, then trains if past learning_starts).
    """
    return total_grad_steps(DQNConfig().replace(**dqn_overrides(s)))


def matmul_rate(m: int, k: int, n: int, seconds: float = 1.0, repeats: int = 5) -> float:
    """FLOP/s of a float32 numpy [m, k] x [k, n] matmul, best of ``repeats`` timed loops.

    Call it in a process started with OPENBLAS_NUM_THREADS=1 (as the worker is) for one thread.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    loops = 10
    while True:  # size the timed loop to about seconds / repeats
        t0 = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        if time.perf_counter() - t0 > seconds / repeats / 4:
            break
        loops *= 4
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - t0) / loops)
    return 2 * m * k * n / best


def work_matmul(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``matmul``: the one-thread matmul rate of ``job["shape"]``."""
    import numpy as np

    m, k, n = job["shape"]
    rate = matmul_rate(m, k, n, seconds=job["seconds"])
    return {
        "flops_per_second": rate,
        "how": f"numpy {np.__version__} float32 [{m},{k}]x[{k},{n}] matmul, 1 thread",
    }
