"""train(config) -> TrainResult: the DQN loop, its evaluation, logging and checkpoints."""

from __future__ import annotations

import csv
import math
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import gymnasium as gym
import keras
import numpy as np

from dqn.agent import DQNAgent
from dqn.config import DQNConfig
from dqn.envs import make_env, solve_return
from dqn.replay import ReplayBuffer
from dqn.runtime import configure_tensorflow
from dqn.update import IS_MAX_METRIC, METRIC_NAMES

PROBE_SIZE = 1024  # states of the fixed probe batch for dead-unit and per-layer diagnostics
METRICS_COLUMNS = (
    "env_step", "grad_steps", "episodes", "epsilon", "train_return_mean", "eval_return_mean",
    "eval_return_std", *METRIC_NAMES,
)


def linear_epsilon(env_step: int, config: DQNConfig) -> float:
    """Epsilon at ``env_step``: linear from start to end over the decay fraction, then flat."""
    decay_steps = config.epsilon_decay_fraction * config.total_env_steps
    if decay_steps <= 0:
        return config.epsilon_end
    frac = min(1.0, env_step / decay_steps)
    return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


def evaluate(
    agent: DQNAgent, env: gym.Env, episodes: int, seed: int
) -> tuple[float, float, list[float]]:
    """Greedy returns of ``episodes`` episodes, episode i reset with seed ``seed + i``."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns)), returns


@dataclass
class TrainResult:
    """What a run produced. ``history`` holds the metrics.csv rows as dicts."""

    agent: DQNAgent
    run_dir: Path
    history: list[dict[str, float]]
    episode_returns: list[float]
    first_solve_env_step: int | None
    final_eval_mean: float
    final_eval_std: float
    train_seconds: float
    eval_seconds: float
    interrupted: bool = False
    solve_return: float | None = None
    summary: dict = field(default_factory=dict)


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag checked by the loop, so a checkpoint can be saved."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_Interrupt":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def make_run_dir(config: DQNConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    name = f"{config.env_id.replace('/', '_')}-{config.loss}-seed{config.seed}-{stamp}"
    path = Path(config.output_dir) / name
    path.mkdir(parents=True, exist_ok=False)
    return path


def train(
    config: DQNConfig,
    *,
    network_fn: Callable[[int, int], keras.Model] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    log_tensorboard: bool = True,
) -> TrainResult:
    """Train a DQN agent as configured; write the run folder; return what it produced."""
    configure_tensorflow(config.num_threads)
    import tensorflow as tf

    env = make_env(config.env_id)
    eval_env = make_env(config.env_id)
    threshold = solve_return(config, env)
    agent = DQNAgent(env.observation_space, env.action_space, config, network_fn)
    replay = ReplayBuffer(
        config.buffer_size, agent.obs_dim, np.random.default_rng([config.seed, 2])
    )
    run_dir = Path(run_dir) if run_dir is not None else make_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    writer = tf.summary.create_file_writer(str(run_dir / "tb")) if log_tensorboard else None

    history: list[dict[str, float]] = []
    episode_returns: list[float] = []
    metrics = _MetricWindow()
    first_solve = None
    eval_mean = eval_std = float("nan")
    eval_seconds = 0.0
    interrupted = False

    bar = _progress_bar(config.total_env_steps, progress)
    csv_file = open(run_dir / "metrics.csv", "w", newline="")
    columns = [*METRICS_COLUMNS, *agent.diagnostic_names()]
    probe = None  # fixed probe batch of replay transitions, drawn once learning has started
    csv_writer = csv.DictWriter(csv_file, fieldnames=columns)
    csv_writer.writeheader()

    obs, _ = env.reset(seed=config.seed)
    episode_return = 0.0
    start = time.perf_counter()
    with _Interrupt() as stop:
        for step in range(1, config.total_env_steps + 1):
            epsilon = linear_epsilon(step, config)
            action = agent.act(obs, epsilon)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            # terminated, not done: a time-limit cut is not terminal and must bootstrap.
            replay.add(obs, action, reward, next_obs, terminated)
            obs = next_obs
            episode_return += float(reward)
            if terminated or truncated:
                episode_returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset()

            if step > config.learning_starts_env_steps and step % config.train_every_env_steps == 0:
                batch = replay.sample(config.batch_size, config.gradient_steps_per_train)
                metrics.add(agent.update_raw(batch))

            if step % config.eval_every_env_steps == 0 or step == config.total_env_steps:
                t0 = time.perf_counter()
                eval_mean, eval_std, _ = evaluate(
                    agent, eval_env, config.eval_episodes, config.eval_seed
                )
                eval_seconds += time.perf_counter() - t0
                if first_solve is None and threshold is not None and eval_mean >= threshold:
                    first_solve = step
                row = _metrics_row(
                    step, agent, episode_returns, epsilon, eval_mean, eval_std,
                    metrics.pop(),
                )
                if probe is None and step > config.learning_starts_env_steps:
                    probe = replay.sample(PROBE_SIZE, rng=np.random.default_rng([config.seed, 3]))
                diagnostics = agent.diagnose(probe) if probe is not None else {}
                for name in agent.diagnostic_names():
                    row[name] = diagnostics.get(name, float("nan"))
                history.append(row)
                csv_writer.writerow(row)
                csv_file.flush()
                if writer is not None:
                    _write_tensorboard(writer, row)
                if bar is not None:
                    bar.set_postfix(
                        ret=f"{row['train_return_mean']:.0f}", eps=f"{epsilon:.2f}",
                        eval=f"{eval_mean:.0f}", refresh=False,
                    )

            if step % config.checkpoint_every_env_steps == 0:
                agent.save(run_dir / "checkpoint")
            if bar is not None and step % 250 == 0:
                bar.update(250)
            if stop.signum is not None:
                interrupted = True
                break

    train_seconds = time.perf_counter() - start - eval_seconds
    if bar is not None:
        bar.close()
    csv_file.close()
    if writer is not None:
        writer.close()
    agent.save(run_dir / "checkpoint")
    summary = {
        "env_id": config.env_id,
        "loss": config.loss,
        "seed": config.seed,
        "env_steps": step,
        "interrupted": interrupted,
        "solve_return": threshold,
        "first_solve_env_step": first_solve,
        "final_eval_mean": eval_mean,
        "final_eval_std": eval_std,
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
    }
    import json

    from dqn.io import atomic_write_text

    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return TrainResult(
        agent=agent, run_dir=run_dir, history=history, episode_returns=episode_returns,
        first_solve_env_step=first_solve, final_eval_mean=eval_mean, final_eval_std=eval_std,
        train_seconds=train_seconds, eval_seconds=eval_seconds, interrupted=interrupted,
        solve_return=threshold, summary=summary,
    )


class _MetricWindow:
    """Aggregates update metrics between two metrics.csv rows (mean, or max for max-metrics)."""

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        self._rows.append(values)

    def pop(self) -> np.ndarray | None:
        if not self._rows:
            return None
        rows, self._rows = np.stack(self._rows), []
        return np.where(IS_MAX_METRIC, rows.max(axis=0), rows.mean(axis=0))


def _metrics_row(step, agent, episode_returns, epsilon, eval_mean, eval_std, metrics) -> dict:
    recent = episode_returns[-10:]
    row = {
        "env_step": step,
        "grad_steps": agent.grad_steps,
        "episodes": len(episode_returns),
        "epsilon": round(epsilon, 6),
        "train_return_mean": float(np.mean(recent)) if recent else float("nan"),
        "eval_return_mean": eval_mean,
        "eval_return_std": eval_std,
    }
    for i, name in enumerate(METRIC_NAMES):
        row[name] = float(metrics[i]) if metrics is not None else float("nan")
    return row


def _write_tensorboard(writer, row: dict) -> None:
    import tensorflow as tf

    with writer.as_default(step=int(row["env_step"])):
        for key, value in row.items():
            if key != "env_step" and isinstance(value, float) and math.isfinite(value):
                tf.summary.scalar(key, value)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", dynamic_ncols=True, mininterval=0.5)


__all__ = ["TrainResult", "evaluate", "linear_epsilon", "train"]
