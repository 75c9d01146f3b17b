"""Bad input, through the command line and the Python API.

For every case: a one-line error that names the problem, exit code 2 (the CLI), no traceback,
and the files on disk exactly as they were before (nothing half-written, no temporary files).
Most cases call the CLI entry points in-process (fast); a few run them as real processes to
show the same holds for the exit code and stderr of a process.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNConfig
from dqn.agent_files import list_checkpoints
from dqn.checkpoint import write_manifest
from dqn.cli import evaluate_main, train_main
from dqn.errors import CheckpointError, ConfigError, UnsupportedSpaceError
from dqn.members import member_bytes
from dqn.step_metrics import METRIC_NAMES
from tests.conftest import TINY_RUN, register_once

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE_YAML = str(ROOT / "configs" / "cartpole.yaml")


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(main, args, fragments, capsys, workdir: Path):
    """Run ``main(args)`` in-process: exit 2, one stderr line naming the problem, no writes."""
    before = tree(workdir)
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert tree(workdir) == before  # nothing written, nothing half-written


def latest(run_dir: Path) -> Path:
    return list_checkpoints(run_dir)[0]


def only_latest(run_dir: Path) -> Path:
    """Delete all but the newest checkpoint: no older one to fall back to."""
    for old in list_checkpoints(run_dir)[1:]:
        shutil.rmtree(old)
    return latest(run_dir)


# ---------------------------------------------------------------------- dqn-train: config
def config_file(text: str, name: str = "bad.yaml"):
    """A case's arguments: ``--config``, a file of ``text`` written in the case's folder."""

    def args(tmp):
        (tmp / name).write_text(text)
        return ["--config", tmp / name]

    return args


not_yaml = config_file("loss: [huber\n")
unknown_key_yaml = config_file("gamma: 0.9\nlearning_rat: 0.1\n")
deep_yaml = config_file("hidden_sizes: " + "[" * 5000 + "]" * 5000 + "\n")
list_yaml = config_file("- gamma\n- 0.9\n")
variants_yaml = config_file("l2: {loss: l2}\nhuber: {loss: huber}\n", "sweep.yaml")
# Plain YAML keeps the last value: the first would be ignored without a word.
repeated_key_yaml = config_file("seed: 1\ngamma: 0.9\nseed: 2\n")
number_key_yaml = config_file("1: 2\ngamma: 0.9\n")
# PyYAML's safe constructors raise a bare ValueError here: it was a traceback, exit 1.
tagged_value_yaml = config_file("gamma: 0.9\nseed: !!int 1e3\n")
# os.mkdir's ValueError (the file's name keeps the case's own output_dir)
nul_output_dir_yaml = config_file('output_dir: "runs\\0b"\n', name="nul-output_dir.yaml")
# Plain YAML keeps the second `<<` and drops the first's seed without a word.
merged_twice_yaml = config_file("a: &a {seed: 1}\nb: &b {seed: 2}\nc:\n  <<: *a\n  <<: *b\n")
# Every value a mapping looks like a variants file; the key is a typo of env_kwargs.
mapping_key_typo_yaml = config_file("env_kwarg: {max_episode_steps: 200}\n")


def unimportable_env(tmp):
    # Registered, but its code cannot be imported here (as gymnasium's JAX envs without jax).
    env_id = register_once("DqnTestUnimportable-v0", "no_such_module_for_dqn:Env")
    return ["--set", f"env_id={env_id}"]


def output_under_a_file(tmp):
    # Tests may run as root, where chmod does not stop writes; a path under a file always fails.
    (tmp / "afile").write_text("not a folder\n")
    return ["--config", CARTPOLE_YAML, "--set", f"output_dir={tmp / 'afile' / 'sub'}"]


def run_dir_not_empty(tmp):
    (tmp / "taken").mkdir()
    (tmp / "taken" / "notes.txt").write_text("mine\n")
    return ["--run-dir", tmp / "taken"]


def inside_a_runs_checkpoints(tmp):
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    (tmp / "run" / "config.yaml").write_text("seed: 0\n")
    (tmp / "run" / "metrics.csv").write_text("env_step\n")  # a run has both once it checkpoints
    return tmp / "run" / "checkpoints" / "step-000000900"


def inside_a_population(tmp):
    (tmp / "p").mkdir()
    (tmp / "p" / "population.json").write_text('{"members": []}')
    return tmp / "p" / "a-seed0" / "sub"


TRAIN_CASES = {
    "unknown env id": (
        ["--set", "env_id=CartPol-v1"],
        ["unknown env id 'CartPol-v1'", "CartPole-v1"],
    ),
    "env id of a namespace no installed package registers": (
        ["--set", "env_id=ALE/Pong-v5"],
        ["unknown env id 'ALE/Pong-v5'", "namespace 'ALE'", "pip install ale-py"],
    ),
    "continuous action space": (["--set", "env_id=Pendulum-v1"], ["Discrete action space"]),
    "discrete observation space": (
        ["--set", "env_id=FrozenLake-v1"],
        ["observation space Discrete(16)", "1-D Box", "FlattenObservation"],
    ),
    "tuple observation space": (
        ["--set", "env_id=Blackjack-v1"],
        ["observation space Tuple", "1-D Box", "FlattenObservation"],
    ),
    "env id whose module cannot be imported": (
        ["--set", "env_id=no_such_module_for_dqn:Foo-v1"],
        ["module 'no_such_module_for_dqn' cannot be imported", "PYTHONPATH"],
    ),
    "env id with two modules": (["--set", "env_id=a:b:C-v1"], ["module:EnvId (one ':')"]),
    "env whose code cannot be imported": (
        unimportable_env,
        ["env 'DqnTestUnimportable-v0' cannot be made here", "no_such_module_for_dqn"],
    ),
    "seed past 32 bits": (["--seed", str(2**32)], ["'seed' must be in [0, 2**32 - 1]"]),
    "negative evaluation seed": (["--set", "eval_seed=-1"], ["'eval_seed' must be in [0, 2**32"]),
    "n_step longer than the env's time limit": (
        ["--set", "env_kwargs={max_episode_steps: 5}"],
        ["'n_step' must be <= the env's time limit (max_episode_steps=5), got 10", "lower n_step"],
    ),
    "learning starts before the first n-step transition": (
        ["--set", "n_step=10", "learning_starts_env_steps=0", "train_every_env_steps=1"],
        ["'learning_starts_env_steps' must be >= num_envs * n_step - 1 = 9, got 0"],
    ),
    "zero total steps": (
        ["--set", "total_env_steps=0"],
        ["'total_env_steps' must be in [1, 10**12]"],
    ),
    "replay larger than memory": (
        ["--set", "buffer_size=100000000000", "total_env_steps=100000000000"],
        [
            "a replay of 100,000,000,000 transitions (buffer_size, or the run's env steps if",
            # 4.4e12 bytes of replay rows (11 float32s each), and the default network's copies
            f"needs {4_400_000_000_000 + member_bytes(DQNConfig(), 4, 2):,} bytes",
            "bytes of memory are available",
        ],
    ),
    "network larger than memory": (
        ["--set", "hidden_sizes=[100000, 100000]"],
        ["and the network needs", "lower buffer_size, hidden_sizes or a burst's rows"],
    ),
    "burst larger than memory": (
        ["--set", "gradient_steps_per_train=100000000"],
        ["and the network needs", "(gradient_steps_per_train x batch_size)"],
    ),
    "negative total steps": (
        ["--set", "total_env_steps=-100"],
        ["'total_env_steps' must be in [1, 10**12]"],
    ),
    "batch larger than buffer": (
        ["--set", "batch_size=200", "buffer_size=100"],
        ["'batch_size' (200) must be <= buffer_size"],
    ),
    "learning starts after the end": (
        ["--set", "learning_starts_env_steps=100", "total_env_steps=100"],
        ["never train"],
    ),
    "gamma 1.5": (["--set", "gamma=1.5"], ["'gamma' must be in (0, 1]"]),
    "wrong type": (["--set", "batch_size=many"], ["'batch_size' must be an integer, got 'many'"]),
    # Python's float() and YAML 1.1 take these as 1e-30 and 9: typos, not numbers.
    "underscore in an exponent": (
        ["--set", "learning_rate=1e-3_0"],
        ["'learning_rate' must be a number, got '1e-3_0'"],
    ),
    "trailing underscore": (["--set", "seed=9_"], ["'seed' must be an integer, got '9_'"]),
    "double underscore": (["--set", "seed=1__0"], ["'seed' must be an integer, got '1__0'"]),
    # So too in hex (0x1_ was read as 1, 0x_ named a tag !!int the user never wrote).
    "hex underscore": (["--set", "seed=0x1_"], ["'seed' must be an integer, got '0x1_'"]),
    "hex of no digit": (["--set", "seed=0x_"], ["'seed' must be an integer, got '0x_'"]),
    "--seed of a tag it cannot read": (["--seed", "!!int abc"], ["--seed: its tag !!int cannot"]),
    # Quoted, .inf is a string: float() would take it, and a string is no number.
    "a quoted .inf": (
        ["--set", "learning_rate='.inf'"],
        ["'learning_rate' must be a number, got '.inf'"],
    ),
    "wrong type, list": (
        ["--set", "hidden_sizes=wide"],
        ["'hidden_sizes' must be a list of integers"],
    ),
    "unknown key": (
        ["--set", "learning_rat=0.1"],
        ["unknown config key 'learning_rat'", "valid keys"],
    ),
    "unknown loss": (
        ["--loss", "mse"],
        ["unknown loss 'mse'", "l2, clipped_delta, huber, clipped_grad"],
    ),
    "override without =": (["--set", "gamma"], ["not of the form key=value"]),
    # An explicit tag its value does not fit: PyYAML raised ValueError, KeyError, AttributeError.
    "override with an int tag on a float": (
        ["--set", "total_env_steps=!!int 1e3"],
        ["override 'total_env_steps': its tag !!int cannot read '1e3'"],
    ),
    "override with a bool tag on a word": (
        ["--set", "double_dqn=!!bool maybe"],
        ["override 'double_dqn': its tag !!bool cannot read 'maybe'"],
    ),
    "override with a timestamp tag": (
        ["--set", "env_id=!!timestamp x"],
        ["override 'env_id': its tag !!timestamp cannot read 'x'"],
    ),
    "override given twice": (["--set", "seed=1", "seed=2"], ["override key 'seed' is given twice"]),
    "--loss and --set loss": (
        ["--loss", "huber", "--set", "loss=l2"],
        ["--loss and --set loss=... both set 'loss': give it once"],
    ),
    "--env and --set env_id": (
        ["--env", "Acrobot-v1", "--set", "env_id=CartPole-v1"],
        ["--env and --set env_id=... both set 'env_id': give it once"],
    ),
    "unknown env by --env": (
        ["--env", "CartPol-v1"],
        ["unknown env id 'CartPol-v1'; did you mean: CartPole-v1"],
    ),
    "malformed env id": (
        ["--env", "ALE/Pong/v5"],
        ["env id 'ALE/Pong/v5' is malformed: an id is [namespace/]Name[-vN]"],
    ),
    "env id with a space": (["--set", "env_id=Cart Pole-v1"], ["'Cart Pole-v1' is malformed"]),
    # gym.make's own keyword: 1.5 and "abc" failed in its TimeLimit with a traceback, and yes
    # (a bool) ended every episode after one step.
    "max_episode_steps not a positive integer": (
        ["--set", "env_kwargs={max_episode_steps: 1.5}"],
        ["'env_kwargs': max_episode_steps must be an integer > 0 or null, got 1.5"],
    ),
    "max_episode_steps a bool": (
        ["--set", "env_kwargs={max_episode_steps: yes}"],
        ["max_episode_steps must be an integer > 0 or null, got True"],
    ),
    "max_episode_steps 0": (
        ["--set", "env_kwargs={max_episode_steps: 0}"],
        ["max_episode_steps must be an integer > 0 or null, got 0"],
    ),
    "env_kwargs sets id": (
        ["--set", "env_kwargs={id: x}"],
        ["'env_kwargs' must not set id, got 'x': env_id names the env"],
    ),
    "NUL in output_dir": (nul_output_dir_yaml, ["config key 'output_dir' holds a NUL character"]),
    # Flags were read as YAML: null a None ("must be a non-empty string"), "a:" a mapping.
    "--loss null": (
        ["--loss", "null"],
        ["unknown loss 'null'; valid losses: l2, clipped_delta, huber, clipped_grad"],
    ),
    "--env with a stray space": (["--env", "CartPole-v1 "], ["'env_id' has stray spaces"]),
    "a choice key of another type": (
        ["--set", "activation=true"],
        ["'activation' must be one of relu, tanh, sigmoid, elu, got True"],
    ),
    "a key in capitals": (
        ["--set", "SEED=3"],
        ["unknown config key 'SEED' (did you mean 'seed'?)"],
    ),
    "env_kwargs value the env has no entry for": (
        ["--set", "env_id=FrozenLake-v1", "env_kwargs={map_name: 5x5}"],
        ["env 'FrozenLake-v1' refused env_kwargs {'map_name': '5x5'}: KeyError: '5x5'"],
    ),
    "--seed and --set seed": (
        ["--seed", "1", "--set", "seed=1"],
        ["--seed and --set seed=... both set 'seed'"],
    ),
    "zero checkpoints kept": (["--set", "keep_checkpoints=0"], ["'keep_checkpoints' must be > 0"]),
    "negative Q bound": (["--set", "max_abs_q=-1"], ["'max_abs_q' must be > 0"]),
    "deterministic not a bool": (
        ["--set", "deterministic=sometimes"],
        ["'deterministic' must be a bool"],
    ),
    "missing config file": (["--config", "no/such.yaml"], ["config file not found: no/such.yaml"]),
    "config not YAML": (not_yaml, ["not valid YAML (line 2)"]),
    "YAML with an unknown key": (unknown_key_yaml, ["unknown config key 'learning_rat'"]),
    "YAML that is a list": (list_yaml, ["must hold a mapping of key: value"]),
    "YAML with two merge keys in one mapping": (merged_twice_yaml, ["sets key '<<' twice"]),
    "YAML of one mapping under a misspelt key": (
        mapping_key_typo_yaml,
        ["unknown config key 'env_kwarg' (did you mean 'env_kwargs'?)"],
    ),
    "YAML with a tag its value does not fit": (
        tagged_value_yaml,
        ["bad.yaml is not valid YAML (line 2): its tag !!int cannot read '1e3'"],
    ),
    # PyYAML parses by recursion: this was a RecursionError's traceback of ~3,000 lines.
    "YAML nested thousands deep": (deep_yaml, ["bad.yaml is not valid YAML: it is nested too"]),
    "--set value nested thousands deep": (
        ["--set", "hidden_sizes=" + "[" * 5000 + "]" * 5000],
        ["override 'hidden_sizes': its value is nested too deeply"],
    ),
    "a variants file as the config": (
        variants_yaml,
        ["maps labels (l2, huber) to overrides, as a variants file does", "--variants-file"],
    ),
    # Its label read as a number: a TypeError's traceback from the message's own join.
    "a variants file of a number label as the config": (
        config_file("0.5: {loss: l2}\n", "sweep.yaml"),
        ["maps labels (0.5) to overrides, as a variants file does"],
    ),
    "YAML that sets a key twice": (repeated_key_yaml, ["sets key 'seed' twice (again on line 3)"]),
    "YAML with a number for a key": (number_key_yaml, ["config keys must be strings, got 1"]),
    "unwritable output folder": (output_under_a_file, ["cannot create the run folder", "afile"]),
    "config file that is a folder": (lambda tmp: ["--config", tmp], ["is a folder, not a YAML"]),
    "config file that is a device": (
        ["--config", "/dev/null"],
        ["config file /dev/null is not a regular file (a pipe or a device)"],
    ),
    "run folder not empty": (run_dir_not_empty, ["already exists and is not empty"]),
    "run folder inside another run's checkpoints": (
        lambda tmp: ["--run-dir", inside_a_runs_checkpoints(tmp)],
        ["step-000000900 is inside the checkpoints/ folder of run", "would set it aside"],
    ),
    "run folder inside a population's": (
        lambda tmp: ["--run-dir", inside_a_population(tmp)],
        ["--run-dir", "is inside the population folder", "whose files it would mix with"],
    ),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, fragments = TRAIN_CASES[case]
    args = args(tmp_path) if callable(args) else args
    output = ["--set", f"output_dir={tmp_path / 'runs'}"] if "output_dir" not in str(args) else []
    assert_refused(train_main, [*args, *output, "--no-progress"], fragments, capsys, tmp_path)
    assert not (tmp_path / "runs").exists()


TOO_LONG = "n" * 300  # a file name holds at most 255 bytes


@pytest.mark.parametrize(
    "command, args, fragment",
    [
        ("dqn-train", ["--config", TOO_LONG], f"cannot read config file {TOO_LONG}"),
        ("dqn-train", ["--run-dir", TOO_LONG], f"cannot create the run folder in {TOO_LONG}"),
        ("dqn-train", ["--resume", TOO_LONG], f"cannot read {TOO_LONG}"),
        ("dqn-evaluate", [TOO_LONG], f"cannot read {TOO_LONG}"),
        ("dqn-export", [TOO_LONG, "--out", "model"], f"cannot read {TOO_LONG}"),
        ("dqn-export", ["RUN", "--out", TOO_LONG], f"cannot write --out {TOO_LONG}"),
        ("dqn-compare", ["--config", TOO_LONG], f"cannot read config file {TOO_LONG}"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_a_name_too_long_for_the_filesystem_is_named_as_what_it_is(
    command, args, fragment, tiny_run, tmp_path, capsys, monkeypatch
):
    # Path.exists() and is_dir() raise on such a name rather than answer: dqn-export printed a
    # traceback, and the others called an input they could not read "cannot write the run".
    from dqn.cli import compare_main
    from dqn.export import main as export_main

    monkeypatch.chdir(tmp_path)
    main = {"dqn-train": train_main, "dqn-evaluate": evaluate_main}.get(command)
    main = main or {"dqn-export": export_main, "dqn-compare": compare_main}[command]
    args = [str(tiny_run) if a == "RUN" else a for a in args]
    assert_refused(
        main, args, [f"{command}: error: {fragment}", "File name too long"], capsys, tmp_path
    )


# ---------------------------------------------------------------------- dqn-train --resume
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def truncated_weights(run):
    truncate(only_latest(run) / "agent" / "online.keras")


def corrupted_replay(run):
    replay = only_latest(run) / "replay.npz"
    data = bytearray(replay.read_bytes())
    data[len(data) // 2] ^= 0xFF
    replay.write_bytes(bytes(data))


def pickled_replay(run):
    # A replay file that would need pickle to load, with a manifest that matches it (as a
    # crafted checkpoint would have): np.load(allow_pickle=False) must refuse it.
    ckpt = only_latest(run)
    np.savez(ckpt / "replay.npz", obs=np.array([{"x": 1}], dtype=object))
    write_manifest(ckpt, 600)


def replay_rng_naming(name):
    """A case: the replay's rng_state names ``name`` for its bit generator, re-signed. It was
    looked up in np.random and called: ``test`` ran numpy's test suite, ``seed`` reseeded
    numpy's global generator."""

    def change(run):
        ckpt = only_latest(run)
        with np.load(ckpt / "replay.npz") as npz:
            data = {k: npz[k] for k in npz.files}
        state = json.loads(str(data["rng_state"]))
        data["rng_state"] = np.array(json.dumps({**state, "bit_generator": name}))
        np.savez(ckpt / "replay.npz", **data)
        write_manifest(ckpt, 600)

    return change


