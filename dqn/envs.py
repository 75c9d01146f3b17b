"""Making Gymnasium environments, with errors a user can act on."""

from __future__ import annotations

import difflib

import gymnasium as gym

from dqn.config import DQNConfig
from dqn.errors import ConfigError


def make_env(env_id: str) -> gym.Env:
    """``gym.make(env_id)``; an unknown id is a ConfigError naming the closest registered ids."""
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}" if close else "; e.g. CartPole-v1, Acrobot-v1"
        raise ConfigError(f"unknown env id {env_id!r}{hint}")
    try:
        return gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"env {env_id!r} needs an extra package: {exc}") from None


def solve_return(config: DQNConfig, env: gym.Env) -> float | None:
    """The evaluation mean that counts as solved: the config's, else the env's reward_threshold."""
    if config.solve_return is not None:
        return config.solve_return
    spec = env.spec
    return None if spec is None or spec.reward_threshold is None else float(spec.reward_threshold)
