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

import csv
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
from dqn.io import atomic_write_text
from dqn.replay import ReplayBuffer
from dqn.run_state import LoopState, metrics_csv_rows
from dqn.train import (
    METRICS_COLUMNS, TrainResult, _evaluate_and_log, _Interrupt, _MetricWindow, _progress_bar,
    _write_summary, _write_tensorboard, configure_runtime, linear_epsilon,
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
    import tensorflow as tf

    configure_runtime(config)
    n = config.num_envs
    envs = make_vector_env(config.env_id, n)
    check_spaces(envs.single_observation_space, envs.single_action_space)
    agent = DQNAgent(envs.single_observation_space, envs.single_action_space, config, network_fn)
    replay = ReplayBuffer(config.buffer_size, agent.obs_dim, np.random.default_rng([config.seed, 2]))
    run_dir = Path(run_dir) if run_dir is not None else checkpoint.make_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    eval_env = make_env(config.env_id)
    threshold = solve_return(config, eval_env)
    bound = q_bound(config, eval_env)

    obs, _ = envs.reset(seed=config.seed)
    loop = LoopState(columns=[*METRICS_COLUMNS, *agent.diagnostic_names()], obs=obs)
    atomic_write_text(run_dir / "metrics.csv", metrics_csv_rows(loop.columns, [], header=True))
    csv_file = open(run_dir / "metrics.csv", "a", newline="")
    csv_writer = csv.DictWriter(csv_file, fieldnames=loop.columns)
    writer = tf.summary.create_file_writer(str(run_dir / "tb")) if log_tensorboard else None
    bar = _progress_bar(config.total_env_steps, 0, progress)
    metrics = _MetricWindow()
    start = time.perf_counter()

    def save_checkpoint(step: int) -> None:
        checkpoint.write_checkpoint(
            run_dir, step, lambda folder: agent.save(folder / "agent"), config.keep_checkpoints
        )

    resetting = np.zeros(n, bool)  # envs whose next step is an autoreset, not a transition
    returns = np.zeros(n)
    step, shown, stop_signal, epsilon = 0, 0, None, config.epsilon_start
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
                replay.add_batch(obs[real], actions[real], rewards[real], next_obs[real],
                                 terminated[real])
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
                    row = _evaluate_and_log(config, agent, eval_env, replay, loop, step, epsilon,
                                            metrics.pop(), threshold)
                    csv_writer.writerow(row)
                    csv_file.flush()
                    if writer is not None:
                        _write_tensorboard(writer, row)
                    if bar is not None:
                        bar.set_postfix(eval=f"{loop.eval_mean:.0f}", eps=f"{epsilon:.2f}",
                                        refresh=False)
                if multiples_between(before, step, config.checkpoint_every_env_steps) or done:
                    save_checkpoint(step)
                if bar is not None and step - shown >= 250:
                    bar.update(step - shown)
                    shown = step
                if stop.signum is not None:
                    stop_signal = stop.signum
                    save_checkpoint(step)
                    break
    except DivergenceError as exc:
        _write_summary(run_dir, config, loop, step, threshold, stop_signal, str(exc))
        raise
    finally:
        csv_file.close()
        envs.close()
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.update(step - shown)
            bar.close()

    loop.train_seconds = time.perf_counter() - start - loop.eval_seconds
    summary = _write_summary(run_dir, config, loop, step, threshold, stop_signal, None)
    return TrainResult(
        agent=agent, run_dir=run_dir, history=loop.history,
        episode_returns=loop.episode_returns, first_solve_env_step=loop.first_solve,
        final_eval_mean=loop.eval_mean, final_eval_std=loop.eval_std,
        train_seconds=loop.train_seconds, eval_seconds=loop.eval_seconds,
        interrupted=stop_signal is not None, solve_return=threshold, summary=summary,
        stop_signal=stop_signal,
    )


__all__ = ["multiples_between", "train_vectorized"]