def replay_rng_state(state):
    """A case: the replay's rng_state replaced by ``state``, re-signed. An MT19937's was read,
    and the next checkpoint stopped the run: its state holds an array, which JSON does not."""

    def change(run):
        ckpt = only_latest(run)
        with np.load(ckpt / "replay.npz") as npz:
            data = {k: npz[k] for k in npz.files}
        data["rng_state"] = np.array(json.dumps(state))
        np.savez(ckpt / "replay.npz", **data)
        write_manifest(ckpt, 600)

    return change


def replay_claiming_a_gigabyte(run):
    # A replay whose obs header claims 67,108,864 x 4 float32s (1 GiB) over a few KB of
    # deflated data, re-signed: np.load allocated the whole array before its shape was refused.
    import io
    import zipfile

    ckpt = only_latest(run)
    path = ckpt / "replay.npz"
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    claim = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": (67_108_864, 4)}
    np.lib.format.write_array_header_1_0(claim, header)
    files["obs.npy"] = claim.getvalue() + bytes(4096)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    write_manifest(ckpt, 600)


def checkpoints_linked_elsewhere(run):
    # Its checkpoints/ a link to another run's: a resume set aside, pruned and wrote there.
    elsewhere = run.parent / "elsewhere-checkpoints"
    (run / "checkpoints").rename(elsewhere)
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    shutil.rmtree(latest(run))  # a checkpoint (step 400) to resume from


