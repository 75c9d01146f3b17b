"""Bad agent folders, checkpoints and save targets: a one-line error naming the file and the
field, and nothing on disk written, replaced or deleted.

Agents are a 16-unit CartPole MLP saved once per module and copied; run checkpoints come from
the session's tiny run (``tests/conftest.py``), copied before they are damaged.
"""

import json
import os
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNConfig
from dqn.agent import DQNAgent
from dqn.agent_files import CHECKPOINT_FILES, latest_good_checkpoint, verify_checkpoint
from dqn.checkpoint import write_manifest
from dqn.cli import evaluate_main, train_main
from dqn.errors import CheckpointError, DQNError, OutputError
from dqn.export import main as export_main
from dqn.io import write_dir_atomically
from dqn.run_state import prepare_resume
from tests.conftest import package_folder, register_once
from tests.test_bad_input import latest, only_latest, tree

CARTPOLE_OBS = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
CONFIG = DQNConfig(hidden_sizes=(16,), jit_compile=False)


def listing(folder: Path) -> dict[str, str]:
    """Every file's checksum and every folder (temporary ones too) under ``folder``."""
    folders = {p.relative_to(folder).as_posix(): "dir" for p in folder.rglob("*") if p.is_dir()}
    return {**tree(folder), **folders}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """An untrained CartPole agent's folder; copy it (``agent_copy``) before changing it."""
    folder = tmp_path_factory.mktemp("saved") / "agent"
    DQNAgent(CARTPOLE_OBS, gym.spaces.Discrete(2), CONFIG).save(folder)
    return folder


@pytest.fixture
def agent_copy(saved, tmp_path) -> Path:
    copy = tmp_path / "agent"
    shutil.copytree(saved, copy)
    return copy


