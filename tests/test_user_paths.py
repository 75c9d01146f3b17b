"""What a Python caller gives the API is taken as the commands take it: a path's leading ``~``
is the home folder, and an object of the wrong kind is named, not a traceback from Keras or
gymnasium."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig, train
from dqn.config import user_path
from dqn.errors import ConfigError, InputError
from dqn.evaluation import evaluate
from tests.conftest import TINY_RUN

OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME in one folder, the working folder another: a folder named ``~`` would land there."""
    (tmp_path / "home").mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "home"


def test_a_tilde_in_a_python_call_s_path_is_the_home_folder(home):
    # train(run_dir="~/run") and save("~/agent") made a folder named "~" in the working folder,
    # which `rm -rf ~` would then be asked to delete.
    config = DQNConfig(**TINY_RUN, learner="numpy")
    result = train(config, run_dir="~/run", progress=False, log_tensorboard=False)
    assert (home / "run" / "config.yaml").is_file()
    saved = result.agent.save("~/agent")
    assert saved == home / "agent"
    assert DQNAgent.load("~/agent").grad_steps == result.agent.grad_steps
    assert list(Path.cwd().iterdir()) == []


def test_a_config_file_under_a_tilde_is_read_from_the_home_folder(home):
    # DQNConfig.from_yaml("~/c.yaml") was "config file not found: ~/c.yaml".
    (home / "c.yaml").write_text("seed: 3\n")
    assert DQNConfig.from_yaml("~/c.yaml").seed == 3
    with pytest.raises(InputError, match=r"from_yaml takes the config file's path \(a str or"):
        DQNConfig.from_yaml(123)
    with pytest.raises(ConfigError, match="overrides are a mapping or a list .* got NoneType"):
        DQNConfig.from_yaml("~/c.yaml", None)


@pytest.mark.parametrize("kind", [list, tuple])
def test_a_populations_run_folders_under_a_tilde_are_in_the_home_folder(home, kind):
    from dqn.population import train_population

    config = DQNConfig(**TINY_RUN, learner="numpy").replace(total_env_steps=200)
    run_dirs = kind(["~/ra", "~/rb"])
    train_population(config, [({}, 0), ({}, 1)], out_dir="~/p", run_dirs=run_dirs, progress=False)
    assert (home / "ra" / "config.yaml").is_file() and (home / "rb" / "config.yaml").is_file()
    assert list(Path.cwd().iterdir()) == []


def test_user_path_leaves_what_is_no_path_to_its_caller():
    assert user_path(None, "run_dir") is None
    assert user_path(3, "run_dir") == 3
    assert user_path("runs/a", "run_dir") == "runs/a"
    assert user_path("", "run_dir") == ""  # refused by the caller as an empty name


def test_user_path_expands_a_tilde_in_a_path_as_in_a_str(home):
    assert user_path(Path("~/runs/a"), "run_dir") == home / "runs" / "a"
    assert user_path("~/runs/a", "run_dir") == home / "runs" / "a"


def test_an_output_dir_given_as_a_path_is_taken():
    assert DQNConfig(output_dir=Path("/tmp/x")).output_dir == "/tmp/x"


@pytest.mark.parametrize("given", ["model", "model class"])
def test_a_keras_model_for_network_fn_is_refused_with_the_cure(given):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    network_fn = model if given == "model" else keras.Sequential
    with pytest.raises(ConfigError, match=r"network_fn must be a function .* got Sequential: wrap"):
        DQNAgent(OBS, gym.spaces.Discrete(2), DQNConfig(learner="numpy"), network_fn)


