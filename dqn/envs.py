"""Making Gymnasium environments, with errors a user can act on."""

from __future__ import annotations

import difflib

import gymnasium as gym

from dqn.config import DQNConfig
from dqn.errors import ConfigError, UnsupportedSpaceError


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


def make_vector_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped together, autoresetting on the next step.

    ``gym.make_vec`` uses the env's own vectorized implementation where it registers one
    (CartPole does: one numpy step for all copies) and a synchronous loop otherwise.
    """
    make_env(env_id).close()  # the same one-line errors for an unknown id or a missing extra
    envs = gym.make_vec(env_id, num_envs=num_envs)
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        envs.close()
        raise ConfigError(f"{env_id}'s vector env autoresets in mode {mode}; need NEXT_STEP")
    return envs


def solve_return(config: DQNConfig, env: gym.Env) -> float | None:
    """The evaluation mean that counts as solved: the config's, else the env's reward_threshold."""
    if config.solve_return is not None:
        return config.solve_return
    spec = env.spec
    return None if spec is None or spec.reward_threshold is None else float(spec.reward_threshold)


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> tuple[int, int]:
    """(obs_dim, n_actions) for a 1-D Box observation and a Discrete action space, else an error."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UnsupportedSpaceError(
            f"unsupported action space {action_space}: DQN needs a Discrete action space"
        )
    if int(action_space.start) != 0:
        raise UnsupportedSpaceError(
            f"unsupported action space {action_space}: Discrete actions must start at 0"
        )
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UnsupportedSpaceError(
            f"unsupported observation space {observation_space}: this DQN needs a 1-D Box "
            "(vector observations); flatten images or dicts with a gymnasium wrapper first"
        )
    return int(observation_space.shape[0]), int(action_space.n)


def check_env(env_id: str) -> tuple[int, int]:
    """Make the env once and check its spaces: (obs_dim, n_actions), or a clear error."""
    env = make_env(env_id)
    try:
        return check_spaces(env.observation_space, env.action_space)
    finally:
        env.close()
