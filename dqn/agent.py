"""DQNAgent: online and target Q-networks, Adam, and one compiled update.

The math lives in small pure functions (``td_targets``, ``sync_target``); the class holds the
networks, the optimizer and two counters, and calls them.

Speed without changing the algorithm: a burst of K gradient steps is ONE compiled call
(XLA, ``tf.while_loop``) fed with K batches sampled up front from the numpy replay buffer; the
replay buffer does not change during a burst, so this is exactly K sequential updates. Actions
come from a numpy mirror of the online weights, refreshed after each burst.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from dqn import losses
from dqn.config import DQNConfig
from dqn.errors import CheckpointError, UnsupportedSpaceError
from dqn.io import atomic_write_text, commit_dir, fresh_tmp_dir
from dqn.networks import NumpyMLP, build_mlp
from dqn.replay import Batch

METRIC_NAMES = ("loss", "td_error_abs_mean", "zero_grad_fraction", "q_mean", "grad_norm")
_CHECKPOINT_FILES = ("config.yaml", "agent.json", "online.keras", "target.keras", "optimizer.npz")
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------- pure functions
def td_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    gamma: float,
    next_q_target: tf.Tensor,
    next_q_online: tf.Tensor | None = None,
) -> tf.Tensor:
    """r_t + gamma * (1 - terminated_t) * v(s_t), shape [batch].

    v(s_t) = max_a Q_target(s_t, a), or with Double DQN Q_target(s_t, argmax_a Q_online(s_t, a)).
    Only true termination stops the bootstrap; a time-limit truncation is stored as not terminated.
    """
    if next_q_online is None:
        next_v = tf.reduce_max(next_q_target, axis=1)
    else:
        best = tf.argmax(next_q_online, axis=1, output_type=tf.int32)
        next_v = tf.gather(next_q_target, best, batch_dims=1)
    return rewards + gamma * (1.0 - terminated) * next_v


def sync_target(target_vars: list[tf.Variable], online_vars: list[tf.Variable], tau: float) -> None:
    """target <- tau * online + (1 - tau) * target; tau == 1 is an exact copy."""
    for t, o in zip(target_vars, online_vars):
        t.assign(o if tau == 1.0 else tau * o + (1.0 - tau) * t)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    """(obs_dim, n_actions) for a 1-D Box observation and a Discrete action space, else an error."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedSpaceError(
            f"unsupported action space {action_space}: DQN needs a Discrete action space"
        )
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UnsupportedSpaceError(
            f"unsupported observation space {observation_space}: this DQN needs a 1-D Box "
            "(vector observations); flatten images or dicts with a gymnasium wrapper first"
        )
    if int(action_space.start) != 0:
        raise UnsupportedSpaceError(
            f"unsupported action space {action_space}: Discrete actions must start at 0"
        )
    return int(observation_space.shape[0]), int(action_space.n)


