"""Envs of your own: ``module:EnvId`` ids, and the wrapper a refused observation space names."""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig, train, train_population
from dqn.envs import check_env
from dqn.errors import ConfigError, UnsupportedSpaceError
from dqn.terminal import ANSI_ESCAPE
from tests.conftest import TINY_RUN, register_once

# A user's module that registers, on import, two envs dqn refuses as gymnasium ships them
# (FrozenLake's Discrete(16) and Blackjack's Tuple observations), flattened to vectors.
MODULE = """
import gymnasium as gym


def flattened(env_id, **kwargs):
    return gym.wrappers.FlattenObservation(gym.make(env_id, **kwargs))


for name in ("FrozenLake-v1", "Blackjack-v1"):
    if f"DqnTestFlat{name}" not in gym.registry:
        gym.register(f"DqnTestFlat{name}", entry_point=flattened, kwargs={"env_id": name})
"""
NAME = "dqn_test_user_envs"


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / f"{NAME}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(folder)
    return folder


def test_a_fresh_process_given_only_the_id_imports_the_module_and_makes_the_env(module_dir):
    # As a study's worker does: nothing registered beforehand, no TensorFlow needed.
    code = (
        "import sys; from dqn.envs import check_env; "
        "print(check_env(sys.argv[1]), 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(module_dir)}
    out = subprocess.run(
        [sys.executable, "-c", code, f"{NAME}:DqnTestFlatFrozenLake-v1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert out.stdout.split() == ["(16,", "4)", "False"]


@pytest.mark.parametrize("env, obs_dim", [("FrozenLake-v1", 16), ("Blackjack-v1", 32 + 11 + 2)])
def test_the_wrapper_a_refused_space_names_makes_the_env_trainable(env, obs_dim, module_dir):
    """The refusal's advice works: FlattenObservation turns Discrete(16) into a one-hot of 16,
    and Blackjack's Tuple(Discrete(32), Discrete(11), Discrete(2)) into one of 32 + 11 + 2."""
    with pytest.raises(UnsupportedSpaceError, match="FlattenObservation"):
        check_env(env)
    env_id = f"{NAME}:DqnTestFlat{env}"
    assert check_env(env_id)[0] == obs_dim
    output_dir = module_dir.parent / "runs"
    config = DQNConfig(**{**TINY_RUN, "env_id": env_id, "output_dir": str(output_dir)})
    result = train(config, progress=False, log_tensorboard=False)
    # One folder name for the id, whatever the file system makes of ':'.
    assert result.run_dir.parent == output_dir
    assert result.run_dir.name.startswith(f"{NAME}_DqnTestFlat{env}-huber-seed0-")
    assert np.isfinite(result.final_eval_mean)
    made = gym.make(env_id)
    obs, _ = made.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs.sum() == (1 if env == "FrozenLake-v1" else 3)
    agent = DQNAgent.load(result.run_dir)
    assert agent.q_values(obs).shape == (made.action_space.n,)


def test_a_module_that_fails_on_import_is_named_in_one_line(module_dir):
    raising = "raise RuntimeError('no licence\\nfound')\n"
    (module_dir / "dqn_test_raising_envs.py").write_text(raising)
    with pytest.raises(ConfigError) as err:
        check_env("dqn_test_raising_envs:Foo-v1")
    message = str(err.value)
    assert "module 'dqn_test_raising_envs' cannot be imported (RuntimeError: no licence)" in message
    assert "\n" not in message and "PYTHONPATH" not in message


class SloppyEnv(gym.Env):
    """A vector env of the user's own that, after ``after`` steps in all, returns ``obs`` and
    ``reward`` instead of a float32 [4] observation and a float."""

    observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, after, obs, reward):
        self.after, self.bad_obs, self.bad_reward, self.steps, self.t = after, obs, reward, 0, 0

    def _obs(self):
        return self.bad_obs if self.steps >= self.after else np.zeros(4, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.steps, self.t = self.steps + 1, self.t + 1
        reward = self.bad_reward if self.steps >= self.after else 1.0
        return self._obs(), reward, self.t >= 20, False, {}


SLOPPY = {
    "a [1, 4] observation": (np.zeros((1, 4)), 1.0, "an observation of shape (1, 4), where"),
    "5 values": (np.zeros(5), 1.0, "an observation of shape (5,), where its observation space"),
    "text": (np.array(["a"] * 4), 1.0, "an observation of <U1 values"),
    "a reward array": (np.zeros(4), np.ones(1), "the reward array([1.]): a reward is one number"),
    "a reward string": (np.zeros(4), "1", "the reward '1': a reward is one number"),
}


@pytest.mark.parametrize("population", [False, True], ids=["run", "population"])
@pytest.mark.parametrize("case", list(SLOPPY))
def test_an_env_returning_what_its_spaces_do_not_say_is_named(case, population, tmp_path):
    from dqn import train_population

    obs, reward, fragment = SLOPPY[case]
    env_id = f"DqnTestSloppy{list(SLOPPY).index(case)}-v0"
    register_once(env_id, SloppyEnv, kwargs={"after": 150, "obs": obs, "reward": reward})
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, learner="numpy")
    with pytest.raises(
        UnsupportedSpaceError, match=f"env '{env_id}' returned {re.escape(fragment)}"
    ):
        if population:
            train_population(config, [({}, 0), ({}, 1)], out_dir=tmp_path / "p", progress=False)
        else:
            train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    # Refused at env step 150, after the evaluation of step 100 wrote its row: the run stays.
    kept = tmp_path / "p" / "member0-seed0" if population else tmp_path / "run"
    assert len((kept / "metrics.csv").read_text().splitlines()) == 2


class OldStepEnv(gym.Env):
    """An env written for gym < 0.26: step returns (obs, reward, done, info)."""

    observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 1.0, False, {}


class OldResetEnv(OldStepEnv):
    """... whose reset returns the observation alone."""

    def reset(self, *, seed=None, options=None):
        return np.zeros(4, np.float32)


@pytest.mark.parametrize("how", ["one env", "two envs", "population", "no wrappers"])
@pytest.mark.parametrize(
    "env_class, said",
    [(OldStepEnv, "its step returned 4 values"), (OldResetEnv, "its reset returned ")],
)
def test_an_env_of_the_old_gym_api_is_named_as_such_and_leaves_nothing(
    env_class, said, how, tmp_path
):
    # Its step was a raw "not enough values to unpack (expected 5, got 4)" from gymnasium's
    # own wrapper (without wrappers, a population read its 4 values as a truncated of {}), and
    # its reset was told it returned an observation of shape (). Refused at its first step,
    # the run or population had left its folder (config.yaml, an empty metrics.csv), and the
    # folders made for it; a folder of the user's own stays, empty.
    bare = how == "no wrappers"
    name = f"DqnTest{env_class.__name__}{'Bare' if bare else ''}-v0"
    kwargs = {"disable_env_checker": True} if bare else {"max_episode_steps": 50}
    env_id = register_once(name, env_class, **kwargs)
    config = DQNConfig(**TINY_RUN).replace(
        env_id=env_id, learner="numpy", num_envs=2 if how == "two envs" else 1
    )
    (tmp_path / "own").mkdir()
    with warnings.catch_warnings():  # gymnasium's own checker warns of the old API first
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedSpaceError) as err:
            if how in ("population", "no wrappers"):
                out = tmp_path / "made" / "p"
                # Members' folders outside the population's too: their parents go as well.
                runs = [tmp_path / "y" / "r0", tmp_path / "z" / "r1"] if bare else None
                train_population(
                    config, [({}, 0), ({}, 1)], out_dir=out, run_dirs=runs, progress=False
                )
            elif how == "one env":
                run = tmp_path / "made" / "run"
                train(config, run_dir=run, progress=False, log_tensorboard=False)
            else:
                train(config, run_dir=tmp_path / "own", progress=False, log_tensorboard=False)
    assert str(err.value).startswith(f"env '{env_id}': {said}")
    assert "gymnasium's step returns 5 values" in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["own"]
    assert list((tmp_path / "own").iterdir()) == []


def test_an_observation_given_as_a_list_of_numbers_is_taken(tmp_path):
    env_id = "DqnTestListObs-v0"
    register_once(env_id, SloppyEnv, kwargs={"after": 0, "obs": [0.0] * 4, "reward": 1})
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    assert result.final_eval_mean == 20.0  # every episode lasts its 20 steps
    # gymnasium's own checks say what they think of a list (a user sees the same), and only they.
    said = {
        ANSI_ESCAPE.sub("", str(w.message))  # their colour codes, as dqn's CLI drops them
        for w in caught
        if issubclass(w.category, UserWarning)
    }
    assert said == {
        "WARN: The obs returned by the `reset()` method was expecting a numpy array, actual type: "
        "<class 'list'>",
        "WARN: The obs returned by the `step()` method was expecting a numpy array, actual type: "
        "<class 'list'>",
        "WARN: Casting input x to numpy array.",
    }, said


@pytest.mark.parametrize("case", [c for c in SLOPPY if c != "a reward string"])
def test_a_vector_env_whose_copies_return_what_their_spaces_do_not_say_is_named(case, tmp_path):
    # num_envs > 1: gymnasium's vector env gathers the values (a string reward it converts).
    obs, reward, _ = SLOPPY[case]
    env_id = f"DqnTestSloppyVector{list(SLOPPY).index(case)}-v0"
    register_once(env_id, SloppyEnv, kwargs={"after": 150, "obs": obs, "reward": reward})
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, num_envs=2)
    vector = f"env '{env_id}' \\(a vector of 2\\) returned"
    if case == "a reward array" and np.lib.NumpyVersion(np.__version__) < "2.3.0":
        # numpy before 2.3 (2.2 is the newest for Python 3.10) gathers a 1-element reward as its
        # number, with its DeprecationWarning (2.3 refuses). Then the evaluation env names it if
        # it reaches its bad steps: with numpy 2.2 and gymnasium 1.4 it did, with the oldest
        # releases dqn takes (numpy 1.26, gymnasium 1.0) it did not, and numpy's warning is
        # what the user is told.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
            except UnsupportedSpaceError as exc:
                assert f"env '{env_id}' returned the reward array" in str(exc)
                return
        assert any("Conversion of an array with ndim > 0" in str(w.message) for w in caught)
        return
    with pytest.raises(UnsupportedSpaceError, match=vector):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)


