"""Greedy evaluation: the agent's argmax policy over seeded episodes of a separate env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dqn.lockstep import lockstep


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
    steps = lockstep(envs)  # CartPoles: one numpy pass for all, the same numbers as env.step
    obs = np.stack([steps.reset(i, seed=seed) for i in range(k)]).astype(np.float32)
    returns: list[list[float]] = [[] for _ in range(k)]
    totals = np.zeros(k)
    running = np.arange(k)
    while len(running):
        actions = q_values(obs).argmax(axis=1)
        next_obs, rewards, terminated, truncated = steps.step(actions[running], running)
        still = []
        for j, i in enumerate(running):
            totals[i] += float(rewards[j])
            obs[i] = next_obs[j]
            if terminated[j] or truncated[j]:
                returns[i].append(float(totals[i]))
                totals[i] = 0.0
                if len(returns[i]) == episodes:
                    continue
                obs[i] = steps.reset(i, seed=seed + len(returns[i]))
            still.append(i)
        running = np.array(still, np.intp)
    steps.sync()
    return [(float(np.mean(r)), float(np.std(r))) for r in returns]


__all__ = ["evaluate", "evaluate_members"]