def stepped_back(run):
    # A checkpoint whose loop.json, re-signed, says env step -5: a resume sets aside every
    # checkpoint past the step it resumes from, so it took all three good ones with it.
    ckpt = latest(run)
    meta = json.loads((ckpt / "loop.json").read_text())
    (ckpt / "loop.json").write_text(json.dumps({**meta, "env_step": -5}))
    write_manifest(ckpt, 600)


def resigned_loop(**changes):
    """A case: the newest checkpoint's loop.json with ``changes``, its manifest re-signed (a
    crafted or hand-edited checkpoint): a train_seconds of null was a TypeError mid-resume, a
    first_solve of "abc" went into summary.json, a later format_version was read as this one."""

    def change(run):
        ckpt = only_latest(run)
        meta = json.loads((ckpt / "loop.json").read_text())
        (ckpt / "loop.json").write_text(json.dumps({**meta, **changes}))
        write_manifest(ckpt, 600)

    return change


def resigned_loop_arrays(**changes):
    """A case: the newest checkpoint's loop.npz with ``changes``, its manifest re-signed: a
    pending_reset of another env count, or a window that is no table of rows."""

    def change(run):
        ckpt = only_latest(run)
        with np.load(ckpt / "loop.npz") as npz:
            data = {k: npz[k] for k in npz.files}
        np.savez(ckpt / "loop.npz", **{**data, **changes})
        write_manifest(ckpt, 600)

    return change


def resigned_env_state(layer: int, name: str, change):
    """A case: the newest checkpoint's recorded env state with attribute ``name`` of wrapper
    ``layer`` (0: TimeLimit, -1: CartPoleEnv) set to ``change(entry)``, its manifest re-signed
    and the summary gone (so that the resume restores it). Such records set an env's
    attributes to anything: a recorded ``step`` hid the env's method, an ``env`` replaced the
    wrapper's inner env, a generator state of another layout was numpy's KeyError."""

    def damage(run):
        ckpt = only_latest(run)
        (run / "summary.json").unlink()
        meta = json.loads((ckpt / "loop.json").read_text())
        meta["env_layers"][layer][name] = change(meta["env_layers"][layer].get(name))
        (ckpt / "loop.json").write_text(json.dumps(meta))
        write_manifest(ckpt, 600)

    return damage


def with_generator_state(state):
    """``change`` for ``resigned_env_state``: a generator entry whose ``state`` is ``state``."""
    return lambda entry: {"generator": {**entry["generator"], "state": state}}


def resigned_optimizer(**changes):
    """A case: the newest checkpoint's agent/optimizer.npz with ``changes``, re-signed."""

    def damage(run):
        ckpt = only_latest(run)
        (run / "summary.json").unlink()
        path = ckpt / "agent" / "optimizer.npz"
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
        np.savez(path, **{**data, **changes})
        write_manifest(ckpt, 600)

    return damage


def drop_loop_array(run, key: str):
    ckpt = only_latest(run)
    with np.load(ckpt / "loop.npz") as npz:
        data = {k: npz[k] for k in npz.files if k != key}
    np.savez(ckpt / "loop.npz", **data)
    write_manifest(ckpt, 600)


def resigned_replay(name: str, change):
    """A case: the newest checkpoint's replay.npz with ``change`` made to its array ``name``,
    its manifest re-signed. Strings for rewards were numpy's "could not convert string to
    float" traceback; an action past the Q-head's end trained on (XLA's gather clamps it)."""

    def damage(run):
        ckpt = only_latest(run)
        with np.load(ckpt / "replay.npz") as npz:
            data = {k: npz[k] for k in npz.files}
        data[name] = change(data[name])
        np.savez(ckpt / "replay.npz", **data)
        write_manifest(ckpt, 600)

    return damage


def with_first(value):
    """``change`` for ``resigned_replay``: the array with its first value set to ``value``."""

    def change(array):
        array = array.copy()
        array[0] = value
        return array

    return change


def missing_manifest(run):
    (only_latest(run) / "manifest.json").unlink()


def other_env(run):
    # The checkpoint says Acrobot-v1 (6-D observations, 3 actions); its networks take 4 and give 2.
    ckpt = only_latest(run)
    config = ckpt / "agent" / "config.yaml"
    config.write_text(config.read_text().replace("CartPole-v1", "Acrobot-v1"))
    write_manifest(ckpt, 600)


def edited_config(run):
    # The run's config.yaml edited after training, and a checkpoint to resume from (step 400).
    shutil.rmtree(latest(run))
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("loss: huber", "loss: l2"))


def tensorboard_folder_is_a_file(run):
    # TensorFlow's own file errors are not OSError; they must still end in one line.
    shutil.rmtree(latest(run))
    (run / "tb").write_text("not a folder\n")


def not_a_run(run):
    shutil.rmtree(run)
    run.mkdir()
    (run / "notes.txt").write_text("just a folder\n")


def killed_before_its_first_row(run):
    # A run killed before its first checkpoint and metrics row leaves its config.yaml only:
    # it was "not a run folder with checkpoints", without the cure the other early deaths get.
    shutil.rmtree(run / "checkpoints")
    for name in ("metrics.csv", "summary.json"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "tb", ignore_errors=True)


def a_file(run):
    shutil.rmtree(run)
    run.write_text("not a folder\n")


