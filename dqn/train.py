"""train(config) / resume(run_dir) -> TrainResult: the DQN loop, its evaluation, logging and
checkpoints (``dqn.checkpoint``, ``dqn.run_state``)."""

from __future__ import annotations

import csv
import json
import math
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import keras
import numpy as np

from dqn import checkpoint
from dqn.agent import DQNAgent
from dqn.config import DQNConfig
from dqn.divergence import check_update, q_bound
from dqn.envs import make_env, solve_return
from dqn.envstate import capture_env_state, restore_env_state
from dqn.errors import CheckpointError, CheckpointWarning, DivergenceError
from dqn.io import atomic_write_text
from dqn.nstep import NStepWindow
from dqn.replay import ReplayBuffer
from dqn.run_state import LoopState, metrics_csv_rows, prepare_resume, save_run_state
from dqn.runtime import configure_blas, configure_tensorflow
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
    stop_signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM)


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


def configure_runtime(config: DQNConfig) -> None:
    """TF and BLAS threads, and op determinism if asked (Keras initializers are seeded)."""
    configure_tensorflow(config.num_threads)
    configure_blas(config.num_threads)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def train(
    config: DQNConfig,
    *,
    network_fn: Callable[[int, int], keras.Model] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    log_tensorboard: bool = True,
) -> TrainResult:
    """Train a DQN agent as configured; write the run folder; return what it produced.

    Raises DivergenceError if the loss, a gradient or |Q| blows up (see ``dqn.divergence``).
    With ``config.num_envs`` > 1 the run steps a vector env (``dqn.vector_train``).
    """
    if config.num_envs > 1:
        from dqn.vector_train import train_vectorized

        return train_vectorized(config, network_fn=network_fn, run_dir=run_dir,
                                progress=progress, log_tensorboard=log_tensorboard)
    configure_runtime(config)
    env = make_env(config.env_id)
    agent = DQNAgent(env.observation_space, env.action_space, config, network_fn)
    replay, run_dir = start_run(config, agent, run_dir)
    obs, _ = env.reset(seed=config.seed)
    loop = LoopState(columns=[*METRICS_COLUMNS, *agent.diagnostic_names()], obs=obs)
    return _run(config, run_dir, env, agent, replay, loop, progress, log_tensorboard)


def start_run(
    config: DQNConfig, agent: DQNAgent, run_dir: str | Path | None
) -> tuple[ReplayBuffer, Path]:
    """A new run's replay buffer (sampling from its own seeded stream) and its folder, with
    the resolved config.yaml written."""
    replay = ReplayBuffer(
        config.buffer_size, agent.obs_dim, np.random.default_rng([config.seed, 2])
    )
    run_dir = Path(run_dir) if run_dir is not None else checkpoint.make_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_yaml(run_dir / "config.yaml")
    return replay, run_dir


def resume(
    run_dir: str | Path, *, progress: bool = True, log_tensorboard: bool = True
) -> TrainResult:
    """Continue a run from its newest good checkpoint, exactly as if it had never stopped.

    A corrupt or incomplete newer checkpoint is skipped with a CheckpointWarning and renamed
    ``corrupt-step-...``. The run's metrics.csv is cut back to the checkpoint's rows.
    """
    run_dir = Path(run_dir)
    ready = prepare_resume(run_dir)
    for line in ready.skipped:
        warnings.warn(
            f"skipping checkpoint {line}; resuming from {ready.checkpoint.name}",
            CheckpointWarning, stacklevel=2,
        )
    config, snapshot = ready.config, ready.env_snapshot
    if snapshot.uncaptured:
        warnings.warn(
            f"{config.env_id} keeps state in {', '.join(snapshot.uncaptured)}, which a checkpoint "
            "cannot capture: the resumed run may differ from an uninterrupted one",
            CheckpointWarning, stacklevel=2,
        )
    env = make_env(config.env_id)
    try:
        restore_env_state(env, snapshot)
    except ValueError as exc:
        raise CheckpointError(
            f"checkpoint {ready.checkpoint.name} does not fit {config.env_id}: {exc}"
        ) from None
    configure_runtime(config)
    agent = DQNAgent.load(ready.checkpoint / "agent")
    checkpoint.set_aside(run_dir, ready.loop.env_step)
    return _run(config, run_dir, env, agent, ready.replay, ready.loop, progress, log_tensorboard)