def edit_json(path: Path, **changes) -> None:
    """Set keys of a JSON object file (None removes the key)."""
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def refusal(main, args, capsys, workdir: Path) -> str:
    """The one stderr line of ``main(args)``, which must exit 2 and change nothing on disk."""
    before = listing(workdir)
    code = main([str(a) for a in args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert listing(workdir) == before
    return lines[0]


def assert_load_refused(path: Path, fragments: list[str], workdir: Path) -> str:
    """DQNAgent.load(path) raises a one-line CheckpointError holding ``fragments``; no writes."""
    before = listing(workdir)
    with pytest.raises(CheckpointError) as refused:
        DQNAgent.load(path)
    message = str(refused.value)
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message
    assert listing(workdir) == before
    return message


# ---------------------------------------------------------------------- 1. save's target
def test_saving_onto_a_run_folder_is_refused_and_loses_nothing(tiny_run_copy):
    (tiny_run_copy / "notes.txt").write_text("what I tried\n")
    agent = DQNAgent.load(tiny_run_copy)
    before = listing(tiny_run_copy.parent)
    with pytest.raises(DQNError, match=r"cannot save the agent to .*run: it holds checkpoints, "):
        agent.save(tiny_run_copy)
    assert listing(tiny_run_copy.parent) == before


def test_saving_onto_a_file_is_refused_and_leaves_no_old_copy(saved, tmp_path):
    target = tmp_path / "policy.bin"
    target.write_text("someone's file\n")
    with pytest.raises(DQNError, match="policy.bin: it exists and is not a folder"):
        DQNAgent.load(saved).save(target)
    assert listing(tmp_path) == {"policy.bin": tree(tmp_path)["policy.bin"]}


def test_saving_onto_a_folder_with_other_files_is_refused(agent_copy, tmp_path):
    (agent_copy / "notes.txt").write_text("keep me\n")
    before = listing(tmp_path)
    with pytest.raises(OutputError, match="it holds notes.txt, which an agent save would replace"):
        DQNAgent.load(agent_copy).save(agent_copy)
    assert listing(tmp_path) == before


def test_a_refused_save_is_an_output_error_with_its_reason(saved, tmp_path):
    # The Python API's error for "this folder cannot take the agent", as for a folder that
    # cannot be written: code that catches OutputError (or OSError) catches both.
    target = tmp_path / "policy.bin"
    target.write_text("someone's file\n")
    with pytest.raises(OutputError) as refused:
        DQNAgent.load(saved).save(target)
    assert isinstance(refused.value, OSError)
    assert refused.value.reason == "it exists and is not a folder"


def test_saving_onto_a_folder_whose_agent_file_name_is_a_folder_of_files_is_refused(
    agent_copy, tmp_path
):
    # Named as an agent file, but a folder: what is in it is not an earlier save's.
    (agent_copy / "online.keras").unlink()
    (agent_copy / "online.keras").mkdir()
    (agent_copy / "online.keras" / "mine.txt").write_text("keep me\n")
    agent = DQNAgent(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2), CONFIG)
    before = listing(tmp_path)
    with pytest.raises(DQNError, match="it holds online.keras, which an agent save"):
        agent.save(agent_copy)
    assert listing(tmp_path) == before


def test_only_the_packages_own_checkpoints_keep_a_save_out(tmp_path, tiny_run_copy):
    from dqn.agent_files import checkpoint_around

    newest = tiny_run_copy / "checkpoints" / "step-000000600"
    (tmp_path / "web" / "manifest.json").parent.mkdir()
    (tmp_path / "web" / "manifest.json").write_text('{"name": "my web app"}')
    (tmp_path / "ml" / "checkpoints").mkdir(parents=True)
    (tmp_path / "ml" / "config.yaml").write_text("lr: 0.1\n")  # a project's, not a run's
    (tmp_path / "ck").symlink_to(tiny_run_copy / "checkpoints")
    assert checkpoint_around(tmp_path / "web" / "models" / "agent") is None
    assert checkpoint_around(tmp_path / "ml" / "checkpoints" / "agent") is None
    assert checkpoint_around(newest / "agent" / ".." / ".." / ".." / "model") is None  # the run's
    assert checkpoint_around(newest / "agent" / "mine") == newest
    assert checkpoint_around(tmp_path / "ck" / "mine") == tiny_run_copy / "checkpoints"


@pytest.mark.parametrize(
    "where, lost",
    [
        ("step-000000600/mine", None),
        ("step-000000600/agent/x", None),
        ("new/run", None),
        ("step-000000400/mine", "metrics.csv"),  # a run that lost a file still resumes
        ("new/run", "config.yaml"),
    ],
)
def test_a_new_run_anywhere_inside_a_runs_checkpoints_is_refused_and_writes_nothing(
    tiny_run_copy, where, lost
):
    # train(run_dir=...) checked one level only: a run put inside a checkpoint (or two levels
    # into checkpoints/) was trained there, and cost the run its checkpoint.
    from dqn import train
    from dqn.errors import ConfigError

    if lost is not None:
        (tiny_run_copy / lost).unlink()
    before = tree(tiny_run_copy)
    with pytest.raises(ConfigError) as refused:
        train(CONFIG, run_dir=tiny_run_copy / "checkpoints" / where, progress=False)
    said = str(refused.value)
    if where.startswith("step-"):
        step = tiny_run_copy / "checkpoints" / where.split("/")[0]
        assert f"is inside the checkpoint {step}, which a file written there" in said, said
    else:
        assert f"is inside the checkpoints/ folder of run {tiny_run_copy}, whose" in said, said
    assert "\n" not in said and tree(tiny_run_copy) == before


@pytest.mark.parametrize("kind", ["run", "saved agent", "population", "study's runs"])
def test_a_new_run_inside_another_of_the_packages_folders_is_refused_from_python_too(
    kind, tiny_run_copy, agent_copy, tmp_path
):
    # dqn-train --run-dir and train_population refused these; train(run_dir=...) wrote the run
    # there (a study's next rerun then counted it as one of its runs).
    from dqn import train
    from dqn.errors import ConfigError

    holder = {"run": tiny_run_copy, "saved agent": agent_copy}.get(kind)
    holder = holder or package_folder(kind, tmp_path)
    before = tree(holder)
    with pytest.raises(ConfigError) as refused:
        train(CONFIG, run_dir=holder / "mine" / "run", progress=False)
    said = str(refused.value)
    assert f"run folder {holder / 'mine' / 'run'} is inside the {kind} folder {holder}," in said
    assert "\n" not in said and tree(holder) == before


def test_a_save_through_a_link_to_an_empty_folder_writes_the_folder(tmp_path):
    agent = DQNAgent(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2), CONFIG)
    (tmp_path / "v3").mkdir()
    (tmp_path / "current").symlink_to(tmp_path / "v3")
    agent.save(tmp_path / "current")
    assert (tmp_path / "current").is_symlink() and (tmp_path / "v3" / "agent.json").is_file()
    assert DQNAgent.load(tmp_path / "current").grad_steps == 0


def test_a_save_to_a_mount_point_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    agent = DQNAgent(gym.spaces.Box(-1.0, 1.0, (4,), np.float32), gym.spaces.Discrete(2), CONFIG)
    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == volume)
    with pytest.raises(DQNError, match="it is a mount point, which a folder written whole"):
        agent.save(volume)
    assert list(tmp_path.iterdir()) == [volume] and not any(volume.iterdir())


def test_saving_onto_the_agent_of_a_checkpoint_is_refused(tiny_run_copy):
    agent_dir = latest(tiny_run_copy) / "agent"
    before = listing(tiny_run_copy)
    agent = DQNAgent.load(agent_dir)
    # The checkpoint's own agent, a new folder anywhere inside it, one among the checkpoints.
    for target in (agent_dir, agent_dir / "mine" / "agent", agent_dir.parent.parent / "mine"):
        with pytest.raises(DQNError, match="inside .*, which a file written there would break"):
            agent.save(target)
    assert listing(tiny_run_copy) == before
    verify_checkpoint(latest(tiny_run_copy))  # still good


