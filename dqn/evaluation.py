"""Greedy evaluation: the agent's argmax policy over seeded episodes of a separate env."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Protocol

import gymnasium as gym
import numpy as np

from dqn.config import MAX_EVAL_EPISODES, episode_seeds_fit
from dqn.envs import checked_obs, checked_reward, env_error, env_name, non_finite_rows
from dqn.errors import InputError, NonFiniteEnvError, UnsupportedSpaceError, brief, shown
from dqn.finite import check_epsilon
from dqn.lockstep import lockstep

# A greedy episode this long is one that may never end: an env of the user's own registered
# without max_episode_steps, whose greedy policy never fails, evaluated forever, silently (the
# progress bar stopped at the first evaluation). A million steps is far past the time limits
# of gymnasium's own envs (the longest in 1.4: 2,000, BipedalWalkerHardcore), and a minute or
# so of evaluation.
MAX_EPISODE_STEPS = 1_000_000


def _endless(env: gym.Env, reset_seed: int) -> UnsupportedSpaceError:
    limit = getattr(env.spec, "max_episode_steps", None)
    why = "it has no time limit" if limit is None else f"its max_episode_steps is {limit:,}"
    return UnsupportedSpaceError(
        f"env {env_name(env)}: {_head(reset_seed)} after {MAX_EPISODE_STEPS:,} steps without an "
        f"end ({why}): register the env with a time limit (gymnasium.register(..., "
        "max_episode_steps=N)), or wrap it in gymnasium.wrappers.TimeLimit"
    )


class Policy(Protocol):
    """What ``evaluate`` plays: a DQNAgent, a population's MemberAgent, or an adapter."""

    def act(self, obs: np.ndarray) -> int: ...


def _integer(value, what: str) -> int:
    """``value`` as a Python int (numpy's integers too); InputError for anything else."""
    try:
        if not isinstance(value, bool):
            return operator.index(value)
    except TypeError:
        pass
    raise InputError(f"{what} must be an integer, got {value!r}")


def evaluate(
    agent: Policy, env: gym.Env, episodes: int, seed: int, epsilon: float = 0.0
) -> tuple[float, float, list[float]]:
    """(mean, std, returns) of ``episodes`` greedy episodes, episode i reset with seed + i.

    ``agent`` is anything with ``act(obs) -> int``: a DQNAgent, or an adapter around another
    library's policy (the benchmarks evaluate Stable-Baselines3 models this way). An env that
    returns a NaN or inf raises NonFiniteEnvError.

    ``epsilon`` > 0 takes a uniformly random action with that probability at each step (the
    Atari DQN papers evaluate at 0.05), drawn from a generator seeded with ``seed``, not the
    agent's own: the same call gives the same returns, and the agent's RNG is left as it was.
    """
    epsilon = check_epsilon(epsilon)
    seed, episodes = _checked_counts(episodes, seed)
    _check_env(agent, env, "evaluate")
    explore = np.random.default_rng([seed, 3]) if epsilon > 0 else None
    if explore is not None:
        random_action = _random_action_of(env)
    returns, shape = [], env.observation_space.shape

    def checked(reset_seed: int, obs, reward=None):
        """What the env returned, held to its spaces and refused if NaN or inf."""
        obs = checked_obs(obs, shape, env)
        reward = None if reward is None else checked_reward(reward, env)
        if found := non_finite_rows(obs, reward):
            raise env_error(_head(reset_seed), next(iter(found.values())))
        return obs, reward

    for i in range(episodes):
        obs, _ = checked(seed + i, env.reset(seed=seed + i)[0])
        total = 0.0
        for _ in range(MAX_EPISODE_STEPS):
            if explore is not None and explore.random() < epsilon:
                action = random_action(explore)
            else:
                action = _checked_action(agent.act(obs), agent, env)
            obs, reward, terminated, truncated, _ = env.step(action)
            obs, reward = checked(seed + i, obs, reward)
            total += reward
            if terminated or truncated:
                break
        else:
            raise _endless(env, seed + i)
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns)), returns