def test_evaluate_names_an_id_a_vector_env_and_another_env_s_observations():
    agent = DQNAgent(OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,), learner="numpy"))
    with pytest.raises(InputError, match=r"evaluate steps an env, got str 'CartPole-v1'"):
        evaluate(agent, "CartPole-v1", 1, 0)
    vector = gym.make_vec("CartPole-v1", 2)
    with pytest.raises(InputError, match="evaluate steps one env, got a vector env of 2"):
        evaluate(agent, vector, 1, 0)
    vector.close()
    # MountainCar: 2 actions too would pass the action check; its 2-D observations failed in act.
    env = gym.make("Acrobot-v1")
    three = DQNAgent(
        gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        gym.spaces.Discrete(3),
        DQNConfig(hidden_sizes=(8,), learner="numpy"),
    )
    with pytest.raises(InputError, match=r"observations of shape \(6,\), the agent takes \(2,\)"):
        evaluate(three, env, 1, 0)
    env.close()


def test_evaluate_side_by_side_checks_what_evaluate_checks_and_its_list_of_envs():
    # Unchecked: one env given three times played [7, 7, 7] where evaluate played
    # [11, 10, 9]; an id, a single env, no envs or 0 episodes failed deep inside or gave NaN.
    from dqn.evaluation import evaluate_side_by_side

    agent = DQNAgent(OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,), learner="numpy"))
    envs = [gym.make("CartPole-v1") for _ in range(3)]
    assert evaluate_side_by_side(agent, envs, 3, 0)[2] == evaluate(agent, envs[0], 3, 0)[2]
    cases = [
        ((agent, [envs[0]] * 3, 3, 0), "each a separate env: one is given more than once"),
        ((agent, envs[0], 3, 0), "takes a list of envs, one per episode played at once, got"),
        ((agent, [], 3, 0), "takes a list of envs"),
        ((agent, ["CartPole-v1"], 1, 0), "evaluate_side_by_side steps an env, got str"),
        ((agent, envs, 0, 0), r"episodes must be in \[1, "),
        ((agent, envs, 2, -1), "seed must leave room"),
        ((agent, envs, 2, 1.5), "seed"),
        ((object(), envs, 1, 0), "plays with an agent's q_values \\(a DQNAgent's\\), got object"),
        ((agent, [gym.make("Acrobot-v1")], 1, 0), r"observations of shape \(6,\)"),
    ]
    for args, said in cases:
        with pytest.raises(InputError, match=said):
            evaluate_side_by_side(*args)
    for env in envs:
        env.close()


def test_record_gif_names_an_env_given_where_its_id_belongs(tmp_path):
    from dqn.render import record_gif

    agent = DQNAgent(OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,), learner="numpy"))
    env = gym.make("CartPole-v1")
    with pytest.raises(InputError, match=r"an id such as 'CartPole-v1' \(env.spec.id\), got"):
        record_gif(agent, env, tmp_path / "e.gif", seed=0)
    env.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", [None, b"agent", 3])
def test_save_and_load_name_what_is_no_folder_path(given, tmp_path):
    # pathlib's and os's own TypeError from deep inside, before.
    agent = DQNAgent(OBS, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,), learner="numpy"))
    with pytest.raises(InputError, match=r"DQNAgent.save takes a folder's path \(a str or Path\)"):
        agent.save(given)
    with pytest.raises(InputError, match=r"DQNAgent.load takes a folder's path"):
        DQNAgent.load(given)


@pytest.mark.parametrize("returned", [1.0, None, np.array([1]), "1"])
def test_evaluate_names_an_act_that_returns_no_action_of_the_env(returned):
    # An adapter around another library's policy: gymnasium's AssertionError "... invalid".
    class Policy:
        def act(self, obs):
            return returned

    env = gym.make("CartPole-v1")
    with pytest.raises(InputError, match=r"^Policy.act returned .*, where evaluate needs an act"):
        evaluate(Policy(), env, 1, 0)
    env.close()


@pytest.mark.parametrize(
    "action", [np.int64(1), np.array(1), True, np.True_], ids=["np.int64", "0-d", "bool", "np.bool"]
)
def test_evaluate_takes_an_integer_action_as_numpy_and_stable_baselines3_give_it(action):
    class Policy:
        def __init__(self, action):
            self.action = action

        def act(self, obs):
            return self.action

    env = gym.make("CartPole-v1")
    assert evaluate(Policy(action), env, 2, 0)[2] == evaluate(Policy(1), env, 2, 0)[2]
    env.close()
