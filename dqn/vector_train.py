"""Training with ``num_envs`` > 1: a gymnasium vector env, batched acting, fused updates.

Each loop step steps all envs at once, picks their actions in one forward pass, stores the
real transitions in one write, and runs the gradient steps owed for them in one call. The
ratio of gradient steps to transitions is the configured one (``gradient_steps_per_train``
every ``train_every_env_steps`` transitions, after ``learning_starts_env_steps``); what
changes against one env is the order: an update can only follow a whole loop step, so
``num_envs`` transitions are collected with the same weights.

Vector envs reset a finished env on their *next* step (gymnasium's NEXT_STEP autoreset): that
step returns the first observation of the new episode and is not a transition, so it is not
stored and not counted. ``env_step`` counts stored transitions.

Checkpoints hold the agent only (``dqn-evaluate`` and ``DQNAgent.load`` read them); a run
with ``num_envs`` > 1 cannot be resumed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from dqn import checkpoint
from dqn.agent import DQNAgent
from dqn.config import DQNConfig
from dqn.divergence import check_update, q_bound
from dqn.envs import check_spaces, make_env, make_vector_env, solve_return
from dqn.errors import DivergenceError
from dqn.nstep import NStepWindow
from dqn.run_state import LoopState
from dqn.train import (
    METRICS_COLUMNS, RunLog, TrainResult, _evaluate_and_log, _Interrupt, _MetricWindow,
    _write_summary, configure_runtime, finish, linear_epsilon, start_run,
)
from dqn.update import METRIC_NAMES


def multiples_between(lo: int, hi: int, every: int, after: int = 0) -> int:
    """How many multiples of ``every`` lie in (lo, hi] and are > ``after``."""
    lo = max(lo, after)
    return max(hi // every - lo // every, 0)


def train_vectorized(
    config: DQNConfig,
    *,
    network_fn: Callable[[int, int], keras.Model] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    log_tensorboard: bool = True,
) -> TrainResult:
    """``dqn.train.train`` for ``config.num_envs`` > 1 (see the module docstring)."""
    configure_runtime(config)
    n = config.num_envs
    envs = make_vector_env(config.env_id, n)
    check_spaces(envs.single_observation_space, envs.single_action_space)
    agent = DQNAgent(envs.single_observation_space, envs.single_action_space, config, network_fn)
    replay, run_dir = start_run(config, agent, run_dir)
    eval_env = make_env(config.env_id)
    threshold = solve_return(config, eval_env)
    bound = q_bound(config, eval_env)

    obs, _ = envs.reset(seed=config.seed)
    loop = LoopState(columns=[*METRICS_COLUMNS, *agent.diagnostic_names()], obs=obs)
    log = RunLog(run_dir, loop, config.total_env_steps, progress, log_tensorboard)
    metrics = _MetricWindow()
    start = time.perf_counter()

    def save_checkpoint(step: int) -> None:
        checkpoint.write_checkpoint(
            run_dir, step, lambda folder: agent.save(folder / "agent"), config.keep_checkpoints
        )

    resetting = np.zeros(n, bool)  # envs whose next step is an autoreset, not a transition
    windows = [NStepWindow(config.n_step, config.gamma) for _ in range(n)]
    returns = np.zeros(n)
    step, stop_signal = 0, None
    rng = agent.rng
    try:
        with _Interrupt() as stop:
            while step < config.total_env_steps:
                epsilon = linear_epsilon(step, config)
                actions = agent.q_values(obs).argmax(axis=1)
                explore = rng.random(n) < epsilon
                if explore.any():
                    actions = np.where(explore, rng.integers(agent.n_actions, size=n), actions)
                next_obs, rewards, terminated, truncated, _ = envs.step(actions)
                real = ~resetting
                if config.n_step == 1:
                    replay.add_batch(obs[real], actions[real], rewards[real], next_obs[real],
                                     terminated[real])
                else:
                    for i in np.flatnonzero(real):
                        for t in windows[i].push(obs[i], actions[i], rewards[i], next_obs[i],
                                                 terminated[i], truncated[i]):
                            replay.add(*t)
                returns += np.where(real, rewards, 0.0)
                resetting = (terminated | truncated) & real
                for i in np.flatnonzero(resetting):
                    loop.episode_returns.append(float(returns[i]))
                returns[resetting] = 0.0
                obs = next_obs
                before, step = step, step + int(real.sum())

                bursts = multiples_between(before, step, config.train_every_env_steps,
                                           config.learning_starts_env_steps)
                if bursts:
                    rows = replay.sample_rows(config.batch_size,
                                              bursts * config.gradient_steps_per_train)
                    values = agent.update_rows(rows)
                    check_update(values, METRIC_NAMES, bound, step)
                    metrics.add(values)

                done = step >= config.total_env_steps
                if multiples_between(before, step, config.eval_every_env_steps) or done:
                    log.write(_evaluate_and_log(config, agent, eval_env, replay, loop, step,
                                                epsilon, metrics.pop(), threshold))
                if multiples_between(before, step, config.checkpoint_every_env_steps) or done:
                    save_checkpoint(step)
                log.advance_to(step, every=250)
                if stop.signum is not None:
                    stop_signal = stop.signum
                    save_checkpoint(step)
                    break
    except DivergenceError as exc:
        _write_summary(run_dir, config, loop, step, threshold, stop_signal, str(exc))
        raise
    finally:
        log.advance_to(step)
        log.close()
        envs.close()

    loop.train_seconds = time.perf_counter() - start - loop.eval_seconds
    return finish(run_dir, config, agent, loop, step, threshold, stop_signal)


__all__ = ["multiples_between", "train_vectorized"]