RESUME_CASES = {
    "missing run folder": (shutil.rmtree, ["run folder not found"]),
    "a file": (a_file, ["run is a file, not a run folder"]),
    "not a run folder": (not_a_run, ["is not a run folder with checkpoints"]),
    "a run killed before its first metrics row": (
        killed_before_its_first_row,
        ["the run has written none yet", "train it again, in a new folder or after deleting"],
    ),
    "truncated weights file": (
        truncated_weights,
        ["no intact checkpoint", "agent/online.keras does not match its checksum"],
    ),
    "corrupted replay file": (corrupted_replay, ["replay.npz does not match its checksum"]),
    "replay file that needs pickle": (pickled_replay, ["not a readable replay buffer", "pickle"]),
    "checkpoints folder that is a link": (
        checkpoints_linked_elsewhere,
        ["checkpoints is a link: a resume deletes and writes checkpoints there"],
    ),
    "replay file whose header claims a gigabyte": (
        replay_claiming_a_gigabyte,
        ["not a readable replay buffer", "obs.npy claims 1,073,741,824 bytes of data"],
    ),
    "replay file whose generator names np.random.seed": (
        replay_rng_naming("seed"),
        ["not a readable replay buffer", "bit_generator 'seed' is not numpy's"],
    ),
    "checkpoint without manifest": (missing_manifest, ["no manifest.json (incomplete)"]),
    "checkpoint whose loop.json names another step": (
        stepped_back,
        ["checkpoint step-000000600 cannot be resumed: its loop.json says env step -5"],
    ),
    "loop.json with a null train_seconds": (
        resigned_loop(train_seconds=None),
        ["step-000000600 cannot be resumed: loop.json's train_seconds is None, not a number"],
    ),
    "loop.json with a first_solve of text": (
        resigned_loop(first_solve="abc"),
        ["loop.json's first_solve is 'abc', not an env step or null"],
    ),
    "loop.json with an eval_mean of text": (
        resigned_loop(eval_mean="abc"),
        ["loop.json's eval_mean is 'abc', not a number or null"],
    ),
    "loop.npz with a pending_reset of two envs": (
        resigned_loop_arrays(pending_reset=np.zeros(2, bool)),
        ["loop.npz's pending_reset is bool of shape (2,), not a bool per env (1)"],
    ),
    "loop.npz with a pending_reset of numbers": (
        resigned_loop_arrays(pending_reset=np.zeros(1, np.int8)),
        ["loop.npz's pending_reset is int8 of shape (1,), not a bool per env (1)"],
    ),
    "loop.json of a format before the first": (
        resigned_loop(format_version=-3),
        ["loop.json's format_version is -3; this dqn reads 1 to 2"],
    ),
    "loop.json whose env step is text": (
        resigned_loop(env_step="600"),
        ["loop.json's env_step is '600', not an env step"],
    ),
    "replay whose generator is not PCG64": (
        replay_rng_state({"bit_generator": "MT19937", "state": {"key": [0] * 624, "pos": 0}}),
        ["not a readable replay buffer", "its generator is MT19937, not PCG64"],
    ),
    "loop.npz with a window of one row": (
        resigned_loop_arrays(window=np.zeros(3, np.float32)),
        [f"loop.npz's window has shape (3,), not (rows, {len(METRIC_NAMES)})"],
    ),
    "loop.npz with a window of another width": (
        resigned_loop_arrays(window=np.zeros((2, 3), np.float32)),
        [f"loop.npz's window has shape (2, 3), not (rows, {len(METRIC_NAMES)})"],
    ),
    "loop.npz with a pending step's action past the env's": (
        resigned_loop_arrays(
            **{
                "pending0.obs": np.zeros((1, 4), np.float32),
                "pending0.actions": np.array([5]),
                "pending0.rewards": np.array([1.0]),
            }
        ),
        ["loop.npz's pending0.actions must be integers in [0, 2), got values from 5 to 5"],
    ),
    "loop.npz with more pending steps than n_step - 1": (
        resigned_loop_arrays(
            **{
                "pending0.obs": np.zeros((10, 4), np.float32),
                "pending0.actions": np.zeros(10, np.int64),
                "pending0.rewards": np.ones(10),
            }
        ),
        ["loop.npz's pending0 holds 10 steps, more than n_step - 1"],
    ),
    "loop.npz with a pending step's action missing": (
        resigned_loop_arrays(
            **{
                "pending0.obs": np.zeros((2, 4), np.float32),
                "pending0.actions": np.array([1]),
                "pending0.rewards": np.ones(2),
            }
        ),
        ["loop.npz's pending0 arrays hold rows of steps obs 2, actions 1, rewards 2: one row"],
    ),
    "loop.npz with a probe of text rewards": (
        resigned_loop_arrays(**{"probe.rewards": np.full(1024, "x")}),
        ["loop.npz's probe.rewards is <U1 of shape (1024,), not numbers (1024,)"],
    ),
    "loop.npz without a pending step's rewards": (
        lambda run: drop_loop_array(run, "pending0.rewards"),
        [
            "step-000000600 cannot be resumed: loop.json or loop.npz holds no 'pending0.rewards' "
            "(an older dqn's checkpoint, or not one dqn wrote)"
        ],
    ),
    "loop.json whose env state hides the env's step method": (
        resigned_env_state(-1, "step", lambda entry: {"value": 3}),
        ["does not fit CartPole-v1: its recorded state of CartPoleEnv names step, a method of"],
    ),
    "loop.json whose env state replaces a wrapper's inner env": (
        resigned_env_state(0, "env", lambda entry: {"value": 3}),
        ["does not fit CartPole-v1: its recorded TimeLimit.env is not state dqn restores"],
    ),
    "loop.json whose env state names an array loop.npz lacks": (
        resigned_env_state(-1, "state", lambda entry: {"array": "env9.state", "scalar": False}),
        ["its recorded CartPoleEnv.state names an array loop.npz does not hold"],
    ),
    "loop.json whose env generator state is of another layout": (
        resigned_env_state(-1, "_np_random", with_generator_state({})),
        [
            "its recorded CartPoleEnv._np_random: its generator's state is not one of PCG64's: "
            "KeyError('state')"
        ],
    ),
    "optimizer.npz with a negative step count": (
        resigned_optimizer(adam_step=np.float32(-1e9)),
        ["optimizer.npz", "adam_step is -1e+09, not a count of steps"],
    ),
    "loop.json of a later format": (
        resigned_loop(format_version=3),
        ["loop.json's format_version is 3; this dqn reads 1 to 2"],
    ),
    "replay of text rewards": (
        resigned_replay("rewards", lambda rewards: rewards.astype(str)),
        ["replay.npz: rewards holds <U"],
    ),
    "replay with an action past the env's": (
        resigned_replay("actions", with_first(2)),
        ["replay.npz: actions must be integers in [0, 2), got values from 0 to 2"],
    ),
    "replay with a column of actions": (
        resigned_replay("actions", lambda actions: actions[:, None]),
        ["replay.npz does not fit a replay of"],
    ),
    "checkpoint of another observation shape": (
        other_env,
        ["saved for observations of shape (4,) and 2 actions", "Acrobot-v1 has (6,)"],
    ),
    "config.yaml edited since training": (
        edited_config,
        [
            "config.yaml differs from the config",
            "was trained with (loss), or its checkpoint is another run's",
            "restore config.yaml",
        ],
    ),
    "tb/ that cannot be written": (
        tensorboard_folder_is_a_file,
        ["cannot write the run: Not a directory", "tb"],
    ),
    "run already complete": (lambda run: None, ["already complete (600 of 600 env steps)"]),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_refuses(case, tiny_run_copy, capsys):
    damage, fragments = RESUME_CASES[case]
    damage(tiny_run_copy)
    args = ["--resume", tiny_run_copy, "--no-progress"]
    assert_refused(train_main, args, fragments, capsys, tiny_run_copy.parent)


def test_a_resume_puts_back_a_lost_config_and_an_unreadable_summary_and_says_so(
    tiny_run_copy, capsys
):
    # Not refusals: the checkpoint holds the run's config, and the final one its summary's
    # figures, so the run is intact; but the file that went is named, not replaced in silence.
    run = tiny_run_copy
    config = (run / "config.yaml").read_text()
    shutil.rmtree(latest(run))  # a checkpoint (step 400) to resume from
    (run / "config.yaml").unlink()
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (
        err == f"dqn-train: warning: {run} has no config.yaml: written again from checkpoint "
        "step-000000400\n"
    )
    assert (run / "config.yaml").read_text() == config
    (run / "summary.json").write_text("{garbage")
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (
        err == f"dqn-train: warning: {run / 'summary.json'} is unreadable: the run is "
        "finished again from checkpoint step-000000600\n"
    )
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 600
    for other in ("[]", '{"env_steps": 600}'):  # JSON, and not a summary: rewritten in silence
        (run / "summary.json").write_text(other)
        assert train_main(["--resume", str(run), "--no-progress"]) == 0
        assert capsys.readouterr().err == (
            f"dqn-train: warning: {run / 'summary.json'} is not a run's summary: the run is "
            "finished again from checkpoint step-000000600\n"
        )
        assert json.loads((run / "summary.json").read_text())["env_steps"] == 600


@pytest.mark.parametrize(
    "other", [["--set", "gamma=0.5"], ["--env", "Acrobot-v1"], ["--init-from", "runs/x"]]
)
def test_resume_takes_no_other_options(other, tiny_run_copy, capsys):
    args = ["--resume", tiny_run_copy, *other]
    assert_refused(train_main, args, ["--resume", "takes no"], capsys, tiny_run_copy.parent)


def test_resume_of_a_folder_of_runs_names_them_to_pick_from(tiny_run_copy, capsys):
    runs = tiny_run_copy.parent / "runs"
    runs.mkdir()
    shutil.copytree(tiny_run_copy, runs / "a")
    tiny_run_copy.rename(runs / "b")
    fragments = ["runs is not a run folder with checkpoints", "it holds 2 runs, not one: give one"]
    fragments += [f"({runs / 'a'}, {runs / 'b'})"]
    assert_refused(train_main, ["--resume", runs, "--no-progress"], fragments, capsys, runs.parent)


def test_a_loop_json_whose_format_version_is_true_is_refused_not_read_as_version_1(
    tiny_run_copy, capsys
):
    # JSON's true is a Python int equal to 1: it must not pass for a format this dqn reads.
    resigned_loop(format_version=True)(tiny_run_copy)
    fragments = [
        "step-000000600 cannot be resumed: loop.json's format_version is True; this "
        "dqn reads 1 to 2"
    ]
    args = ["--resume", tiny_run_copy, "--no-progress"]
    assert_refused(train_main, args, fragments, capsys, tiny_run_copy.parent)


def test_a_resume_of_a_run_whose_config_yaml_is_not_yaml_names_the_run(tiny_run_copy, capsys):
    # The run's own config.yaml, not the checkpoint's: the refusal says which resume it stops.
    shutil.rmtree(latest(tiny_run_copy))  # a checkpoint (step 400) to resume from
    (tiny_run_copy / "config.yaml").write_text("seed: [\n")
    fragments = [f"cannot resume {tiny_run_copy}: config file", "is not valid YAML"]
    args = ["--resume", tiny_run_copy, "--no-progress"]
    assert_refused(train_main, args, fragments, capsys, tiny_run_copy.parent)


# ---------------------------------------------------------------------- dqn-evaluate
def agent_for_other_shape(tmp):
    from dqn.agent import DQNAgent

    space = gym.spaces.Box(-1, 1, (6,), np.float32)
    DQNAgent(space, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,))).save(tmp / "agent")
    return tmp / "agent"


