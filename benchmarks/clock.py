"""The step clock: both libraries are timed by the same wrapper around their training env.

``StepClock`` records the wall time after every env step, so the time between two steps holds
everything a library does per step (acting, replay, updates, its own bookkeeping). Where a dqn
run evaluates, the windows during which its separate evaluation env ran are taken out
(``eval_windows``, ``train_seconds_at``). ``register_clocked_env`` is how the clock reaches
inside ``dqn.loop.train``, which makes its own envs from ``config.env_id``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym


class StepClock(gym.Wrapper):
    """Records ``time.perf_counter()`` after every ``step`` and every ``reset``.

    ``step_times[i]`` is the time at which env step i + 1 returned; ``resets`` holds
    (steps taken before this reset, its seed, the time it returned).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.step_times: list[float] = []
        self.resets: list[tuple[int, int | None, float]] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        out = self.env.reset(seed=seed, options=options)
        self.resets.append((len(self.step_times), seed, time.perf_counter()))
        return out

    def step(self, action):
        out = self.env.step(action)
        self.step_times.append(time.perf_counter())
        return out

    @property
    def start(self) -> float:
        """When training started: the return of the first reset."""
        return self.resets[0][2]

    def elapsed_at(self, steps: Sequence[int]) -> dict[int, float]:
        """Seconds from the first reset to the return of each env step in ``steps`` (1-based)."""
        return {s: self.step_times[s - 1] - self.start for s in steps}


def eval_windows(
    resets: Sequence[tuple[int, int | None, float]], step_times: Sequence[float], first_seed: int
) -> list[tuple[float, float]]:
    """(start, end) times of each evaluation on a separate evaluation env.

    An evaluation starts with the reset seeded ``first_seed`` (its episode 0) and ends with the
    last step before the next such reset (or the last step of all).
    """
    starts = [(n, t) for n, seed, t in resets if seed == first_seed]
    windows = []
    for i, (n_before, t_start) in enumerate(starts):
        n_end = starts[i + 1][0] if i + 1 < len(starts) else len(step_times)
        windows.append((t_start, step_times[n_end - 1] if n_end > n_before else t_start))
    return windows


def train_seconds_at(
    clock_start: float, step_time: float, windows: Sequence[tuple[float, float]]
) -> float:
    """Wall seconds from ``clock_start`` to ``step_time`` less the evaluation windows before it."""
    evaluating = sum(end - start for start, end in windows if end <= step_time)
    return step_time - clock_start - evaluating


def register_clocked_env(env_id: str, made: list[StepClock]) -> str:
    """Register an id whose ``gym.make`` is ``StepClock(gym.make(env_id))``; return the id.

    Every env made through it is appended to ``made``.
    """
    spec = gym.spec(env_id)
    clocked_id = "dqn_bench/" + env_id.replace("/", "_")

    def make(**kwargs) -> StepClock:
        clock = StepClock(gym.make(env_id, **kwargs))
        made.append(clock)
        return clock

    # The inner env already has its time limit and checks; the outer id adds no wrapper.
    gym.register(
        clocked_id,
        entry_point=make,
        reward_threshold=spec.reward_threshold,
        order_enforce=False,
        disable_env_checker=True,
    )
    return clocked_id
