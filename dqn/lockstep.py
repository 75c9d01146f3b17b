"""Stepping the members' own envs together: one numpy step for all CartPoles, else a loop.

A population steps M envs per loop step, each its own seeded gymnasium env (a member's
trajectory must not depend on the others). Through gymnasium that is M calls of
``TimeLimit -> OrderEnforcing -> PassiveEnvChecker -> CartPoleEnv.step``, of which the physics
is a few dozen float64 operations (``python -m benchmarks.lockstep_cost`` times both ways).
``CartPoleLockstep`` does the same arithmetic for all members in one pass of
numpy, operation by operation in gymnasium's order, so every observation, reward and flag is
bit-identical to what each env would have returned (float64 +, *, / are correctly rounded
whether on a scalar or an array; ``cos``/``sin`` are called per element on a float64 scalar,
exactly as gymnasium calls them, so no vectorized transcendental can round differently).

What stays in gymnasium: every reset (it draws from the env's own ``np_random``), the first
steps of an env (while its ``PassiveEnvChecker`` still checks), and a step after termination.
The envs' own attributes are the state a checkpoint captures (``dqn.envstate``), so ``sync()``
writes the numpy state back into them; call it before capturing or closing.

``VectorEnv`` (gymnasium's own ``CartPoleVectorEnv``) is not used: it seeds and resets all its
copies from one generator, while a member's env must be the env its single run would make.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from dqn.envs import checked_flag, checked_obs, checked_reset, checked_reward, stepped
from dqn.envstate import wrapper_chain

_PHYSICS = (
    "gravity",
    "masspole",
    "total_mass",
    "length",
    "polemass_length",
    "force_mag",
    "tau",
    "kinematics_integrator",
    "theta_threshold_radians",
    "x_threshold",
    "_sutton_barto_reward",
)
_WRAPPERS = (TimeLimit, OrderEnforcing, PassiveEnvChecker)


class Lockstep:
    """M gymnasium envs, stepped one by one (any env)."""

    def __init__(self, envs: list[gym.Env]) -> None:
        self.envs = envs
        self.shape = envs[0].observation_space.shape if envs else ()

    def reset(self, i: int, seed: int | None = None) -> np.ndarray:
        """Env i's first observation of a new episode (``reset(seed=seed)``)."""
        env = self.envs[i]
        return checked_obs(checked_reset(env.reset(seed=seed), env), self.shape, env)

    def step(self, actions: np.ndarray, idx: np.ndarray):
        """Step env idx[j] with actions[j]: (next_obs [k, d], rewards, terminated, truncated)."""
        out = [stepped(self.envs[i], int(a)) for i, a in zip(idx, actions)]
        envs = [self.envs[i] for i in idx]
        return (
            # As the envs gave them (float64 stays float64): a value beyond float32's range is
            # named as it was, then cast (``dqn.finite.as_float32``).
            np.array([checked_obs(o[0], self.shape, e) for o, e in zip(out, envs)]).reshape(
                len(out), -1
            ),
            np.array([checked_reward(o[1], e) for o, e in zip(out, envs)], np.float64),
            np.array([checked_flag(o[2], "terminated", e) for o, e in zip(out, envs)], bool),
            np.array([checked_flag(o[3], "truncated", e) for o, e in zip(out, envs)], bool),
        )

    def sync(self) -> None:
        """Nothing to write back: the envs hold their own state."""


def is_plain_cartpole(env: gym.Env) -> bool:
    """A gymnasium CartPoleEnv behind at most its standard wrappers, and not rendering."""
    chain = wrapper_chain(env)
    core = chain[-1]
    if type(core) is not CartPoleEnv or core.render_mode is not None:
        return False
    wrappers = [type(w) for w in chain[:-1]]
    return all(t in _WRAPPERS for t in wrappers) and len(set(wrappers)) == len(wrappers)