def agent_for_other_actions(tmp):
    from dqn.agent import DQNAgent

    space = gym.spaces.Box(-1, 1, (4,), np.float32)  # CartPole's observations, but 3 actions
    DQNAgent(space, gym.spaces.Discrete(3), DQNConfig(hidden_sizes=(8,))).save(tmp / "agent")
    return tmp / "agent"


def truncated_agent(tmp):
    from dqn.agent import DQNAgent

    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    DQNAgent(space, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,))).save(tmp / "agent")
    truncate(tmp / "agent" / "target.keras")
    return tmp / "agent"


def empty_folder(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def folder_of_notes(tmp):
    (tmp / "notes").mkdir()
    (tmp / "notes" / "todo.txt").write_text("mine\n")
    return tmp / "notes"


def tiny_run_checkpoints(tmp):
    """A run's checkpoints/ with two checkpoints: once said to hold "2 runs"."""
    run = run_without_checkpoint(tmp)
    for step in (200, 400):
        (run / "checkpoints" / f"step-{step:09d}" / "agent").mkdir(parents=True)
        (run / "checkpoints" / f"step-{step:09d}" / "agent" / "agent.json").write_text("{}")
    return run / "checkpoints"


def run_without_checkpoint(tmp, name="run"):
    run = tmp / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "metrics.csv").write_text("env_step,grad_steps\n")
    return run


def study_entry_without_checkpoint(tmp):
    """dqn-compare's entry of a run (runs/<variant>-seed<k>/run) before its first checkpoint."""
    entry = tmp / "huber-seed0"
    entry.mkdir()
    run_without_checkpoint(entry)
    return entry


def exported_policy(tmp):
    """What dqn-export writes: a SavedModel folder."""
    (tmp / "model").mkdir()
    (tmp / "model" / "saved_model.pb").write_bytes(b"")
    return tmp / "model"


def population_folder(tmp):
    """A population's folder: a run per member beside population.json."""
    pop = tmp / "pop"
    for name in ("member0-seed0", "member1-seed1"):
        run_without_checkpoint(pop, name)
    (pop / "population.json").write_text("{}")
    return pop


def study_folder(tmp):
    """dqn-compare's --out folder: its run entries in runs/."""
    study = tmp / "study"
    for name in ("huber-seed0", "l2-seed0", "l2-seed1", "l2-seed2"):
        run_without_checkpoint(study / "runs" / name)
    return study


def study_with_populations(tmp):
    """dqn-compare's --out folder after the population runner: populations/<id>/population.json
    lists its members' run folders, which live in the study's runs/<name>/run."""
    study = study_folder(tmp)
    for i, names in enumerate([("huber-seed0", "l2-seed0"), ("l2-seed1",)]):
        pop = study / "populations" / f"chunk{i}"
        pop.mkdir(parents=True)
        members = [{"run_dir": f"../../runs/{name}/run"} for name in names]
        (pop / "population.json").write_text(json.dumps({"members": members}))
    return study


EVALUATE_CASES = {
    "missing folder": (lambda tmp: tmp / "nowhere", ["no run, checkpoint or agent folder"]),
    # A run's folder in the first seconds of dqn-train, which makes it before its files.
    "empty folder": (empty_folder, ["empty is empty: no run, checkpoint or agent folder (yet, if"]),
    "folder of other files": (
        folder_of_notes,
        ["not a complete checkpoint or saved agent: missing config.yaml"],
    ),
    "agent for another observation shape": (
        agent_for_other_shape,
        [
            "saved for observations of shape (6,)",
            "CartPole-v1 has (4,)",
            "(CartPole-v1 is DQNConfig()'s default env_id, kept by the config it was saved "
            "with: build an agent for another env with DQNConfig(env_id=...))",
        ],
    ),
    "agent for another number of actions": (
        agent_for_other_actions,
        ["saved for observations of shape (4,) and 3 actions", "CartPole-v1 has (4,) and 2"],
    ),
    "truncated weights, no manifest": (truncated_agent, ["corrupt saved agent in"]),
    "run before its first checkpoint": (run_without_checkpoint, ["has no checkpoint yet"]),
    "a run's checkpoints folder": (
        lambda tmp: tiny_run_checkpoints(tmp),
        ["checkpoints is the checkpoints folder of run", "give the run"],
    ),
    "study entry before its run's first checkpoint": (
        study_entry_without_checkpoint,
        ["huber-seed0/run has no checkpoint yet"],
    ),
    "exported policy": (
        exported_policy,
        ["is an exported policy (a SavedModel", "tf.saved_model.load"],
    ),
    "population folder": (
        population_folder,
        ["pop holds 2 runs, not one: give one of them", "pop/member0-seed0, ", "member1-seed1)"],
    ),
    "study folder": (
        study_folder,
        ["study holds 4 runs", "study/runs/huber-seed0, ", "runs/l2-seed1, ..."],
    ),
    "a study's population": (
        lambda tmp: study_with_populations(tmp) / "populations" / "chunk0",
        ["chunk0 holds 2 runs, not one", "/runs/huber-seed0/run, ", "/runs/l2-seed0/run)"],
    ),
    "a study's population of one": (
        lambda tmp: study_with_populations(tmp) / "populations" / "chunk1",
        ["chunk1 is not a run but holds one: give it (", "/study/runs/l2-seed1/run)"],
    ),
    "a study's populations": (
        lambda tmp: study_with_populations(tmp) / "populations",
        ["populations holds 3 runs", "/huber-seed0/run, ", "/l2-seed0/run, ", "/l2-seed1/run)"],
    ),
    "a run beside a study's runs": (  # both levels are counted, not the first that has one
        lambda tmp: run_without_checkpoint(study_folder(tmp), "mine").parent,
        ["study holds 5 runs, not one", "study/mine, ", "study/runs/huber-seed0, "],
    ),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_refuses(case, tmp_path, capsys):
    path = EVALUATE_CASES[case][0](tmp_path)
    assert_refused(evaluate_main, [path], EVALUATE_CASES[case][1], capsys, tmp_path)


def test_a_study_entry_loads_the_run_inside_it(tiny_run_copy, tmp_path):
    """``dqn-evaluate <study>/runs/huber-seed0`` evaluates the run that entry holds, as
    ``.../huber-seed0/run`` does."""
    from dqn.agent_files import STUDY_RUN, resolve_agent_dir

    entry = tmp_path / "huber-seed0"
    entry.mkdir()
    tiny_run_copy.rename(entry / STUDY_RUN)
    assert resolve_agent_dir(entry) == resolve_agent_dir(entry / STUDY_RUN)
    assert resolve_agent_dir(entry).parts[-5:-3] == ("huber-seed0", STUDY_RUN)


def test_evaluate_refuses_a_run_whose_only_checkpoint_is_corrupt(tiny_run_copy, capsys):
    truncate(only_latest(tiny_run_copy) / "agent" / "target.keras")
    fragments = ["no intact checkpoint", "agent/target.keras does not match its checksum"]
    assert_refused(evaluate_main, [tiny_run_copy], fragments, capsys, tiny_run_copy.parent)


@pytest.mark.parametrize("episodes", ["0", "1000001"])
def test_evaluate_refuses_zero_or_a_million_and_one_episodes(episodes, tiny_run, capsys):
    fragments = [f"--episodes must be in [1, 1_000_000], got {episodes}"]
    assert_refused(evaluate_main, [tiny_run, "--episodes", episodes], fragments, capsys, tiny_run)


def test_evaluate_refuses_seeds_past_32_bits_for_its_last_episode(tiny_run, capsys):
    args = [tiny_run, "--seed", str(2**32 - 5), "--episodes", "10"]
    fragments = ["--seed must be in [0, 2**32 - episodes], got 4294967291"]
    assert_refused(evaluate_main, args, fragments, capsys, tiny_run)


def test_evaluate_refuses_a_negative_seed(tiny_run, capsys):
    fragments = ["--seed must be in [0, 2**32 - episodes], got -5"]
    assert_refused(evaluate_main, [tiny_run, "--seed", "-5"], fragments, capsys, tiny_run)


# ---------------------------------------------------------------------- as real processes
def run_cli(main, *args, cwd):
    code = f"import sys; from dqn.cli import {main}; sys.exit({main}(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "main, args, fragment",
    [
        ("train_main", ["--bogus"], "unrecognized arguments: --bogus"),
        # An empty name (an unset shell variable) is refused, not taken for the current folder.
        ("train_main", ["--run-dir", ""], "argument --run-dir: must name a folder, got an empty"),
        ("compare_main", ["--out", ""], "argument --out: must name a folder, got an empty"),
        ("train_main", ["--run-dir", "  "], "argument --run-dir: must name a folder, got an empty"),
        ("train_main", ["--set", "env_id=CartPol-v1"], "unknown env id"),
        ("train_main", ["--resume", "nowhere"], "run folder not found: nowhere"),
        # The last one won without a word: --loss l2 --loss huber trained huber.
        ("train_main", ["--loss", "l2", "--loss", "huber"], "--loss is given twice: give it"),
        ("compare_main", ["--seeds", "3", "--seeds", "5"], "--seeds is given twice: give it"),
        # Fails after TensorFlow is imported: its start-up noise must stay off stderr.
        ("evaluate_main", ["agent"], "corrupt saved agent"),
    ],
)
def test_a_refusing_process_prints_one_line_and_exits_2(main, args, fragment, tmp_path):
    truncated_agent(tmp_path)
    before = tree(tmp_path)
    proc = run_cli(main, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in proc.stderr
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------- Python API
class ImageEnv(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)


class DictEnv(gym.Env):
    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32)})
    action_space = gym.spaces.Discrete(2)


