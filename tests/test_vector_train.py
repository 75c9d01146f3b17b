"""Training with num_envs > 1: the bookkeeping of a vector env (learning: test_learning)."""

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig
from dqn.config import total_grad_steps
from dqn.errors import ConfigError
from dqn.loop import multiples_between, train
from dqn.replay import ReplayBuffer


def test_multiples_between_counts_the_periods_a_loop_step_crosses():
    assert multiples_between(0, 8, 10) == 0
    assert multiples_between(8, 16, 10) == 1  # 10
    assert multiples_between(16, 48, 10) == 3  # 20, 30, 40
    assert multiples_between(30, 40, 10) == 1  # 40, not 30: the interval is (lo, hi]
    assert multiples_between(990, 1010, 10, after=1000) == 1  # 1010 only: 1000 is not > 1000
    assert multiples_between(1000, 1001, 1, after=1000) == 1  # 1001 is


@pytest.mark.parametrize("every", [1, 4, 10])
@pytest.mark.parametrize("starts", [0, 9, 10, 1_000])
def test_the_bursts_one_step_at_a_time_are_the_runs_schedule(every, starts):
    # The loop's count, step by step, is the schedule the learning rate and the population
    # loop plan with: total_grad_steps bursts' worth, the first at first_burst_env_step.
    from dqn.config import first_burst_env_step

    c = DQNConfig(
        total_env_steps=2_000,
        learning_starts_env_steps=starts,
        train_every_env_steps=every,
        gradient_steps_per_train=3,
        n_step=1,
    )
    bursts = [multiples_between(s, s + 1, every, after=starts) for s in range(2_000)]
    assert 3 * sum(bursts) == total_grad_steps(c)
    assert bursts.index(1) + 1 == first_burst_env_step(c)  # the env step after loop step s


TINY = DQNConfig(
    hidden_sizes=(16,),
    batch_size=16,
    total_env_steps=1_000,
    learning_starts_env_steps=200,
    train_every_env_steps=10,
    gradient_steps_per_train=2,
    eval_every_env_steps=500,
    eval_episodes=2,
    checkpoint_every_env_steps=500,
    num_envs=4,
    n_step=1,  # one transition stored per env step (the tests count them)
    learner="numpy",
    epsilon_decay_fraction=0.5,
    jit_compile=False,
)


