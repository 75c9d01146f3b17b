"""DQNConfig validation: every bad value is refused with a message naming the key and the range."""

import dataclasses

import pytest

from dqn.config import ACTIVATIONS, LOSS_NAMES, DQNConfig
from dqn.errors import ConfigError


def test_defaults_are_valid_and_frozen():
    cfg = DQNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.gamma = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"learning_rate": 0.0}, "'learning_rate' must be > 0"),
        ({"learning_rate": -1e-3}, "'learning_rate' must be > 0"),
        ({"gamma": 1.5}, r"'gamma' must be in \(0, 1\]"),
        ({"gamma": 0.0}, r"'gamma' must be in \(0, 1\]"),
        ({"batch_size": 200, "buffer_size": 100}, r"'batch_size' \(200\) must be <= buffer_size"),
        ({"learning_starts_env_steps": 50_000}, "would never train"),
        ({"total_env_steps": 0}, "'total_env_steps' must be > 0"),
        ({"loss": "mse"}, "unknown loss 'mse'; valid losses: " + ", ".join(LOSS_NAMES)),
        ({"activation": "swish"}, "valid activations: " + ", ".join(ACTIVATIONS)),
        ({"target_tau": 1.5}, r"'target_tau' must be in \(0, 1\]"),
        ({"epsilon_end": 2.0}, r"'epsilon_end' must be in \[0, 1\]"),
        ({"hidden_sizes": []}, "at least one layer"),
        ({"hidden_sizes": [64, 0]}, "positive widths"),
        ({"max_grad_norm": 0.0}, "'max_grad_norm' must be > 0"),
        ({"batch_size": "sixty-four"}, "'batch_size' must be an integer"),
        ({"batch_size": 64.5}, "'batch_size' must be an integer"),
        ({"double_dqn": "yes"}, "'double_dqn' must be a bool"),
        ({"learning_rate": True}, "'learning_rate' must be a number"),
        ({"hidden_sizes": "64,64"}, "'hidden_sizes' must be a list of integers"),
    ],
)
def test_bad_values_are_refused_with_the_key_and_range(changes, message):
    with pytest.raises(ConfigError, match=message):
        DQNConfig(**changes)


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'learning_rat'; valid keys: env_id"):
        DQNConfig.from_dict({"learning_rat": 1e-3})


def test_yaml_numbers_written_without_a_dot_are_accepted(tmp_path):
    # YAML 1.1 reads 1e-3 and 1e5 as strings; they are numbers to anyone writing a config.
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-3\ntotal_env_steps: 1e5\nhidden_sizes: [32, 32]\n")
    cfg = DQNConfig.from_yaml(path)
    assert cfg.learning_rate == 1e-3 and cfg.total_env_steps == 100_000
    assert cfg.hidden_sizes == (32, 32)


def test_overrides_apply_after_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss: l2\nseed: 3\n")
    cfg = DQNConfig.from_yaml(path, ["loss=clipped_delta", "double_dqn=true", "hidden_sizes=[8]"])
    assert (cfg.loss, cfg.seed, cfg.double_dqn, cfg.hidden_sizes) == ("clipped_delta", 3, True, (8,))
    assert DQNConfig.from_yaml(None, {"max_grad_norm": None}).max_grad_norm is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("loss: [unclosed\n", "is not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("gamma: 0.99\nbogus_key: 1\n", "unknown config key 'bogus_key'"),
    ],
)
def test_bad_files_are_refused(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        DQNConfig.from_yaml(path)


def test_missing_file_and_malformed_override():
    with pytest.raises(ConfigError, match="config file not found"):
        DQNConfig.from_yaml("no/such/file.yaml")
    with pytest.raises(ConfigError, match="not of the form key=value"):
        DQNConfig.from_yaml(None, ["gamma"])


def test_yaml_round_trip(tmp_path):
    cfg = DQNConfig(loss="l2", hidden_sizes=(32, 16), max_grad_norm=10.0, double_dqn=True)
    cfg.to_yaml(tmp_path / "c.yaml")
    assert DQNConfig.from_yaml(tmp_path / "c.yaml") == cfg
    assert cfg.replace(seed=5).seed == 5


def test_the_shipped_cartpole_config_loads():
    from pathlib import Path

    cfg = DQNConfig.from_yaml(Path(__file__).parent.parent / "configs" / "cartpole.yaml")
    assert cfg.env_id == "CartPole-v1" and cfg.loss == "huber"


def test_env_id_with_stray_spaces_is_refused():
    with pytest.raises(ConfigError, match="stray spaces"):
        DQNConfig(env_id=" CartPole-v1")


def test_total_grad_steps_counts_bursts_after_learning_starts():
    # Bursts at env steps 256, 512, ..., 49920 (195 of them); the first 3 (<= 1000) are before
    # learning starts: 192 bursts of 128 gradient steps.
    from dqn.config import total_grad_steps

    assert total_grad_steps(DQNConfig()) == 192 * 128