@pytest.mark.parametrize("env_class", [ImageEnv, DictEnv])
def test_train_refuses_image_and_dict_observations(env_class, tmp_path):
    from dqn import train

    env_id = register_once(f"Bad{env_class.__name__}-v0", env_class)
    with pytest.raises(UnsupportedSpaceError, match="this DQN needs a 1-D Box"):
        train(DQNConfig(env_id=env_id, output_dir=str(tmp_path / "runs")), progress=False)
    assert not (tmp_path / "runs").exists()


def test_api_errors_are_the_same_as_the_cli_ones(tmp_path):
    from dqn.loop import resume

    with pytest.raises(ConfigError, match=r"'gamma' must be in \(0, 1\]"):
        DQNConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("{gamma: \n")
        DQNConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(CheckpointError, match="not a run folder"):
        resume(tmp_path)
    assert tree(tmp_path) == {"bad.yaml": hashlib.sha256(b"{gamma: \n").hexdigest()}


def test_an_empty_folder_name_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    from dqn import DQNAgent, train, train_population

    monkeypatch.chdir(tmp_path)  # empty: the current folder would be taken as a new run's
    with pytest.raises(ConfigError, match="run folder must be named, got an empty string"):
        train(DQNConfig(), run_dir="")
    with pytest.raises(ConfigError, match="population folder must be named, got an empty"):
        train_population(DQNConfig(), [({}, 0)], out_dir=" ")
    space, actions = gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2)
    agent = DQNAgent(space, actions, DQNConfig(hidden_sizes=(4,)))
    with pytest.raises(ConfigError, match="the agent folder must be named, got an empty string"):
        agent.save("")
    assert not list(tmp_path.iterdir())


def test_a_dict_for_a_config_is_named_as_such(tmp_path):
    from dqn import DQNAgent, train, train_population

    space, actions = gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2)
    for call in (
        lambda: train({"seed": 0}),
        lambda: train_population({"seed": 0}, [({}, 0)], out_dir=tmp_path / "pop"),
        lambda: DQNAgent(space, actions, {"seed": 0}),
    ):
        with pytest.raises(ConfigError, match="expected a DQNConfig, got dict") as refused:
            call()
        assert "gymnasium.register" not in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_an_env_for_a_config_is_told_that_envs_go_by_their_id(tmp_path, monkeypatch):
    from dqn import train

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="^expected a DQNConfig, got the class itself: call it"):
        train(DQNConfig)  # the parentheses forgotten
    for given, name in ((gym.make("CartPole-v1"), "TimeLimit"), (lambda: None, "function")):
        with pytest.raises(ConfigError) as refused:
            train(given)
        assert str(refused.value) == (
            f"expected a DQNConfig, got {name}: build one with DQNConfig(...), "
            "DQNConfig.from_dict(mapping) or DQNConfig.from_yaml(path); an env goes by its id: "
            "register it with gymnasium.register, then DQNConfig(env_id=...)"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_manifest_is_json_listing_every_file(tiny_run):
    ckpt = latest(tiny_run)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    files = {p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()}
    assert set(manifest["sha256"]) == files - {"manifest.json"}


# ---------------------------------------------------------------------- dqn-compare
def variants_file(text):
    def make(tmp):
        (tmp / "sweep.yaml").write_text(text)
        return ["--variants-file", tmp / "sweep.yaml"]

    return make


COMPARE_CASES = {
    "missing variants file": (["--variants-file", "no/sweep.yaml"], ["variants file not found"]),
    "variants file not YAML": (variants_file("a: [1,\n"), ["is not valid YAML"]),
    "variants file that is a list": (
        variants_file("- a\n- b\n"),
        ["must map each variant label to its overrides"],
    ),
    "variant that is not a mapping": (
        variants_file("fast: 3\n"),
        ["variant 'fast' must map config keys to values"],
    ),
    "config file as the variants file": (
        ["--variants-file", CARTPOLE_YAML],
        ["holds config keys (env_id, env_kwargs, seed, ...)", "give it to --config"],
    ),
    "variant with an unknown key": (
        variants_file("fast: {learning_rat: 0.1}\n"),
        ["unknown config key 'learning_rat'"],
    ),
    "variant with a bad value": (
        variants_file("ok: {}\nbad: {gamma: 2}\n"),
        ["'gamma' must be in (0, 1]"],
    ),
    "variants and a variants file": (
        lambda tmp: [*variants_file("a: {}\n")(tmp), "--variants", "huber"],
        ["not both"],
    ),
    "unknown loss variant": (["--variants", "hubre"], ["unknown loss 'hubre'"]),
    "variant setting a key twice": (
        ["--variants", "a:loss=l2,loss=huber"],
        ["variant 'a': override key 'loss' is given twice"],
    ),
    # The study sets these itself: an override of them would be ignored without a word.
    "variant setting the seed": (["--variants", "a:seed=3"], ["variant 'a' sets 'seed'"]),
    "variant setting the output folder": (
        variants_file("a: {output_dir: elsewhere}\n"),
        ["variant 'a' sets 'output_dir': a study writes every run under its own folder"],
    ),
    "--set seed in a study": (["--set", "seed=3"], ["--set seed: every variant runs on the same"]),
    "malformed env id in a variant": (["--variants", "a:env_id=a/b/C-v1"], ["is malformed"]),
    "study inside a run's checkpoints": (
        lambda tmp: ["--out", inside_a_runs_checkpoints(tmp)],
        ["is inside the checkpoints/ folder of run", "give the study a folder elsewhere"],
    ),
    "a loss's name with nothing after the colon": (
        ["--variants", "l2:"],
        ["variant 'l2:' sets nothing, so it would train the base config under the label 'l2'"],
    ),
    "--set output_dir in a study": (["--set", "output_dir=x"], ["--set output_dir: a study"]),
    # Two labels for one config: each seed's run trained twice, and counted twice.
    "two variants of one config": (
        ["--variants", "a:loss=l2", "b:loss=l2"],
        ["variants 'a' and 'b' are the same config"],
    ),
    "a variant that repeats the base": (
        ["--variants", "huber", "b:loss=huber"],
        ["variants 'huber' and 'b' are the same config"],
    ),
    # --set is for every variant: each loss variant's own loss won without a word.
    "--set of a key the variants set": (
        ["--variants", "l2", "huber", "--set", "loss=l2"],
        ["--set loss=... is every variant's loss, and variant 'l2' sets its own"],
    ),
    # The report names a variant by its label: "l2" that trained huber read as l2's results.
    "a loss's name labelling another loss": (
        ["--variants", "l2:learning_rate=0.5"],
        ["variant 'l2' trains loss huber: a variant named after a loss trains that loss"],
    ),
    "a loss's name labelling the base in a variants file": (
        variants_file("l2:\nclipped_delta: {loss: clipped_delta}\n"),
        ["variant 'l2' trains loss huber", "set loss: l2 in it"],
    ),
    "a variants file's label that YAML reads as a number": (
        variants_file("0.5: {gamma: 0.5}\n"),
        ["the label 0.5 was read as a number, not a name: quote it"],
    ),
    "a variants file's label that YAML reads as a bool": (
        variants_file("on: {double_dqn: true}\n"),
        ["the label True was read as a bool, not a name: quote it"],
    ),
}


@pytest.mark.parametrize(
    "command, args, short",
    [
        ("dqn-compare", ["--seed", "3"], "--seed 3"),  # read as --seeds 3: not seed 3
        ("dqn-train", ["--los", "l2"], "--los l2"),
        ("dqn-evaluate", ["run", "--episode", "5"], "--episode 5"),
        ("dqn-export", ["run", "--out", "x", "--tfl"], "--tfl"),
        ("dqn-backprop", ["--se", "1"], "--se 1"),  # its own parser took --se as --seed
    ],
)
def test_a_long_option_written_short_is_refused_not_read_as_another(
    command, args, short, tmp_path, capsys, monkeypatch
):
    from dqn.backprop.cli import main as backprop_main
    from dqn.cli import compare_main, evaluate_main, train_main
    from dqn.export import main as export_main

    main = {"dqn-compare": compare_main, "dqn-train": train_main, "dqn-evaluate": evaluate_main}
    main |= {"dqn-backprop": backprop_main, "dqn-export": export_main}
    monkeypatch.chdir(tmp_path)
    try:
        code = main[command](args)
    except SystemExit as exited:
        code = exited.code
    [line] = capsys.readouterr().err.splitlines()
    assert code == 2
    assert line == f"{command}: error: unrecognized arguments: {short} (see {command} --help)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", list(COMPARE_CASES))
