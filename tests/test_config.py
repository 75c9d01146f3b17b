"""DQNConfig validation: every bad value is refused with a message naming the key and the range."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dqn.config import ACTIVATIONS, FIELDS, LOSS_NAMES, DQNConfig, describe_keys
from dqn.errors import CheckpointError, ConfigError


def test_defaults_are_valid_and_frozen():
    cfg = DQNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.gamma = 0.5  # type: ignore[misc]


def test_the_defaults_are_the_config_the_learning_claims_are_about():
    # `dqn-train` without --config, `dqn-compare` without it and DQNConfig() in Python train
    # configs/cartpole.yaml, whose 30-seed checks docs/trust.md reports: not a neighbour of it
    # (one-step targets ended >= 475 on 19 of 30 seeds).
    shipped = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"
    assert DQNConfig() == DQNConfig.from_yaml(shipped)


def test_the_acrobot_config_is_the_default_with_the_changes_its_comment_names():
    configs = Path(__file__).resolve().parent.parent / "configs"
    acrobot = DQNConfig.from_yaml(configs / "acrobot.yaml")
    changed = {
        f.name: getattr(acrobot, f.name)
        for f in dataclasses.fields(DQNConfig)
        if getattr(acrobot, f.name) != getattr(DQNConfig(), f.name)
    }
    assert changed == {
        "env_id": "Acrobot-v1",
        "total_env_steps": 100_000,
        "eval_every_env_steps": 5_000,
    }


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"learning_rate": 0.0}, "'learning_rate' must be > 0"),
        ({"learning_rate": -1e-3}, "'learning_rate' must be > 0"),
        ({"gamma": 1.5}, r"'gamma' must be in \(0, 1\]"),
        ({"gamma": 0.0}, r"'gamma' must be in \(0, 1\]"),
        ({"batch_size": 200, "buffer_size": 100}, r"'batch_size' \(200\) must be <= buffer_size"),
        ({"learning_starts_env_steps": 50_000}, "would never train"),
        ({"train_every_env_steps": 50_001}, "would never train: its bursts come every"),
        (  # 192 bursts of 128 gradient steps in the default run
            {"target_update_every_grad_steps": 24_577},
            r"'target_update_every_grad_steps' must be <= the run's gradient steps \(24576\)",
        ),
        ({"total_env_steps": 0}, r"'total_env_steps' must be in \[1, 10\*\*12\]"),
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


def test_a_bad_value_built_of_yaml_aliases_is_shown_cut_short(tmp_path):
    # 1 KB of nested aliases is a list of 10**8 zeros: its whole repr in the one-line error was
    # hundreds of MB (and 11 s, 1.5 GB to make).
    value = "&b0 [0]"
    for i in range(1, 9):
        value = f"&b{i} [{value}, {', '.join([f'*b{i - 1}'] * 9)}]"
    path = tmp_path / "bomb.yaml"
    path.write_text(f"seed: {value}\n")
    assert path.stat().st_size < 1000
    with pytest.raises(ConfigError) as refused:
        DQNConfig.from_yaml(path)
    message = str(refused.value)
    assert message.startswith("config key 'seed' must be an integer")
    assert len(message) < 1000 and "\n" not in message and message.endswith("...")


def test_unknown_key_lists_the_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key 'bogus'; valid keys: env_id"):
        DQNConfig.from_dict({"bogus": 1e-3})


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("learning_rat", "'learning_rate' or 'learning_rate_end'"),
        ("hidden_size", "'hidden_sizes'"),
        ("gama", "'gamma'"),
        ("seeds", "'seed'"),
        # Stable-Baselines3's and CleanRL's names, which spelling alone does not lead to.
        ("env", "'env_id'"),
        ("lr", "'learning_rate'"),
        ("train_freq", "'train_every_env_steps'"),
        ("exploration_final_eps", "'epsilon_end'"),
        ("tau", "'target_tau'"),
        # Another library's name also spelt alike: named once, first.
        ("learning_starts", "'learning_starts_env_steps' or 'learning_rate'"),
        # Spelt like epsilon_end, which sets something else: the decay's key comes first.
        ("epsilon_decay", "'epsilon_decay_fraction' or 'epsilon_end'"),
        ("eval_freq", "'eval_every_env_steps'"),
        ("max_episode_steps", "'env_kwargs'"),
        ("env_kwargs.max_episode_steps", "'env_kwargs'"),  # keys do not nest
        ("Gamma", "'gamma'"),
        # rl-baselines3-zoo's and SB3's names, and the Huber delta by its name in the docs.
        ("n_timesteps", "'total_env_steps'"),
        ("policy_kwargs", "'hidden_sizes'"),
        ("huber_delta", "'loss_bound'"),
        ("target_update", "'target_update_every_grad_steps'"),
    ],
)
def test_a_misspelt_key_names_the_keys_it_is_close_to(typo, meant):
    with pytest.raises(ConfigError) as refused:
        DQNConfig(**{typo: 1})
    assert f"unknown config key '{typo}' (did you mean {meant}?); valid keys: env_id" in str(
        refused.value
    )


def test_overrides_given_as_one_text_are_refused_not_read_letter_by_letter():
    with pytest.raises(ConfigError, match="a list of 'key=value' texts, got the text 'seed=3'"):
        DQNConfig.from_yaml(None, "seed=3")


def test_every_name_from_elsewhere_leads_to_a_key_of_this_config():
    from dqn.config import FIELDS, NAMES_ELSEWHERE

    assert set(NAMES_ELSEWHERE.values()) <= set(FIELDS)
    assert not set(NAMES_ELSEWHERE) & set(FIELDS)


def test_yaml_numbers_written_without_a_dot_are_accepted(tmp_path):
    # YAML 1.1 reads 1e-3 and 1e5 as strings; they are numbers to anyone writing a config.
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-3\ntotal_env_steps: 1e5\nhidden_sizes: [32, 32]\n")
    cfg = DQNConfig.from_yaml(path)
    assert cfg.learning_rate == 1e-3 and cfg.total_env_steps == 100_000
    assert cfg.hidden_sizes == (32, 32)


def test_yaml_numbers_are_read_as_written_not_as_octal_or_base_60(tmp_path):
    # YAML 1.1 (PyYAML's default) reads 010 as 8 and 1:30 as 90: seed 010 trained seed 8.
    path = tmp_path / "c.yaml"
    path.write_text("seed: 010\nbuffer_size: 100_000\nhidden_sizes: [064, 0x40]\n")
    cfg = DQNConfig.from_yaml(path, ["batch_size=032", "total_env_steps=0o175000"])
    assert (cfg.seed, cfg.buffer_size, cfg.hidden_sizes) == (10, 100_000, (64, 64))
    assert (cfg.batch_size, cfg.total_env_steps) == (32, 64_000)
    for text, shown in [("1:30", "'1:30'"), ("0b11", "'0b11'")]:
        with pytest.raises(ConfigError) as err:
            DQNConfig.from_yaml(path, [f"batch_size={text}"])
        assert str(err.value) == f"config key 'batch_size' must be an integer, got {shown}"


def test_overrides_apply_after_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("loss: l2\nseed: 3\n")
    cfg = DQNConfig.from_yaml(path, ["loss=clipped_delta", "double_dqn=true", "hidden_sizes=[8]"])
    assert (cfg.loss, cfg.seed, cfg.double_dqn, cfg.hidden_sizes) == (
        "clipped_delta",
        3,
        True,
        (8,),
    )
    assert DQNConfig.from_yaml(None, {"max_grad_norm": None}).max_grad_norm is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("loss: [unclosed\n", "is not valid YAML \\(line 2\\): expected ',' or ']'"),
        (  # the safe loader builds no objects: a tag that would run code is named as such
            "seed: !!python/object/apply:os.system [ls]\n",
            "could not determine a constructor for the tag .*python/object/apply:os.system.*; "
            "dqn reads YAML with the safe loader, which builds no objects",
        ),
        ("- just\n- a list\n", "must hold a mapping"),
        # A list as a key is no tag: the safe loader's words would have misled.
        ("[a]: 1\n", "is not valid YAML \\(line 1\\): found unhashable key$"),
        # Empty, or only comments: once read as "every default", a silent stand-in for a file
        # the user meant to fill.
        ("", "holds no key: value"),
        ("# loss: l2\n", "holds no key: value"),
        ("gamma: 0.99\nbogus_key: 1\n", "unknown config key 'bogus_key'"),
    ],
)
def test_bad_files_are_refused(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        DQNConfig.from_yaml(path)


def test_a_file_that_is_not_utf8_text_says_so(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfeg\x00a\x00")  # UTF-16, as some editors save
    with pytest.raises(ConfigError, match="c.yaml is not valid YAML: it is not UTF-8 text"):
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


# Strings to YAML 1.1, which plain PyYAML writes bare, but numbers (or bools, or null) to dqn's
# YAML 1.2 reading: a run's own config.yaml must give back its config, or the run cannot be
# evaluated or resumed (output_dir "1e5" read back as 100000.0) or resumes with another value.
LOOK_LIKE_NUMBERS = ["1e5", "1e-3", ".5e3", "0o17", "0x1F", "1_000", "+1", "-2.5", ".inf", ".nan"]


@pytest.mark.parametrize("text", [*LOOK_LIKE_NUMBERS, "010", "1:30", "yes", "null", "~"])
def test_strings_that_read_as_numbers_are_written_quoted(text, tmp_path):
    config = DQNConfig(output_dir=text, env_kwargs={"mode": text, "modes": [text]})
    config.to_yaml(tmp_path / "c.yaml")
    back = DQNConfig.from_yaml(tmp_path / "c.yaml")
    assert back.output_dir == text and back.env_kwargs == {"mode": text, "modes": (text,)}


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN", ".inf", "-.Inf", "+.INF"])
def test_yamls_special_floats_are_read_as_floats(text):
    # As YAML 1.2 reads them: an env_kwargs value would otherwise reach the env as a string.
    import math

    from dqn.yaml_files import load_value

    value = load_value(f"{{x: {text}}}")["x"]
    assert type(value) is float
    assert math.isnan(value) if "nan" in text.lower() else value == float(text.replace(".", ""))


def test_numpy_strings_and_bools_are_taken_as_pythons_and_written_back(tmp_path):
    # Values from a numpy array of choices: an np.str_ loss passed every check, then train
    # stopped with YAML's RepresenterError after making its run folder.
    import numpy as np

    config = DQNConfig(
        loss=np.array(["huber", "l2"])[1],
        double_dqn=np.bool_(True),
        output_dir=np.str_("runs"),
        env_kwargs={np.str_("max_episode_steps"): np.int64(200), "xs": [np.float32(1.5)]},
    )
    assert (type(config.loss), type(config.double_dqn), type(config.output_dir)) == (str, bool, str)
    assert dict(config.env_kwargs) == {"max_episode_steps": 200, "xs": (1.5,)}
    assert all(type(k) is str for k in config.env_kwargs)
    config.to_yaml(tmp_path / "c.yaml")
    assert DQNConfig.from_yaml(tmp_path / "c.yaml") == config


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


# ---------------------------------------------------------------------- the validation table
def test_the_table_has_one_row_per_field_in_field_order():
    from dqn.config import BOUNDS, FIELDS, Field

    names = [f.name for f in dataclasses.fields(DQNConfig)]
    assert list(FIELDS) == names  # no field without a row, in field order
    for key, row in FIELDS.items():
        assert isinstance(row, Field), key
        assert row.rule is None or isinstance(row.rule, tuple) or row.rule in BOUNDS, key


def test_every_row_says_what_its_field_means():
    # The meaning column is the fields' documentation: every row has one, and the string pieces
    # it is written in (in the class body) are joined with exactly one space.
    from dqn.config import FIELDS

    for key, row in FIELDS.items():
        assert isinstance(row.meaning, str) and row.meaning.strip(), key
        assert row.meaning == row.meaning.strip() and "  " not in row.meaning, key


def test_the_table_agrees_with_the_field_types():
    # The annotations are only read here, as a cross-check: validation reads the table.
    import types
    import typing
    from collections.abc import Mapping, Sequence
    from typing import Any

    from dqn.config import BOOL, FIELDS, INT, INTS, KWARGS, NUM, STR

    # (A list and a dict are what a caller writes: stored as a tuple and an EnvKwargs.)
    kinds = {
        int: INT,
        float: NUM,
        bool: BOOL,
        str: STR,
        Sequence[int]: INTS,
        Mapping[str, Any]: KWARGS,
    }
    for key, hint in typing.get_type_hints(DQNConfig).items():
        nullable = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        base = [t for t in typing.get_args(hint) if t is not type(None)][0] if nullable else hint
        assert (FIELDS[key].kind, FIELDS[key].nullable) == (kinds[base], nullable), key


@pytest.mark.parametrize(
    "changes, message",
    [
        # integer
        ({"batch_size": "many"}, "config key 'batch_size' must be an integer, got 'many'"),
        ({"batch_size": 64.5}, "config key 'batch_size' must be an integer, got 64.5"),
        ({"batch_size": True}, "config key 'batch_size' must be an integer, got True"),
        ({"seed": -1}, "config key 'seed' must be in [0, 2**32 - 1], got -1"),
        ({"seed": 2**32}, "config key 'seed' must be in [0, 2**32 - 1], got 4294967296"),
        ({"eval_seed": -1}, "config key 'eval_seed' must be in [0, 2**32 - 1], got -1"),
        ({"num_envs": 0}, "config key 'num_envs' must be in [1, 65_536], got 0"),
        ({"num_envs": 10**9}, "config key 'num_envs' must be in [1, 65_536], got 1000000000"),
        (
            {"final_eval_episodes": 10**11},
            "config key 'final_eval_episodes' must be in [1, 1_000_000], got 100000000000",
        ),
        ({"eval_episodes": 0}, "config key 'eval_episodes' must be in [1, 1_000_000], got 0"),
        (
            {"total_env_steps": 1e13},
            "config key 'total_env_steps' must be in [1, 10**12], got 10000000000000",
        ),
        ({"num_threads": 100_000}, "config key 'num_threads' must be in [1, 1024], got 100000"),
        (
            {"eval_seed": 2**32 - 50},
            "config key 'eval_seed' must leave room for its episodes' seeds (eval_seed + i, "
            "each in [0, 2**32 - 1]): eval_seed + 100 episodes > 2**32 (the largest that fits: "
            "4294967196)",
        ),
        # number
        ({"learning_rate": "fast"}, "config key 'learning_rate' must be a number, got 'fast'"),
        ({"learning_rate": True}, "config key 'learning_rate' must be a number, got True"),
        (
            {"learning_rate": float("inf")},
            "config key 'learning_rate' must be a finite number, got inf",
        ),
        ({"gamma": float("nan")}, "config key 'gamma' must be a finite number, got nan"),
        # A string is a number only as a config file writes one: not Python's float("nan").
        ({"gamma": "nan"}, "config key 'gamma' must be a number, got 'nan'"),
        ({"gamma": "1e-1_0"}, "config key 'gamma' must be a number, got '1e-1_0'"),
        (
            {"learning_rate_end": float("-inf")},
            "config key 'learning_rate_end' must be a finite number or null, got -inf",
        ),
        # Finite, but inf (1e300) or 0 (1e-50) in the float32 the networks and Adam compute in.
        (
            {"learning_rate": 1e-50},
            "config key 'learning_rate' must be a number within float32's range (0, or 1.2e-38 "
            "to 3.4e38 in size), got 1e-50",
        ),
        (
            {"max_grad_norm": 1e39},
            "config key 'max_grad_norm' must be a number within float32's range (0, or 1.2e-38 "
            "to 3.4e38 in size) or null, got 1e+39",
        ),
        ({"gamma": 0}, "config key 'gamma' must be in (0, 1], got 0.0"),
        (
            {"hidden_sizes": [4] * 101},  # Keras's build of ~1,000 recursed past Python's stack
            "config key 'hidden_sizes' may list at most 100 layers, got 101",
        ),
        ({"env_id": "CartPole\0-v1"}, "config key 'env_id' holds a NUL character (\\0)"),
        ({"epsilon_start": 1.5}, "config key 'epsilon_start' must be in [0, 1], got 1.5"),
        # nullable number
        ({"max_grad_norm": "x"}, "config key 'max_grad_norm' must be a number or null, got 'x'"),
        ({"solve_return": False}, "config key 'solve_return' must be a number or null, got False"),
        ({"max_abs_q": -1}, "config key 'max_abs_q' must be > 0 or null, got -1.0"),
        ({"max_grad_norm": 0}, "config key 'max_grad_norm' must be > 0 or null, got 0.0"),
        (
            {"learning_rate_end": -0.1},
            "config key 'learning_rate_end' must be >= 0 or null, got -0.1",
        ),
        (
            {"learning_rate_end": 0.5},
            "config key 'learning_rate_end' must be <= learning_rate = 0.0023 (the rate decays "
            "linearly to it), got 0.5; null keeps the rate constant",
        ),
        (
            {"epsilon_start": 0.0, "epsilon_end": 1.0},
            "config key 'epsilon_end' must be <= epsilon_start = 0 (exploration decays linearly "
            "to it), got 1: lower epsilon_end with epsilon_start (equal: a constant epsilon)",
        ),
        # ":g" printed the bound as the value refused: "must be <= 0.001, got 0.001".
        (
            {"learning_rate": 1e-3, "learning_rate_end": 1.0000001e-3},
            "config key 'learning_rate_end' must be <= learning_rate = 0.001 (the rate decays "
            "linearly to it), got 0.0010000001; null keeps the rate constant",
        ),
        # The learning-starts rule named an empty range: [639, 500).
        (
            {"total_env_steps": 500, "n_step": 10, "num_envs": 64},
            "config: num_envs * n_step - 1 = 639 env steps pass before the first n-step "
            "transition is stored, and the run has only total_env_steps = 500: lower num_envs "
            "(64) or n_step (10), or raise total_env_steps",
        ),
        # bool
        ({"double_dqn": "yes"}, "config key 'double_dqn' must be a bool, got 'yes'"),
        ({"jit_compile": 1}, "config key 'jit_compile' must be a bool, got 1"),
        # string
        (
            {"loss": 3},
            "config key 'loss' must be one of l2, clipped_delta, huber, clipped_grad, got 3",
        ),
        ({"output_dir": ""}, "config key 'output_dir' must be a non-empty string, got ''"),
        ({"learner": "jax"}, "unknown learner 'jax'; valid learners: tensorflow, numpy"),
        ({"env_id": "CartPole-v1 "}, "config key 'env_id' has stray spaces: 'CartPole-v1 '"),
        (
            {"env_kwargs": {"render_mode": "human"}},
            "config key 'env_kwargs' must not set render_mode, got 'human': dqn sets it (none to "
            "train and evaluate, rgb_array for dqn-evaluate --gif)",
        ),
        # list of integers
        ({"hidden_sizes": 64}, "config key 'hidden_sizes' must be a list of integers, got 64"),
        (
            {"hidden_sizes": [8, "wide"]},
            "config key 'hidden_sizes' must be a list of integers, got [8, 'wide']",
        ),
        (
            {"hidden_sizes": [8, -1]},
            "config key 'hidden_sizes' must hold positive widths, got [8, -1]",
        ),
        # across fields
        (
            {"learning_starts_env_steps": -1},
            "config key 'learning_starts_env_steps' must be in [num_envs * n_step - 1 = 9, "
            "total_env_steps = 50000), got -1: a count of env steps is never negative",
        ),
        (
            {"learning_starts_env_steps": 50_000},
            "config key 'learning_starts_env_steps' must be in [num_envs * n_step - 1 = 9, "
            "total_env_steps = 50000), got 50000: the agent would never train",
        ),
        (  # learning starts in time, but the first burst's env step is past the end
            {"learning_starts_env_steps": 49_950, "train_every_env_steps": 256},
            "config: the agent would never train: its bursts come every train_every_env_steps = "
            "256 env steps once learning_starts_env_steps = 49950 have passed, the first at env "
            "step 50176 > total_env_steps = 50000",
        ),
    ],
)
def test_each_kind_of_row_refuses_with_its_exact_message(changes, message):
    with pytest.raises(ConfigError) as refused:
        DQNConfig(**changes)
    assert str(refused.value) == message


def test_a_number_written_as_a_string_is_taken_as_a_config_file_writes_it():
    # YAML 1.1 (plain PyYAML) reads 1e-3 as a string; a quoted number is one too.
    config = DQNConfig(gamma="9e-1", learning_rate="2.3e-3", batch_size="1_024", seed="+7")
    assert (config.gamma, config.learning_rate, config.batch_size, config.seed) == (
        0.9,
        2.3e-3,
        1024,
        7,
    )


def test_an_unknown_keyword_names_the_valid_keys():
    with pytest.raises(
        ConfigError, match="unknown config key 'zzz'; valid keys: env_id, env_kwargs, seed"
    ):
        DQNConfig(zzz=0.9)


def test_numpy_scalars_are_numbers():
    cfg = DQNConfig(seed=np.int64(3), gamma=np.float32(0.5), hidden_sizes=[np.int64(8)])
    assert (cfg.seed, cfg.gamma, cfg.hidden_sizes) == (3, 0.5, (8,))
    assert type(cfg.seed) is int and type(cfg.gamma) is float
    with pytest.raises(ConfigError, match="'double_dqn' must be a bool"):
        DQNConfig(double_dqn=np.float64(1.0))


def test_values_are_stored_as_their_kind():
    # YAML 1.1 number strings, integral floats and lists become the kind of the row.
    cfg = DQNConfig(
        learning_rate="1e-3",
        total_env_steps="1e5",
        eval_seed=2e3,
        max_grad_norm="10",
        hidden_sizes=[32.0, "16"],
        gamma=1,
        solve_return=None,
        learning_rate_end=None,
    )
    assert cfg.learning_rate == 1e-3 and type(cfg.learning_rate) is float
    assert cfg.total_env_steps == 100_000 and type(cfg.total_env_steps) is int
    assert cfg.eval_seed == 2_000 and type(cfg.eval_seed) is int
    assert cfg.max_grad_norm == 10.0 and type(cfg.max_grad_norm) is float
    assert cfg.hidden_sizes == (32, 16) and all(type(h) is int for h in cfg.hidden_sizes)
    assert cfg.gamma == 1.0 and type(cfg.gamma) is float
    assert cfg.solve_return is None and cfg.learning_rate_end is None


def test_yaml_overrides_written_as_yaml_1_1_strings_are_numbers():
    cfg = DQNConfig.from_yaml(None, ["adam_epsilon=1e-8", "buffer_size=1e4", "max_abs_q=1e3"])
    assert (cfg.adam_epsilon, cfg.buffer_size, cfg.max_abs_q) == (1e-8, 10_000, 1000.0)
    assert type(cfg.buffer_size) is int


def test_a_config_saved_before_n_step_existed_reads_as_one_step_targets(tmp_path):
    # n_step came with default 1 and defaults to 10 now. A run, checkpoint or agent saved
    # before it has no n_step key and was trained with one-step targets: read as 10, it would
    # resume, or pass for a run of a new study, with other targets than it learned from.
    from dqn.config import read_saved_config
    from dqn.run_state import check_run_config

    old = {k: v for k, v in DQNConfig().to_dict().items() if k != "n_step"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(old))
    assert read_saved_config(path).n_step == 1
    assert DQNConfig.from_yaml(path).n_step == 10  # a config file of the user's: today's default
    check_run_config(tmp_path, DQNConfig(n_step=1))  # the run's own config: no difference
    with pytest.raises(CheckpointError, match=r"differs .* \(n_step\)"):
        check_run_config(tmp_path, DQNConfig())


def test_env_kwargs_are_a_frozen_mapping_that_yaml_writes_and_reads_back(tmp_path):
    config = DQNConfig(env_kwargs={"max_episode_steps": 50, "sizes": [1, 2]})
    assert dict(config.env_kwargs) == {"max_episode_steps": 50, "sizes": (1, 2)}
    same = DQNConfig(env_kwargs={"sizes": (1, 2), "max_episode_steps": 50})
    assert config == same and hash(config) == hash(same)  # a config stays a value
    with pytest.raises(TypeError):
        config.env_kwargs["sizes"] = 3  # type: ignore[index]
    config.to_yaml(tmp_path / "c.yaml")
    assert DQNConfig.from_yaml(tmp_path / "c.yaml") == config
    over = DQNConfig.from_yaml(None, ["env_kwargs={max_episode_steps: 50}"])
    assert over.env_kwargs == {"max_episode_steps": 50}
    kind = "a mapping of name: number, string, bool, null or a list of them"
    # The rule a mapping breaks is named: the kind alone left a user to guess.
    for bad, why in (
        ({"two words": 1}, " \\('two words' is no keyword name of Python's\\)"),
        ({"f": object()}, " \\(f's value is a object\\)"),
        ({"x": float("nan")}, " \\(x's value is nan, not finite\\)"),
        ({"x": [1.0, float("inf")]}, " \\(x's value is a list holding inf, not finite\\)"),
        ([1], ""),
        ("a=1", ""),
    ):
        with pytest.raises(ConfigError, match=f"config key 'env_kwargs' must be {kind}{why}, got"):
            DQNConfig(env_kwargs=bad)


def test_the_default_config_file_names_every_key():
    # A reader of configs/cartpole.yaml sees the whole default, not only what differs from it.
    shipped = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"
    assert sorted(yaml.safe_load(shipped.read_text())) == sorted(FIELDS)


def test_the_configuration_page_lists_the_keys_as_dqn_train_keys_prints_them():
    page = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    block = page.read_text().split("```\n")[1]
    assert block == describe_keys() + "\n", "renew it from `dqn-train --keys`"


@pytest.mark.parametrize(
    "changes",
    [
        dict(batch_size=64, buffer_size=64),
        dict(learning_rate=1e-3, learning_rate_end=1e-3),  # a constant rate
        dict(epsilon_start=0.1, epsilon_end=0.1),  # a constant epsilon
        dict(n_step=3, learning_starts_env_steps=2),  # num_envs * n_step - 1
        dict(hidden_sizes=[4] * 100),
    ],
    ids=[
        "batch = buffer",
        "rate end = start",
        "epsilon end = start",
        "starts = n_step - 1",
        "100 hidden layers",
    ],
)
def test_each_rule_allows_its_bound_itself(changes):
    DQNConfig(**changes)


def test_a_target_sync_as_long_as_the_run_is_allowed_and_one_step_more_is_not():
    from dqn.config import total_grad_steps

    config = DQNConfig(total_env_steps=5_000)
    DQNConfig(total_env_steps=5_000, target_update_every_grad_steps=total_grad_steps(config))
    with pytest.raises(ConfigError, match="target_update_every_grad_steps"):
        DQNConfig(
            total_env_steps=5_000, target_update_every_grad_steps=total_grad_steps(config) + 1
        )
    with pytest.raises(ConfigError, match="= 2, got 1"):
        DQNConfig(n_step=3, learning_starts_env_steps=1)


def test_a_saved_config_reads_back_its_own_n_step(tmp_path):
    # Only a config saved without the key reads as one-step targets (the test above).
    from dqn.config import read_saved_config

    DQNConfig(n_step=5).to_yaml(tmp_path / "c.yaml")
    assert read_saved_config(tmp_path / "c.yaml").n_step == 5


def test_a_home_folder_in_output_dir_is_expanded_or_named_when_it_cannot_be(monkeypatch):
    from dqn.config import output_folder

    monkeypatch.setenv("HOME", "/home/someone")
    assert output_folder(DQNConfig(output_dir="~/runs")) == Path("/home/someone/runs")
    assert output_folder(DQNConfig(output_dir="runs/~x")) == Path("runs/~x")
    with pytest.raises(ConfigError) as refused:
        output_folder(DQNConfig(output_dir="~no_such_user_of_dqn/runs"))
    assert str(refused.value) == (
        "config key 'output_dir' '~no_such_user_of_dqn/runs' starts with a home folder that "
        "cannot be found: give the whole path"
    )


def test_the_largest_episode_counts_and_seeds_are_allowed_and_one_more_is_not():
    # The bounds are closed: [1, 1_000_000] episodes, eval_seed + episodes <= 2**32.
    DQNConfig(eval_episodes=1_000_000, final_eval_episodes=1_000_000)
    with pytest.raises(ConfigError, match="eval_episodes"):
        DQNConfig(eval_episodes=1_000_001)
    DQNConfig(eval_seed=2**32 - 100, eval_episodes=10, final_eval_episodes=100)
    with pytest.raises(ConfigError, match="eval_seed"):
        DQNConfig(eval_seed=2**32 - 99, eval_episodes=10, final_eval_episodes=100)


def test_the_ends_of_each_closed_range_are_allowed_and_just_past_them_is_not():
    # [1, 10**12] env steps, [1, 1024] threads, [1, 65_536] envs; a float32 setting is 0 or
    # between its smallest normal (2**-126) and largest ((2 - 2**-23) * 2**127) values.
    tiny, largest = 2.0**-126, (2 - 2.0**-23) * 2.0**127
    DQNConfig(total_env_steps=10**12)
    DQNConfig(num_threads=1024)
    envs = dict(n_step=1, learning_starts_env_steps=65_535, total_env_steps=1_000_000)
    DQNConfig(num_envs=65_536, **envs)
    DQNConfig(learning_rate=largest, loss_bound=tiny, max_grad_norm=tiny)
    past = {
        "total_env_steps": dict(total_env_steps=10**12 + 1),
        "num_threads": dict(num_threads=1025),
        "num_envs": dict(num_envs=65_537, **envs),
        "learning_rate": dict(learning_rate=largest * (1 + 2.0**-40)),
        "loss_bound": dict(loss_bound=tiny * (1 - 2.0**-40)),
    }
    for key, changes in past.items():
        with pytest.raises(ConfigError, match=f"config key '{key}' must be"):
            DQNConfig(**changes)


def test_a_file_of_labels_like_keys_is_told_it_is_a_variants_file(tmp_path):
    # "double" is spelt like double_dqn (difflib ratio 0.75) but is no typo of it: a file whose
    # every value is a mapping under such labels is a variants file, not a config with typos.
    path = tmp_path / "variants.yaml"
    path.write_text("double: {double_dqn: true}\nhuber: {loss: huber}\n")
    with pytest.raises(ConfigError, match=r"maps labels \(double, huber\) to overrides"):
        DQNConfig.from_yaml(path)
    # One letter off a key (env_kwarg for env_kwargs) is a typo, named as an unknown key.
    path.write_text("env_kwarg: {max_episode_steps: 50}\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'env_kwarg' \(did you mean"):
        DQNConfig.from_yaml(path)
    # Further off, but env_kwargs' value or another library's keywords: typos as well (they
    # were told the file was a variants file of one label).
    for key, meant in (("env_args", "env_kwargs"), ("policy_kwargs", "hidden_sizes")):
        path.write_text(f"{key}: {{max_episode_steps: 50}}\n")
        with pytest.raises(ConfigError, match=rf"key '{key}' \(did you mean '{meant}'\?\)"):
            DQNConfig.from_yaml(path)


def test_an_override_with_nothing_after_the_equals_sign_is_refused_not_read_as_null():
    # YAML reads "" as null: "--set max_grad_norm=" would turn clipping off without a word.
    for raw in ("", " "):
        with pytest.raises(
            ConfigError, match=f"'max_grad_norm' must be a number or null, got {raw!r}"
        ):
            DQNConfig.from_yaml(None, [f"max_grad_norm={raw}"])


def test_a_configs_dict_reads_back_from_json_as_itself():
    # to_dict is the config as YAML and JSON write it: env_kwargs' lists are lists there, not
    # the tuples a frozen config holds, which JSON would read back as lists that differ.
    config = DQNConfig(env_kwargs={"max_episode_steps": 50, "sizes": (1, 2)}, hidden_sizes=(8, 8))
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()


@pytest.mark.parametrize(
    "text, shown",
    [
        ("~", "None"),
        ("2024", "2024"),
        ("yes", "True"),
        ("2024-01-01", "datetime.date(2024, 1, 1)"),  # YAML 1.1's timestamps
    ],
)
def test_a_text_that_yaml_reads_as_another_kind_is_told_to_be_quoted(text, shown):
    # output_dir=~ said "must be a non-empty string, got None", with no word of why.
    with pytest.raises(ConfigError) as err:
        DQNConfig.from_yaml(None, [f"output_dir={text}"])
    assert str(err.value) == (
        f"config key 'output_dir' must be a non-empty string, got {shown} (in YAML or --set, "
        "quote a text that reads as null, a number, a bool or a date)"
    )
    assert DQNConfig.from_yaml(None, [f"output_dir='{text}'"]).output_dir.endswith(text)


def test_a_labels_like_file_whose_one_key_is_a_letter_off_a_config_key_is_a_typo(tmp_path):
    # hidden_size is hidden_sizes less a letter (difflib ratio 0.96): a mapping under it is a
    # typo of the key, not a variants file of one label called hidden_size.
    path = tmp_path / "c.yaml"
    path.write_text("hidden_size: {a: 1}\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'hidden_size' \(did you mean 'hidden_sizes'\?\)"
    ):
        DQNConfig.from_yaml(path)


def test_disable_env_checker_is_a_bool_or_null_not_a_word():
    # "no" is a true value to gymnasium: it would turn the checker off.
    DQNConfig(env_kwargs={"disable_env_checker": True})
    DQNConfig(env_kwargs={"disable_env_checker": None})
    with pytest.raises(ConfigError) as refused:
        DQNConfig(env_kwargs={"disable_env_checker": "no"})
    assert str(refused.value) == (
        "config key 'env_kwargs': disable_env_checker must be a bool or null, got 'no'"
    )


def test_n_step_windows_that_end_on_the_runs_last_step_are_refused_and_one_step_more_is_not():
    # The first 10-step transition is stored after env step num_envs * n_step - 1 = 9: a run of
    # 9 steps never stores one, and the rule to name is n_step's, not learning_starts'.
    few = dict(
        n_step=10,
        train_every_env_steps=1,
        gradient_steps_per_train=1,
        target_update_every_grad_steps=1,
    )
    with pytest.raises(ConfigError) as refused:
        DQNConfig(total_env_steps=9, learning_starts_env_steps=8, **few)
    assert str(refused.value).startswith(
        "config: num_envs * n_step - 1 = 9 env steps pass before the first n-step transition is "
        "stored, and the run has only total_env_steps = 9: lower num_envs (1) or n_step (10)"
    )
    DQNConfig(total_env_steps=10, learning_starts_env_steps=9, **few)


def test_an_override_without_a_key_before_the_equals_sign_is_refused():
    for item in ("=3", " =3"):
        with pytest.raises(ConfigError) as refused:
            DQNConfig.from_yaml(None, [item])
        assert str(refused.value) == f"override {item!r} is not of the form key=value"


def test_a_numpy_bool_is_a_flag():
    # np.bool_ is not a subclass of bool: a flag read from an array was refused as no flag.
    from dqn.config import check_flag
    from dqn.errors import InputError

    check_flag(np.bool_(False), "log_tensorboard")
    check_flag(True, "log_tensorboard")
    with pytest.raises(InputError, match="log_tensorboard is True or False, got 'no'"):
        check_flag("no", "log_tensorboard")
