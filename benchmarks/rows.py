"""Packed replay rows (``dqn.replay.row_layout``) of random transitions, for timing a learner
on its own: the time of a burst does not depend on what the rows mean."""

from __future__ import annotations

import numpy as np


def random_rows(
    lead: tuple[int, ...], obs_dim: int, n_actions: int, terminated: float, seed: int = 0
) -> np.ndarray:
    """Rows [*lead, W]: normal observations and rewards, uniform actions, and ``terminated``
    set with probability ``terminated``."""
    from dqn.replay import row_layout

    rng = np.random.default_rng(seed)
    at = row_layout(obs_dim)
    rows = rng.normal(size=(*lead, at.width)).astype(np.float32)
    rows[..., at.action] = rng.integers(0, n_actions, size=lead)
    rows[..., at.terminated] = rng.random(lead) < terminated
    return rows
