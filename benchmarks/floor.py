"""The compute floor of a run: matmul FLOPs of its gradient steps over a measured matmul rate.

No library can train faster than the arithmetic of its forward and backward passes at the
machine's one-thread matmul speed; the ratio of a library's wall time to this floor says how
much of its time goes to everything else (framework calls, replay, bookkeeping).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.settings import Settings, dqn_overrides
from dqn.config import DQNConfig, total_grad_steps
from dqn.learner import grad_step_flops, mlp_forward_flops  # noqa: F401 (re-exported)


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