def test_saving_again_replaces_an_earlier_save_and_an_empty_folder_is_fine(saved, tmp_path):
    agent = DQNAgent.load(saved)
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "latest", tmp_path / "latest"):
        agent.save(target)
        assert sorted(tree(target)) == sorted(tree(saved))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "latest"]  # no leftovers


def test_an_atomic_folder_write_never_replaces_a_file(tmp_path):
    (tmp_path / "out").write_text("a file\n")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        write_dir_atomically(tmp_path / "out", lambda folder: (folder / "x").write_text("x"))
    assert listing(tmp_path) == {"out": tree(tmp_path)["out"]}


def test_an_atomic_folder_write_never_replaces_a_symlink(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        write_dir_atomically(tmp_path / "out", lambda folder: (folder / "x").write_text("x"))
    assert (tmp_path / "out").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == [
        "elsewhere",
        "out",
    ]


def test_an_agent_whose_two_networks_differ_names_the_file_not_a_network_fn(agent_copy, tmp_path):
    # online.keras copied in from an agent of another width: the message blamed a network_fn
    # ("must build the same network on each call") that the user never passed.
    other = tmp_path / "other"
    DQNAgent(CARTPOLE_OBS, gym.spaces.Discrete(2), CONFIG.replace(hidden_sizes=(8,))).save(other)
    shutil.copy(other / "online.keras", agent_copy / "online.keras")
    message = assert_load_refused(agent_copy, ["corrupt saved agent in"], tmp_path)
    assert "target.keras: its weights have shapes" in message and "(4, 8)" in message
    assert "network_fn" not in message


def test_removing_a_linked_folder_removes_the_link_not_what_it_leads_to(tmp_path):
    # A checkpoint moved to another disk and linked back: rmtree refused the link ("Cannot
    # call rmtree on a symbolic link"), which stopped the run at its next prune and left a
    # .trash link no later prune removed.
    from dqn.io import remove_whole

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "data").write_text("kept\n")
    (tmp_path / "checkpoints").mkdir()
    link = tmp_path / "checkpoints" / "step-000000400"
    link.symlink_to(tmp_path / "elsewhere")
    remove_whole(link)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    assert (tmp_path / "elsewhere" / "data").read_text() == "kept\n"
    # A .trash link left by an earlier removal goes with the next one.
    (tmp_path / "checkpoints" / ".step-000000600.trash").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "checkpoints" / "step-000000600").mkdir()
    remove_whole(tmp_path / "checkpoints" / "step-000000600")
    assert list((tmp_path / "checkpoints").iterdir()) == []
    assert (tmp_path / "elsewhere" / "data").is_file()


