"""An env that returns NaN or inf stops its run (or its member) with a message naming the env.

Without the check a NaN observation reaches the replay buffer, its Q-values are NaN (and argmax
of NaNs is action 0), and the divergence guard stops the run updates later blaming the learner.
"""

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from dqn import DQNConfig, train
from dqn.envs import check_env_values
from dqn.errors import NonFiniteEnvError
from dqn.evaluation import evaluate_members
from dqn.population import Member, train_population
from tests.conftest import TINY_RUN, register_once


class BrokenCartPole(CartPoleEnv):
    """CartPole whose ``broken_at``-th step (counted over episodes) returns a NaN or inf, if
    its first reset had seed ``broken_seed`` (1: a run's or member's training env with seed 1;
    10000: an evaluation env, whose first episode is reset with eval_seed)."""

    def __init__(self, broken_at: int, what: str, broken_seed: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.broken_at, self.what, self.steps, self.first_seed = broken_at, what, 0, None
        self.broken_seed = broken_seed

    def reset(self, *, seed=None, options=None):
        if self.first_seed is None:
            self.first_seed = seed
        obs, info = super().reset(seed=seed, options=options)
        broken = self.steps >= self.broken_at and self.first_seed == self.broken_seed
        if self.what == "reset" and broken:  # the first reset at or after broken_at steps
            obs, self.what = np.full_like(obs, np.nan), "done"
        elif self.what == "big_reset" and broken:
            obs, self.what = np.array([1e39, 0.0, 0.0, 0.0]), "done"
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.steps += 1
        if self.steps == self.broken_at and self.first_seed == self.broken_seed:
            if self.what == "obs":
                obs = obs.copy()
                obs[2] = np.nan
            elif self.what == "reward":
                reward = np.inf
            elif self.what == "big_obs":  # finite in float64, inf in the network's float32
                obs = obs.astype(np.float64)
                obs[2] = 1e39
            elif self.what == "big_reward":
                reward = 1e39
        return obs, reward, terminated, truncated, info


for _what in ("obs", "reward", "reset", "big_obs", "big_reward"):
    register_once(
        f"DqnTestBroken-{_what}-v0",
        BrokenCartPole,
        kwargs={"broken_at": 300, "what": _what},
        max_episode_steps=500,
    )
# The 5th step of the first evaluation, or its first reset.
for _id, _what, _at in [
    ("DqnTestBrokenEval-v0", "obs", 5),
    ("DqnTestBigEval-v0", "big_obs", 5),
    ("DqnTestBigEvalReset-v0", "big_reset", 0),
]:
    register_once(
        _id,
        BrokenCartPole,
        kwargs={"broken_at": _at, "what": _what, "broken_seed": 10_000},
        max_episode_steps=500,
    )


def test_all_finite_is_exact_where_its_quick_sum_cancels():
    from dqn.finite import all_finite

    assert not all_finite([1e308, 1e308]) and not all_finite(np.full(100, 1e308))
    assert not all_finite([np.inf, -np.inf]) and not all_finite(np.r_[np.zeros(99), np.nan])
    assert not all_finite(np.float32(np.inf)) and all_finite(np.zeros((0, 4)))
    # Finite in float64 but inf in float32, which the networks compute in; and two such
    # values that cancel in the quick sum.
    assert not all_finite([1e39]) and not all_finite([1e39, -1e39, 0.0])
    assert all_finite([3.4e38, -3.4e38]) and not all_finite(np.r_[np.zeros(99), 1e39])


def test_finite_values_pass_and_the_first_bad_one_is_named():
    check_env_values(7, np.zeros((3, 4), np.float32), np.ones(3))
    check_env_values(7, np.zeros(4, np.float32))  # one observation, no rewards
    obs = np.zeros((3, 2), np.float32)
    obs[1, 1] = -np.inf
    with pytest.raises(
        NonFiniteEnvError,
        match=r"after env step 7 .*: the env returned the observation \[0.0, -inf\]",
    ):
        check_env_values(7, obs, np.ones(3))
    with pytest.raises(NonFiniteEnvError, match=r"gymnasium.wrappers.TransformObservation\)$"):
        check_env_values(7, obs, np.ones(3))
    with pytest.raises(NonFiniteEnvError, match=r"step 7 \(before its first checkpoint\): the"):
        check_env_values(7, obs, np.ones(3), checkpointed=False)
    with pytest.raises(
        NonFiniteEnvError,
        match=r"returned the reward nan \(NaN or inf\); .* gymnasium.wrappers.TransformReward\)$",
    ):
        check_env_values(7, np.zeros((3, 2)), np.array([1.0, np.nan, 1.0]))


def test_of_several_bad_rows_the_first_is_named():
    obs = np.zeros((4, 2))
    obs[1, 0], obs[3, 1] = np.nan, np.inf
    with pytest.raises(NonFiniteEnvError, match=r"returned the observation \[nan, 0.0\] "):
        check_env_values(7, obs, np.ones(4))
    rewards = np.array([1.0, 1.0, -np.inf, np.nan])
    with pytest.raises(NonFiniteEnvError, match=r"returned the reward -inf "):
        check_env_values(7, np.zeros((4, 2)), rewards)


@pytest.mark.parametrize(
    "what, shown",
    [
        ("obs", r"observation \[.*, nan, .*\] \(NaN or inf\)"),
        ("reward", r"reward inf \(NaN or inf\)"),
        ("big_obs", r"observation \[.*, 1e\+39, .*\] \(beyond float32's range"),
        ("big_reward", r"reward 1e\+39 \(beyond float32's range"),
    ],
)
def test_a_nan_from_the_env_stops_the_run_naming_the_env_not_the_learner(tmp_path, what, shown):
    config = DQNConfig(**TINY_RUN).replace(env_id=f"DqnTestBroken-{what}-v0", seed=1)
    with pytest.raises(
        NonFiniteEnvError, match=f"after env step 299 .*: the env returned the {shown}"
    ):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env_steps"] == 299 and "the learner did not diverge" in summary["diverged"]


def test_a_run_whose_env_returns_nan_before_any_checkpoint_says_it_has_none(tmp_path):
    # A new run's first checkpoint is at env step 400: at 299 there is none to resume from.
    config = DQNConfig(**TINY_RUN).replace(
        env_id="DqnTestBroken-obs-v0", seed=1, checkpoint_every_env_steps=400
    )
    with pytest.raises(
        NonFiniteEnvError, match=r"after env step 299 \(before its first checkpoint\)"
    ):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))


