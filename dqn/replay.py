"""Uniform experience replay in preallocated numpy ring arrays (no TensorFlow)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """Transitions (s_tm1, a_tm1, r_t, s_t, terminated_t); leading shape [batch] or [k, batch]."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """A ring of ``capacity`` transitions; the oldest is overwritten once full.

    Stores ``terminated`` (a true terminal state: no bootstrap), never ``done``: a time-limit
    truncation is not terminal and its target must still bootstrap from ``next_obs``.
    """

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.rng = rng
        self.position = 0  # next slot to write
        self.size = 0  # filled slots

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool) -> None:
        i = self.position
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, num_batches: int | None = None, rng: np.random.Generator | None = None
    ) -> Batch:
        """Uniform sample (with replacement) of filled slots.

        With ``num_batches=k`` the arrays have leading shape [k, batch_size]: k independent
        batches drawn at once for a fused burst of k gradient steps. ``rng`` draws from another
        generator (e.g. a diagnostics probe) without disturbing the buffer's own stream.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = (self.rng if rng is None else rng).integers(0, self.size, size=shape)
        return Batch(
            self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
            self.terminated[idx],
        )