def _random_action_of(env: gym.Env) -> Callable[[np.random.Generator], int]:
    """An epsilon step's uniform draw from the env's actions, start to start + n - 1, or an
    UnsupportedSpaceError for a space that is not Discrete (a policy adapter's env is not
    checked as a DQNAgent's is: a Discrete(2, start=1) env was sent action 0, and a Box failed
    with AttributeError)."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise UnsupportedSpaceError(
            f"evaluate's epsilon draws random actions from a Discrete action space; env "
            f"{env_name(env)} has {brief(space)}: evaluate it with epsilon=0"
        )
    start, n = int(space.start), int(space.n)
    return lambda rng: start + int(rng.integers(n))


def _checked_action(action, agent, env):
    """``action`` if it is an integer, else an InputError naming what the agent's act returned
    (1.0, None or [1] failed in gymnasium's assertion "... invalid"). Its range is the env's to
    judge: a policy that does not say its number of actions is taken as it is (a wrapper of
    the user's may map it), and a DQNAgent's actions were checked against the env's."""
    if isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
        return action  # what Stable-Baselines3's predict returns for one observation
    if isinstance(action, bool | np.bool_) or (
        isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind == "b"
    ):
        return int(action)  # a policy of obs[2] > 0: gymnasium takes True, not numpy's True_
    if not isinstance(action, int | np.integer):
        raise InputError(
            f"{type(agent).__name__}.act returned {shown(action, 60)}, where evaluate needs an "
            f"action of {env_name(env)}'s {brief(env.action_space)} (an int)"
        )
    return action


def _head(reset_seed: int) -> str:
    return f"the greedy evaluation stopped in its episode reset with seed {reset_seed}"


# Evaluation episodes a run (or a population member) plays side by side, in waves of this many:
# each step is then one matrix product per layer for all of them. 100 covers the default final
# evaluation in one wave.
PARALLEL_EPISODES = 100


def side_by_side_envs(first: gym.Env, copies: list[gym.Env], episodes: int, make) -> list[gym.Env]:
    """The envs to play ``episodes`` side by side on, min(episodes, PARALLEL_EPISODES) of them:
    ``first`` and the ``copies`` after it, made with ``make()`` the first time an evaluation
    needs them and kept there for the next (their owner closes them). Each episode is reset
    with its own seed, so any fresh copy plays it the same."""
    width = min(episodes, PARALLEL_EPISODES)
    while len(copies) < width - 1:
        copies.append(make())
    return [first, *copies[: width - 1]]


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
    returns, errors = _play_side_by_side(q_values, envs, episodes, seed)
    return [errors.get(i, (float(np.mean(r)), float(np.std(r)))) for i, r in enumerate(returns)]


def _play_side_by_side(
    q_values, envs: list[list[gym.Env]], episodes: int, seed: int
) -> tuple[np.ndarray, dict[int, NonFiniteEnvError]]:
    """``evaluate_members``'s episodes: the returns [policies, episodes] (a stopped policy's
    rows hold 0 from where it stopped) and, by policy, the errors that stopped some."""
    k, width = len(envs), len(envs[0])
    if any(len(e) != width for e in envs):
        raise ValueError("every policy needs the same number of evaluation envs")
    flat = [env for member in envs for env in member]  # env (i, j) at i * width + j
    steps = lockstep(flat)  # CartPoles: one numpy pass for all, the same numbers as env.step
    returns = np.zeros((k, episodes))
    errors: dict[int, NonFiniteEnvError] = {}

    def kept(where: np.ndarray, obs: np.ndarray, rewards=None) -> np.ndarray | None:
        """Which of the envs ``where`` (rows of ``obs``) go on once the policies one of whose
        envs returned a NaN or inf have their error: None when all go on."""
        found = non_finite_rows(obs, rewards)
        for j, what in found.items():
            errors.setdefault(
                where[j] // width, env_error(_head(seed + first + where[j] % width), what)
            )
        return ~np.isin(where // width, list(errors)) if found else None

    for first in range(0, episodes, width):
        n = min(width, episodes - first)
        running = np.array(
            [i * width + j for i in range(k) if i not in errors for j in range(n)], np.intp
        )
        obs = np.zeros((k * width, np.prod(flat[0].observation_space.shape)), np.float32)
        # Checked as the envs gave them, then cast: 1e39 is named so, not as float32's inf.
        given = [steps.reset(int(e), seed=int(seed + first + e % width)) for e in running]
        given = np.reshape(given, (len(running), obs.shape[1]))
        if (keep := kept(running, given)) is not None:
            running, given = running[keep], given[keep]
        obs[running] = given
        totals = np.zeros(k * width)
        for _ in range(MAX_EPISODE_STEPS):
            if not len(running):
                break
            actions = q_values(obs.reshape(k, width, -1)).argmax(axis=2).reshape(-1)
            next_obs, rewards, terminated, truncated = steps.step(actions[running], running)
            if (keep := kept(running, next_obs, rewards)) is not None:
                running, next_obs, rewards = running[keep], next_obs[keep], rewards[keep]
                terminated, truncated = terminated[keep], truncated[keep]
            totals[running] += rewards
            obs[running] = next_obs
            ended = terminated | truncated
            for e in running[ended]:
                returns[e // width, first + e % width] = totals[e]
            running = running[~ended]
        if len(running):
            e = int(running[0])
            raise _endless(flat[e], seed + first + e % width)
    steps.sync()
    return returns, errors


def _checked_counts(episodes: int, seed: int) -> tuple[int, int]:
    """(seed, episodes) as Python ints, or an InputError for a count or seed out of range."""
    # numpy's integers (a seed from np.arange) as Python's: gymnasium's reset takes only those.
    seed, episodes = _integer(seed, "seed"), _integer(episodes, "episodes")
    # dqn-evaluate's own bounds (--episodes, --seed): no episodes gave a NaN mean, and a seed
    # outside them gymnasium's traceback.
    if not 1 <= episodes <= MAX_EVAL_EPISODES:
        raise InputError(f"episodes must be in [1, {MAX_EVAL_EPISODES:_}], got {episodes!r}")
    if not episode_seeds_fit(seed, episodes):
        raise InputError(
            f"seed must leave room for its episodes' seeds (seed + i, each in [0, 2**32 - 1]), "
            f"got seed {seed!r} for {episodes} episodes"
        )
    return seed, episodes


def _check_env(agent, env, what: str) -> None:
    """An InputError for an env that ``what`` (``evaluate``, as the error names it) cannot
    play the agent on: not one env, or one whose spaces are not the agent's."""
    # One env, made: an id gave "'str' object has no attribute 'action_space'", and a vector
    # env was told its actions were another env's.
    if isinstance(env, gym.vector.VectorEnv):
        raise InputError(
            f"{what} steps one env, got a vector env of {env.num_envs} ({env_name(env)}): "
            "give one, e.g. gymnasium.make(env_id)"
        )
    if not isinstance(env, gym.Env):
        raise InputError(
            f"{what} steps an env, got {type(env).__name__} {shown(env, 60)}: give "
            "gymnasium.make(env_id)"
        )
    n_actions, space = getattr(agent, "n_actions", None), env.action_space
    obs_dim, obs_shape = getattr(agent, "obs_dim", None), env.observation_space.shape
    if obs_dim is not None and obs_shape != (obs_dim,):
        # (MountainCar for an Acrobot agent: both 3 actions; it failed in the first act.)
        raise InputError(
            f"env {env_name(env)} has observations of shape {obs_shape}, the agent takes "
            f"({obs_dim},): evaluate it on the env it was trained on"
        )
    if n_actions is not None and not (
        isinstance(space, gym.spaces.Discrete) and int(space.n) == n_actions and space.start == 0
    ):
        # Another env's actions: a Discrete(3, start=1) env was sent action 0, and a Discrete(5)
        # one, with epsilon, actions 3 and 4 the agent never takes (observations are checked).
        raise InputError(
            f"env {env_name(env)} has the action space {brief(space)}, the agent {n_actions} "
            "actions (Discrete from 0): evaluate it on the env it was trained on"
        )


def evaluate_side_by_side(
    agent, envs: list[gym.Env], episodes: int, seed: int
) -> tuple[float, float, list[float]]:
    """(mean, std, returns) of the ``episodes`` greedy episodes ``evaluate(agent, envs[0],
    episodes, seed)`` plays one after another, played len(envs) at a time (``evaluate_members``
    with one policy): a training run's evaluation, and dqn-evaluate's. ``agent.q_values`` takes
    [W, obs_dim]. Raises NonFiniteEnvError if an env returns a NaN or inf.

    One forward pass a step for all of them: a [W, d] matrix product per layer where one
    episode at a time made W matrix-vector products, and CartPoles stepped as one array."""
    what = "evaluate_side_by_side"
    # Unchecked, an env given twice played two episodes at once in one env ([7, 7, 7] for
    # [11, 10, 9]), and an id, a single env or no envs failed deep inside.
    if not isinstance(envs, list | tuple) or not envs:
        raise InputError(
            f"{what} takes a list of envs, one per episode played at once, got {shown(envs, 60)}"
        )
    if len({id(e) for e in envs}) != len(envs):
        raise InputError(f"{what}'s envs are each a separate env: one is given more than once")
    if not callable(getattr(agent, "q_values", None)):
        raise InputError(
            f"{what} plays with an agent's q_values (a DQNAgent's), got {type(agent).__name__}: "
            "evaluate takes any agent with act"
        )
    seed, episodes = _checked_counts(episodes, seed)
    for env in envs:
        _check_env(agent, env, what)
    [returns], errors = _play_side_by_side(
        lambda obs: agent.q_values(obs[0])[None], [envs], episodes, seed
    )
    if errors:
        raise errors[0]
    return float(np.mean(returns)), float(np.std(returns)), returns.tolist()


__all__ = [
    "PARALLEL_EPISODES",
    "evaluate",
    "evaluate_members",
    "evaluate_side_by_side",
    "side_by_side_envs",
]