def test_a_member_whose_env_returns_nan_before_any_checkpoint_says_it_has_none(tmp_path):
    base = DQNConfig(**TINY_RUN).replace(
        env_id="DqnTestBroken-obs-v0", learner="numpy", checkpoint_every_env_steps=400
    )
    broken = Member({}, 1, "broken")
    [broken] = train_population(base, [broken], out_dir=tmp_path / "p", progress=False)
    assert "after env step 299 (before its first checkpoint): the env returned " in broken.diverged
    # Its resume says it was stopped, and why: the env, not the learner, which did not diverge.
    from dqn.errors import CheckpointError
    from dqn.population import resume_population

    with pytest.raises(CheckpointError) as refused:
        resume_population(tmp_path / "p", progress=False)
    said = str(refused.value)
    assert "every member was stopped before its first checkpoint (broken-seed1: " in said
    assert "the learner did not diverge: fix the env" in said and "diverged member" not in said


def test_a_member_whose_env_returns_nan_stops_and_the_others_go_on(tmp_path):
    base = DQNConfig(**TINY_RUN).replace(
        env_id="DqnTestBroken-obs-v0", learner="numpy", eval_every_env_steps=500
    )
    broken = Member({}, 1, "broken")
    calm = Member({}, 2, "calm")
    alone = train_population(base, [calm], out_dir=tmp_path / "alone", progress=False)
    both = train_population(base, [broken, calm], out_dir=tmp_path / "both", progress=False)
    assert "after env step 299 (the last good checkpoint is intact): the env returned the " in (
        both[0].diverged
    )
    assert json.loads((both[0].run_dir / "summary.json").read_text())["env_steps"] == 299
    assert both[1].diverged is None and both[1].summary["env_steps"] == 600
    metrics = [(r.run_dir / "metrics.csv").read_text() for r in (both[1], alone[0])]
    assert metrics[0] == metrics[1]


def test_a_nan_in_an_evaluation_stops_the_run_at_that_evaluation(tmp_path):
    config = DQNConfig(**TINY_RUN).replace(env_id="DqnTestBrokenEval-v0")
    head = "the greedy evaluation stopped in its episode reset with seed 10000: the env returned"
    with pytest.raises(NonFiniteEnvError, match=f"{head} the observation"):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["env_steps"] == 100 and head in summary["diverged"]  # the first evaluation


