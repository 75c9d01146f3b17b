"""The benchmark's regimes as library-neutral settings, and their translation to each library.

One ``Settings`` describes a run in env steps (the unit both libraries share);
``dqn_overrides`` turns it into ``DQNConfig`` fields and ``sb3_kwargs`` into
``stable_baselines3.DQN`` arguments, so that both libraries train with the same hyperparameters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """One regime's hyperparameters, in library-neutral units (env steps unless named)."""

    total_env_steps: int
    hidden_sizes: tuple[int, ...]
    batch_size: int
    learning_rate: float
    buffer_size: int
    learning_starts_env_steps: int
    train_every_env_steps: int
    gradient_steps_per_train: int
    target_update_every_env_steps: int
    epsilon_end: float
    epsilon_decay_fraction: float
    loss: str
    """"huber" (SB3's smooth_l1, delta 1) or "l2" (dqn's 0.5 e^2)."""
    max_grad_norm: float | None
    gamma: float = 0.99
    epsilon_start: float = 1.0
    adam_epsilon: float = 1e-8
    """torch.optim.Adam's default, which SB3 and CleanRL use."""
    env_id: str = "CartPole-v1"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(**{**data, "hidden_sizes": tuple(data["hidden_sizes"])})


# rl-baselines3-zoo's CartPole-v1 DQN hyperparameters (all else at SB3 defaults: tau 1, Huber,
# max_grad_norm 10, Adam).
ZOO = Settings(
    total_env_steps=50_000,
    hidden_sizes=(256, 256),
    batch_size=64,
    learning_rate=2.3e-3,
    buffer_size=100_000,
    learning_starts_env_steps=1_000,
    train_every_env_steps=256,
    gradient_steps_per_train=128,
    target_update_every_env_steps=10,
    epsilon_end=0.04,
    epsilon_decay_fraction=0.16,
    loss="huber",
    max_grad_norm=10.0,
)
# One gradient step after every env step, a small net, a hard target copy every 500 env steps.
EVERY_STEP = ZOO.replace(
    hidden_sizes=(64, 64),
    train_every_env_steps=1,
    gradient_steps_per_train=1,
    target_update_every_env_steps=500,
)
EVERY_4_STEPS = EVERY_STEP.replace(train_every_env_steps=4)
# CleanRL dqn.py defaults. Its loss is F.mse_loss = mean(e^2); dqn's l2 is 0.5 e^2, so dqn's
# gradient is half of CleanRL's, which Adam's per-parameter scaling cancels (up to its epsilon).
# SB3's DQN has only Huber, so regime (e) runs SB3 on these settings with loss="huber"
# (regimes.e_settings); without a max_grad_norm SB3 clips at an infinite norm (sb3_kwargs).
CLEANRL = Settings(
    total_env_steps=100_000,
    hidden_sizes=(120, 84),
    batch_size=128,
    learning_rate=2.5e-4,
    buffer_size=10_000,
    learning_starts_env_steps=10_000,
    train_every_env_steps=10,
    gradient_steps_per_train=1,
    target_update_every_env_steps=500,
    epsilon_end=0.05,
    epsilon_decay_fraction=0.5,
    loss="l2",
    max_grad_norm=None,
)


def target_update_every_grad_steps(s: Settings) -> int:
    """The env-step target period of SB3 and CleanRL, in dqn's unit (gradient steps).

    SB3 syncs the target in its per-env-step hook, which runs while collecting, never inside a
    burst of gradient steps: any period up to the burst spacing is one sync per burst. Longer
    periods must be whole numbers of bursts, or the two libraries would sync at different times.
    """
    period, every = s.target_update_every_env_steps, s.train_every_env_steps
    if period <= every:
        return s.gradient_steps_per_train
    if period % every:
        raise ValueError(f"target period {period} is not a multiple of train_every {every}")
    return period // every * s.gradient_steps_per_train


def dqn_overrides(s: Settings) -> dict[str, Any]:
    """DQNConfig fields that make a dqn run use these settings (the rest stay as configured)."""
    return {
        "env_id": s.env_id,
        "total_env_steps": s.total_env_steps,
        "hidden_sizes": list(s.hidden_sizes),
        "activation": "relu",
        "batch_size": s.batch_size,
        "learning_rate": s.learning_rate,
        "learning_rate_end": None,
        "adam_epsilon": s.adam_epsilon,
        "buffer_size": s.buffer_size,
        "learning_starts_env_steps": s.learning_starts_env_steps,
        "train_every_env_steps": s.train_every_env_steps,
        "gradient_steps_per_train": s.gradient_steps_per_train,
        "target_update_every_grad_steps": target_update_every_grad_steps(s),
        "target_tau": 1.0,
        "double_dqn": False,
        "gamma": s.gamma,
        "n_step": 1,  # SB3's DQN learns from one-step targets; the default config uses 10
        "loss": s.loss,
        "loss_bound": 1.0,
        "max_grad_norm": s.max_grad_norm,
        "epsilon_start": s.epsilon_start,
        "epsilon_end": s.epsilon_end,
        "epsilon_decay_fraction": s.epsilon_decay_fraction,
    }


def sb3_kwargs(s: Settings, seed: int = 0) -> dict[str, Any]:
    """Keyword arguments of ``stable_baselines3.DQN`` for these settings."""
    if s.loss != "huber":
        raise ValueError(f"Stable-Baselines3's DQN only has the Huber loss, not {s.loss!r}")
    return {
        "learning_rate": s.learning_rate,
        "buffer_size": s.buffer_size,
        "learning_starts": s.learning_starts_env_steps,
        "batch_size": s.batch_size,
        "tau": 1.0,
        "gamma": s.gamma,
        "train_freq": s.train_every_env_steps,
        "gradient_steps": s.gradient_steps_per_train,
        "target_update_interval": s.target_update_every_env_steps,
        "exploration_fraction": s.epsilon_decay_fraction,
        "exploration_initial_eps": s.epsilon_start,
        "exploration_final_eps": s.epsilon_end,
        "max_grad_norm": float("inf") if s.max_grad_norm is None else s.max_grad_norm,
        "policy_kwargs": {
            "net_arch": list(s.hidden_sizes),
            "optimizer_kwargs": {"eps": s.adam_epsilon},
        },
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }
