"""MemberAgent: one member of a running population, seen as an agent.

What ``train_population``'s ``on_eval(row, member)`` gets, and what a member's checkpoint saves
through. It gives Q-values and greedy actions from the member's parameters as they are at the
call, and ``save(folder)`` writes the folder ``DQNAgent.save`` writes (``DQNAgent.load`` reads
it). It draws nothing from the member's exploration RNG and changes no parameter, so nothing
done with it changes the run: the single run's ``on_eval`` promise, kept for a member.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from dqn.agent import check_observations_shape, check_one_observation, checked_observations
from dqn.agent_files import save_agent_to
from dqn.config import DQNConfig
from dqn.errors import InputError
from dqn.learner import LearnerArrays


class MemberAgent:
    """Member ``index`` of a population: ``q_values``, greedy ``act``, ``save``.

    ``q_values_fn(obs [n, obs_dim]) -> [n, n_actions]`` reads the member's current online
    parameters; ``state_fn()`` gives its learner state (parameters, target, Adam) for a save;
    ``save_fn(folder, config, state, rng)`` writes an agent folder atomically.
    """

    def __init__(
        self,
        index: int,
        config: DQNConfig,
        run_dir: Path,
        shape: tuple[int, int],
        q_values_fn: Callable[[np.ndarray], np.ndarray],
        state_fn: Callable[[], LearnerArrays],
        save_fn: Callable,
        rng: np.random.Generator,
    ) -> None:
        self.index, self.config, self.run_dir = int(index), config, Path(run_dir)
        self.obs_dim, self.n_actions = shape
        self._q, self._state, self._save, self._rng = q_values_fn, state_fn, save_fn, rng

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(s, .) for one observation [obs_dim] or a batch [n, obs_dim]."""
        obs = checked_observations(obs, "q_values")
        check_observations_shape(obs, self.obs_dim)
        q = self._q(obs.reshape(-1, self.obs_dim))
        return q[0] if obs.ndim == 1 else q

    def act(self, obs: np.ndarray, epsilon: float = 0.0) -> int:
        """The greedy action for one observation. ``DQNAgent.act``'s signature, so that code
        written for an agent runs here, but only epsilon 0: a member explores only inside its
        run, and an exploring act here would draw from its RNG and change the run."""
        if epsilon != 0:
            raise InputError(
                f"a population member acts greedily here (epsilon 0), got epsilon={epsilon!r}: "
                "its exploration draws belong to its run; save it and DQNAgent.load the copy "
                "to explore"
            )
        check_one_observation(obs, self.obs_dim)
        obs = checked_observations(obs, "act")  # its own name in the error, as DQNAgent's
        return int(self._q(obs[None])[0].argmax())  # checked: not again through q_values

    def save(self, directory: str | Path) -> Path:
        """Write the member as ``DQNAgent.save`` writes an agent (the same rules for
        ``directory``: a new path, an empty folder or an earlier agent save)."""
        from dqn.config import check_path_arg, user_path

        check_path_arg(directory, "a member's save takes a folder's path")
        return save_agent_to(user_path(directory, "the folder"), self._write)

    def save_into_checkpoint(self, directory: Path) -> Path:
        """``save`` for the agent of the member's checkpoint being written (``dqn.run_state``),
        where ``save`` refuses a folder of the user's."""
        return save_agent_to(directory, self._write, checked=False)

    def _write(self, folder: Path) -> None:
        self._save(folder, self.config, self._state(), self._rng)  # whole, or not at all

    def __repr__(self) -> str:
        return f"MemberAgent(index={self.index}, run_dir={str(self.run_dir)!r})"


__all__ = ["MemberAgent"]
