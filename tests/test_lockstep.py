"""dqn.lockstep: M CartPoles stepped in one numpy pass return exactly what gymnasium returns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from dqn.envstate import capture_env_state
from dqn.lockstep import _PHYSICS, CartPoleLockstep, Lockstep, is_plain_cartpole, lockstep


def _balancer(obs: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Push toward the falling side (episodes reach the 500-step limit), with random actions."""
    greedy = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
    random = rng.integers(0, 2, len(obs))
    return np.where(rng.random(len(obs)) < noise, random, greedy)


def _snapshots_equal(a: gym.Env, b: gym.Env) -> None:
    sa, sb = capture_env_state(a), capture_env_state(b)
    assert sa.layers == sb.layers
    assert sa.arrays.keys() == sb.arrays.keys()
    for key in sa.arrays:
        np.testing.assert_array_equal(sa.arrays[key], sb.arrays[key])


def _run_both(make, m: int, steps: int, noise, sync_every: int = 0):
    """Step m envs through gymnasium and m through lockstep with the same actions; compare."""
    ref = [make() for _ in range(m)]
    mine = [make() for _ in range(m)]
    obs = np.stack([e.reset(seed=10 + i)[0] for i, e in enumerate(ref)])
    steps_ = lockstep(mine)
    obs2 = np.stack([steps_.reset(i, seed=10 + i) for i in range(m)])
    np.testing.assert_array_equal(obs, obs2)
    rng = np.random.default_rng(0)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        actions = _balancer(obs, rng, noise[t % len(noise)] if isinstance(noise, list) else noise)
        idx = np.flatnonzero(rng.random(m) < 0.9)  # some members sit a step out
        got = steps_.step(actions[idx], idx)
        for j, i in enumerate(idx):
            o, r, term, trunc, _ = ref[i].step(int(actions[i]))
            assert np.array_equal(got[0][j], o), (t, i)
            assert (got[1][j], got[2][j], got[3][j]) == (r, term, trunc), (t, i)
            assert got[0].dtype == o.dtype and type(got[1][j].item()) is type(r)
            obs[i] = o
            if term or trunc:
                counts["terminated" if term else "truncated"] += 1
                obs[i] = ref[i].reset()[0]
                assert np.array_equal(steps_.reset(i), obs[i])
        if sync_every and t % sync_every == 0:
            steps_.sync()
            for a, b in zip(ref, mine):
                _snapshots_equal(a, b)
    steps_.sync()
    for a, b in zip(ref, mine):
        _snapshots_equal(a, b)
    return steps_, counts


def test_cartpole_steps_bit_identical_through_resets_and_time_limits():
    steps, counts = _run_both(lambda: gym.make("CartPole-v1"), 6, 3000, [0.02, 0.5], 97)
    assert isinstance(steps, CartPoleLockstep)
    # both ways an episode ends happened, so both paths of the comparison ran
    assert counts["terminated"] > 10 and counts["truncated"] >= 2, counts


@pytest.mark.parametrize("variant", ["semi-implicit", "sutton_barto"])
def test_cartpole_variants_follow_the_env_attributes(variant):
    def make():
        if variant == "sutton_barto":
            return gym.make("CartPole-v1", sutton_barto_reward=True)
        env = gym.make("CartPole-v1")
        env.unwrapped.kinematics_integrator = "semi-implicit"
        return env

    steps, counts = _run_both(make, 3, 800, 0.3)
    assert isinstance(steps, CartPoleLockstep) and counts["terminated"] > 0


@pytest.mark.filterwarnings("ignore:.*already returned terminated")  # gymnasium's, expected
def test_a_step_after_termination_goes_through_gymnasium():
    ref, mine = gym.make("CartPole-v1"), gym.make("CartPole-v1")
    ref.reset(seed=3)
    steps = lockstep([mine])
    steps.reset(0, seed=3)
    while True:  # always push right: the pole falls
        got = steps.step(np.array([1]), np.array([0]))
        want = ref.step(1)
        assert np.array_equal(got[0][0], want[0]) and got[1][0] == want[1]
        if want[2]:
            break
    for _ in range(2):  # gymnasium's own answer past the end: reward 0, still terminated
        got = steps.step(np.array([0]), np.array([0]))
        want = ref.step(0)
        assert np.array_equal(got[0][0], want[0]) and (got[1][0], got[2][0]) == want[1:3]
    steps.sync()
    _snapshots_equal(ref, mine)