def test_a_file_write_that_fails_keeps_the_old_file_and_leaves_no_temporary_one(
    tmp_path, monkeypatch
):
    from dqn import io

    path = tmp_path / "summary.json"
    io.atomic_write_text(path, "old")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.atomic_write_text(path, "new")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_a_folder_write_that_fails_leaves_no_folder_it_made_for_it(tmp_path):
    # A save on a full disk left the parents it had made (a/b/ of a/b/agent) behind, empty;
    # dqn-export removed its own.
    from dqn import io

    (tmp_path / "mine").mkdir()

    def disk_full(folder):
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        io.write_dir_atomically(tmp_path / "a" / "b" / "agent", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.write_dir_atomically(tmp_path / "mine" / "agent", disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert list((tmp_path / "mine").iterdir()) == []


# ---------------------------------------------------------------------- 2. inconsistent folders
def adam_file(
    agent_dir: Path, m_size: int = 114, v_size: int = 114, step=1.0, kinds=(np.float32,) * 3
) -> None:
    """An optimizer.npz with moments of these sizes and this step, of these dtypes (the networks
    have 114 parameters: the defaults are a good file)."""
    np.savez(
        agent_dir / "optimizer.npz",
        adam_m=np.zeros(m_size, kinds[0]),
        adam_v=np.zeros(v_size, kinds[1]),
        adam_step=np.asarray(step, kinds[2]),
    )


BAD_FOLDERS = {
    "no grad_steps": (
        lambda d: edit_json(d / "agent.json", grad_steps=None),
        ["agent.json: grad_steps is missing"],
    ),
    "bad rng_state": (
        lambda d: edit_json(d / "agent.json", rng_state=5),
        ["agent.json: rng_state is not a numpy PCG64 generator state"],
    ),
    # numpy raises KeyError for a state without its "state" and OverflowError for one past 64
    # bits: each was a traceback, not the one line naming the field.
    "rng_state without its state": (
        lambda d: edit_json(d / "agent.json", rng_state={"bit_generator": "PCG64"}),
        ["agent.json: rng_state is not a numpy PCG64 generator state"],
    ),
    "rng_state past 64 bits": (
        lambda d: edit_json(
            d / "agent.json",
            rng_state={
                "bit_generator": "PCG64",
                "state": {"state": 1, "inc": 1},
                "has_uint32": 0,
                "uinteger": 2**70,
            },
        ),
        ["agent.json: rng_state is not a numpy PCG64 generator state"],
    ),
    "obs_dim 0": (
        lambda d: edit_json(d / "agent.json", obs_dim=0),
        ["agent.json: obs_dim must be an integer in [1, 2**63), got 0"],
    ),
    "obs_dim of another env": (
        lambda d: edit_json(d / "agent.json", obs_dim=6),
        ["agent.json: obs_dim is 6 but online.keras takes observations of size 4"],
    ),
    "n_actions of another env": (
        lambda d: edit_json(d / "agent.json", n_actions=3),
        ["agent.json: n_actions is 3 but online.keras gives Q-values for 2"],
    ),
    "grad_steps true": (
        lambda d: edit_json(d / "agent.json", grad_steps=True),
        ["agent.json: grad_steps must be an integer in [0, 2**63), got True"],
    ),
    "grad_steps past int64": (  # was TensorFlow's traceback converting it to an int64 tensor
        lambda d: edit_json(d / "agent.json", grad_steps=10**30),
        ["agent.json: grad_steps must be an integer in [0, 2**63), got 10000000000000000000000"],
    ),
    "grad_steps of 2**63, one past int64": (
        lambda d: edit_json(d / "agent.json", grad_steps=2**63),
        ["agent.json: grad_steps must be an integer in [0, 2**63), got 9223372036854775808"],
    ),
    "no format_version": (
        lambda d: edit_json(d / "agent.json", format_version=None),
        ["agent.json: format_version is missing"],
    ),
    "a format_version of another release": (
        lambda d: edit_json(d / "agent.json", format_version=2),
        ["agent.json: format_version 2 is not 1"],
    ),
    "agent.json a list": (
        lambda d: (d / "agent.json").write_text("[1, 2]"),
        ["agent.json: not a JSON object"],
    ),
    "Adam moments of another size": (
        lambda d: adam_file(d, 3, 3),
        ["optimizer.npz: adam_m has shape (3,), the networks have 114 parameters"],
    ),
    "the second Adam moment alone of another size": (
        lambda d: adam_file(d, v_size=3),
        ["optimizer.npz: adam_v has shape (3,), the networks have 114 parameters"],
    ),
    "adam_step not a scalar": (
        lambda d: adam_file(d, step=np.ones(2)),
        ["optimizer.npz: adam_step has shape (2,), not a scalar"],
    ),
    # np.float32("abc") was a ValueError's traceback; integer moments were taken as they were.
    "adam_step a string": (
        lambda d: adam_file(d, step="abc", kinds=(np.float32, np.float32, str)),
        ["optimizer.npz: adam_step holds <U3, not floating-point numbers"],
    ),
    "Adam moments of integers": (
        lambda d: adam_file(d, kinds=(np.int64, np.float32, np.float32)),
        ["optimizer.npz: adam_m holds int64, not floating-point numbers"],
    ),
    # An archive without one of the three arrays: named, not a KeyError's traceback.
    "Adam without its second moment": (
        lambda d: np.savez(d / "optimizer.npz", adam_m=np.zeros(114), adam_step=np.float32(1)),
        ["optimizer.npz: ", "adam_v"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_loading_an_inconsistent_agent_folder_names_the_file_and_field(case, agent_copy, tmp_path):
    damage, fragments = BAD_FOLDERS[case]
    damage(agent_copy)
    assert_load_refused(agent_copy, ["corrupt saved agent in", *fragments], tmp_path)


@pytest.mark.parametrize("main", [evaluate_main, export_main], ids=["evaluate", "export"])
def test_the_command_line_refuses_an_agent_without_grad_steps(main, agent_copy, tmp_path, capsys):
    edit_json(agent_copy / "agent.json", grad_steps=None)
    args = [agent_copy] + (["--out", tmp_path / "out"] if main is export_main else [])
    assert "agent.json: grad_steps is missing" in refusal(main, args, capsys, tmp_path)


def test_a_checkpoint_whose_config_names_another_env_is_refused(tiny_run_copy):
    # Acrobot-v1: 6-D observations, 3 actions; the checkpoint's networks take 4 and give 2.
    ckpt = only_latest(tiny_run_copy)
    edit_text(ckpt / "agent" / "config.yaml", "CartPole-v1", "Acrobot-v1")
    write_manifest(ckpt, 600)  # as a crafted or hand-edited checkpoint would be signed
    fragments = [
        "corrupt checkpoint in",  # a saved agent's file would say "corrupt saved agent in"
        "config.yaml: env_id Acrobot-v1 has observations of shape (6,) and 3 actions",
    ]
    assert_load_refused(tiny_run_copy, fragments, tiny_run_copy)


def test_a_checkpoint_whose_config_names_an_env_dqn_cannot_train_is_refused(tiny_run_copy):
    # Pendulum-v1's actions are continuous: no run of DQN wrote that checkpoint's config.
    ckpt = only_latest(tiny_run_copy)
    edit_text(ckpt / "agent" / "config.yaml", "CartPole-v1", "Pendulum-v1")
    write_manifest(ckpt, 600)
    fragments = ["corrupt checkpoint in", "config.yaml: env_id: ", "Discrete action space"]
    assert_load_refused(tiny_run_copy, fragments, tiny_run_copy)


class FourObservationsThreeActions(gym.Env):
    """CartPole's observation size with one action more."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        return np.zeros(4, np.float32), 0.0, True, False, {}


register_once("DqnTestFourThree-v0", FourObservationsThreeActions)


def test_a_checkpoint_whose_env_has_the_same_observations_but_other_actions_is_refused(
    tiny_run_copy,
):
    ckpt = only_latest(tiny_run_copy)
    edit_text(ckpt / "agent" / "config.yaml", "CartPole-v1", "DqnTestFourThree-v0")
    write_manifest(ckpt, 600)
    fragments = ["env_id DqnTestFourThree-v0 has observations of shape (4,) and 3 actions"]
    assert_load_refused(tiny_run_copy, fragments, tiny_run_copy)


def test_a_checkpoint_of_another_run_is_skipped_with_a_warning_naming_why(tiny_run_copy):
    # Copied in from another run, with its own valid manifest: dqn-evaluate, dqn-export and
    # DQNAgent.load used it (an Acrobot agent for a CartPole run) without a word.
    import warnings

    from dqn.errors import CheckpointWarning

    newest = latest(tiny_run_copy)
    edit_text(newest / "agent" / "config.yaml", "seed: 0", "seed: 7")
    write_manifest(newest, 600)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = DQNAgent.load(tiny_run_copy)
    assert agent.loaded_from.parent.name == "step-000000400"
    [warning] = [w for w in caught if issubclass(w.category, CheckpointWarning)]
    assert "step-000000600: its agent was trained with another config than this run's" in str(
        warning.message
    )
    assert str(warning.message).endswith("a checkpoint of another run?; using step-000000400")
    assert "(seed)" in str(warning.message)


def test_a_checkpoint_under_another_step_s_name_is_skipped(tiny_run_copy):
    # step-000000400 renamed step-000000800: its manifest still says 400.
    os.rename(latest(tiny_run_copy).parent / "step-000000400", tiny_run_copy / "moved")
    os.rename(tiny_run_copy / "moved", tiny_run_copy / "checkpoints" / "step-000000800")
    found = latest_good_checkpoint(tiny_run_copy)
    assert found.path.name == "step-000000600"
    assert found.skipped == [
        "step-000000800: its manifest is of env step 400: a checkpoint copied in from elsewhere?"
    ]


def test_an_unreadable_checkpoint_is_named_not_skipped_as_damaged(tiny_run_copy, monkeypatch):
    # Root reads any file, so the denial is simulated. It was skipped, and a resume then set
    # the intact checkpoint aside as corrupt and trained its steps again.
    from dqn import agent_files

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path / "replay.npz"))

    monkeypatch.setattr(agent_files, "verify_checkpoint", denied)
    before = listing(tiny_run_copy)
    with pytest.raises(CheckpointError) as refused:
        latest_good_checkpoint(tiny_run_copy)
    assert str(refused.value).startswith(
        f"cannot read {latest(tiny_run_copy) / 'replay.npz'}: Permission denied (checkpoint "
        "step-000000600 of "
    )
    assert listing(tiny_run_copy) == before


def test_a_checkpoint_folder_loaded_by_its_own_path_is_checked_against_its_manifest(
    tiny_run_copy,
):
    ckpt = latest(tiny_run_copy)
    with open(ckpt / "agent" / "config.yaml", "a") as fh:
        fh.write("# an edit that changes no key\n")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        DQNAgent.load(ckpt)


# ---------------------------------------------------------------------- 3. the manifest's list
def empty_manifest(ckpt: Path) -> None:
    (ckpt / "manifest.json").write_text(json.dumps({"sha256": {}}))


def loop_file_gone(ckpt: Path) -> None:
    (ckpt / "loop.npz").unlink()
    write_manifest(ckpt, 600)  # signs what is left: loop.npz is neither there nor listed


def agent_only_manifest(ckpt: Path) -> None:
    manifest = json.loads((ckpt / "manifest.json").read_text())
    listed = {k: v for k, v in manifest["sha256"].items() if k.startswith("agent/")}
    (ckpt / "manifest.json").write_text(json.dumps({"sha256": listed}))


BAD_MANIFESTS = {
    "lists nothing": (empty_manifest, "manifest.json does not list agent/agent.json, "),
    "a needed file gone from both": (loop_file_gone, "step-000000600: missing loop.npz"),
    "lists only the agent": (agent_only_manifest, "manifest.json does not list loop.json, "),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_a_manifest_missing_needed_files_is_corrupt_and_resume_falls_back(case, tiny_run_copy):
    damage, fragment = BAD_MANIFESTS[case]
    damage(latest(tiny_run_copy))
    found = latest_good_checkpoint(tiny_run_copy)
    assert found.path.name == "step-000000400"
    assert len(found.skipped) == 1 and fragment in found.skipped[0], found.skipped
    assert prepare_resume(tiny_run_copy).checkpoint.name == "step-000000400"


def test_an_empty_checkpoint_with_an_empty_manifest_is_not_good(tmp_path):
    folder = tmp_path / "checkpoints" / "step-000000100"
    folder.mkdir(parents=True)
    empty_manifest(folder)
    with pytest.raises(CheckpointError, match="step-000000100: manifest.json lists no files"):
        verify_checkpoint(folder)


def test_a_real_checkpoint_holds_exactly_the_files_a_checkpoint_needs(tiny_run):
    manifest = json.loads((latest(tiny_run) / "manifest.json").read_text())
    assert sorted(manifest["sha256"]) == sorted(CHECKPOINT_FILES)


# ---------------------------------------------------------------------- 4. what a garbage file is
@pytest.mark.parametrize(
    "name, fragment, wrong",
    [
        ("online.keras", "online.keras: not a valid Keras file", "File not found"),
        ("optimizer.npz", "optimizer.npz: not a valid npz archive", "pickled"),
    ],
)
def test_a_garbage_file_is_called_what_it_is_not(name, fragment, wrong, agent_copy, tmp_path):
    (agent_copy / name).write_bytes(np.random.default_rng(0).bytes(4096))
    assert wrong not in assert_load_refused(agent_copy, [fragment], tmp_path)


def test_a_network_whose_activation_is_a_plain_function_is_named_not_called_corrupt(
    tmp_path, monkeypatch
):
    # Keras saves a function it has no name for by its name alone ("Could not locate function"
    # on load): the file is fine, the function must be registered and imported to load it.
    # (dqn now refuses to save such a network; these are files a dqn that did not wrote.)
    import keras

    monkeypatch.setattr("dqn.agent.check_loads_again", lambda model: None)

    def doubled(x):
        return 2.0 * x

    def network(obs_dim, n_actions):
        dense = keras.layers.Dense
        return keras.Sequential([keras.Input((obs_dim,)), dense(8, doubled), dense(n_actions)])

    agent = DQNAgent(CARTPOLE_OBS, gym.spaces.Discrete(2), CONFIG, network_fn=network)
    agent.save(tmp_path / "agent")
    fragments = ["online.keras: the network uses a function Keras cannot find: doubled", "--import"]
    message = assert_load_refused(tmp_path / "agent", fragments, tmp_path)
    assert "corrupt" not in message


def test_resume_calls_a_garbage_loop_file_not_an_npz_archive(tiny_run_copy, capsys):
    ckpt = only_latest(tiny_run_copy)
    (ckpt / "loop.npz").write_bytes(np.random.default_rng(0).bytes(4096))
    write_manifest(ckpt, 600)
    args = ["--resume", tiny_run_copy, "--no-progress"]
    line = refusal(train_main, args, capsys, tiny_run_copy.parent)
    assert "no intact checkpoint" in line and "loop.npz is not a valid npz archive" in line, line
    assert "pickle" not in line


def test_resume_refuses_a_checkpoint_whose_observations_are_of_another_shape(tiny_run_copy):
    # loop.npz holds [1 env, 5] observations where CartPole gives [1, 4]; signed, as a crafted or
    # hand-edited checkpoint would be: refused before anything is built from it.
    ckpt = only_latest(tiny_run_copy)
    with np.load(ckpt / "loop.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["obs"] = np.zeros((1, 5), np.float32)
    with open(ckpt / "loop.npz", "wb") as fh:
        np.savez(fh, **arrays)
    write_manifest(ckpt, 600)
    with pytest.raises(CheckpointError, match="step-000000600 holds observations of another shape"):
        prepare_resume(tiny_run_copy)


A_CHECKPOINTED_RUN = {"metrics.csv": "", "checkpoints/step-000000600/metrics.csv": ""}
# Folders the package writes that are not a run: resuming one says what it is and what resumes it.
NOT_RUNS = {
    "population": (
        {"population.json": "{}"},
        "it is a population folder, which dqn.population.resume_pop",
    ),
    "study run entry": ({"run/metrics.csv": ""}, "it is a study's entry for one run"),
    "study": ({"runs/l2-seed0/run/metrics.csv": ""}, "it is a study folder, which its own dqn-co"),
    "run without checkpoints": ({"metrics.csv": ""}, "the run has written none yet"),
    "run the guard stopped before its first checkpoint": (
        {"metrics.csv": "", "summary.json": '{"diverged": "training diverged at env step 32"}'},
        "the run was stopped before its first checkpoint (training diverged at env step 32; its",
    ),
    "run without checkpoints whose summary is not dqn's": (
        {"metrics.csv": "", "summary.json": "[1]"},
        "the run has written none yet",
    ),
    # The guard writes its reason, a string; a true there is no reason to quote.
    "run without checkpoints whose diverged is no reason": (
        {"metrics.csv": "", "summary.json": '{"diverged": true}'},
        "the run has written none yet",
    ),
    "a study's population": (
        {"runs/l2-seed0/run/metrics.csv": "", "populations/p/population.json": "{}"},
        "it is the folder of one of a study's populations, which the study's own dqn-compare",
    ),
    # A checkpoint holds a metrics.csv: it was called a run with none yet, "train it again ...
    # after deleting this one" (a good checkpoint), and checkpoints/ a folder of such runs.
    "a run's checkpoint": (A_CHECKPOINTED_RUN, "it is one of the checkpoints of the run "),
    "a run's checkpoints folder": (A_CHECKPOINTED_RUN, "it is the checkpoints folder of the run "),
}
RESUMED = {
    "a study's population": "f/populations/p",
    "a run's checkpoint": "f/checkpoints/step-000000600",
    "a run's checkpoints folder": "f/checkpoints",
}  # the others resume f itself


@pytest.mark.parametrize("case", list(NOT_RUNS))
def test_resuming_a_folder_that_is_not_a_run_says_what_it_is(case, tmp_path, capsys):
    files, fragment = NOT_RUNS[case]
    for name, text in files.items():
        (tmp_path / "f" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "f" / name).write_text(text)
    before = tree(tmp_path)
    assert train_main(["--resume", str(tmp_path / RESUMED.get(case, "f"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a run folder with checkpoints" in err[0], err
    assert fragment in err[0] and tree(tmp_path) == before


def test_a_missing_agent_folder_and_an_agent_json_that_is_no_json_are_named_for_what_they_are(
    tmp_path,
):
    from dqn.agent_files import check_agent_files, read_agent_meta

    with pytest.raises(CheckpointError, match=f"^checkpoint folder not found: {tmp_path / 'x'}$"):
        check_agent_files(tmp_path / "x")
    (tmp_path / "agent.json").write_text("{garbage")
    with pytest.raises(CheckpointError, match="agent.json: not JSON"):
        read_agent_meta(tmp_path)


@pytest.mark.parametrize(
    "listed",
    ["sha256 of the files", "a list of the files", "no sha256 key", "a list, not an object"],
)
def test_a_manifest_whose_checksums_are_no_mapping_is_unreadable(listed, tiny_run_copy):
    # A manifest is {"sha256": {file: sha256}}: anything else is no manifest to check against.
    ckpt = latest(tiny_run_copy)
    files = sorted(json.loads((ckpt / "manifest.json").read_text())["sha256"])
    manifest = {
        "sha256 of the files": {"sha256": listed},
        "a list of the files": {"sha256": files},
        "no sha256 key": {"env_step": 600},
        "a list, not an object": files,
    }[listed]
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="^step-000000600: manifest.json is unreadable$"):
        verify_checkpoint(ckpt)
    assert latest_good_checkpoint(tiny_run_copy).path.name == "step-000000400"


def test_an_agent_of_other_sizes_is_told_of_the_default_env_id_only_when_it_has_that_id(
    agent_copy,
):
    # The hint explains a CartPole-v1 kept from DQNConfig(); another id was chosen on purpose.
    from dqn.agent_files import check_agent_fits

    with pytest.raises(CheckpointError) as other:
        check_agent_fits(agent_copy, "Acrobot-v1", 6, 3)
    assert str(other.value).endswith("and 2 actions, but Acrobot-v1 has (6,) and 3")
    with pytest.raises(CheckpointError) as default:
        check_agent_fits(agent_copy, "CartPole-v1", 6, 3)
    assert str(default.value).endswith(
        "but CartPole-v1 has (6,) and 3 (CartPole-v1 is DQNConfig()'s default env_id, kept by "
        "the config it was saved with: build an agent for another env with DQNConfig(env_id=...))"
    )


def test_a_saved_agent_for_other_spaces_than_its_config_env_loads(tmp_path):
    # Only a run's checkpoint was trained on its config's env_id; an agent saved with
    # DQNConfig() may be for any spaces (here 6 observations, 3 actions, with CartPole-v1 kept).
    obs = gym.spaces.Box(-np.inf, np.inf, (6,), np.float32)
    DQNAgent(obs, gym.spaces.Discrete(3), CONFIG).save(tmp_path / "agent")
    agent = DQNAgent.load(tmp_path / "agent")
    assert agent.config.env_id == "CartPole-v1"
    assert agent.online(np.zeros((1, 6), np.float32)).shape == (1, 3)


@pytest.mark.parametrize("shapes", ["input [batch, 2, 2]", "output [batch, 1, 2]"])
def test_a_network_whose_tensors_are_not_one_batch_of_vectors_is_named_so(
    shapes, agent_copy, tmp_path
):
    # A [batch, 1, k] tensor has no width to compare with agent.json's (not even its last
    # axis, which a network giving one Q-value vector per batch row would not have).
    import keras

    from dqn.agent_io import quiet_keras_arrays

    if shapes.startswith("input"):
        inputs = keras.Input((2, 2))
        outputs = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    else:
        inputs = keras.Input((4,))
        outputs = keras.layers.Reshape((1, 2))(keras.layers.Dense(2)(inputs))
    with quiet_keras_arrays():
        keras.Model(inputs, outputs).save(agent_copy / "online.keras")
    fragments = ["online.keras: not a Q-network with one [batch, obs_dim] input"]
    assert_load_refused(agent_copy, fragments, tmp_path)


@pytest.mark.parametrize("count", [3, 4])
def test_a_folder_of_runs_names_three_of_them_and_marks_any_more(count, tmp_path):
    # Up to three runs are named in full; "..." only where there are more than those shown.
    from dqn.agent_files import resolve_agent_dir

    for i in range(count):
        (tmp_path / "runs" / f"r{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "metrics.csv").write_text("")
    shown = ", ".join(str(tmp_path / "runs" / f"r{i}") for i in range(3))
    more = ", ..." if count > 3 else ""
    with pytest.raises(CheckpointError) as refused:
        resolve_agent_dir(tmp_path / "runs")
    assert str(refused.value) == (
        f"{tmp_path / 'runs'} holds {count} runs, not one: give one of them ({shown}{more})"
    )


def test_a_checkpoint_whose_env_cannot_be_made_here_loads_unchecked(tiny_run_copy):
    # An env of an extra not installed, or one a training script registered, is not checked:
    # the networks load without it.
    ckpt = only_latest(tiny_run_copy)
    edit_text(ckpt / "agent" / "config.yaml", "CartPole-v1", "DqnTestNowhere-v0")
    write_manifest(ckpt, 600)
    agent = DQNAgent.load(tiny_run_copy)
    assert agent.config.env_id == "DqnTestNowhere-v0"
    assert agent.online(np.zeros((1, 4), np.float32)).shape == (1, 2)


class SimulatorNotRunning(gym.Env):
    """An env whose own __init__ fails, as one needing a simulator that is not running."""

    def __init__(self):
        raise RuntimeError("cannot connect to the simulator")


register_once("DqnTestSimulatorDown-v0", SimulatorNotRunning)


def test_a_checkpoint_whose_env_fails_to_start_here_loads_unchecked(tiny_run_copy):
    # Its networks load without the env: a simulator down here is no damage to the checkpoint.
    ckpt = only_latest(tiny_run_copy)
    edit_text(ckpt / "agent" / "config.yaml", "CartPole-v1", "DqnTestSimulatorDown-v0")
    write_manifest(ckpt, 600)
    assert DQNAgent.load(tiny_run_copy).config.env_id == "DqnTestSimulatorDown-v0"


@pytest.mark.parametrize("file_there", [False, True])
def test_a_checkpoint_file_that_went_while_read_is_not_named_one_that_failed_to_read_is(
    file_there, tiny_run_copy, monkeypatch
):
    # A file the training run deleted under the reader is no damage; an I/O error on a file
    # still there is, and is named.
    from dqn import agent_files

    real = agent_files.verify_checkpoint
    newest = latest(tiny_run_copy)
    name = newest / ("replay.npz" if file_there else "gone.npz")

    def failing(path):
        if path == newest:
            err = OSError(5, "Input/output error") if file_there else FileNotFoundError(2, "gone")
            err.filename = str(name)
            raise err
        return real(path)

    monkeypatch.setattr(agent_files, "verify_checkpoint", failing)
    found = latest_good_checkpoint(tiny_run_copy)
    assert found.path.name == "step-000000400"
    named = [f"step-000000600: cannot read {name}: Input/output error"]
    assert found.skipped == (named if file_there else [])


@pytest.mark.parametrize("name", ["agent.json", "optimizer.npz"])
def test_an_agent_file_that_is_a_folder_counts_as_missing(name, agent_copy, tmp_path):
    # Each of the agent's files must be a file: a folder of that name is not one of them.
    (agent_copy / name).unlink()
    (agent_copy / name).mkdir()
    fragments = [f"{agent_copy} is not a complete checkpoint or saved agent: missing {name}"]
    assert_load_refused(agent_copy, fragments, tmp_path)


def test_a_checkpoint_folder_without_its_manifest_is_named_incomplete(tiny_run_copy, tmp_path):
    # The manifest is written last: a step-* folder without it is a checkpoint cut short (its
    # metrics.csv does not make it a run without checkpoints).
    ckpt = latest(tiny_run_copy)
    (ckpt / "manifest.json").unlink()
    assert_load_refused(ckpt, ["step-000000600: no manifest.json (incomplete)"], tmp_path)