class EndlessEnv(SloppyEnv):
    """Never terminates; registered without max_episode_steps, it never truncates either."""

    def step(self, action):
        self.t += 1
        return np.zeros(4, np.float32), 1.0, False, False, {}


@pytest.mark.parametrize("population", [False, True], ids=["run", "population"])
def test_an_env_whose_greedy_episodes_never_end_is_named_not_evaluated_forever(
    population, tmp_path, monkeypatch
):
    from dqn import evaluation, train_population

    monkeypatch.setattr(evaluation, "MAX_EPISODE_STEPS", 500)  # a million, unpatched
    env_id = register_once("DqnTestEndless-v0", EndlessEnv, kwargs=SLOPPY_KWARGS)
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, learner="numpy")
    fragment = (
        "env 'DqnTestEndless-v0': the greedy evaluation stopped in its episode reset with seed "
        "10000 after 500 steps without an end (it has no time limit): register the env with a "
        "time limit"
    )
    with pytest.raises(UnsupportedSpaceError, match=re.escape(fragment)):
        if population:
            train_population(config, [({}, 0), ({}, 1)], out_dir=tmp_path / "p", progress=False)
        else:
            train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)


SLOPPY_KWARGS = {"after": 10**9, "obs": None, "reward": None}


class FailingEnv(SloppyEnv):
    def step(self, action):
        raise ValueError("the simulator lost its licence")