def _holds_cartpole_state(env: gym.Env) -> bool:
    """True if a CartPole's attributes are of the kinds its own code writes: the physics state
    4 floats or None, the step counts integers or None, its constants numbers (a text and a
    flag). A resumed env holds what a checkpoint recorded, and a state of another shape stopped
    ``CartPoleLockstep`` with numpy's traceback; stepped through gymnasium instead, such an env
    fails in its own code, as in a single run."""

    def count(value) -> bool:  # None, or an integer the pass's int64 counts hold
        whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
        return value is None or whole and abs(int(value)) < 2**62

    def constant(name: str, value) -> bool:
        kinds = {"kinematics_integrator": str, "_sutton_barto_reward": bool}
        if name in kinds:
            return isinstance(value, kinds[name])
        return isinstance(value, int | float) and not isinstance(value, bool)

    core, limit = env.unwrapped, _find(env, TimeLimit)
    if not all(constant(name, getattr(core, name, None)) for name in _PHYSICS):
        return False
    state = core.state
    shaped = state is None or (
        isinstance(state, np.ndarray) and state.shape == (4,) and state.dtype.kind == "f"
    )
    limits = limit is None or (
        count(limit._elapsed_steps)
        and limit._max_episode_steps is not None
        and count(limit._max_episode_steps)
    )
    return shaped and count(core.steps_beyond_terminated) and limits


def lockstep(envs: list[gym.Env]) -> Lockstep:
    """The fastest exact way to step these envs together."""
    if envs and all(is_plain_cartpole(e) and _holds_cartpole_state(e) for e in envs):
        first = envs[0].unwrapped
        same = all(
            getattr(e.unwrapped, name) == getattr(first, name) for e in envs for name in _PHYSICS
        )
        if same:
            return CartPoleLockstep(envs)
    return Lockstep(envs)


def _checker_done(checker: PassiveEnvChecker) -> bool:
    """True once the checker checks no more steps: after its first step, and from gymnasium
    1.4 on also its second (it compares the two for reused buffers; earlier versions have no
    ``checked_data_reuse``)."""
    return checker.checked_step and getattr(checker, "checked_data_reuse", True)


