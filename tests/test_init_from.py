"""train(config, init_from=...) and dqn-train --init-from: a new run that starts its networks from
a trained agent's, to train a finished run on (what Stable-Baselines3 users do with load, then
learn). The new run has its own schedules, fresh Adam moments and an empty replay buffer."""

import json

import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig, train
from dqn.cli import train_main
from dqn.envs import config_env
from dqn.errors import CheckpointError, ConfigError
from dqn.evaluation import evaluate
from tests.conftest import TINY_RUN

CONFIG = DQNConfig(**TINY_RUN)
OBS = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)


def test_start_from_copies_both_networks_and_nothing_else(tiny_run):
    source = DQNAgent.load(tiny_run)
    # The tiny run ends at a target sync (target = online): its target is moved, so that a
    # copy of the online network in the target's place is seen.
    source.state = source.state._replace(target=source.state.target * 0.5)
    env = config_env(CONFIG)
    agent = DQNAgent(env.observation_space, env.action_space, CONFIG.replace(seed=5))
    assert not np.array_equal(agent.q_values(OBS), source.q_values(OBS))
    agent.start_from(source)
    np.testing.assert_array_equal(agent.q_values(OBS), source.q_values(OBS))
    np.testing.assert_array_equal(agent.state.target, source.state.target)
    # Its own optimiser and counters: the schedules and target syncs count from here.
    assert agent.grad_steps == 0 and source.grad_steps > 0
    assert not agent.state.adam_m.any() and not agent.state.adam_v.any()


def test_a_run_started_from_an_agent_first_acts_as_that_agent(tiny_run, tmp_path):
    # Its first evaluation (env step 100) comes before its first gradient step: it is the
    # source agent's greedy evaluation, on the same episodes.
    source = DQNAgent.load(tiny_run)
    config = CONFIG.replace(seed=3, epsilon_start=0.05)
    result = train(
        config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False, init_from=tiny_run
    )
    first = result.history[0]
    assert (first["env_step"], first["grad_steps"]) == (100, 0)
    mean, _, _ = evaluate(source, config_env(config), config.eval_episodes, config.eval_seed)
    assert first["eval_return_mean"] == mean
    started = json.loads((tmp_path / "run" / "init_from.json").read_text())
    assert started == {"agent": str(source.loaded_from), "grad_steps": source.grad_steps}
    assert started["agent"].endswith("checkpoints/step-000000600/agent")


def test_a_network_that_does_not_fit_is_refused_before_anything_is_written(tiny_run, tmp_path):
    for changes, fragment in [
        ({"hidden_sizes": (32,)}, r"hidden_sizes \[16\], activation relu\) is not this run's "),
        ({"hidden_sizes": (32,)}, r"\(dqn-train: --set hidden_sizes=\[16\] activation=relu\)$"),
        ({"activation": "tanh"}, "activation relu.* is not .*activation tanh"),
        ({"env_id": "Acrobot-v1"}, "takes 4 observation values and 2 actions, this env 6 and 3"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            train(CONFIG.replace(**changes), run_dir=tmp_path / "run", init_from=tiny_run)
        assert not (tmp_path / "run").exists()


def test_dqn_train_init_from_refuses_in_one_line_and_leaves_no_folder(tiny_run, tmp_path, capsys):
    out = tmp_path / "out" / "deeper"
    cases = [
        (tmp_path / "nothing", "no run, checkpoint or agent folder at"),
        (tiny_run, "its Q-network (hidden_sizes [16], activation relu) is not this run's"),
    ]
    for source, fragment in cases:
        args = ["--init-from", str(source), "--set", f"output_dir={out}", "--no-progress"]
        assert train_main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err
        assert not (tmp_path / "out").exists()


def test_a_corrupt_source_agent_is_named(tiny_run_copy, tmp_path):
    agent = tiny_run_copy / "checkpoints" / "step-000000600" / "agent"
    (agent / "online.keras").write_bytes(b"not a keras file")
    with pytest.raises(CheckpointError, match="step-000000600"):
        DQNAgent.load(agent)
    with pytest.raises(CheckpointError):
        train(CONFIG, run_dir=tmp_path / "new", init_from=agent)
    assert not (tmp_path / "new").exists()


def test_networks_of_a_network_fn_are_compared_by_their_layers_not_their_names():
    # Keras numbers layer names per process (dense, dense_1, ...; a nested model's too): two
    # builds of one network_fn are alike, and one with another activation is not.
    import keras

    def nested(activation):
        def build(obs_dim, n_actions):
            body = keras.Sequential([keras.layers.Dense(8, activation)])
            obs = keras.Input((obs_dim,))
            return keras.Model(obs, keras.layers.Dense(n_actions)(body(obs)))

        return build

    env = config_env(CONFIG)
    spaces = (env.observation_space, env.action_space)
    config = CONFIG.replace(learner="tensorflow")
    source = DQNAgent(*spaces, config, nested("tanh"))
    agent = DQNAgent(*spaces, config, nested("tanh"))
    agent.start_from(source)
    np.testing.assert_array_equal(agent.q_values(OBS), source.q_values(OBS))
    other = DQNAgent(*spaces, config, nested("relu"))
    with pytest.raises(ConfigError) as refused:
        other.start_from(source)
    assert str(refused.value).endswith(
        "its Q-network (layers Dense(tanh), Dense(linear); weight shapes [[4, 8], [8], [8, 2], "
        "[2]]) is not this run's (layers Dense(relu), Dense(linear); weight shapes [[4, 8], [8], "
        "[8, 2], [2]]): give the run a network_fn that builds the same network"
    )


def test_an_agent_names_the_folder_it_was_loaded_from_until_it_learns(tiny_run, monkeypatch):
    from dqn.replay import ReplayBuffer

    monkeypatch.chdir(tiny_run.parent)
    agent = DQNAgent.load(tiny_run.name)  # a relative path, named absolutely
    assert agent.loaded_from == tiny_run / "checkpoints" / "step-000000600" / "agent"
    replay = ReplayBuffer(64, 4, np.random.default_rng(0))
    for i in range(64):
        replay.add(OBS[i % 8], i % 2, 1.0, OBS[(i + 1) % 8], False)
    with pytest.warns(UserWarning, match="learning rate is 0"):  # the run's schedule is over
        agent.update(replay.sample(16))
    assert agent.loaded_from is None  # its weights are no longer that folder's


def test_dqn_train_keeps_an_empty_run_folder_it_was_given(tiny_run, tmp_path, capsys):
    given = tmp_path / "mine"
    given.mkdir()
    args = ["--init-from", str(tiny_run), "--run-dir", str(given), "--set", "hidden_sizes=[32]"]
    assert train_main([*args, "--no-progress"]) == 2
    assert "is not this run's" in capsys.readouterr().err
    assert given.is_dir() and not any(given.iterdir())  # refused, and the user's folder kept