def test_an_env_s_own_error_in_a_vector_env_is_passed_on_as_it_is(tmp_path):
    env_id = register_once(
        "DqnTestFailing-v0", FailingEnv, kwargs={"after": 10**9, "obs": None, "reward": None}
    )
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, num_envs=2)
    with pytest.raises(ValueError, match="^the simulator lost its licence$"):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)


class FlagEnv(SloppyEnv):
    """Returns ``truncated`` as ``flag`` (None: a flag it forgot to compute)."""

    def __init__(self, flag):
        super().__init__(10**9, None, None)
        self.flag = flag

    def step(self, action):
        self.t += 1
        return np.zeros(4, np.float32), 1.0, self.t >= 20, self.flag, {}


@pytest.mark.parametrize("population", [False, True], ids=["run", "population"])
def test_a_done_flag_that_is_not_a_bool_is_named(population, tmp_path):
    # truncated=None stopped a run with "TypeError: unsupported operand type(s) for |" raised in
    # dqn/loop.py, a line of dqn's own.
    from dqn import train_population

    env_id = register_once("DqnTestFlagNone-v0", FlagEnv, kwargs={"flag": None})
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, learner="numpy")
    fragment = "env 'DqnTestFlagNone-v0' returned truncated None: terminated and truncated are"
    with pytest.raises(UnsupportedSpaceError, match=re.escape(fragment)):
        if population:
            train_population(config, [({}, 0), ({}, 1)], out_dir=tmp_path / "p", progress=False)
        else:
            train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    for flag in (np.bool_(False), 0, np.array(False)):  # what envs return besides a bool
        env_id = register_once(
            f"DqnTestFlag{type(flag).__name__}-v0", FlagEnv, kwargs={"flag": flag}
        )
        run = tmp_path / type(flag).__name__
        train(config.replace(env_id=env_id), run_dir=run, progress=False, log_tensorboard=False)


