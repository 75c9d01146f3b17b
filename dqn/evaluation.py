"""Greedy evaluation: the agent's argmax policy over seeded episodes of a separate env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dqn.envs import checked_obs, checked_reward, env_error, non_finite
from dqn.errors import NonFiniteEnvError
from dqn.lockstep import lockstep


def evaluate(agent, env: gym.Env, episodes: int, seed: int) -> tuple[float, float, list[float]]:
    """(mean, std, returns) of ``episodes`` greedy episodes, episode i reset with seed + i.

    ``agent`` is anything with ``act(obs) -> int``: a DQNAgent, or an adapter around another
    library's policy (the benchmarks evaluate Stable-Baselines3 models this way). An env that
    returns a NaN or inf raises NonFiniteEnvError.
    """
    returns, shape = [], env.observation_space.shape
    for i in range(episodes):
        obs = checked_obs(env.reset(seed=seed + i)[0], shape, env)
        total, done, reward = 0.0, False, 0.0
        while not done:
            if (what := non_finite(obs, reward)) is not None:
                raise env_error(_head(seed + i), what)
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
            obs, reward = checked_obs(obs, shape, env), checked_reward(reward, env)
            total += reward
            done = terminated or truncated
        if (what := non_finite(obs, reward)) is not None:
            raise env_error(_head(seed + i), what)
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns)), returns


def _head(reset_seed: int) -> str:
    return f"the greedy evaluation stopped in its episode reset with seed {reset_seed}"


def evaluate_members(
    q_values, envs: list[list[gym.Env]], episodes: int, seed: int
) -> list[tuple[float, float] | NonFiniteEnvError]:
    """``evaluate`` for several policies at once: each policy's episodes side by side.

    ``envs[i]`` are policy i's envs, W of them (the same W for every policy): its ``episodes``
    episodes run in waves of W at once, episode j on env j % W, reset with seed + j: the episodes
    ``evaluate`` runs for it alone one after another (an episode depends only on its reset seed
    and the greedy policy; a batched forward pass may round a Q-value differently from a
    one-row one, which can only matter where two actions' values tie to float32 rounding).
    ``q_values(obs [k, W, obs_dim]) -> [k, W, n_actions]``
    gives policy i's Q-values in row i (k = len(envs)): every step is one batched forward pass
    for all of them, a matrix product per layer instead of k x W matrix-vector products. Rows of
    finished episodes are ignored. Returns (mean, std) per policy, or for a policy one of
    whose envs returned a NaN or inf, the NonFiniteEnvError saying so (its episodes stop there;
    the other policies' go on).
    """
    k, width = len(envs), len(envs[0])
    if any(len(e) != width for e in envs):
        raise ValueError("every policy needs the same number of evaluation envs")
    flat = [env for member in envs for env in member]  # env (i, j) at i * width + j
    steps = lockstep(flat)  # CartPoles: one numpy pass for all, the same numbers as env.step
    returns = np.zeros((k, episodes))
    errors: dict[int, NonFiniteEnvError] = {}

    def stop_non_finite(where: np.ndarray, obs: np.ndarray, rewards=None) -> np.ndarray:
        """``where`` (envs, rows of ``obs``) without the policies whose env returned a NaN."""
        if non_finite(obs, rewards) is None:
            return where  # the one check of almost every step
        for j, e in enumerate(where):
            what = non_finite(obs[j], None if rewards is None else rewards[j])
            if what is not None and e // width not in errors:
                errors[e // width] = env_error(_head(seed + first + e % width), what)
        return np.array([e for e in where if e // width not in errors], np.intp)

    for first in range(0, episodes, width):
        n = min(width, episodes - first)
        running = np.array(
            [i * width + j for i in range(k) if i not in errors for j in range(n)], np.intp
        )
        obs = np.zeros((k * width, np.prod(flat[0].observation_space.shape)), np.float32)
        for e in running:
            obs[e] = steps.reset(int(e), seed=int(seed + first + e % width))
        running = stop_non_finite(running, obs[running])
        totals = np.zeros(k * width)
        while len(running):
            actions = q_values(obs.reshape(k, width, -1)).argmax(axis=2).reshape(-1)
            next_obs, rewards, terminated, truncated = steps.step(actions[running], running)
            kept = stop_non_finite(running, next_obs, rewards)
            if len(kept) < len(running):
                keep = np.isin(running, kept)
                running, next_obs, rewards = running[keep], next_obs[keep], rewards[keep]
                terminated, truncated = terminated[keep], truncated[keep]
            totals[running] += rewards
            obs[running] = next_obs
            ended = terminated | truncated
            for e in running[ended]:
                returns[e // width, first + e % width] = totals[e]
            running = running[~ended]
    steps.sync()
    return [errors.get(i, (float(np.mean(r)), float(np.std(r)))) for i, r in enumerate(returns)]


__all__ = ["evaluate", "evaluate_members"]
