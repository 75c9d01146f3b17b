"""n-step transitions: (s_t, a_t, R_t^(n), s_{t+n}, terminated) from one env's stream of steps.

With n-step returns the TD target is

    R_t^(n) + gamma^n * (1 - terminated) * max_a Q_target(s_{t+n}, a),
    R_t^(n) = r_{t+1} + gamma r_{t+2} + ... + gamma^(n-1) r_{t+n},

so one target sync propagates value n steps instead of one (Sutton 1988; Rainbow, Hessel et al.
2018, uses n = 3). Why it matters here: a CartPole agent that balances the pole but lets the
cart drift fails about 100 steps after the drift starts; with n = 1 and one target sync per
burst, Q learns to see that far ahead only late in a 50k-step run.

Every stored transition spans exactly n steps or ends in a true termination (where the
remaining discount is irrelevant), so the learner bootstraps with one constant, gamma^n. The
n - 1 steps before a time-limit cut have no s_{t+n} to bootstrap from: they are not stored.
With n = 1 every step is stored as it comes, exactly as without this module.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Transition(NamedTuple):
    obs: np.ndarray
    action: int
    reward: float  # R_t^(n), the discounted sum of up to n rewards
    next_obs: np.ndarray
    terminated: bool


class NStepWindow:
    """The last n - 1 steps of one env that do not yet have their n-th successor."""

    def __init__(self, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.gamma = n, gamma
        self.obs: list[np.ndarray] = []
        self.actions: list[int] = []
        self.rewards: list[float] = []

    def __len__(self) -> int:
        return len(self.actions)

    def push(
        self, obs, action: int, reward: float, next_obs, terminated: bool, truncated: bool
    ) -> list[Transition]:
        """Add one env step; return the transitions it completes (oldest first)."""
        self.obs.append(np.array(obs, np.float32))  # a copy: vector envs reuse their buffers
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        done: list[Transition] = []
        if terminated:  # every pending step now has its full return: no bootstrap
            while self.actions:
                done.append(self._pop(next_obs, True))
        elif len(self.actions) == self.n:
            done.append(self._pop(next_obs, False))
        if truncated and not terminated:
            self.clear()  # cut by the time limit: no s_{t+n} for these steps
        return done

    def _pop(self, next_obs, terminated: bool) -> Transition:
        ret = 0.0
        for k, r in enumerate(self.rewards):
            ret += self.gamma**k * r
        transition = Transition(self.obs[0], self.actions[0], ret, next_obs, terminated)
        del self.obs[0], self.actions[0], self.rewards[0]
        return transition

    def clear(self) -> None:
        self.obs.clear()
        self.actions.clear()
        self.rewards.clear()

    # ------------------------------------------------------------------ checkpoints
    def arrays(self, obs_dim: int) -> dict[str, np.ndarray]:
        """The pending steps as arrays (for a checkpoint's loop.npz)."""
        return {
            "obs": np.asarray(self.obs, np.float32).reshape(len(self), obs_dim),
            "actions": np.asarray(self.actions, np.int64),
            "rewards": np.asarray(self.rewards, np.float64),
        }

    def load(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.clear()
        self.obs.extend(np.asarray(obs, np.float32))
        self.actions.extend(int(a) for a in actions)
        self.rewards.extend(float(r) for r in rewards)


__all__ = ["NStepWindow", "Transition"]