# ---------------------------------------------------------------------- the agent
class DQNAgent:
    """Deep Q-learning agent for vector observations and discrete actions.

    ``network_fn(obs_dim, n_actions) -> keras.Model`` replaces the default MLP; it is called
    twice, for the online and the target network, which must not share variables.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: DQNConfig,
        network_fn: Callable[[int, int], keras.Model] | None = None,
    ):
        self.config = config
        self.obs_dim, self.n_actions = check_spaces(observation_space, action_space)
        if network_fn is None:

            def network_fn(obs_dim: int, n_actions: int) -> keras.Model:
                return build_mlp(
                    obs_dim, n_actions, config.hidden_sizes, config.activation, config.seed
                )

        self.online = network_fn(self.obs_dim, self.n_actions)
        self.target = network_fn(self.obs_dim, self.n_actions)
        if {id(v) for v in self.online.weights} & {id(v) for v in self.target.weights}:
            raise ValueError("network_fn must build a new model each call (no shared variables)")
        sync_target(self.target.weights, self.online.weights, 1.0)
        self.optimizer = keras.optimizers.Adam(
            learning_rate=config.learning_rate, epsilon=config.adam_epsilon
        )
        self.optimizer.build(self.online.trainable_variables)
        self.grad_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="grad_steps")
        self.rng = np.random.default_rng([config.seed, 1])  # exploration only
        self._loss_fn = losses.get(config.loss)
        self._burst_fn = tf.function(self._burst, jit_compile=config.jit_compile)
        self._q_fn = tf.function(lambda obs: self.online(obs, training=False))
        self._mirror = NumpyMLP.mirror(self.online)

    # ------------------------------------------------------------------ acting
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(s, .) for one observation [obs_dim] or a batch [n, obs_dim]."""
        obs = np.asarray(obs, np.float32)
        batch = obs.reshape(-1, self.obs_dim)
        q = self._mirror(batch) if self._mirror is not None else self._q_fn(batch).numpy()
        return q[0] if obs.ndim == 1 else q

    def act(self, obs: np.ndarray, epsilon: float = 0.0) -> int:
        """Epsilon-greedy action for one observation (greedy when epsilon is 0)."""
        if epsilon > 0.0 and self.rng.random() < epsilon:
            return int(self.rng.integers(self.n_actions))
        return int(np.argmax(self.q_values(obs)))

    # ------------------------------------------------------------------ learning
    def update(self, batch: Batch) -> dict[str, float]:
        """Gradient steps on a batch [batch, ...] (one step) or [k, batch, ...] (k steps).

        Returns the metrics averaged over the steps: loss, mean |td_error|, the fraction of
        samples whose loss gradient is exactly zero, mean Q(s, a) and the gradient global norm.
        """
        return dict(zip(METRIC_NAMES, self.update_raw(batch).tolist()))

    def update_raw(self, batch: Batch) -> np.ndarray:
        """Like ``update`` but returns the metrics as an array ordered as METRIC_NAMES."""
        if batch.actions.ndim == 1:
            batch = Batch(*(x[None] for x in batch))
        metrics = self._burst_fn(
            tf.constant(batch.obs, tf.float32),
            tf.constant(batch.actions, tf.int32),
            tf.constant(batch.rewards, tf.float32),
            tf.constant(batch.next_obs, tf.float32),
            tf.constant(batch.terminated, tf.float32),
        )
        if self._mirror is not None:
            self._mirror.refresh()
        return metrics.numpy()

    def _burst(self, obs, actions, rewards, next_obs, terminated) -> tf.Tensor:
        k = tf.shape(actions)[0]
        totals = tf.zeros([len(METRIC_NAMES)])
        for i in tf.range(k):
            totals += self._train_step(obs[i], actions[i], rewards[i], next_obs[i], terminated[i])
            self.grad_steps.assign_add(1)
            if self.grad_steps % self.config.target_update_every_grad_steps == 0:
                sync_target(self.target.weights, self.online.weights, self.config.target_tau)
        return totals / tf.cast(k, tf.float32)

    def _train_step(self, obs, actions, rewards, next_obs, terminated) -> tf.Tensor:
        cfg = self.config
        next_q_target = self.target(next_obs, training=False)
        next_q_online = self.online(next_obs, training=False) if cfg.double_dqn else None
        target = tf.stop_gradient(
            td_targets(rewards, terminated, cfg.gamma, next_q_target, next_q_online)
        )
        variables = self.online.trainable_variables
        with tf.GradientTape() as tape:
            q = self.online(obs, training=True)
            q_sa = tf.gather(q, actions, batch_dims=1)
            td_error = target - q_sa
            loss = tf.reduce_mean(self._loss_fn(td_error, cfg.loss_bound))
        # d loss / d q_sa comes out of the same backward pass: a sample whose entry is exactly 0
        # teaches the network nothing (the clipped_delta bug, for |td_error| > bound).
        *grads, dq_sa = tape.gradient(loss, [*variables, q_sa])
        grad_norm = tf.linalg.global_norm(grads)
        if cfg.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, cfg.max_grad_norm, use_norm=grad_norm)
        self.optimizer.apply(grads, variables)
        zero_grad = tf.reduce_mean(tf.cast(tf.equal(dq_sa, 0.0), tf.float32))
        return tf.stack(
            [loss, tf.reduce_mean(tf.abs(td_error)), zero_grad, tf.reduce_mean(q_sa), grad_norm]
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write config, online and target networks, optimizer state and counters atomically."""
        final = Path(directory)
        tmp = fresh_tmp_dir(final)
        try:
            self.config.to_yaml(tmp / "config.yaml")
            self.online.save(tmp / "online.keras")
            self.target.save(tmp / "target.keras")
            np.savez(
                tmp / "optimizer.npz",
                **{f"v{i:03d}": v.numpy() for i, v in enumerate(self.optimizer.variables)},
            )
            state = {
                "format_version": _FORMAT_VERSION,
                "obs_dim": self.obs_dim,
                "n_actions": self.n_actions,
                "grad_steps": int(self.grad_steps.numpy()),
                "rng_state": self.rng.bit_generator.state,
            }
            atomic_write_text(tmp / "agent.json", json.dumps(state, indent=1))
            commit_dir(tmp, final)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    @classmethod
    def load(cls, directory: str | Path) -> "DQNAgent":
        """Rebuild an agent saved with ``save``: its next Q-values and update are identical."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"checkpoint folder not found: {directory}")
        missing = [f for f in _CHECKPOINT_FILES if not (directory / f).is_file()]
        if missing:
            raise CheckpointError(
                f"{directory} is not a complete checkpoint: missing {', '.join(missing)}"
            )
        config = DQNConfig.from_yaml(directory / "config.yaml")
        try:
            state = json.loads((directory / "agent.json").read_text())
            obs_dim, n_actions = int(state["obs_dim"]), int(state["n_actions"])
            models = [
                keras.models.load_model(directory / name, compile=False, safe_mode=True)
                for name in ("online.keras", "target.keras")
            ]
            with np.load(directory / "optimizer.npz", allow_pickle=False) as npz:
                opt_values = [npz[k] for k in sorted(npz.files)]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"corrupt checkpoint in {directory}: {exc}") from None
        target_weights = models[1].get_weights()  # the constructor copies online -> target
        built = iter(models)
        space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        agent = cls(space, gym.spaces.Discrete(n_actions), config, lambda o, n: next(built))
        agent.target.set_weights(target_weights)
        if len(opt_values) != len(agent.optimizer.variables):
            raise CheckpointError(f"corrupt checkpoint in {directory}: optimizer state mismatch")
        for var, value in zip(agent.optimizer.variables, opt_values):
            if tuple(var.shape) != value.shape:
                raise CheckpointError(f"corrupt checkpoint in {directory}: optimizer state shape")
            var.assign(value)
        agent.grad_steps.assign(int(state["grad_steps"]))
        agent.rng.bit_generator.state = state["rng_state"]
        if agent._mirror is not None:
            agent._mirror.refresh()
        return agent

    def __repr__(self) -> str:
        return (
            f"DQNAgent(obs_dim={self.obs_dim}, n_actions={self.n_actions}, "
            f"loss={self.config.loss!r}, grad_steps={int(self.grad_steps.numpy())})"
        )