def test_a_vectorized_run_keeps_the_configured_ratio_of_updates_to_transitions(tmp_path):
    result = train(TINY, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    steps = int(result.history[-1]["env_step"])
    # Transitions are counted as stored: the total, overshot by less than one loop step.
    assert TINY.total_env_steps <= steps < TINY.total_env_steps + TINY.num_envs
    # One burst of 2 per 10 transitions past 200, whatever the loop steps' boundaries, up to
    # total_env_steps: the schedules' length, whatever the last loop step's overshoot.
    assert result.agent.grad_steps == 2 * multiples_between(0, 1_000, 10, after=200)
    assert result.agent.grad_steps == total_grad_steps(TINY)
    assert [int(r["env_step"]) // 500 for r in result.history] == [1, 2]
    # Every finished episode was counted once: CartPole pays 1 per step, and a random-ish
    # policy ends episodes after at least 8 steps, so the returns account for the steps.
    assert sum(result.episode_returns) <= steps
    assert min(result.episode_returns) >= 8
    loaded = DQNAgent.load(tmp_path / "run")  # agent-only checkpoints, readable
    assert loaded.grad_steps == result.agent.grad_steps


def test_a_vectorized_run_past_its_total_takes_no_burst_past_the_schedule(tmp_path):
    # 4 envs end at an env step past 199: the bursts its last loop step owed past 199 (at 200)
    # ran past the learning-rate schedule's end, at a rate of 0, with the warning meant for a
    # user's own loop past the run. Acrobot's episodes of 5 steps all end by the time limit
    # (no policy swings it up that fast), so where the run ends does not hang on the
    # trajectory a CPU's rounding gives: 4 x 50 real env steps, 200.
    import warnings

    config = TINY.replace(
        env_id="Acrobot-v1",
        env_kwargs={"max_episode_steps": 5},
        total_env_steps=199,
        learning_starts_env_steps=30,
        train_every_env_steps=8,
        gradient_steps_per_train=3,
        eval_every_env_steps=199,
        checkpoint_every_env_steps=199,
        learning_rate_end=0.0,
        target_update_every_grad_steps=16,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        result = train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    assert int(result.history[-1]["env_step"]) >= 200  # the overshoot this test is about
    assert result.agent.grad_steps == total_grad_steps(config) == 63


def test_a_vectorized_run_stores_no_autoreset_step(tmp_path, monkeypatch):
    # NEXT_STEP autoreset: the step after an episode ends returns the new episode's first
    # observation with reward 0. Storing it would teach a transition that never happened:
    # every stored CartPole transition has reward 1.
    stored = []
    original = ReplayBuffer.add

    def spy(self, obs, action, reward, next_obs, terminated):
        stored.append(reward)
        return original(self, obs, action, reward, next_obs, terminated)

    monkeypatch.setattr(ReplayBuffer, "add", spy)
    result = train(TINY, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    rewards = np.array(stored)
    assert len(result.episode_returns) > 20  # many autoresets happened
    assert len(rewards) == int(result.history[-1]["env_step"])
    np.testing.assert_array_equal(rewards, 1.0)


# CartPole has a vectorized version of its own (one numpy step for all copies); Acrobot does
# not, and gymnasium steps its copies in a loop (SyncVectorEnv), each a wrapped env with its own
# physics, generator and time limit: they were not in the checkpoint, and the resumed run
# stepped copies never reset (gymnasium's ResetNeeded, a traceback).
VECTOR_ENVS = {
    "own vector env": {},
    "copies in a loop": dict(
        env_id="Acrobot-v1", env_kwargs={"max_episode_steps": 100}, final_eval_episodes=2
    ),
}


@pytest.mark.parametrize("env", list(VECTOR_ENVS))
def test_a_vectorized_run_resumes_from_a_checkpoint_to_the_same_metrics(env, tmp_path):
    # The vector env's state (physics, step counters, autoreset flags, its generator), the
    # envs waiting for an autoreset and each env's n-step window are all in the checkpoint.
    import shutil
    import warnings

    from dqn.agent_files import list_checkpoints
    from dqn.errors import CheckpointWarning
    from dqn.loop import resume

    config = TINY.replace(n_step=3, **VECTOR_ENVS[env])
    full = tmp_path / "full"
    train(config, run_dir=full, progress=False, log_tensorboard=False)
    first = list_checkpoints(full)[-1]  # the oldest: mid-run
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "config.yaml", run)
    shutil.copytree(first, run / "checkpoints" / first.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # "does not restore": not exact
        resume(run, progress=False, log_tensorboard=False)
    assert (run / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()


@pytest.mark.parametrize("num_envs", [1, 4])
def test_learning_may_start_as_soon_as_the_first_n_step_transition_is_stored(tmp_path, num_envs):
    # Each env stores its first 3-step transition after 3 of its own steps, so the buffer is
    # first non-empty at env step num_envs * 3: the earliest learning start the config allows.
    config = TINY.replace(
        num_envs=num_envs,
        n_step=3,
        learning_starts_env_steps=num_envs * 3 - 1,
        train_every_env_steps=1,
        gradient_steps_per_train=1,
        target_update_every_grad_steps=10,
        total_env_steps=40,
        eval_every_env_steps=40,
        checkpoint_every_env_steps=40,
    )
    result = train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    assert result.agent.grad_steps > 0
    with pytest.raises(ConfigError, match="must be >= num_envs \\* n_step - 1"):
        config.replace(learning_starts_env_steps=num_envs * 3 - 2)


def test_one_env_starts_a_new_episode_after_its_time_limit_cuts_one():
    from dqn.envs import make_stepper

    env = make_stepper("CartPole-v1", 1, {"max_episode_steps": 2})
    env.reset(seed=0)
    cut = [bool(env.step(np.zeros(1, np.int64)).truncated[0]) for _ in range(4)]
    assert cut == [False, True, False, True]  # not cut at every step past the limit


def test_a_time_limit_of_null_is_the_registered_one_in_a_vector_env_as_in_one():
    # gym.make reads max_episode_steps=None as the registered limit; CartPole's own vector env
    # took None as its limit, and a run of num_envs > 1 failed at its first step (TypeError).
    from dqn.envs import make_vector_env

    envs = make_vector_env("CartPole-v1", 2, {"max_episode_steps": None})
    assert envs.unwrapped.max_episode_steps == gym.spec("CartPole-v1").max_episode_steps == 500
    envs.reset(seed=0)
    envs.step(np.zeros(2, np.int64))
    envs.close()


def test_a_time_limit_of_null_is_passed_on_for_an_env_registered_without_one(monkeypatch):
    # With no registered limit, None is what it says (no limit), not the vector class's default.
    from dqn import envs
    from tests.conftest import register_once

    def entry(**kwargs):  # CartPole, with no TimeLimit around it
        return gym.make("CartPole-v1").unwrapped

    given = []

    class Made(Exception):  # only the keywords are wanted, not the vector env
        pass

    def make_vec(env_id, num_envs, **kwargs):
        given.append(kwargs)
        raise Made

    monkeypatch.setattr(gym, "make_vec", make_vec)
    for env_id in (register_once("NoLimitCartPole-v0", entry), "CartPole-v1"):
        with pytest.raises(Made):
            envs.make_vector_env(env_id, 2, {"max_episode_steps": None})
    assert given == [{"max_episode_steps": None}, {}]


def test_the_step_after_a_time_limit_cut_is_an_autoreset_not_a_transition():
    from dqn.envs import make_stepper

    envs = make_stepper("CartPole-v1", 2, {"max_episode_steps": 2})
    envs.reset(seed=0)
    steps = [envs.step(np.zeros(2, np.int64)) for _ in range(3)]
    assert steps[1].truncated.all() and not steps[1].terminated.any()
    assert steps[2].real.tolist() == [False, False]  # reward 0 into a new episode: not stored
    envs.close()


def test_a_rows_update_metrics_are_over_its_gradient_steps_when_a_step_holds_two_bursts(
    tmp_path, monkeypatch
):
    # 3 envs and a burst every 2 env steps: a loop step crosses one multiple of 2 or two, and a
    # call of two bursts was weighed as one in the row's mean. (A population's members step one
    # env each: a loop step holds one burst at most.) Each step's metrics are recorded as the
    # learner computes them, and every row is checked against their mean (or max).
    from dqn.numpy_learner import NumpyLearner
    from dqn.run_log import read_metrics
    from dqn.step_metrics import IS_MAX_METRIC, METRIC_NAMES

    steps = []
    real_step = NumpyLearner.step

    def step(self, *batch):
        values = real_step(self, *batch)
        steps.append(values.copy())
        return values

    monkeypatch.setattr(NumpyLearner, "step", step)
    config = TINY.replace(num_envs=3, train_every_env_steps=2, total_env_steps=600)
    train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    metrics = read_metrics(tmp_path / "run" / "metrics.csv")
    per_step = np.stack(steps)
    ends = metrics["grad_steps"].astype(int)
    assert ends[-1] == len(per_step)
    for i, (start, end) in enumerate(zip([0, *ends[:-1]], ends)):
        if end > start:
            window = per_step[start:end]
            want = np.where(IS_MAX_METRIC, window.max(axis=0), window.mean(axis=0))
            got = np.array([metrics[name][i] for name in METRIC_NAMES])
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=f"row {i}")


def test_a_vector_env_is_made_by_a_gymnasium_without_autoreset_modes(monkeypatch):
    # gymnasium 1.0 has no AutoresetMode: its vector envs all reset on the step after an end.
    import gymnasium as gym

    from dqn.envs import make_stepper

    monkeypatch.delattr(gym.vector, "AutoresetMode", raising=False)  # present from 1.1
    envs = make_stepper("CartPole-v1", 2, {"max_episode_steps": 2})
    envs.reset(seed=0)
    steps = [envs.step(np.zeros(2, np.int64)) for _ in range(3)]
    assert steps[1].truncated.all() and steps[2].real.tolist() == [False, False]
    envs.close()