def test_other_envs_and_wrapped_cartpoles_step_one_by_one():
    assert is_plain_cartpole(gym.make("CartPole-v1"))
    assert is_plain_cartpole(gym.make("CartPole-v1", disable_env_checker=True))
    wrapped = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))
    assert not is_plain_cartpole(wrapped)
    assert not is_plain_cartpole(gym.make("CartPole-v1", render_mode="rgb_array"))
    assert type(lockstep([gym.make("Acrobot-v1")])) is Lockstep
    assert type(lockstep([gym.make("CartPole-v1"), wrapped])) is Lockstep
    other = gym.make("CartPole-v1")
    other.unwrapped.force_mag = 20.0  # members must share the physics to share a pass
    assert type(lockstep([gym.make("CartPole-v1"), other])) is Lockstep


def test_an_invalid_action_is_refused_as_gymnasium_refuses_it():
    steps = lockstep([gym.make("CartPole-v1")])
    steps.reset(0, seed=0)
    for a in (0, 1):  # past the checker's first steps
        steps.step(np.array([a]), np.array([0]))
    with pytest.raises(AssertionError, match="invalid"):
        steps.step(np.array([2]), np.array([0]))


@pytest.mark.parametrize("at", ["x", "-x", "theta", "-theta"])
def test_a_state_exactly_on_a_threshold_is_not_terminal_as_in_gymnasium(at):
    # Euler with zero velocities: x and theta stay exactly where they are for one step, so the
    # step lands exactly on the threshold, where gymnasium's strict comparisons say "not yet".
    ref, mine = gym.make("CartPole-v1"), gym.make("CartPole-v1")
    for env in (ref, mine):
        env.reset(seed=0)
        for a in (0, 1):  # past gymnasium's checks of the first steps: the numpy path steps
            env.step(a)
    core = ref.unwrapped
    xt, tt = core.x_threshold, core.theta_threshold_radians
    state = {
        "x": [xt, 0, 0, 0],
        "-x": [-xt, 0, 0, 0],
        "theta": [0, 0, tt, 0],
        "-theta": [0, 0, -tt, 0],
    }[at]
    for env in (ref, mine):
        env.unwrapped.state = np.array(state, np.float64)
    steps = lockstep([mine])
    assert isinstance(steps, CartPoleLockstep) and steps.ready[0]
    got = steps.step(np.array([1]), np.array([0]))
    obs, reward, terminated, truncated, _ = ref.step(1)
    assert terminated is False  # gymnasium: x > x_threshold, not >=
    assert np.array_equal(got[0][0], obs)
    assert (got[1][0], got[2][0], got[3][0]) == (reward, terminated, truncated)


def test_a_cartpole_behind_a_second_time_limit_steps_through_gymnasium():
    # Two TimeLimits: the numpy pass would count steps in one of them only.
    twice = gym.wrappers.TimeLimit(gym.make("CartPole-v1"), max_episode_steps=50)
    assert not is_plain_cartpole(twice)
    assert type(lockstep([twice])) is Lockstep