def test_compare_refuses(case, tmp_path, capsys, monkeypatch):
    from dqn.cli import compare_main

    monkeypatch.chdir(tmp_path)
    args, fragments = COMPARE_CASES[case]
    args = args(tmp_path) if callable(args) else args
    out = [] if "--out" in args else ["--out", tmp_path / "out"]
    assert_refused(
        compare_main, [*args, *out, "--seeds", "1", "--no-progress"], fragments, capsys, tmp_path
    )
    assert not (tmp_path / "out").exists()


def test_a_full_disk_ends_the_run_in_one_line_and_it_resumes_from_the_checkpoint_before(
    tmp_path, capsys, monkeypatch
):
    """The disk fills up while the second checkpoint is written (numpy's zip writer raises
    ENOSPC with no file name): one line saying so, the first checkpoint intact, no half-written
    one, and --resume finishes the run once there is room."""
    import errno

    import yaml

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "hidden_sizes": list(TINY_RUN["hidden_sizes"])}))
    run = tmp_path / "run"
    savez, calls = np.savez, []

    def full_after_first_checkpoint(*args, **kwargs):
        calls.append(1)
        if list_checkpoints(run):
            raise OSError(errno.ENOSPC, "No space left on device")
        return savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez", full_after_first_checkpoint)
    args = ["--config", config, "--run-dir", run, "--no-progress"]
    assert train_main([str(a) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"dqn-train: error: cannot write the run: No space left on device; {run}'s checkpoint "
        f"of env step 200 is intact: dqn-train --resume {run} continues from it"
    ]
    assert calls and [c.name for c in list_checkpoints(run)] == ["step-000000200"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000200"]

    monkeypatch.setattr(np, "savez", savez)  # room again
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    assert list_checkpoints(run)[0].name == "step-000000600"  # newest first


def test_a_resume_whose_replay_does_not_fit_this_memory_is_refused_first(
    tiny_run_copy, capsys, monkeypatch
):
    # A run resumed on a machine with less memory (or with a config whose buffer_size was
    # re-signed larger) was checked by no one: numpy's MemoryError was a traceback, or the
    # ring was allocated and the machine swapped.
    from dqn import loop, runtime
    from dqn.loop import resume
    from dqn.replay import ring_bytes

    run = tiny_run_copy
    shutil.rmtree(latest(run))  # a checkpoint (step 400) to resume from
    needed = ring_bytes(600, 4)  # TINY_RUN's ring: its 600 env steps, fewer than buffer_size
    for module in (runtime, loop):  # dqn-train's check before TensorFlow, and resume()'s
        monkeypatch.setattr(module, "available_memory_bytes", lambda: needed - 1)
    fragments = [f"run {run} cannot be resumed in this memory: a replay of 600 transitions"]
    assert_refused(train_main, ["--resume", run, "--no-progress"], fragments, capsys, run.parent)
    with pytest.raises(CheckpointError, match="cannot be resumed in this memory"):
        resume(run, progress=False)
    for module in (runtime, loop):
        monkeypatch.setattr(module, "available_memory_bytes", lambda: needed)
    assert train_main(["--resume", str(run), "--no-progress"]) == 0


def test_a_run_counts_the_tensorflow_runtime_it_has_yet_to_load(tmp_path, capsys, monkeypatch):
    """dqn-train checks memory before TensorFlow loads, as dqn-compare does for each new
    process: its runtime (dqn.members.PROCESS_BYTES) is counted, where a run within that much
    of the memory available had been let through."""
    from dqn import runtime
    from dqn.config import replay_capacity
    from dqn.members import PROCESS_BYTES
    from dqn.replay import ring_bytes

    config = DQNConfig()
    needed = ring_bytes(replay_capacity(config), 4) + member_bytes(config, 4, 2) + PROCESS_BYTES
    monkeypatch.setattr(runtime, "available_memory_bytes", lambda: needed - 1)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as in a new dqn-train process
    assert train_main(["--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "dqn-train: error: a replay of 50,000 transitions (buffer_size, or the run's env steps "
        f"if fewer) of 4-D observations and the network, with TensorFlow's runtime "
        f"({PROCESS_BYTES:,} bytes), needs {needed:,} bytes, but {needed - 1:,} bytes of memory "
        "are available; lower buffer_size, hidden_sizes or a burst's rows "
        "(gradient_steps_per_train x batch_size)"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "full_at",
    ["metrics.csv", "the first row", "the first row's TensorBoard event", "the first checkpoint"],
)
def test_a_run_the_disk_stops_before_its_first_checkpoint_says_it_has_none(
    full_at, tmp_path, capsys, monkeypatch
):
    """It said "the checkpoints written before are intact" of none, and the folder it left
    (config.yaml, an empty metrics.csv) was refused by --resume and by the same --run-dir
    alike: one that kept no row is taken back, one that kept a row is named as holding no
    checkpoint."""
    import errno

    import yaml

    from dqn import run_log

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_RUN, "hidden_sizes": list(TINY_RUN["hidden_sizes"])}))
    run = tmp_path / "made" / "run"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    where = {
        "metrics.csv": (run_log, "atomic_write_text"),  # its header
        "the first row": (run_log.RunLog, "write"),
        "the first row's TensorBoard event": (run_log, "_write_tensorboard"),
        "the first checkpoint": (np, "savez"),
    }
    monkeypatch.setattr(*where[full_at], full)
    args = [str(a) for a in ["--config", config, "--run-dir", run, "--no-progress"]]
    assert train_main(args) == 2
    # The rows metrics.csv took: a row in it is kept, whatever failed after it.
    rows = {"the first row's TensorBoard event": 1, "the first checkpoint": 2}.get(full_at, 0)
    kept = f"{run} has no checkpoint" if rows else "no checkpoint was kept"
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dqn-train: error: cannot write the run: No space left on device; {kept}"
    ]
    if not rows:
        assert not (tmp_path / "made").exists()  # nor the parent made for it
        monkeypatch.undo()  # room again: the same command trains the run
        assert train_main(args) == 0
    else:
        assert len((run / "metrics.csv").read_text().splitlines()) == 1 + rows