class CartPoleLockstep(Lockstep):
    """All members' CartPole physics in one numpy pass; bit-identical to gymnasium's step."""

    def __init__(self, envs: list[gym.Env]) -> None:
        super().__init__(envs)
        self.cores = [e.unwrapped for e in envs]
        self.limits = [_find(e, TimeLimit) for e in envs]
        self.checkers = [_find(e, PassiveEnvChecker) for e in envs]
        self.orders = [_find(e, OrderEnforcing) for e in envs]
        self.p = {name: getattr(self.cores[0], name) for name in _PHYSICS}
        m = len(envs)
        self.max_steps = np.array(
            [np.inf if t is None else t._max_episode_steps for t in self.limits], np.float64
        )
        self.state = np.zeros((m, 4), np.float64)
        self.elapsed = np.zeros(m, np.int64)
        self.ready = np.zeros(m, bool)  # env i may take its next step here
        self.dirty = np.zeros(m, bool)  # env i's own attributes lag behind self.state
        self.ended = np.zeros(m, bool)  # env i's last step terminated its episode
        for i in range(m):
            self._pull(i)

    # -------------------------------------------------------------- gymnasium <-> arrays
    def _pull(self, i: int) -> None:
        """Take env i's state from its attributes (after a reset or a step through gym)."""
        core, limit, checker, order = (
            self.cores[i],
            self.limits[i],
            self.checkers[i],
            self.orders[i],
        )
        self.ready[i] = (
            core.state is not None
            and core.steps_beyond_terminated is None
            and (checker is None or _checker_done(checker))
            and (order is None or order._has_reset)
            and (limit is None or limit._elapsed_steps is not None)
        )
        if core.state is not None:
            self.state[i] = core.state
        elapsed = None if limit is None else limit._elapsed_steps
        self.elapsed[i] = 0 if elapsed is None else elapsed
        self.ended[i] = core.steps_beyond_terminated is not None
        self.dirty[i] = False

    def _push(self, i: int) -> None:
        core = self.cores[i]
        core.state = self.state[i].copy()
        core.steps_beyond_terminated = 0 if self.ended[i] else None
        if self.limits[i] is not None:
            self.limits[i]._elapsed_steps = int(self.elapsed[i])
        self.dirty[i] = False

    def sync(self) -> None:
        for i in np.flatnonzero(self.dirty):
            self._push(i)

    # -------------------------------------------------------------- stepping
    def reset(self, i: int, seed: int | None = None) -> np.ndarray:
        obs = self.envs[i].reset(seed=seed)[0]
        self._pull(i)
        return obs

    def step(self, actions: np.ndarray, idx: np.ndarray):
        idx, actions = np.asarray(idx, np.intp), np.asarray(actions)
        n = len(idx)
        out = (
            np.empty((n, 4), np.float32),
            np.empty(n, np.float64),
            np.empty(n, bool),
            np.empty(n, bool),
        )
        fast = self.ready[idx]
        slow = np.flatnonzero(~fast)
        if len(slow):  # through gymnasium, from and back into the arrays
            for i in idx[slow]:
                if self.dirty[i]:
                    self._push(i)
            for o, got in zip(out, super().step(actions[slow], idx[slow])):
                o[slow] = got
            for i in idx[slow]:
                self._pull(i)
        quick = np.flatnonzero(fast)
        if len(quick):
            for o, got in zip(out, self._physics(actions[quick], idx[quick])):
                o[quick] = got
        return out

    def _physics(self, actions: np.ndarray, rows: np.ndarray):
        """gymnasium's CartPoleEnv.step and TimeLimit.step, for rows of the state at once.

        Every line is gymnasium's expression in gymnasium's order (IEEE float64 arithmetic
        rounds the same on a scalar and on each element of an array).
        """
        p = self.p
        bad = (actions != 0) & (actions != 1)
        if bad.any():  # CartPoleEnv.step asserts the same: a clear error, not a wrong step
            a = actions[np.flatnonzero(bad)[0]]
            raise AssertionError(f"{a!r} ({type(a)}) invalid")
        x, x_dot, theta, theta_dot = self.state[rows].T
        force = np.where(actions == 1, p["force_mag"], -p["force_mag"])
        costheta = np.array([np.cos(t) for t in theta])
        sintheta = np.array([np.sin(t) for t in theta])
        temp = (force + p["polemass_length"] * np.square(theta_dot) * sintheta) / p["total_mass"]
        thetaacc = (p["gravity"] * sintheta - costheta * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * np.square(costheta) / p["total_mass"])
        )
        xacc = temp - p["polemass_length"] * thetaacc * costheta / p["total_mass"]
        tau = p["tau"]
        if p["kinematics_integrator"] == "euler":
            x = x + tau * x_dot
            x_dot = x_dot + tau * xacc
            theta = theta + tau * theta_dot
            theta_dot = theta_dot + tau * thetaacc
        else:  # semi-implicit euler
            x_dot = x_dot + tau * xacc
            x = x + tau * x_dot
            theta_dot = theta_dot + tau * thetaacc
            theta = theta + tau * theta_dot
        state = np.empty((len(rows), 4))  # np.stack's own overhead is several times this
        state[:, 0], state[:, 1], state[:, 2], state[:, 3] = x, x_dot, theta, theta_dot
        self.state[rows] = state
        xt, tt = p["x_threshold"], p["theta_threshold_radians"]
        terminated = (x < -xt) | (x > xt) | (theta < -tt) | (theta > tt)
        if p["_sutton_barto_reward"]:
            rewards = np.where(terminated, -1.0, 0.0)
        else:
            rewards = np.ones(len(rows))
        self.elapsed[rows] += 1
        truncated = self.elapsed[rows] >= self.max_steps[rows]  # TimeLimit.step
        self.ended[rows] = terminated
        self.ready[rows] = ~terminated  # a step after termination goes through gymnasium
        self.dirty[rows] = True
        return state.astype(np.float32), rewards, terminated, truncated


def _find(env: gym.Env, kind: type) -> gym.Wrapper | None:
    for layer in wrapper_chain(env):
        if isinstance(layer, kind):
            return layer
    return None


__all__ = ["CartPoleLockstep", "Lockstep", "is_plain_cartpole", "lockstep"]