class SimulatorEnv(SloppyEnv):
    """An env that reaches outside: a level file its reset reads, a simulator it connects to.
    ``down`` (a class attribute, for the test to set) makes each of them fail with an OSError."""

    down: str | None = None

    def __init__(self):
        super().__init__(10**9, None, None)
        if self.down == "init":
            raise ConnectionRefusedError("cannot reach the simulator at localhost:9000")

    def reset(self, *, seed=None, options=None):
        if self.down == "reset":
            raise FileNotFoundError(2, "No such file or directory", "levels/level3.txt")
        return super().reset(seed=seed)


@pytest.fixture
def simulator(tmp_path, monkeypatch):
    """A run of SimulatorEnv, and the env's switch."""
    env_id = register_once("DqnTestSimulator-v0", SimulatorEnv)
    run = tmp_path / "run"
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, learner="numpy")
    train(config, run_dir=run, progress=False, log_tensorboard=False)
    monkeypatch.setattr(SimulatorEnv, "down", None)
    return env_id, run, lambda what: monkeypatch.setattr(SimulatorEnv, "down", what)


def test_an_os_error_of_the_env_s_own_is_passed_on_not_named_a_file_of_the_run(
    simulator, tmp_path, capsys
):
    # dqn-train said "cannot write the run: No such file or directory: levels/level3.txt; the
    # checkpoints written before are intact" (there were none), dqn-evaluate "cannot read RUN":
    # the env's own error, without its traceback, given as a file of dqn's.
    from dqn.cli import evaluate_main, train_main

    env_id, run, down = simulator
    down("reset")
    with pytest.raises(FileNotFoundError, match="level3.txt"):
        train_main(["--env", env_id, "--run-dir", str(tmp_path / "new"), "--no-progress"])
    with pytest.raises(FileNotFoundError, match="level3.txt"):
        evaluate_main([str(run), "--episodes", "1"])
    assert "cannot" not in capsys.readouterr().err


def test_an_agent_loads_where_its_env_cannot_be_made(simulator):
    # The load's check of the env's spaces made the env, and a simulator not running here
    # stopped the load with its ConnectionRefusedError (the check skips an env it cannot make).
    env_id, run, down = simulator
    down("init")
    with pytest.raises(ConnectionRefusedError):
        gym.make(env_id)
    agent = DQNAgent.load(run)
    assert agent.act(np.zeros(4, np.float32)) in (0, 1)