def test_evaluating_policies_side_by_side_stops_only_the_one_whose_env_returns_nan():
    def q_values(obs):  # [k, W, 4] -> [k, W, 2]: push the cart toward the pole's lean
        return np.stack([-obs[..., 2], obs[..., 2]], axis=-1)

    def envs(env_id):
        return [gym.make(env_id) for _ in range(2)]

    alone = evaluate_members(q_values, [envs("CartPole-v1")], 4, 10_000)
    both = evaluate_members(
        q_values, [envs("DqnTestBrokenEval-v0"), envs("CartPole-v1")], 4, 10_000
    )
    assert isinstance(both[0], NonFiniteEnvError) and "reset with seed 10000" in str(both[0])
    assert both[1] == alone[0] and np.isfinite(alone[0]).all()


@pytest.mark.parametrize("env_id", ["DqnTestBigEval-v0", "DqnTestBigEvalReset-v0"])
def test_evaluating_side_by_side_names_1e39_as_the_env_returned_it(env_id):
    import warnings

    def q_values(obs):
        return np.stack([-obs[..., 2], obs[..., 2]], axis=-1)

    # (gymnasium's env checker would warn of the float64 observation first: not the point)
    envs = [[gym.make(env_id, disable_env_checker=True)], [gym.make("CartPole-v1")]]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow in a cast on the way
        both = evaluate_members(q_values, envs, 2, 10_000)
    assert isinstance(both[0], NonFiniteEnvError) and "reset with seed 10000" in str(both[0])
    assert re.search(r"observation \[.*1e\+39.*\] \(beyond float32's range", str(both[0]))
    assert np.isfinite(both[1]).all()


def test_a_member_whose_evaluation_returns_nan_stops_and_the_others_go_on(tmp_path, monkeypatch):
    # Members share eval_seed, so their eval envs are alike: member 0's evaluation is made to
    # fail at env step 300 to see the population stop it as the training env's NaN does.
    import dqn.population_loop as population_loop

    def failing(q_values, envs, episodes, seed):
        results = evaluate_members(q_values, envs, episodes, seed)
        if len(envs) == 2 and failing.calls == 2:
            results[0] = NonFiniteEnvError("the greedy evaluation stopped: the env returned NaN")
        failing.calls += 1
        return results

    failing.calls = 0
    base = DQNConfig(**TINY_RUN).replace(learner="numpy")
    alone = train_population(base, [Member({}, 2, "calm")], out_dir=tmp_path / "a", progress=False)
    monkeypatch.setattr(population_loop, "evaluate_members", failing)
    both = train_population(
        base,
        [Member({}, 1, "broken"), Member({}, 2, "calm")],
        out_dir=tmp_path / "b",
        progress=False,
    )
    assert both[0].diverged == "the greedy evaluation stopped: the env returned NaN"
    assert json.loads((both[0].run_dir / "summary.json").read_text())["env_steps"] == 300
    assert both[1].diverged is None and both[1].summary["env_steps"] == 600
    metrics = [(r.run_dir / "metrics.csv").read_text() for r in (both[1], alone[0])]
    assert metrics[0] == metrics[1]


def test_a_population_whose_every_member_stops_at_an_evaluation_step_ends_cleanly(tmp_path):
    # The NaN comes at env step 300, where an evaluation is due (every 100): with no member left
    # the loop must not evaluate an empty population.
    base = DQNConfig(**TINY_RUN).replace(env_id="DqnTestBroken-obs-v0", learner="numpy")
    [only] = train_population(base, [Member({}, 1)], out_dir=tmp_path / "p", progress=False)
    assert "after env step 299" in only.diverged and only.summary["env_steps"] == 299


def test_a_nan_first_observation_of_a_new_episode_stops_its_run_or_member(tmp_path):
    # The loops check new episodes' first observations where the reset returns them. The reset
    # comes at the end of the episode running at step 300, whatever the trajectory (another CPU
    # takes another): in 600 steps of a 16-unit net no episode lasts the 300 more steps that
    # would carry it past the end of the run.
    config = DQNConfig(**TINY_RUN).replace(env_id="DqnTestBroken-reset-v0", seed=1)
    with pytest.raises(NonFiniteEnvError, match=r"the env returned the observation \[nan, nan"):
        train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    base = config.replace(learner="numpy", eval_every_env_steps=500)
    both = train_population(
        base,
        [Member({}, 1, "broken"), Member({}, 2, "calm")],
        out_dir=tmp_path / "p",
        progress=False,
    )
    assert "the env returned the observation [nan, nan" in both[0].diverged
    assert 300 <= both[0].summary["env_steps"] < 600 and both[1].summary["env_steps"] == 600