def _run(
    config: DQNConfig, run_dir: Path, env: gym.Env, agent: DQNAgent, replay: ReplayBuffer,
    loop: LoopState, progress: bool, log_tensorboard: bool,
) -> TrainResult:
    """The loop, from ``loop.env_step + 1`` to the end (or a signal, or divergence)."""
    eval_env = make_env(config.env_id)  # stateless between evaluations: reset with fixed seeds
    threshold = solve_return(config, env)
    bound = q_bound(config, env)
    log = RunLog(run_dir, loop, config.total_env_steps, progress, log_tensorboard)
    metrics = _MetricWindow(loop.window)
    seconds_before = loop.train_seconds + loop.eval_seconds
    start = time.perf_counter()

    def save_checkpoint(step: int) -> None:
        loop.env_step, loop.obs, loop.episode_return = step, obs, episode_return
        loop.window = metrics.rows
        loop.pending = pending.arrays(agent.obs_dim)
        loop.train_seconds = seconds_before + time.perf_counter() - start - loop.eval_seconds
        checkpoint.write_checkpoint(
            run_dir, step,
            lambda folder: save_run_state(folder, agent, replay, loop, capture_env_state(env)),
            config.keep_checkpoints,
        )

    obs, episode_return = loop.obs, loop.episode_return
    pending = NStepWindow(config.n_step, config.gamma)
    if loop.pending:
        pending.load(**loop.pending)
    episode_returns, step, saved_step, stop_signal = loop.episode_returns, loop.env_step, None, None
    try:
        with _Interrupt() as stop:
            for step in range(loop.env_step + 1, config.total_env_steps + 1):
                epsilon = linear_epsilon(step, config)
                action = agent.act(obs, epsilon)
                next_obs, reward, terminated, truncated, _ = env.step(action)
                # terminated, not done: a time-limit cut is not terminal and must bootstrap.
                for t in pending.push(obs, action, reward, next_obs, terminated, truncated):
                    replay.add(*t)
                obs = next_obs
                episode_return += float(reward)
                if terminated or truncated:
                    episode_returns.append(episode_return)
                    episode_return = 0.0
                    obs, _ = env.reset()

                if (step > config.learning_starts_env_steps
                        and step % config.train_every_env_steps == 0):
                    rows = replay.sample_rows(config.batch_size, config.gradient_steps_per_train)
                    values = agent.update_rows(rows)
                    check_update(values, METRIC_NAMES, bound, step)  # before anything is saved
                    metrics.add(values)

                if step % config.eval_every_env_steps == 0 or step == config.total_env_steps:
                    log.write(_evaluate_and_log(config, agent, eval_env, replay, loop, step,
                                                epsilon, metrics.pop(), threshold))

                if step % config.checkpoint_every_env_steps == 0 or step == config.total_env_steps:
                    save_checkpoint(step)
                    saved_step = step
                if step % 250 == 0:
                    log.advance_to(step)
                if stop.signum is not None:
                    stop_signal = stop.signum
                    break
            if stop_signal is not None and saved_step != step:
                save_checkpoint(step)  # a full, resumable checkpoint of where the signal found us
    except DivergenceError as exc:
        _write_summary(run_dir, config, loop, step, threshold, stop_signal, str(exc))
        raise
    finally:
        log.close()

    loop.train_seconds = seconds_before + time.perf_counter() - start - loop.eval_seconds
    return finish(run_dir, config, agent, loop, step, threshold, stop_signal)