class ShapedCartPole(CartPoleEnv):
    """A user's CartPole with its own step: a reward shaped by the cart's distance from 0."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward - abs(float(obs[0])), terminated, truncated, info


def test_a_subclass_of_cartpole_with_its_own_step_steps_through_its_own_code():
    # Only CartPoleEnv itself is stepped by the numpy pass: a subclass's step is the user's code.
    make = lambda: gym.wrappers.TimeLimit(ShapedCartPole(), 500)  # noqa: E731
    assert not is_plain_cartpole(make())
    steps, counts = _run_both(make, 3, 300, 0.3)
    assert type(steps) is Lockstep and counts["terminated"] > 0


def test_a_cartpole_without_a_time_limit_is_never_truncated():
    # CartPoleEnv made directly (or registered without max_episode_steps) has no TimeLimit: its
    # episodes run past 500 steps, as gymnasium steps them.
    steps, counts = _run_both(CartPoleEnv, 3, 1500, 0.0)
    assert isinstance(steps, CartPoleLockstep)
    assert counts["truncated"] == 0


@pytest.mark.parametrize("name", _PHYSICS)
def test_members_that_differ_in_any_physics_attribute_do_not_share_a_pass(name):
    other = gym.make("CartPole-v1", sutton_barto_reward=False)
    value = getattr(other.unwrapped, name)
    changed = {bool: lambda v: not v, str: lambda v: "semi-implicit"}.get(
        type(value), lambda v: 2 * v
    )
    setattr(other.unwrapped, name, changed(value))
    assert type(lockstep([gym.make("CartPole-v1"), other])) is Lockstep


@pytest.mark.parametrize(
    "layer, name, value",
    [
        ("core", "state", np.zeros(2)),  # a checkpoint's state of 2 numbers
        ("core", "state", np.zeros(4, np.int64)),
        ("core", "state", [0.0] * 4),
        ("core", "steps_beyond_terminated", "x"),
        ("core", "gravity", np.array([9.8])),  # an array: == gave an array, its truth an error
        ("core", "gravity", "9.8"),
        ("limit", "_elapsed_steps", 1.5),
        ("limit", "_elapsed_steps", 2**70),  # past int64: an OverflowError in the pass
        ("limit", "_max_episode_steps", None),
    ],
)
def test_a_cartpole_holding_what_its_own_code_never_writes_steps_through_gymnasium(
    layer, name, value
):
    # A resumed member's CartPole holds what its checkpoint recorded: a state of another shape
    # stopped the numpy pass with its traceback; stepped through gymnasium, such an env fails in
    # its own code, as a single run's does.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.step(0)
    setattr(env.unwrapped if layer == "core" else env, name, value)  # env: the TimeLimit
    assert type(lockstep([gym.make("CartPole-v1"), env])) is Lockstep


def test_rewards_keep_the_float64_the_env_returned():
    # A reward of 0.1 in float32 is 0.10000000149...: a population's returns would differ from
    # the single run's, which adds the env's own floats.
    env = gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: 0.1 * r)
    steps = lockstep([env])
    steps.reset(0, seed=0)
    rewards = steps.step(np.array([0]), np.array([0]))[1]
    assert rewards.dtype == np.float64 and rewards[0] == 0.1


class Wide(gym.Wrapper):
    """Returns its first observation as a [1, d] array, against its [d] space."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs[None], info


def test_a_first_observation_of_the_wrong_shape_is_named_at_the_reset():
    from dqn.errors import UnsupportedSpaceError

    with pytest.raises(UnsupportedSpaceError, match=r"observation of shape \(1, 4\)"):
        lockstep([Wide(gym.make("CartPole-v1"))]).reset(0, seed=0)


def test_a_checker_without_the_data_reuse_check_of_gymnasium_1_4_steps_the_same(monkeypatch):
    # Before 1.4 gymnasium's PassiveEnvChecker checks the reset and the first step only, and has
    # no checked_data_reuse: the pass takes over after that first step, bit for bit as before.
    from gymnasium.utils.passive_env_checker import (
        env_reset_passive_checker,
        env_step_passive_checker,
    )
    from gymnasium.wrappers import PassiveEnvChecker

    def step(self, action):
        if not self.checked_step:
            self.checked_step = True
            return env_step_passive_checker(self.env, action)
        return self.env.step(action)

    def reset(self, *, seed=None, options=None):
        if not self.checked_reset:
            self.checked_reset = True
            return env_reset_passive_checker(self.env, seed=seed, options=options)
        return self.env.reset(seed=seed, options=options)

    monkeypatch.setattr(PassiveEnvChecker, "step", step)
    monkeypatch.setattr(PassiveEnvChecker, "reset", reset)

    def make():
        env = gym.make("CartPole-v1")
        checker = env.env.env
        assert type(checker) is PassiveEnvChecker
        for name in ("checked_data_reuse", "_previous_data"):  # made by 1.4's checker only
            vars(checker).pop(name, None)
        return env

    steps, counts = _run_both(make, 4, 1200, [0.02, 0.5], 97)
    assert isinstance(steps, CartPoleLockstep) and counts["terminated"] > 3
    assert steps.ready.any()  # the pass stepped them, not gymnasium
