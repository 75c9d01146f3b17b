"""Greedy evaluation: the agent's argmax policy over seeded episodes of a separate env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def evaluate(agent, env: gym.Env, episodes: int, seed: int) -> tuple[float, float, list[float]]:
    """(mean, std, returns) of ``episodes`` greedy episodes, episode i reset with seed + i.

    ``agent`` is anything with ``act(obs) -> int``: a DQNAgent, or an adapter around another
    library's policy (the benchmarks evaluate Stable-Baselines3 models this way).
    """
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


def evaluate_members(
    q_values, envs: list[gym.Env], episodes: int, seed: int
) -> list[tuple[float, float]]:
    """``evaluate`` for several policies at once, in lockstep: one batched Q call per step.

    ``q_values(obs [k, obs_dim]) -> [k, n_actions]`` gives policy i's Q-values in row i
    (k = len(envs)). Policy i's episodes are exactly those ``evaluate`` runs for it alone (env i,
    episode j reset with seed + j, greedy actions); a finished policy's row is ignored.
    Returns (mean, std) per policy.
    """
    k = len(envs)
    obs = np.stack([env.reset(seed=seed)[0] for env in envs]).astype(np.float32)
    returns: list[list[float]] = [[] for _ in range(k)]
    totals = np.zeros(k)
    running = list(range(k))
    while running:
        actions = q_values(obs).argmax(axis=1)
        still = []
        for i in running:
            next_obs, reward, terminated, truncated, _ = envs[i].step(int(actions[i]))
            totals[i] += float(reward)
            if terminated or truncated:
                returns[i].append(float(totals[i]))
                totals[i] = 0.0
                if len(returns[i]) == episodes:
                    continue
                next_obs, _ = envs[i].reset(seed=seed + len(returns[i]))
            obs[i] = next_obs
            still.append(i)
        running = still
    return [(float(np.mean(r)), float(np.std(r))) for r in returns]


__all__ = ["evaluate", "evaluate_members"]
