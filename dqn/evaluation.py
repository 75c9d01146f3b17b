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


__all__ = ["evaluate"]