class BuggyInitEnv(SloppyEnv):
    def __init__(self, level=1):
        super().__init__(10**9, None, None)
        self.grid = np.zeros(level, dtype="floot32")  # the user's typo


def test_a_type_error_in_the_env_s_own_init_is_not_blamed_on_env_kwargs():
    # With any env_kwargs (max_episode_steps, which gym.make takes itself, included), the
    # env's own TypeError was "env ... does not take env_kwargs {...}", its traceback gone.
    from dqn.envs import make_env

    env_id = register_once("DqnTestBuggyInit-v0", BuggyInitEnv)
    with pytest.raises(TypeError, match="floot32"):
        make_env(env_id, max_episode_steps=100)
    with pytest.raises(ConfigError, match="does not take env_kwargs {'colour': 'red'}"):
        make_env(env_id, colour="red")  # a keyword it does not take: still named so


def test_a_scalar_box_observation_is_refused_as_not_1d():
    # shape (): no axis to count, which must read as "not a 1-D Box", not an IndexError.
    import gymnasium as gym
    import numpy as np

    from dqn.envs import check_spaces
    from dqn.errors import UnsupportedSpaceError

    with pytest.raises(UnsupportedSpaceError, match="1-D Box"):
        check_spaces(gym.spaces.Box(-1.0, 1.0, (), np.float32), gym.spaces.Discrete(2))


def test_the_env_a_config_makes_takes_its_env_kwargs():
    # config_env makes the evaluation env of every run (and dqn-evaluate's, a study's
    # threshold env): it must be the env training steps, with env_kwargs.
    from dqn.envs import config_env

    env = config_env(DQNConfig(env_kwargs={"max_episode_steps": 7}))
    try:
        assert env.spec.max_episode_steps == 7
        env.reset(seed=0)
        truncated = [env.step(0)[3] for _ in range(7)]
    finally:
        env.close()
    assert truncated[-1] and not any(truncated[:-1])


def test_one_env_starts_a_new_episode_after_a_time_limit_cut():
    # A truncated episode (time limit) is over as a terminated one is: the next step is the
    # first of a new episode, not a step past the limit.
    import numpy as np

    from dqn.envs import make_stepper

    stepper = make_stepper("CartPole-v1", 1, {"max_episode_steps": 5})
    try:
        stepper.reset(seed=0)
        cut = [stepper.step(np.array([i % 2])) for i in range(5)][-1]
        assert cut.truncated[0] and not cut.terminated[0]
        assert not np.array_equal(stepper.obs, cut.next_obs)  # the reset's observation
        after = [stepper.step(np.array([i % 2])) for i in range(4)]
        assert not any(s.truncated[0] or s.terminated[0] for s in after)
    finally:
        stepper.close()


def _two_limits(**kwargs):
    # An entry point that wraps its env in two time limits: the inner, shorter one cuts first.
    import gymnasium as gym

    inner = gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, 4)
    return gym.wrappers.TimeLimit(inner, 50)


def test_n_step_is_checked_against_the_shortest_of_nested_time_limits():
    from dqn.envs import check_n_step
    from tests.conftest import register_once

    env_id = register_once("DqnTestTwoLimits-v0", _two_limits)
    check_n_step(DQNConfig(env_id=env_id, n_step=4))
    with pytest.raises(ConfigError, match=r"max_episode_steps=4\), got 5"):
        check_n_step(DQNConfig(env_id=env_id, n_step=5))


def _limited(limit=50):
    # An entry point whose keyword sets the time limit it wraps its env in.
    import gymnasium as gym

    return gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, limit)


def test_n_step_is_checked_against_the_time_limit_the_env_kwargs_give():
    # The limit read from inside the env is the one of this config's env_kwargs, not of an
    # env made earlier under the same id with others.
    from dqn.envs import check_n_step

    env_id = register_once("DqnTestLimitedByKwarg-v0", _limited)
    check_n_step(DQNConfig(env_id=env_id, n_step=5, env_kwargs={"limit": 10}))
    with pytest.raises(ConfigError, match=r"max_episode_steps=4\), got 5"):
        check_n_step(DQNConfig(env_id=env_id, n_step=5, env_kwargs={"limit": 4}))


