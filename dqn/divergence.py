"""The divergence guard: stop a run whose loss, gradient or Q-values blow up, and say why.

Checked once per update burst on the burst's metrics vector (``dqn.step_metrics.STEP_METRICS``), so
it costs a few numpy comparisons per burst and nothing per env step.

The |Q| bound: a return is at most r_max / (1 - gamma) when every reward is in [-r_max, r_max],
so |Q| far above that is divergence, not learning. Gymnasium 1.x dropped ``Env.reward_range``,
so r_max comes from, in order: the config's ``max_abs_q`` (the bound itself); a finite
``reward_range`` the env still declares (user envs may); the table below for gymnasium's
classic-control envs. Otherwise only NaN and inf stop training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from dqn.config import DQNConfig
from dqn.errors import DivergenceError

BOUND_MULTIPLE = 10.0  # generous: early overestimation can exceed the true bound a few times
# Largest |reward| of one step, from each env's documentation.
KNOWN_REWARD_MAX = {
    "CartPole-v0": 1.0,
    "CartPole-v1": 1.0,  # +1 per step
    "Acrobot-v1": 1.0,  # -1 per step, 0 at the goal
    "MountainCar-v0": 1.0,  # -1 per step
}


def reward_max(env: gym.Env) -> float | None:
    """The largest |reward| of one step if known, else None."""
    reward_range = getattr(env.unwrapped, "reward_range", None)
    if reward_range is not None and all(math.isfinite(r) for r in reward_range):
        return float(max(abs(r) for r in reward_range))
    spec = env.spec
    return KNOWN_REWARD_MAX.get(spec.id) if spec is not None else None


def q_bound(config: DQNConfig, env: gym.Env) -> float:
    """The |Q| above which training stops (inf: only NaN/inf are checked)."""
    if config.max_abs_q is not None:
        return config.max_abs_q
    r_max = reward_max(env)
    if r_max is None or config.gamma >= 1.0:
        return math.inf
    return BOUND_MULTIPLE * r_max / (1.0 - config.gamma)


# The metrics every update computes. The others (TD-error quantiles, zero-gradient fraction) are
# NaN by design when ``config.diagnostics`` is off, so they must not count as divergence.
GUARDED_METRICS = ("loss", "q_mean", "q_abs_max", "grad_norm")


@functools.lru_cache(maxsize=8)
def _indices(names: tuple[str, ...]) -> tuple[list[int], int]:
    return [names.index(n) for n in GUARDED_METRICS], names.index("q_abs_max")


def updates_pass(metrics: np.ndarray, names: Sequence[str], bounds: np.ndarray) -> np.ndarray:
    """Row i of ``metrics`` [M, n] passes ``check_update`` with bound ``bounds[i]``: one
    vectorized test for a population, which calls ``check_update`` (for its message) only on
    the rows that fail it."""
    guarded, q_index = _indices(tuple(names))
    finite = np.isfinite(metrics[:, guarded]).all(axis=1)
    return finite & (metrics[:, q_index] <= bounds)


# Observations larger than this in magnitude are named as the likely cause of a divergence: a
# network's inputs are made for a scale near 1, and its initial weights are sized for it.
LARGE_OBS = 1e4


def check_update(
    metrics: np.ndarray,
    names: Sequence[str],
    bound: float,
    env_step: int,
    checkpointed: bool = True,
    largest_obs: Callable[[], float] | None = None,
) -> None:
    """Raise DivergenceError naming the step, the metric, the cause and the remedy, and what the
    run keeps (``checkpointed``: has it a checkpoint to resume from?). ``largest_obs``: the
    largest |observation| stored so far, asked only when the update failed; above LARGE_OBS
    it is named as the cause (an env's observations of 1e30 had the gradients blamed)."""
    guarded, q_index = _indices(tuple(names))
    values = metrics.tolist()  # plain floats: this runs after every update, so keep it cheap
    for name, i in zip(GUARDED_METRICS, guarded):
        if not math.isfinite(values[i]):
            problem = f"{name} became {values[i]}"
            break
    else:
        if values[q_index] <= bound:
            return
        problem = f"q_abs_max reached {values[q_index]:.4g} > max_abs_q = {bound:.4g}"
    cause = (
        "likely exploding gradients or too high a learning rate: set max_grad_norm (e.g. 10) or "
        "lower learning_rate"
    )
    scale = largest_obs() if largest_obs is not None else 0.0
    if scale > LARGE_OBS:
        cause = (
            f"the observations reach |x| = {scale:.3g}, far from the scale near 1 a network's "
            "inputs are made for, likely the cause: scale them (gymnasium's NormalizeObservation "
            "or TransformObservation); else set max_grad_norm (e.g. 10) or lower learning_rate"
        )
    raise DivergenceError(
        f"training diverged at env step {env_step}: {problem}; {cause}. "
        + ("The last good checkpoint is intact" if checkpointed else "It had no checkpoint yet")
    )
