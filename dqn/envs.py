"""Making Gymnasium environments, with errors a user can act on."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import numbers
import os
import re
import traceback
from collections.abc import Iterator
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from dqn.config import DQNConfig
from dqn.errors import (
    ConfigError,
    NonFiniteEnvError,
    UnsupportedSpaceError,
    brief,
    first_line,
    shown,
)
from dqn.finite import all_finite, in_float32_range


def make_env(env_id: str, **kwargs) -> gym.Env:
    """``gym.make(env_id, **kwargs)``; an unknown id is a ConfigError naming the closest
    registered ids.

    ``module:EnvId`` (gymnasium's syntax) imports ``module`` first, for the registrations it
    makes: the id then names the env in every process that makes it, a study's workers too.
    """
    name = _import_registering_module(env_id)
    if name not in gym.registry:
        namespace = _unregistered_namespace(name)
        if namespace is not None:
            # Namespaced envs (ALE/..., a package's own) exist once their package registers
            # them; a "did you mean" over gymnasium's own ids would only mislead.
            example = (
                f"; for ALE: pip install ale-py, then ale_py:{name}" if namespace == "ALE" else ""
            )
            raise ConfigError(
                f"unknown env id {env_id!r}: no env of namespace {namespace!r} is registered here;"
                f" install the package that registers it and name it as module:EnvId{example}"
            )
        close = difflib.get_close_matches(name, list(gym.registry), n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}" if close else "; e.g. CartPole-v1, Acrobot-v1"
        if ":" not in env_id:  # an id the caller's own code registered is unknown in a worker
            hint += (
                ", or module:EnvId for an env a module of yours registers (a run saved with "
                "this id: --import MODULE on the commands)"
            )
        raise ConfigError(f"unknown env id {env_id!r}{hint}")
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as exc:
        if not kwargs or "keyword argument" not in str(exc):
            raise  # a bug in the env's own __init__, not a keyword it does not take
        # A keyword the env does not take (config key env_kwargs): gymnasium's TypeError names
        # the keyword; the env's own __init__ is the only list of the ones it takes.
        raise ConfigError(
            f"env {env_id!r} does not take env_kwargs {dict(kwargs)}: {first_line(exc)}"
        ) from None
    except (ValueError, KeyError, AssertionError) as exc:
        if not kwargs:
            raise
        # A keyword it takes, with a value it refuses (max_episode_steps 0, FrozenLake's
        # map_name "5x5"): the env's own words, whose type says more than a KeyError's text.
        raise ConfigError(
            f"env {env_id!r} refused env_kwargs {dict(kwargs)}: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from None
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"env {env_id!r} needs an extra package: {exc}") from None
    except (ImportError, gym.error.Error) as exc:
        # Registered ids whose code is not importable here: gymnasium's JAX envs (phys2d/,
        # tabular/), ids moved to other projects (MuJoCo v2/v3), the gym compatibility shims.
        raise ConfigError(f"env {env_id!r} cannot be made here: {first_line(exc)}") from None


def config_env(config: DQNConfig, **extra) -> gym.Env:
    """The env a run of ``config`` makes: its env_id, with its env_kwargs (and ``extra``)."""
    return make_env(config.env_id, **config.env_kwargs, **extra)


def registered_time_limit(env_id: str) -> int | None:
    """The max_episode_steps ``env_id`` is registered with (None: none, or an unknown id)."""
    spec = gym.registry.get(_import_registering_module(env_id))
    return None if spec is None else spec.max_episode_steps


def check_n_step(config: DQNConfig) -> None:
    """ConfigError if ``n_step`` is longer than the time limit gym.make puts on the config's env
    (its registered max_episode_steps, or env_kwargs' own). The n - 1 steps before a time-limit
    cut are not stored (``dqn.nstep``), so an episode the limit cuts would store none of its
    steps, and a run whose episodes all end that way would have nothing to learn from. Call it
    after the env id is known to be good (``check_env``, ``make_env``)."""
    limit = config.env_kwargs.get("max_episode_steps")
    if limit is None:  # gym.make's rule: the keyword, else the spec's
        limit = registered_time_limit(config.env_id)
    if limit is None and config.n_step > 1:  # a TimeLimit the env's own factory puts on it
        limit = _wrapped_time_limit(config)
    # (-1: gym.make adds no limit.)
    if isinstance(limit, numbers.Integral) and 0 < limit < config.n_step:
        raise ConfigError(
            f"config key 'n_step' must be <= the env's time limit (max_episode_steps={limit}), "
            f"got {config.n_step}: the n - 1 steps before a time-limit cut are not stored, so "
            "an episode the limit cuts would store none of its steps; lower n_step"
        )


_WRAPPED_LIMITS: dict[str, int | None] = {}  # by env id and keywords: one env made per process


def _wrapped_time_limit(config: DQNConfig) -> int | None:
    """The shortest TimeLimit inside the env a run makes (an entry point that wraps its env
    itself, registered without max_episode_steps), else None. (An env that truncates its own
    episodes has none to read: ``empty_replay_error`` names that at its first burst.) Each
    population member and study variant is checked: the env is made once for them all."""
    from dqn.envstate import wrapper_chain

    key = repr((config.env_id, sorted(config.env_kwargs.items())))
    if key not in _WRAPPED_LIMITS:
        env = config_env(config)
        try:
            limits = [
                getattr(layer, "_max_episode_steps", None)
                for layer in wrapper_chain(env)
                if isinstance(layer, gym.wrappers.TimeLimit)
            ]
        finally:
            env.close()
        positive = [int(n) for n in limits if isinstance(n, numbers.Integral) and n > 0]
        _WRAPPED_LIMITS[key] = min(positive, default=None)
    return _WRAPPED_LIMITS[key]


def empty_replay_error(env_step: int, n_step: int) -> ConfigError:
    """The error of a burst due while nothing is stored: every episode so far was cut by its
    env (truncated, with no time limit ``check_n_step`` could see) before n_step steps."""
    return ConfigError(
        f"nothing is stored to learn from at env step {env_step}, when a burst of gradient "
        f"steps is due: every episode so far was cut (truncated) before n_step={n_step} steps, "
        "and the n - 1 steps before a cut are not stored; lower n_step"
    )


def _unregistered_namespace(name: str) -> str | None:
    """The namespace of ``namespace/EnvName-vN`` when no registered id has it; else None."""
    try:
        namespace, _, _ = gym.envs.registration.parse_env_id(name)
    except gym.error.Error:  # not an id at all: a space, a second '/', a trailing '/'
        raise ConfigError(
            f"env id {name!r} is malformed: an id is [namespace/]Name[-vN], e.g. CartPole-v1 "
            "or ALE/Pong-v5"
        ) from None
    if namespace is None:
        return None
    known = {spec.namespace for spec in gym.registry.values()}
    return None if namespace in known else namespace


def _import_registering_module(env_id: str) -> str:
    """The env name of ``module:EnvId`` once ``module`` is imported (an id without a module is
    its own name); a module that cannot be imported is a ConfigError naming it."""
    if ":" not in env_id:
        return env_id
    module, _, name = env_id.partition(":")
    if not module or not name or ":" in name:
        raise ConfigError(f"env id {env_id!r}: give an id, or module:EnvId (one ':')")
    try:
        importlib.import_module(module)
    except Exception as exc:  # the user's module: whatever it raised, in one line
        where = "; it must be installed or on PYTHONPATH" if isinstance(exc, ImportError) else ""
        raise ConfigError(
            f"env id {env_id!r}: module {module!r} cannot be imported ({type(exc).__name__}: "
            f"{first_line(exc)}){where}"
        ) from None
    return name


def make_vector_env(env_id: str, num_envs: int, kwargs=None) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` stepped together, autoresetting on the next step.

    ``gym.make_vec`` uses the env's own vectorized implementation where it registers one
    (CartPole does: one numpy step for all copies) and a synchronous loop otherwise.
    """
    kwargs = dict(kwargs or {})
    make_env(env_id, **kwargs).close()  # the same one-line errors (unknown id, extra, keyword)
    # max_episode_steps=None is gym.make's "the registered limit": left out where there is
    # one, make_vec passes that limit itself (CartPole's vector env took None as the limit and
    # failed at its first step); with none registered, None stays what it says.
    if kwargs.get("max_episode_steps", 0) is None and registered_time_limit(env_id) is not None:
        del kwargs["max_episode_steps"]
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    except TypeError as exc:  # a keyword the env takes but its vectorized version does not
        if not kwargs:
            raise
        raise ConfigError(
            f"env {env_id!r}'s vector env does not take env_kwargs {kwargs}: {first_line(exc)}"
        ) from None
    # gymnasium 1.0 has no AutoresetMode: its vector envs all reset on the step after the end.
    modes = getattr(gym.vector, "AutoresetMode", None)
    mode = envs.metadata.get("autoreset_mode", modes and modes.NEXT_STEP)
    if modes is not None and mode != modes.NEXT_STEP:
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
            f"unsupported action space {brief(action_space)}: DQN needs a Discrete action space"
        )
    if int(action_space.start) != 0:
        # The agent's actions are indices 0..n-1; shifting them here would hand the env of a user
        # who steps it with agent.act(obs) the wrong action, silently.
        n, start = int(action_space.n), int(action_space.start)
        raise UnsupportedSpaceError(
            f"unsupported action space {brief(action_space)}: Discrete actions must start at 0; "
            f"give the env Discrete({n}) and add {start} to the action in its step (the agent acts "
            f"0..{n - 1})"
        )
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UnsupportedSpaceError(
            f"unsupported observation space {brief(observation_space)}: this DQN needs a 1-D Box "
            "(vector observations); wrap the env in gymnasium.wrappers.FlattenObservation "
            "(Discrete becomes one-hot; Tuple, Dict and image spaces one vector)"
        )
    if observation_space.shape[0] == 0:
        raise UnsupportedSpaceError(
            f"unsupported observation space {brief(observation_space)}: it has no dimensions, so "
            "there is nothing for a Q-network to see"
        )
    return int(observation_space.shape[0]), int(action_space.n)


def check_env(env_id: str, kwargs=None) -> tuple[int, int]:
    """Make the env once (with ``kwargs``, a config's env_kwargs) and check its spaces:
    (obs_dim, n_actions), or a clear error."""
    env = make_env(env_id, **(kwargs or {}))
    try:
        return check_spaces(env.observation_space, env.action_space)
    finally:
        env.close()


# ---------------------------------------------------------------------- what an env returns
def env_name(env: gym.Env | gym.vector.VectorEnv) -> str:
    """How an error names the env (or vector env): its registered id, else its class."""
    return repr(env.spec.id) if env.spec is not None else type(env.unwrapped).__name__


# gym before 0.26 (and code written for it): step returned (obs, reward, done, info), reset obs.
OLD_API = (
    "gymnasium's step returns 5 values (obs, reward, terminated, truncated, info) and its reset "
    "2 (obs, info), where an env written for gym < 0.26 returns 4 and 1: port it, or wrap it in "
    "shimmy's GymV21CompatibilityV0"
)


def old_step_error(exc: BaseException, env) -> UnsupportedSpaceError | None:
    """The one-line error for a step that did not return 5 values, or (in a vector env) a
    reset that did not return 2, unpacked by gymnasium's own code, whose ValueError named no
    env; else None."""
    found = re.search(r"values to unpack \(expected ([25])(?:, got (\d+))?\)", str(exc))
    if not isinstance(exc, ValueError) or found is None:
        return None
    call = "step" if found.group(1) == "5" else "reset"
    got = f"{found.group(2)} values" if found.group(2) else "another number of values"
    return UnsupportedSpaceError(f"env {env_name(env)}: its {call} returned {got}; {OLD_API}")


def stepped(env, action: int) -> tuple:
    """``env.step(action)``'s five values, or the old-API error (``old_step_error``) for a step
    that returned another number, whether gymnasium's wrappers or this unpacking found it."""
    try:
        next_obs, reward, terminated, truncated, info = env.step(action)
    except ValueError as exc:
        if (error := old_step_error(exc, env)) is None:
            raise
        raise error from None
    return next_obs, reward, terminated, truncated, info


def checked_reset(out, env) -> object:
    """The observation of what ``env.reset`` returned, if that was (obs, info)."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise UnsupportedSpaceError(
            f"env {env_name(env)}: its reset returned {type(out).__name__}, not (obs, info); "
            f"{OLD_API}"
        )
    return out[0]


def checked_obs(obs, shape: tuple[int, ...], env: gym.Env) -> np.ndarray:
    """``obs`` as an array, or an UnsupportedSpaceError if it is not numbers of the shape the
    env's observation space declares (``shape``): an env of the user's own that returns a
    list, a [1, d] array or d + 1 values is named here, not by numpy deep in the loop."""
    obs = np.asarray(obs)
    if obs.shape != shape or obs.dtype.kind not in "biuf":
        got = f"shape {obs.shape}" if obs.shape != shape else f"{obs.dtype} values"
        raise UnsupportedSpaceError(
            f"env {env_name(env)} returned an observation of {got}, where its observation "
            f"space is {brief(env.observation_space)}"
        )
    return obs


def checked_reward(reward, env: gym.Env) -> float:
    """``reward`` as a float, or an UnsupportedSpaceError if it is not one number."""
    if isinstance(reward, (int, float, np.integer, np.floating, np.bool_)):
        return float(reward)
    if isinstance(reward, np.ndarray) and reward.ndim == 0 and reward.dtype.kind in "biuf":
        return float(reward)
    raise UnsupportedSpaceError(
        f"env {env_name(env)} returned the reward {shown(reward, 60)}: a reward is one number"
    )


def checked_flag(flag, name: str, env: gym.Env) -> bool:
    """``terminated`` or ``truncated`` as a bool, or an UnsupportedSpaceError if it is not one
    (a None stopped the loop with a TypeError in dqn's own code)."""
    if isinstance(flag, (bool, int, np.bool_, np.integer)):
        return bool(flag)
    if isinstance(flag, np.ndarray) and flag.ndim == 0 and flag.dtype.kind in "biu":
        return bool(flag)
    raise UnsupportedSpaceError(
        f"env {env_name(env)} returned {name} {shown(flag, 60)}: terminated and truncated are bools"
    )


# ---------------------------------------------------------------------- NaN and inf
def _why(values: np.ndarray) -> str:
    if np.isfinite(values).all():
        return "beyond float32's range, which the network computes in: inf to it"
    return "NaN or inf"


def non_finite_rows(obs, rewards=None) -> dict[int, str]:
    """Row j -> ``"the observation [...] (NaN or inf)"`` or ``"the reward inf (NaN or inf)"``,
    for each observation (a row of ``obs``; one observation is one row) or reward
    (``rewards[j]``) that is NaN, inf or beyond float32's range, in row order; empty, at the
    price of ``all_finite``, when every value is finite in float32."""
    if all_finite(obs) and (rewards is None or all_finite(rewards)):
        return {}
    rows = np.atleast_1d(np.asarray(obs))
    rows = rows.reshape(-1, rows.shape[-1])
    bad_obs = ~in_float32_range(rows).all(axis=1)
    bad = bad_obs.copy()
    if rewards is not None:
        rewards = np.asarray(rewards, np.float64).reshape(-1)
        bad |= ~in_float32_range(rewards)
    return {
        int(j): f"the observation {rows[j].tolist()} ({_why(rows[j])})"
        if bad_obs[j]
        else f"the reward {rewards[j]} ({_why(rewards[j])})"
        for j in np.flatnonzero(bad)
    }


def env_error(head: str, what: str) -> NonFiniteEnvError:
    """The error for an env that returned ``what`` (a ``non_finite_rows`` value)."""
    wrapper = "TransformReward" if what.startswith("the reward") else "TransformObservation"
    return NonFiniteEnvError(
        f"{head}: the env returned {what}; the learner did not diverge: fix the env, or wrap it "
        f"(e.g. gymnasium.wrappers.{wrapper})"
    )


def training_stop(env_step: int, what: str, checkpointed: bool = True) -> NonFiniteEnvError:
    """The error that stops a run (or a population's member) whose env returned ``what``;
    ``checkpointed``: has the run a checkpoint to resume from?"""
    kept = "the last good checkpoint is intact" if checkpointed else "before its first checkpoint"
    return env_error(f"training stopped after env step {env_step} ({kept})", what)


def check_env_values(
    env_step: int, obs: np.ndarray, rewards: np.ndarray | None = None, checkpointed: bool = True
) -> None:
    """Raise NonFiniteEnvError if an observation (a row of ``obs``) or a reward is NaN or inf
    (or beyond float32's range).

    The loops call it on what every env step returned, before it reaches the replay buffer:
    under a microsecond per step, against a NaN that poisons every batch that samples it.
    """
    if found := non_finite_rows(obs, rewards):
        raise training_stop(env_step, next(iter(found.values())), checkpointed)


# ---------------------------------------------------------------------- stepping n envs
class EnvSteps(NamedTuple):
    """What one loop step of n envs produced; every array has a leading [n] axis."""

    next_obs: np.ndarray  # the observation each env stepped into (before any reset)
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    real: np.ndarray  # False for a vector env's autoreset step: no transition happened


class OneEnv:
    """One ``gym.Env`` seen as a vector of one: it resets as soon as an episode ends, so every
    step is a transition and no action is spent on a reset."""

    n = 1

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self.shape = env.observation_space.shape
        self.obs: np.ndarray | None = None  # [1, obs_dim] once reset
        self.pending_reset = np.zeros(1, bool)  # never: kept for the shape of a checkpoint

    def reset(self, seed: int) -> None:
        first = checked_reset(self.env.reset(seed=seed), self.env)
        self.obs = checked_obs(first, self.shape, self.env)[None]

    def step(self, actions: np.ndarray) -> EnvSteps:
        next_obs, reward, terminated, truncated, _ = stepped(self.env, int(actions[0]))
        next_obs = checked_obs(next_obs, self.shape, self.env)
        terminated = checked_flag(terminated, "terminated", self.env)
        truncated = checked_flag(truncated, "truncated", self.env)
        obs = next_obs
        if terminated or truncated:
            obs = checked_obs(checked_reset(self.env.reset(), self.env), self.shape, self.env)
        self.obs = obs[None]
        return EnvSteps(
            next_obs[None],
            np.array([checked_reward(reward, self.env)], np.float64),
            np.array([terminated]),
            np.array([truncated]),
            np.ones(1, bool),
        )

    @property
    def state_holder(self) -> gym.Env:
        """The object whose attributes hold the env state (``dqn.envstate``)."""
        return self.env

    @property
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        """(observation space, action space) of one env."""
        return self.env.observation_space, self.env.action_space

    def close(self) -> None:
        self.env.close()


class VectorEnvs:
    """A gymnasium vector env in NEXT_STEP autoreset mode: the step after an episode ends
    returns the next episode's first observation with reward 0, which is not a transition."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.envs = envs
        self.n = envs.num_envs
        self.obs: np.ndarray | None = None  # [n, obs_dim] once reset
        self.pending_reset = np.zeros(self.n, bool)  # envs whose next step is an autoreset

    def reset(self, seed: int) -> None:
        with self._gathering():
            self.obs = self.envs.reset(seed=seed)[0]

    def step(self, actions: np.ndarray) -> EnvSteps:
        with self._gathering():
            next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
        real = ~self.pending_reset
        self.pending_reset = (terminated | truncated) & real
        self.obs = next_obs
        return EnvSteps(next_obs, np.asarray(rewards, np.float64), terminated, truncated, real)

    @contextlib.contextmanager
    def _gathering(self) -> Iterator[None]:
        """Inside, numpy's error from gymnasium's gathering of the copies' values is raised as
        the ``_gathering_error`` that names the env; an error the env raises passes unchanged."""
        try:
            yield
        except (TypeError, ValueError) as exc:
            if (error := old_step_error(exc, self.envs) or self._gathering_error(exc)) is None:
                raise
            raise error from exc

    def _gathering_error(self, exc: Exception) -> UnsupportedSpaceError | None:
        """Where gymnasium could not gather the copies' values into arrays (an observation of
        another shape or not of numbers, a reward that is not one number), an error naming the
        env, since numpy's names neither; None where the env itself raised ``exc``."""
        frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
        outside_numpy = [f for f in frames if f"{os.sep}numpy{os.sep}" not in f]
        if not outside_numpy or f"gymnasium{os.sep}vector{os.sep}" not in outside_numpy[-1]:
            return None
        return UnsupportedSpaceError(
            f"env {env_name(self.envs)} (a vector of {self.n}) returned values gymnasium cannot "
            f"gather ({exc}): each observation must be numbers of shape "
            f"{self.envs.single_observation_space.shape}, each reward one number"
        )

    @property
    def state_holder(self) -> gym.vector.VectorEnv:
        return self.envs

    @property
    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.envs.single_observation_space, self.envs.single_action_space

    def close(self) -> None:
        self.envs.close()


def make_stepper(env_id: str, num_envs: int, kwargs=None) -> OneEnv | VectorEnvs:
    """``num_envs`` copies of ``env_id`` (made with ``kwargs``) behind one interface (not reset
    yet)."""
    if num_envs == 1:
        return OneEnv(make_env(env_id, **(kwargs or {})))
    return VectorEnvs(make_vector_env(env_id, num_envs, kwargs))