@pytest.fixture
def cartpole():
    env = gym.make("CartPole-v1")
    yield env
    env.close()


def test_a_solve_return_of_zero_is_the_config_s_not_the_env_s_threshold(cartpole):
    from dqn.envs import solve_return

    assert solve_return(DQNConfig(solve_return=0.0), cartpole) == 0.0
    assert solve_return(DQNConfig(solve_return=-100.0), cartpole) == -100.0
    assert solve_return(DQNConfig(), cartpole) == 475.0  # CartPole-v1's reward_threshold


def test_discrete_actions_must_start_at_0_on_either_side():
    from dqn.envs import check_spaces

    box = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert check_spaces(box, gym.spaces.Discrete(4)) == (3, 4)
    for start in (1, -1):
        with pytest.raises(UnsupportedSpaceError, match=f"must start at 0.*add {start} to"):
            check_spaces(box, gym.spaces.Discrete(4, start=start))


def test_a_done_flag_is_a_bool_or_an_integer_of_numpy_s_even_as_a_0d_array(cartpole):
    from dqn.envs import checked_flag

    for flag, expected in [
        (np.array(1), True),
        (np.array(0, np.uint8), False),
        (np.array(True), True),
        (np.int64(1), True),
        (False, False),
    ]:
        assert checked_flag(flag, "terminated", cartpole) is expected, flag
    for flag in (np.array([True]), np.array(1.0), 1.0, None):
        with pytest.raises(UnsupportedSpaceError, match="returned terminated"):
            checked_flag(flag, "terminated", cartpole)


class BadValueEnv(SloppyEnv):
    def __init__(self, level=1):
        super().__init__(10**9, None, None)
        if level < 1:
            raise ValueError(f"level must be >= 1, got {level}")
        self.sizes = {"small": 3}["smal"]  # the user's typo


def test_the_env_s_own_init_error_is_passed_on_and_a_value_error_with_env_kwargs_names_them():
    # With no env_kwargs there is no keyword to blame: the env's own error and its traceback.
    from dqn.envs import make_env

    env_id = register_once("DqnTestBadValueInit-v0", BadValueEnv)
    with pytest.raises(KeyError, match="smal"):
        make_env(env_id)
    with pytest.raises(ConfigError, match=r"refused env_kwargs {'level': 0}: ValueError: level"):
        make_env(env_id, level=0)


def test_an_observation_of_bools_integers_or_floats_of_the_declared_shape_is_taken(cartpole):
    from dqn.envs import checked_obs

    for obs in ([True, False, True], np.array([1, 0, 2], np.uint8), [0.5, 1.0, -2.0]):
        assert checked_obs(obs, (3,), cartpole).shape == (3,)
    for obs, got in ((["a", "b", "c"], "<U1 values"), ([[1.0, 2.0, 3.0]], r"shape \(1, 3\)")):
        with pytest.raises(UnsupportedSpaceError, match=f"returned an observation of {got}"):
            checked_obs(obs, (3,), cartpole)


def test_a_refused_population_keeps_a_folder_of_yours_named_through_dotdot(tmp_path, monkeypatch):
    # made/../yours/r0: "yours" was counted among the folders made for the population (its
    # path was not resolved), and removed with them on the refusal, though it was the user's.
    from dqn.io import missing_parents

    monkeypatch.chdir(tmp_path)
    (tmp_path / "yours").mkdir()
    assert missing_parents(Path("made/../yours/r0")) == []
    env_id = register_once("DqnTestOldStepEnvBare-v0", OldStepEnv, disable_env_checker=True)
    config = DQNConfig(**TINY_RUN).replace(env_id=env_id, learner="numpy")
    runs = ["made/../yours/r0", "other/r1"]
    with pytest.raises(UnsupportedSpaceError, match="its step returned 4 values"):
        train_population(config, [({}, 0), ({}, 1)], out_dir="p", run_dirs=runs, progress=False)
    assert (tmp_path / "yours").is_dir()
    assert not (tmp_path / "other").exists() and not (tmp_path / "p").exists()