def test_tensorboard_skips_what_float32_cannot_hold_and_metrics_csv_keeps_it(tmp_path):
    # An episode's return is a float64 sum: rewards below 3.4e38 each can add up beyond it,
    # and tf.summary.scalar raised a ValueError there (a traceback mid-run).
    import tensorflow as tf

    from dqn.run_log import _write_tensorboard

    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    _write_tensorboard(writer, {"env_step": 1, "train_return_mean": 6e38, "loss": 0.5})
    _write_tensorboard(writer, {"env_step": 2, "train_return_mean": float("nan"), "loss": 0.25})
    writer.flush()
    logged = [
        (event.step, value.tag)
        for path in (tmp_path / "tb").iterdir()
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    ]
    assert sorted(logged) == [(1, "loss"), (2, "loss")]


@pytest.mark.parametrize("learner", ["numpy", "tensorflow"])
def test_a_member_whose_env_returns_1e39_is_named_with_the_value_it_returned(tmp_path, learner):
    # The population's envs are stepped together and their observations cast to float32 after
    # the check, so the member's error names 1e39 as the env gave it, as a single run's does,
    # with no numpy overflow warning on the way.
    import warnings

    base = DQNConfig(**TINY_RUN).replace(env_id="DqnTestBroken-big_obs-v0", learner=learner)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        broken, calm = train_population(
            base,
            [Member({}, 1, "broken"), Member({}, 2, "calm")],
            out_dir=tmp_path / "pop",
            progress=False,
            log_tensorboard=False,
        )
    assert "after env step 299 (the last good checkpoint is intact): the env returned the " in (
        broken.diverged
    )
    assert re.search(r"observation \[.*, 1e\+39, .*\] \(beyond float32's range", broken.diverged)
    assert calm.diverged is None and calm.summary["env_steps"] == 600


def test_float32s_largest_value_is_finite_in_both_of_all_finites_paths():
    from dqn.finite import F32_MAX, all_finite, in_float32_range

    largest = float(np.finfo(np.float32).max)  # 3.4028234663852886e38, finite in float32
    assert F32_MAX == largest and np.isfinite(np.float32(largest))
    assert in_float32_range([largest, -largest, 0.0]).all()
    assert all_finite([largest, -largest])  # the quick sum's path (<= 64 values)
    assert all_finite(np.full(100, largest))  # the exact path (float64, more than 64 values)
    assert all_finite(np.full(100, -largest))
    assert not all_finite(np.r_[np.full(99, largest), np.inf])


def test_one_value_beyond_float32s_range_is_caught_on_either_side_of_zero():
    from dqn.finite import all_finite

    # float64 values whose quick sum is finite: each side of the range is its own check.
    for big in (1e39, -1e39):
        assert not all_finite([big, 0.0]) and not all_finite([0.0, 0.0, big])
    assert all_finite([-3.4e38, 0.0]) and all_finite([0.0, 3.4e38])


def test_epsilon_must_be_a_probability_and_a_bool_is_none():
    from dqn.errors import InputError
    from dqn.finite import check_epsilon

    assert check_epsilon(0) == 0.0 and check_epsilon(np.float32(0.5)) == 0.5
    assert check_epsilon(1) == 1.0
    for bad in (True, False, np.nan, -0.1, 1.1, None, "0.5"):
        with pytest.raises(InputError, match=r"epsilon must be in \[0, 1\], got"):
            check_epsilon(bad)


class NanAtResets(gym.Env):
    """Episodes of one step; the resets with seeds 10002 and 10003 give a NaN observation."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, np.nan if seed in (10_002, 10_003) else 0.0, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


class First:
    def act(self, obs):
        return 0


def test_an_evaluation_names_the_seed_of_the_episode_whose_env_returned_nan():
    # Episode i is reset with seed + i: the third of four, 10002, is the one to reproduce.
    from dqn.evaluation import evaluate

    with pytest.raises(NonFiniteEnvError, match="reset with seed 10002: the env returned"):
        evaluate(First(), NanAtResets(), 4, 10_000)
    # Side by side, two at a time: the second wave's first episode, named once (its neighbour,
    # 10003, returned a NaN at the same step: the first is the one evaluate names too).
    [error] = evaluate_members(
        lambda obs: np.zeros((*obs.shape[:-1], 2)), [[NanAtResets(), NanAtResets()]], 4, 10_000
    )
    assert isinstance(error, NonFiniteEnvError) and "reset with seed 10002:" in str(error)