def test_a_checkpoint_that_vanishes_while_it_is_read_is_one_line(
    tiny_run_copy, capsys, monkeypatch
):
    """A run that is training prunes its older checkpoints (keep_checkpoints); one that goes
    between dqn-evaluate's choice of it and its reading is a file error, said in one line."""
    import errno

    from dqn.agent import DQNAgent

    def vanished(directory):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"{directory}/x.keras")

    monkeypatch.setattr(DQNAgent, "load", staticmethod(vanished))
    assert evaluate_main([str(tiny_run_copy)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot read" in lines[0], lines
    assert "No such file or directory: " in lines[0] and lines[0].endswith("agent/x.keras")


# ---------------------------------------------------------------------- the messages' helpers
def test_a_message_names_three_names_and_counts_the_rest():
    from dqn.errors import few

    assert few(["a", "b", "c"]) == "a, b, c"
    assert few(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"
    assert few(["a", "b", "c", "d", "e"], 4) == "a, b, c, d and 1 more"


def test_a_one_line_error_is_the_first_line_or_else_the_type():
    from dqn.errors import first_line

    assert first_line(ValueError("bad value\nTraceback follows")) == "bad value"
    assert first_line(ValueError("  ")) == "ValueError"


def test_a_value_shown_in_a_message_is_on_one_line():
    # numpy writes an array of rows over several lines: a message showing one was several.
    from dqn.errors import brief, shown

    rows = np.zeros((2, 3))
    assert shown(rows, 80) == brief(rows) == "array([[0., 0., 0.], [0., 0., 0.]])"
    assert shown(rows, 10) == "array([[0."
    assert shown("a\nb", 80) == "'a\\nb'"  # a text's own break is written as \n already


def test_a_space_of_many_bounds_is_named_on_one_line():
    # gymnasium writes a Box of distinct bounds with numpy's str of its arrays, over lines.
    from dqn.envs import check_spaces

    grid = gym.spaces.Box(
        np.zeros((6, 6), np.float32), np.arange(1, 37, dtype=np.float32).reshape(6, 6)
    )
    with pytest.raises(UnsupportedSpaceError, match=r"^unsupported observation space Box\(") as e:
        check_spaces(grid, gym.spaces.Discrete(2))
    assert "\n" not in str(e.value) and len(str(e.value)) < 600


@pytest.mark.parametrize("call", ["DQNAgent.save", "export_policy", "train", "train(run_dir=)"])
def test_a_python_call_asked_to_write_under_a_file_raises_one_line_naming_it(call, tmp_path):
    # The Python API says what the commands say: the path, and the file in its way, as one
    # DQNError (still an OSError), not the system's "File exists" with a temporary name.
    from dqn import DQNAgent, train
    from dqn.errors import OutputError
    from dqn.export import export_policy

    (tmp_path / "afile").write_text("mine\n")
    target = tmp_path / "afile" / "sub"
    space = gym.spaces.Box(-1, 1, (4,), np.float32)
    agent = DQNAgent(space, gym.spaces.Discrete(2), DQNConfig(hidden_sizes=(8,)))
    config = DQNConfig(**TINY_RUN, output_dir=str(target))
    write = {
        "DQNAgent.save": lambda: agent.save(target),
        "export_policy": lambda: export_policy(agent, target),
        "train": lambda: train(config, progress=False),
        "train(run_dir=)": lambda: train(config, run_dir=target, progress=False),
    }[call]
    before = tree(tmp_path)
    with pytest.raises(OutputError) as raised:
        write()
    assert isinstance(raised.value, OSError)
    [line] = str(raised.value).splitlines()
    assert line.startswith("cannot write ") and f"{target}: {tmp_path / 'afile'} is " in line
    assert tree(tmp_path) == before


# ---------------------------------------------------------------- the Python API's arguments
@pytest.mark.parametrize(
    "call, said",
    [
        (lambda c, t: __import__("dqn").train(c, run_dir=5), "run_dir is a folder's path"),
        (lambda c, t: __import__("dqn").train(c, init_from=5), "init_from is a DQNAgent or"),
        (lambda c, t: __import__("dqn.loop").loop.resume(None), "resume takes a run folder's path"),
        (
            lambda c, t: __import__("dqn").train_population(c, [({}, 0)], out_dir=5),
            "out_dir is a folder's path",
        ),
        (
            lambda c, t: __import__("dqn").train_population(c, [({}, 0)], run_dirs=[None]),
            "run_dirs is a list of folders' paths, each",
        ),
        (
            lambda c, t: __import__("dqn.population").population.resume_population(b"p"),
            "resume_population takes a population folder's path",
        ),
        # A flag given as a string was true: "no" turned TensorBoard on.
        (lambda c, t: __import__("dqn").train(c, run_dir=t, log_tensorboard="no"), "log_tens"),
        (lambda c, t: __import__("dqn").train(c, run_dir=t, progress="yes"), "progress (or a"),
        (
            lambda c, t: __import__("dqn").train_population(c, [({}, 0)], progress="no"),
            "progress (or a",
        ),
    ],
)
def test_a_python_call_given_the_wrong_kind_of_argument_names_it(call, said, tmp_path):
    # pathlib's own TypeError ("expected str, bytes or os.PathLike object, not int") before.
    from dqn.errors import InputError

    config = DQNConfig(**TINY_RUN, output_dir=str(tmp_path / "out"), learner="numpy")
    with pytest.raises(InputError, match=re.escape(said)):
        call(config, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_a_network_fn_of_several_outputs_or_one_argument_is_refused_by_name():
    import keras

    from dqn import DQNAgent

    env = gym.make("CartPole-v1")
    config = DQNConfig(**TINY_RUN)

    def heads(kind):
        def build(obs_dim, n_actions):
            x = keras.Input((obs_dim,))
            q = [keras.layers.Dense(n_actions)(x), keras.layers.Dense(n_actions)(x)]
            return keras.Model(x, q if kind == "list" else {"q": q[0]})

        return build

    for kind in ("list", "dict"):  # AttributeError: 'list' object has no attribute 'shape'
        with pytest.raises(ConfigError, match=f"returns a {kind} of outputs; it must return one"):
            DQNAgent(env.observation_space, env.action_space, config, heads(kind))
    with pytest.raises(ConfigError, match=r"a function of two arguments \(obs_dim, n_actions\)"):
        DQNAgent(env.observation_space, env.action_space, config, lambda obs_dim: None)


def test_the_target_of_a_network_with_a_frozen_layer_is_the_network_the_learner_targets():
    # Two calls of network_fn drew two frozen layers; the learners compute both networks with
    # the online model's, and agent.target (and target.keras) held the other draw for good.
    import keras

    from dqn import DQNAgent

    def frozen_first(obs_dim, n_actions):
        x = keras.Input((obs_dim,))
        frozen = keras.layers.Dense(8, activation="tanh")
        frozen.trainable = False
        return keras.Model(x, keras.layers.Dense(n_actions)(frozen(x)))

    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, DQNConfig(**TINY_RUN), frozen_first)
    obs = np.array([[0.1, -0.2, 0.3, 0.4]], np.float32)
    np.testing.assert_array_equal(agent.target(obs), agent.online(obs))


def test_a_save_inside_an_earlier_agent_save_is_refused(tmp_path):
    # Accepted, it left the earlier save holding a folder, and the next save of the latest
    # agent there was refused ("it holds old, which an agent save would replace").
    from dqn import DQNAgent
    from dqn.errors import OutputError

    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, DQNConfig(**TINY_RUN))
    agent.save(tmp_path / "latest")
    before = tree(tmp_path)
    with pytest.raises(OutputError, match="it is inside the saved agent .*latest, which a save"):
        agent.save(tmp_path / "latest" / "old")
    assert tree(tmp_path) == before
    agent.save(tmp_path / "latest")  # and it is saved again there


def test_an_epsilon_given_as_an_array_of_one_is_refused_by_name():
    from dqn import DQNAgent
    from dqn.errors import InputError

    env = gym.make("CartPole-v1")
    agent = DQNAgent(env.observation_space, env.action_space, DQNConfig(**TINY_RUN))
    with pytest.raises(InputError, match=r"epsilon must be in \[0, 1\], got array\(\[0.5\]\)"):
        agent.act(np.zeros(4, np.float32), np.array([0.5]))  # numpy's TypeError from float()


def test_a_config_written_to_a_folder_or_a_name_no_file_can_have_is_one_line(tmp_path):
    # IsADirectoryError naming the temporary file beside the folder; os's "embedded null byte".
    from dqn.errors import InputError, OutputError

    config = DQNConfig(**TINY_RUN)
    with pytest.raises(InputError, match=f"^to_yaml writes a file, and {tmp_path} is a folder"):
        config.to_yaml(tmp_path)
    with pytest.raises(ConfigError, match="holds a NUL character, which no name can$"):
        config.to_yaml(tmp_path / "a\0.yaml")
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match=f"^cannot write the config file .*: {tmp_path / 'f'} is"):
        config.to_yaml(tmp_path / "f" / "c.yaml")
    with pytest.raises(ConfigError, match="holds a NUL character"):
        from dqn import DQNAgent

        env = gym.make("CartPole-v1")
        DQNAgent(env.observation_space, env.action_space, config).save(tmp_path / "a\0b")
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