class RunLog:
    """Where a run's metrics rows go: metrics.csv (flushed per row), TensorBoard, the bar."""

    def __init__(self, run_dir: Path, loop: LoopState, total: int, progress: bool,
                 log_tensorboard: bool) -> None:
        import tensorflow as tf

        # Rows after the checkpoint (if any) are recomputed: metrics.csv restarts from its rows.
        atomic_write_text(
            run_dir / "metrics.csv", metrics_csv_rows(loop.columns, loop.history, header=True)
        )
        self._file = open(run_dir / "metrics.csv", "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=loop.columns)
        self._tb = tf.summary.create_file_writer(str(run_dir / "tb")) if log_tensorboard else None
        self._bar = _progress_bar(total, loop.env_step, progress)
        self._shown = loop.env_step

    def write(self, row: dict) -> None:
        self._csv.writerow(row)
        self._file.flush()
        if self._tb is not None:
            _write_tensorboard(self._tb, row)
        if self._bar is not None:
            self._bar.set_postfix(
                ret=f"{row['train_return_mean']:.0f}", eps=f"{row['epsilon']:.2f}",
                eval=f"{row['eval_return_mean']:.0f}", refresh=False,
            )

    def advance_to(self, step: int, every: int = 0) -> None:
        """Move the bar to ``step`` if it lags by at least ``every`` steps."""
        if step - self._shown < every:
            return
        if self._bar is not None:
            self._bar.update(step - self._shown)
        self._shown = step

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()


def finish(run_dir, config, agent, loop, step, threshold, stop_signal) -> TrainResult:
    """Write summary.json and return the TrainResult of a run that ended without diverging."""
    summary = _write_summary(run_dir, config, loop, step, threshold, stop_signal, None)
    return TrainResult(
        agent=agent, run_dir=run_dir, history=loop.history,
        episode_returns=loop.episode_returns, first_solve_env_step=loop.first_solve,
        final_eval_mean=loop.eval_mean, final_eval_std=loop.eval_std,
        train_seconds=loop.train_seconds, eval_seconds=loop.eval_seconds,
        interrupted=stop_signal is not None, solve_return=threshold, summary=summary,
        stop_signal=stop_signal,
    )


def _evaluate_and_log(config, agent, eval_env, replay, loop, step, epsilon, window, threshold):
    """Evaluate greedily, update ``loop`` (history, first solve, probe) and return the row."""
    t0 = time.perf_counter()
    final = step >= config.total_env_steps
    episodes = config.final_eval_episodes if final else config.eval_episodes
    loop.eval_mean, loop.eval_std, _ = evaluate(agent, eval_env, episodes, config.eval_seed)
    loop.eval_seconds += time.perf_counter() - t0
    if loop.first_solve is None and threshold is not None and loop.eval_mean >= threshold:
        loop.first_solve = step
    row = _metrics_row(
        step, agent, loop.episode_returns, epsilon, loop.eval_mean, loop.eval_std, window
    )
    if config.diagnostics and loop.probe is None and step > config.learning_starts_env_steps:
        loop.probe = replay.sample(PROBE_SIZE, rng=np.random.default_rng([config.seed, 3]))
    diagnostics = agent.diagnose(loop.probe) if loop.probe is not None else {}
    for name in agent.diagnostic_names():
        row[name] = diagnostics.get(name, float("nan"))
    loop.history.append(row)
    return row


def _write_summary(run_dir, config, loop, step, threshold, stop_signal, diverged) -> dict:
    summary = {
        "env_id": config.env_id,
        "loss": config.loss,
        "seed": config.seed,
        "env_steps": step,
        "interrupted": stop_signal is not None,
        "stop_signal": stop_signal,
        "diverged": diverged,
        "solve_return": threshold,
        "first_solve_env_step": loop.first_solve,
        "final_eval_mean": loop.eval_mean,
        "final_eval_std": loop.eval_std,
        "train_seconds": round(loop.train_seconds, 3),
        "eval_seconds": round(loop.eval_seconds, 3),
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


class _MetricWindow:
    """Aggregates update metrics between two metrics.csv rows (mean, or max for max-metrics)."""

    def __init__(self, rows: list[np.ndarray] | None = None) -> None:
        self.rows: list[np.ndarray] = list(rows or [])  # a checkpoint saves the open window

    def add(self, values: np.ndarray) -> None:
        self.rows.append(values)

    def pop(self) -> np.ndarray | None:
        if not self.rows:
            return None
        rows, self.rows = np.stack(self.rows), []
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


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5)


__all__ = ["TrainResult", "evaluate", "linear_epsilon", "resume", "train"]
