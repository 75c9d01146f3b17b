"""Reliability: exact resume, determinism, safe checkpoints, the divergence guard, interrupts.

Fast tests check each piece on its own (env state, replay, checkpoints, the guard) and resume a
tiny run in-process from a copied checkpoint. Slow tests run ``dqn-train`` as a process and kill
it (SIGKILL, SIGINT) at an arbitrary step, then resume it: metrics.csv must equal, byte for byte,
the one of a run that was never stopped. These runs are short (6000 steps, a [32, 32] net).
"""

import collections
import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNConfig
from dqn.agent_files import latest_good_checkpoint, list_checkpoints, verify_checkpoint
from dqn.checkpoint import write_checkpoint
from dqn.divergence import check_update, q_bound, reward_max
from dqn.envstate import EnvSnapshot, capture_env_state, restore_env_state, wrapper_chain
from dqn.errors import CheckpointError, CheckpointWarning, DivergenceError
from dqn.replay import ReplayBuffer
from dqn.run_state import load_replay, save_replay
from dqn.tf_learner import METRIC_NAMES

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------- env state
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"])
@pytest.mark.parametrize("steps", [1, 17])  # 1: between gymnasium's checks of steps 1 and 2
def test_an_env_restored_mid_episode_continues_exactly(env_id, steps):
    rng = np.random.default_rng(0)
    env = gym.make(env_id)
    env.reset(seed=3)
    for _ in range(steps):  # mid-episode: none of these envs can end in 17 steps
        env.step(int(rng.integers(env.action_space.n)))
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))  # as on disk
    actions = rng.integers(env.action_space.n, size=600).tolist()

    def play(e):
        out = []
        for a in actions:  # crosses episode ends: the env's own RNG must be restored too
            obs, reward, terminated, truncated, _ = e.step(a)
            out.append((obs.tobytes(), reward, terminated, truncated))
            if terminated or truncated:
                out.append(e.reset()[0].tobytes())
        return out

    restored = gym.make(env_id)
    restore_env_state(restored, snapshot)
    assert play(restored) == play(env)
    assert snapshot.uncaptured == []


# ---------------------------------------------------------------------- replay
def test_replay_round_trip_continues_the_same_samples(tmp_path):
    rng = np.random.default_rng(1)
    replay = ReplayBuffer(50, 3, np.random.default_rng(7))
    for _ in range(70):  # wrapped around: position != size
        replay.add(rng.normal(size=3), rng.integers(2), rng.normal(), rng.normal(size=3), False)
    replay.sample(8, 2)
    save_replay(replay, tmp_path / "replay.npz")
    loaded = load_replay(tmp_path / "replay.npz", 50, 3, 2)
    assert (loaded.position, loaded.size) == (replay.position, replay.size) == (20, 50)
    for a, b in zip(loaded.sample(8, 3), replay.sample(8, 3)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="does not fit a replay of 100 x 3"):
        load_replay(tmp_path / "replay.npz", 100, 3, 2)


def replay_file(path: Path, transitions: int = 70, **changes) -> Path:
    """The replay.npz of a 50 x 3 ring with two actions, wrapped by default (position 20), some
    of its arrays replaced."""
    rng = np.random.default_rng(1)
    replay = ReplayBuffer(50, 3, np.random.default_rng(7))
    for _ in range(transitions):
        replay.add(rng.normal(size=3), rng.integers(2), rng.normal(), rng.normal(size=3), False)
    save_replay(replay, path)
    with np.load(path) as npz:
        arrays = {**{k: npz[k] for k in npz.files}, **changes}
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


@pytest.mark.parametrize(
    "changes",
    [
        {"position": np.int64(50)},  # one past the ring's end
        {"capacity": np.int64(40)},  # 50 rows in a ring of 40
        {"capacity": np.int64(49), "position": np.int64(0)},  # one row more than its ring
        {"obs": np.zeros((50, 4)), "next_obs": np.zeros((50, 4))},  # 4-D observations
        {"transitions": 30, "position": np.int64(20)},  # a ring not yet full writes at its end
    ],
    ids=[
        "position at capacity",
        "more rows than capacity",
        "one row more than capacity",
        "other observation width",
        "position inside a ring not yet full",
    ],
)
def test_a_replay_file_that_does_not_fit_its_ring_is_refused_not_loaded(changes, tmp_path):
    path = replay_file(tmp_path / "replay.npz", **changes)
    capacity = int(changes.get("capacity", 50))
    with pytest.raises(CheckpointError, match=f"does not fit a replay of {capacity} x 3"):
        load_replay(path, capacity, 3, 2)


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("actions", 2, "actions must be integers in [0, 2), got values from 0 to 2"),
        ("actions", -1, "actions must be integers in [0, 2), got values from -1 to 1"),
        ("actions", 0.5, "actions must be integers in [0, 2), got values from 0 to 1"),
        ("rewards", np.nan, "rewards holds NaN or infinite values"),
        ("obs", np.inf, "obs holds NaN or infinite values"),
        ("next_obs", 1e39, "next_obs holds NaN or infinite values"),  # inf in float32
        ("terminated", 0.5, "terminated holds values other than 0 and 1"),
    ],
)
def test_a_replay_no_run_could_have_stored_is_refused_not_loaded(name, value, problem, tmp_path):
    # Under a valid manifest (re-signed by hand) such a replay trained on: an action past the
    # Q-head's end is no error in XLA's gather, which clamps it to the last action.
    with np.load(replay_file(tmp_path / "plain.npz")) as npz:
        array = npz[name].astype(np.float64)  # float32 would make 1e39 inf already
    array[3] = value
    path = replay_file(tmp_path / "replay.npz", **{name: array})
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: {problem}")):
        load_replay(path, 50, 3, 2)


# ---------------------------------------------------------------------- checkpoints
def fill_with(text):
    return lambda folder: (folder / "a.txt").write_text(text)


def test_checkpoints_keep_the_newest_k_and_detect_damage(tmp_path):
    for step in (100, 200, 300, 400):
        write_checkpoint(tmp_path, step, fill_with(f"at {step}"), keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-000000400",
        "step-000000300",
        "step-000000200",
    ]
    (tmp_path / "checkpoints" / "step-000000400" / "a.txt").write_text("at 40")  # truncated
    with pytest.raises(CheckpointError, match="a.txt does not match its checksum"):
        verify_checkpoint(tmp_path / "checkpoints" / "step-000000400")
    found = latest_good_checkpoint(tmp_path)
    assert found.path.name == "step-000000300"
    assert found.skipped == [
        "step-000000400: a.txt does not match its checksum (truncated or corrupt)"
    ]


def test_a_failed_checkpoint_write_leaves_nothing_behind(tmp_path):
    write_checkpoint(tmp_path, 100, fill_with("ok"), keep=3)

    def crash(folder):
        (folder / "half.txt").write_text("half")
        raise KeyboardInterrupt  # e.g. a second Ctrl-C while writing

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, 200, crash, keep=3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000000100"]


def test_a_checkpoint_the_disk_cannot_take_is_named_not_its_hidden_temporary_folder(tmp_path):
    # A study's failure line read ".../checkpoints/.step-000001000.x1y2.tmp/agent: No space
    # left on device": the agent's folder inside the temporary one, which the user never sees.
    import errno

    from dqn.errors import OutputError

    def full(folder):
        raise OutputError(f"cannot write the agent folder {folder / 'agent'}: No space", "No space")

    def full_file(folder):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "replay.npz"))

    final = tmp_path / "checkpoints" / "step-000000200"
    for fill, reason in ((full, "No space"), (full_file, "No space left on device")):
        with pytest.raises(OutputError) as refused:
            write_checkpoint(tmp_path, 200, fill, keep=3)
        assert str(refused.value) == f"cannot write checkpoint {final}: {reason}"
        assert refused.value.reason == reason and ".tmp" not in str(refused.value)
    assert not final.exists() and list(tmp_path.rglob("*")) == []  # nor the folders made for it


def test_a_prune_removes_what_killed_writes_and_prunes_left_and_never_shows_half(tmp_path):
    """A write killed half-way leaves its hidden temporary folder (a truncated file in it), and
    a prune killed half-way its hidden trash: the next prune removes both. The folder a prune
    deletes is renamed to a hidden name first, so a kill mid-delete shows no half checkpoint."""
    from dqn import checkpoint

    for step in (100, 200, 300):
        write_checkpoint(tmp_path, step, fill_with(f"at {step}"), keep=3)
    folder = tmp_path / "checkpoints"
    killed_write = folder / ".step-000000400.k1ll3d.tmp"
    killed_write.mkdir()
    (killed_write / "online.keras").write_bytes(b"PK\x03")  # truncated
    (folder / ".step-000000050.trash").mkdir()
    deleted = []
    real_rmtree = shutil.rmtree

    def watch(path, *args, **kwargs):
        deleted.append(Path(path).name)
        return real_rmtree(path, *args, **kwargs)

    shutil.rmtree = watch
    try:
        checkpoint.prune_checkpoints(tmp_path, keep=2)
    finally:
        shutil.rmtree = real_rmtree
    assert sorted(p.name for p in folder.iterdir()) == ["step-000000200", "step-000000300"]
    assert "step-000000100" not in deleted and ".step-000000100.trash" in deleted


def test_a_resume_tidies_a_run_killed_in_its_final_prune(tmp_path):
    """Killed in its final prune (the newest checkpoint written, summary.json not yet): the
    run held one checkpoint more than keep_checkpoints, or half of the oldest, and hidden
    leftovers of killed writes, which a resume that only writes the summary used to leave for
    good. It now keeps the newest keep_checkpoints, and its metrics are the same bytes."""
    from dqn.loop import resume, train
    from tests.conftest import TINY_RUN

    run = tmp_path / "run"
    train(DQNConfig(**{**TINY_RUN, "keep_checkpoints": 2}), run_dir=run, progress=False)
    folder = run / "checkpoints"
    assert [p.name for p in list_checkpoints(run)] == ["step-000000600", "step-000000400"]
    half = folder / "step-000000200"  # what a kill in rmtree of the oldest leaves
    shutil.copytree(folder / "step-000000400", half)
    (half / "replay.npz").unlink()
    leftover = folder / ".step-000000600.k1ll3d.tmp"
    leftover.mkdir()
    (leftover / "target.keras").write_bytes(b"PK\x03")
    metrics = (run / "metrics.csv").read_bytes()
    (run / "summary.json").unlink()
    resume(run, progress=False, log_tensorboard=False)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000000400", "step-000000600"]
    assert (run / "metrics.csv").read_bytes() == metrics
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 600


def test_a_signal_delivered_twice_at_once_is_one_stop_and_a_later_one_stops_now():
    """GNU timeout signals the process, then its process group: the same request twice, ms
    apart. A second signal after Interrupt.REPEAT_SECONDS is a second Ctrl-C."""
    import os

    from dqn.command_line import interrupted_code
    from dqn.run_log import Interrupt

    with Interrupt() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # as timeout's kill(0, sig) right after
        time.sleep(0.01)  # the handler has run for both
        assert signals.signum == signal.SIGTERM
        time.sleep(Interrupt.REPEAT_SECONDS)
        # A KeyboardInterrupt that carries its signal: the command exits 143, not 130.
        with pytest.raises(KeyboardInterrupt) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert stopped.value.signum == signal.SIGTERM
        assert interrupted_code(stopped.value) == 143
        assert interrupted_code(KeyboardInterrupt()) == 130  # Python's own, from SIGINT


# ---------------------------------------------------------------------- a run read as it trains
def run_that_moves_on(tiny_run, tmp_path):
    """A copy of the tiny run whose newest checkpoint is step 400, and ``move_on()``: what a run
    with ``keep_checkpoints: 1`` does next, its step 600 renamed into place, then step 400
    deleted."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    held = tmp_path / "step-000000600"
    (run / "checkpoints" / "step-000000600").rename(held)
    shutil.rmtree(run / "checkpoints" / "step-000000200")

    def move_on():
        held.rename(run / "checkpoints" / held.name)
        shutil.rmtree(run / "checkpoints" / "step-000000400")

    return run, move_on


def pruned_while_read(module, name, move_on, monkeypatch):
    """Make the first call of ``module.name`` find the run moved on under it."""
    original = getattr(module, name)
    calls = []

    def first_finds_it_moved(*args, **kwargs):
        if not calls:
            move_on()
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, first_finds_it_moved)
    return calls


def test_an_agent_whose_checkpoint_the_run_deleted_as_it_loaded_is_read_from_the_newer_one(
    tiny_run, tmp_path, monkeypatch
):
    # dqn-evaluate on a run training with keep_checkpoints: 1 failed in 3 of 9 tries ("no run,
    # checkpoint or agent folder at .../step-N/agent", or "corrupt checkpoint"): the run had
    # replaced the checkpoint it was reading.
    import dqn.agent
    from dqn.agent import DQNAgent

    run, move_on = run_that_moves_on(tiny_run, tmp_path)
    calls = pruned_while_read(dqn.agent, "load_adam_file", move_on, monkeypatch)
    agent = DQNAgent.load(run)
    assert [Path(a[0]).parts[-3] for a in calls] == ["step-000000400", "step-000000600"]
    expected = DQNAgent.load(run / "checkpoints" / "step-000000600")
    assert agent.grad_steps == expected.grad_steps
    assert np.array_equal(agent.state.online, expected.state.online)


def test_dqn_evaluate_reads_the_newer_checkpoint_when_the_run_deleted_the_one_it_read(
    tiny_run, tmp_path, monkeypatch, capsys
):
    import dqn.agent
    from dqn.cli import evaluate_main

    run, move_on = run_that_moves_on(tiny_run, tmp_path)
    pruned_while_read(dqn.agent, "load_adam_file", move_on, monkeypatch)
    assert evaluate_main([str(run), "--episodes", "1"]) == 0
    out = capsys.readouterr()
    assert "greedy return" in out.out and out.err == ""
    # It names the checkpoint it read in the end, not the one it started to read.
    assert f"agent: {run / 'checkpoints' / 'step-000000600' / 'agent'} (" in out.out


def test_dqn_export_writes_the_newer_checkpoint_when_the_run_deleted_the_one_it_read(
    tiny_run, tmp_path, monkeypatch, capsys
):
    import dqn.agent
    from dqn.export import main as export_main

    run, move_on = run_that_moves_on(tiny_run, tmp_path)
    pruned_while_read(dqn.agent, "load_adam_file", move_on, monkeypatch)
    assert export_main([str(run), "--out", str(tmp_path / "model")]) == 0
    assert "step-000000600" in capsys.readouterr().out
    assert (tmp_path / "model" / "saved_model.pb").is_file()


def test_a_checkpoint_deleted_while_verified_is_not_named_corrupt_and_the_newer_one_is_found(
    tiny_run, tmp_path, monkeypatch
):
    import dqn.agent_files

    run, move_on = run_that_moves_on(tiny_run, tmp_path)
    pruned_while_read(dqn.agent_files, "verify_checkpoint", move_on, monkeypatch)
    found = latest_good_checkpoint(run)
    assert found.path.name == "step-000000600" and found.skipped == []


def test_a_file_deleted_under_its_reader_is_missing_not_corrupt(tmp_path):
    # zipfile.is_zipfile is False for a file that is not there: a checkpoint deleted while it
    # was read was reported as "optimizer.npz: not a valid npz archive (not a zip archive)".
    from dqn.agent_files import archive_problem
    from dqn.agent_io import load_adam_file

    with pytest.raises(FileNotFoundError):
        archive_problem(tmp_path / "optimizer.npz")
    with pytest.raises(FileNotFoundError):
        load_adam_file(tmp_path / "optimizer.npz")
    (tmp_path / "optimizer.npz").write_bytes(b"not a zip")
    assert (
        archive_problem(tmp_path / "optimizer.npz") == "not a valid npz archive (not a zip archive)"
    )


def test_a_run_whose_every_checkpoint_goes_while_read_says_so_not_corrupt(
    tiny_run, tmp_path, monkeypatch
):
    # Each checkpoint deleted as it is read, and nothing newer: the last error is what happened.
    import dqn.agent
    from dqn.agent import DQNAgent

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    original = dqn.agent.load_adam_file

    def deleted_first(path):
        shutil.rmtree(Path(path).parent.parent)
        return original(path)

    monkeypatch.setattr(dqn.agent, "load_adam_file", deleted_first)
    with pytest.raises(CheckpointError) as err:
        DQNAgent.load(run)
    assert str(err.value).startswith("checkpoint step-000000200 of ")
    assert "was deleted while it was read: a run that is training deletes" in str(err.value)


def test_an_agent_saved_again_while_it_is_read_is_read_from_one_save(
    tiny_run, tmp_path, monkeypatch
):
    # A folder saved by an on_eval while another process read it: online.keras came from one
    # save, target.keras, optimizer.npz and the step count from the next.
    import dqn.agent
    from dqn.agent import DQNAgent

    first = DQNAgent.load(tiny_run / "checkpoints" / "step-000000200")
    second = DQNAgent.load(tiny_run / "checkpoints" / "step-000000600")
    folder = first.save(tmp_path / "best")
    original, calls = dqn.agent.load_adam_file, []

    def saved_again_first(path):
        if not calls:
            second.save(folder)
        calls.append(path)
        return original(path)

    monkeypatch.setattr(dqn.agent, "load_adam_file", saved_again_first)
    agent = DQNAgent.load(folder)
    assert len(calls) == 2 and agent.grad_steps == second.grad_steps != first.grad_steps
    for got, want in zip(agent.state, second.state):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("command", ["dqn-evaluate", "dqn-export"])
def test_a_command_names_a_damaged_newest_checkpoint_once_and_reads_the_one_before(
    command, tiny_run_copy, tmp_path, capsys
):
    from dqn.cli import evaluate_main
    from dqn.export import main as export_main

    weights = tiny_run_copy / "checkpoints" / "step-000000600" / "agent" / "online.keras"
    weights.write_bytes(weights.read_bytes()[:-10])
    if command == "dqn-evaluate":
        code = evaluate_main([str(tiny_run_copy), "--episodes", "1"])
    else:
        code = export_main([str(tiny_run_copy), "--out", str(tmp_path / "model")])
    assert code == 0
    assert capsys.readouterr().err.splitlines() == [
        f"{command}: warning: skipping checkpoint step-000000600: agent/online.keras does not "
        "match its checksum (truncated or corrupt); using step-000000400"
    ]


def test_a_checkpoint_given_by_name_is_not_swapped_for_a_newer_one(tiny_run, tmp_path, monkeypatch):
    import dqn.agent
    from dqn.agent import DQNAgent

    run, move_on = run_that_moves_on(tiny_run, tmp_path)
    pruned_while_read(dqn.agent, "load_adam_file", move_on, monkeypatch)
    with pytest.raises(CheckpointError, match="step-000000400"):
        DQNAgent.load(run / "checkpoints" / "step-000000400")


# ---------------------------------------------------------------------- divergence guard
@pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date:DeprecationWarning")
def test_the_q_bound_is_ten_times_the_largest_return_where_known():
    cartpole = gym.make("CartPole-v1")
    # r_max = 1 per step, gamma = 0.99: returns <= 1 / (1 - 0.99) = 100, bound 10 x 100.
    assert q_bound(DQNConfig(gamma=0.99), cartpole) == pytest.approx(1000.0)
    assert q_bound(DQNConfig(max_abs_q=5.0), cartpole) == 5.0
    assert q_bound(DQNConfig(gamma=1.0), cartpole) == math.inf
    # FrozenLake still declares reward_range = (0, 1); an env that declares nothing gets no bound.
    assert q_bound(DQNConfig(gamma=0.9), gym.make("FrozenLake-v1")) == pytest.approx(100.0)
    assert q_bound(DQNConfig(), NoRewardRange()) == math.inf
    # Gymnasium 1.x declares no reward_range: the table gives the classic-control envs' r_max.
    for env_id in ("CartPole-v0", "Acrobot-v1", "MountainCar-v0"):
        assert q_bound(DQNConfig(gamma=0.99), gym.make(env_id)) == pytest.approx(1000.0), env_id


def test_the_bound_takes_the_largest_reward_in_absolute_value_from_a_finite_range():
    # Rewards in [-10, 1]: |r| <= 10, returns within 10 / (1 - 0.9) = 100, bound 1,000 (not
    # the 100 that max(reward_range) = 1 would give, which would stop healthy runs).
    assert q_bound(DQNConfig(gamma=0.9), WithRewardRange((-10.0, 1.0))) == pytest.approx(1000.0)
    # A range that is not finite says nothing of r_max: only NaN and inf stop training.
    for declared in [(0.0, math.inf), (-math.inf, 1.0), (math.nan, 1.0)]:
        assert reward_max(WithRewardRange(declared)) is None
        assert q_bound(DQNConfig(), WithRewardRange(declared)) == math.inf


class NoRewardRange(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)


class WithRewardRange(NoRewardRange):
    def __init__(self, reward_range):
        self.reward_range = reward_range


def test_the_guard_names_the_step_the_metric_and_the_remedy():
    metrics = np.ones(len(METRIC_NAMES), np.float32)
    check_update(metrics, METRIC_NAMES, 10.0, 100)  # fine: no error
    metrics[METRIC_NAMES.index("td_error_abs_p99")] = np.nan  # diagnostics off: NaN by design
    check_update(metrics, METRIC_NAMES, 10.0, 100)
    metrics[METRIC_NAMES.index("grad_norm")] = np.inf
    with pytest.raises(DivergenceError, match="env step 1234: grad_norm became inf.*max_grad_norm"):
        check_update(metrics, METRIC_NAMES, 10.0, 1234)
    metrics = np.ones(len(METRIC_NAMES), np.float32)
    metrics[METRIC_NAMES.index("q_abs_max")] = 11.0
    message = "q_abs_max reached 11 > max_abs_q = 10.*learning_rate"
    with pytest.raises(DivergenceError, match=message + r"\. The last good checkpoint is intact$"):
        check_update(metrics, METRIC_NAMES, 10.0, 7)
    with pytest.raises(DivergenceError, match=message + r"\. It had no checkpoint yet$"):
        check_update(metrics, METRIC_NAMES, 10.0, 7, checkpointed=False)
    # The default bound (1000, CartPole's) and a Q past it, as docs/reliability.md shows them.
    metrics[METRIC_NAMES.index("q_abs_max")] = 5818.25
    with pytest.raises(DivergenceError, match="q_abs_max reached 5818 > max_abs_q = 1000;"):
        check_update(metrics, METRIC_NAMES, 1000.0, 7)


@pytest.mark.parametrize("scale, named", [(1e4, False), (2e4, True), (3.9e30, True)])
def test_the_guard_names_observations_far_too_large_for_a_network_as_the_cause(scale, named):
    # An env of observations near 1e30 stopped with its gradients blamed: grad_norm became inf.
    metrics = np.ones(len(METRIC_NAMES), np.float32)
    metrics[METRIC_NAMES.index("grad_norm")] = np.inf
    replay = ReplayBuffer(8, 3, np.random.default_rng(0))
    replay.add(np.array([0.0, -scale, 1.0]), 0, 1.0, np.zeros(3), False)
    replay.add(np.zeros(3), 1, 1.0, np.ones(3), False)
    with pytest.raises(DivergenceError) as stop:
        check_update(metrics, METRIC_NAMES, 10.0, 7, True, replay.largest_abs_obs)
    said = f"grad_norm became inf; the observations reach |x| = {scale:.3g}, far from the scale"
    assert (said in str(stop.value)) == named
    assert ("likely exploding gradients" in str(stop.value)) != named


def test_the_largest_observation_is_over_the_stored_rows_only():
    replay = ReplayBuffer(2, 2, np.random.default_rng(0))
    assert replay.largest_abs_obs() == 0.0
    replay.add(np.array([0.5, -7.0]), 0, 100.0, np.array([3.0, 0.0]), True)  # a reward is no obs
    assert replay.largest_abs_obs() == 7.0
    for _ in range(2):  # the ring turns: the row of 7 is overwritten
        replay.add(np.ones(2), 0, 0.0, np.array([0.0, -2.0]), False)
    assert replay.largest_abs_obs() == 2.0


def test_the_populations_vectorized_guard_passes_exactly_the_rows_check_update_passes():
    from dqn.divergence import updates_pass

    rows = np.ones((6, len(METRIC_NAMES)), np.float32)
    rows[1, METRIC_NAMES.index("td_error_abs_p99")] = np.nan  # not guarded: passes
    rows[2, METRIC_NAMES.index("loss")] = np.nan
    rows[3, METRIC_NAMES.index("grad_norm")] = -np.inf
    rows[4, METRIC_NAMES.index("q_abs_max")] = 10.0  # at the bound: passes
    rows[5, METRIC_NAMES.index("q_abs_max")] = 11.0
    bounds = np.full(6, 10.0)
    bounds[0] = 0.5  # row 0's q_abs_max of 1 is past its own bound

    def passes(i):
        try:
            check_update(rows[i], METRIC_NAMES, bounds[i], 1)
        except DivergenceError:
            return False
        return True

    expected = [passes(i) for i in range(6)]
    assert expected == [False, True, False, False, True, False]
    assert updates_pass(rows, METRIC_NAMES, bounds).tolist() == expected


def test_a_row_the_disk_cannot_take_whole_is_cut_back_off_metrics_csv(tmp_path):
    """A full disk cut a row short: metrics.csv kept 15 of its 23 fields, no newline, until a
    resume rewrote it. The row is written at once and cut back off: the rows before stay whole,
    and the error goes on to the caller (the command's one line)."""
    import errno

    from dqn.run_log import RunLog
    from dqn.run_state import LoopState, metrics_csv_rows

    columns = ["env_step", "loss", "eval_return_mean"]
    loop = LoopState(columns=columns, obs=np.zeros((1, 4), np.float32))
    log = RunLog(tmp_path, loop, 100, False, False)
    rows = [{"env_step": 10, "loss": 0.5, "eval_return_mean": 9.0}]
    log.write(rows[0])
    whole = (tmp_path / "metrics.csv").read_bytes()
    assert whole.decode() == metrics_csv_rows(columns, rows, header=True)

    class FullAfter:
        """The file, on a disk that takes ``room`` more bytes, then is full."""

        def __init__(self, file, room):
            self.file, self.room = file, room

        def write(self, data):
            if not self.room:
                raise OSError(errno.ENOSPC, "No space left on device")
            taken = self.file.write(data[: self.room])
            self.room -= taken
            return taken

        def __getattr__(self, name):
            return getattr(self.file, name)

    file = log._file
    for room in (0, 7):
        log._file = FullAfter(file, room)
        with pytest.raises(OSError, match="No space left on device"):
            log.write({"env_step": 20, "loss": 0.25, "eval_return_mean": 11.0})
        assert (tmp_path / "metrics.csv").read_bytes() == whole
    log._file = file
    rows.append({"env_step": 30, "loss": 0.125, "eval_return_mean": 12.0})
    log.write(rows[1])  # room again: the next row follows the whole ones
    log.close()
    assert (tmp_path / "metrics.csv").read_bytes().decode() == metrics_csv_rows(
        columns, rows, header=True
    )


# ---------------------------------------------------------------------- resume, in-process
def test_resume_from_a_copied_checkpoint_reproduces_the_run(tiny_run, tmp_path):
    from dqn.loop import resume

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "config.yaml", run)
    for step in ("step-000000200", "step-000000400"):
        shutil.copytree(tiny_run / "checkpoints" / step, run / "checkpoints" / step)
    # The newer one is damaged: resume warns, falls back to step 200 and sets 400 aside.
    weights = run / "checkpoints" / "step-000000400" / "agent" / "online.keras"
    weights.write_bytes(weights.read_bytes()[:-10])
    (run / "metrics.csv").write_text("rows written after the checkpoint, then a kill\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = resume(run, progress=False, log_tensorboard=False)
    messages = [str(w.message) for w in caught if w.category is CheckpointWarning]
    assert messages == [
        "skipping checkpoint step-000000400: agent/online.keras does not match its checksum "
        "(truncated or corrupt); resuming from step-000000200"
    ]
    assert (run / "checkpoints" / "corrupt-step-000000400").is_dir()
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert len(result.history) == 6 and result.history[-1]["env_step"] == 600


def test_a_checkpoint_whose_ring_had_all_of_buffer_size_resumes_exactly(tiny_run, tmp_path):
    # A run of 600 steps stores at most 600 transitions: its ring has 600 slots, not its
    # buffer_size of 1000 (dqn.config.replay_capacity). A checkpoint written when rings had all
    # of buffer_size (capacity 1000 in replay.npz) still resumes to the same bytes.
    from dqn.checkpoint import write_manifest
    from dqn.loop import resume

    ckpt = tiny_run / "checkpoints" / "step-000000200"
    with np.load(ckpt / "replay.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert int(arrays["capacity"]) == 600 and int(arrays["position"]) == len(arrays["actions"])
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "config.yaml", run)
    older = run / "checkpoints" / "step-000000200"
    shutil.copytree(ckpt, older)
    with open(older / "replay.npz", "wb") as fh:
        np.savez(fh, **{**arrays, "capacity": np.int64(1000)})
    write_manifest(older, 200)
    resume(run, progress=False, log_tensorboard=False)
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()


def test_a_ring_written_to_buffer_size_loads_into_the_runs_smaller_ring(tmp_path):
    # 40 of a 100-slot ring written (position 40): read into the 40 slots a run of 40 steps
    # gives its ring, it is full and writes next at slot 0, with the same samples.
    rng = np.random.default_rng(1)
    replay = ReplayBuffer(100, 3, np.random.default_rng(7))
    for _ in range(40):
        replay.add(rng.normal(size=3), rng.integers(2), rng.normal(), rng.normal(size=3), False)
    save_replay(replay, tmp_path / "replay.npz")
    loaded = load_replay(tmp_path / "replay.npz", 40, 3, 2, buffer_size=100)
    assert (loaded.capacity, loaded.size, loaded.position) == (40, 40, 0)
    for a, b in zip(loaded.sample(8, 3), replay.sample(8, 3)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="does not fit a replay of 40 x 3"):
        load_replay(tmp_path / "replay.npz", 40, 3, 2, buffer_size=90)  # another buffer_size
    with pytest.raises(CheckpointError, match="does not fit a replay of 39 x 3"):
        load_replay(tmp_path / "replay.npz", 39, 3, 2, buffer_size=100)  # a row more than fits


def test_a_resume_mid_episode_keeps_that_episodes_return_so_far(tiny_run, tmp_path):
    # At the checkpoint of env step 200 an episode is under way: its return counts the rewards
    # from before the checkpoint too, as the run that never stopped counts them (its row's
    # train_return_mean is over later episodes: only the list of returns tells).
    from dqn.loop import resume

    start = tiny_run / "checkpoints" / "step-000000200"
    with np.load(start / "loop.npz") as saved:
        assert saved["open_returns"][0] > 0  # mid-episode
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_run / "config.yaml", run)
    shutil.copytree(start, run / "checkpoints" / start.name)
    result = resume(run, progress=False, log_tensorboard=False)
    with np.load(tiny_run / "checkpoints" / "step-000000600" / "loop.npz") as whole:
        assert result.episode_returns == whole["episode_returns"].tolist()


def test_a_resume_between_evaluations_puts_back_the_metrics_window_and_the_first_solve(
    tmp_path,
):
    # Checkpoint 300 lies between the evaluations at 200 and 400: the update metrics gathered
    # since 200 go into the row at 400, and the first solve (200, with a bar every evaluation
    # clears) must not move to 400.
    from dqn import DQNConfig, train
    from dqn.loop import resume
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN).replace(
        eval_every_env_steps=200,
        checkpoint_every_env_steps=100,
        keep_checkpoints=6,
        solve_return=1.0,
    )
    whole = train(config, run_dir=tmp_path / "whole", progress=False, log_tensorboard=False)
    assert whole.first_solve_env_step == 200
    shutil.copytree(tmp_path / "whole", tmp_path / "again")
    for step in (400, 500, 600):
        shutil.rmtree(tmp_path / "again" / "checkpoints" / f"step-{step:09d}")
    again = resume(tmp_path / "again", progress=False, log_tensorboard=False)
    assert again.first_solve_env_step == 200
    assert (tmp_path / "again" / "metrics.csv").read_bytes() == (
        tmp_path / "whole" / "metrics.csv"
    ).read_bytes()


def test_a_run_killed_after_its_final_checkpoint_is_finished_not_trained_again(
    tiny_run, tiny_run_copy, monkeypatch
):
    """Killed between the final checkpoint and summary.json: resume writes the summary from the
    checkpoint (the final evaluation is in it) and trains no step, nor starts its learner (a
    process of its own when TensorFlow ran first); after that, the run is complete and resume
    refuses."""
    from dqn.agent import DQNAgent
    from dqn.loop import resume

    started, load = [], DQNAgent.load

    def load_and_watch(folder):
        agent = load(folder)
        agent.learner.start = lambda: started.append(folder)
        return agent

    monkeypatch.setattr(DQNAgent, "load", staticmethod(load_and_watch))
    run = tiny_run_copy
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()
    final = run / "checkpoints" / "step-000000600" / "manifest.json"
    written = final.stat().st_mtime_ns
    (run / "metrics.csv").write_text("a half-written row, then a kill\n")
    result = resume(run, progress=False, log_tensorboard=False)
    again = json.loads((run / "summary.json").read_text())
    assert again.pop("train_seconds") == pytest.approx(summary.pop("train_seconds"), abs=0.5)
    assert again == summary and result.final_eval_mean == summary["final_eval_mean"]
    assert (run / "metrics.csv").read_bytes() == (tiny_run / "metrics.csv").read_bytes()
    assert final.stat().st_mtime_ns == written  # no checkpoint written again
    assert started == []
    with pytest.raises(CheckpointError, match="already complete"):
        resume(run, progress=False, log_tensorboard=False)


def test_a_run_interrupted_at_its_last_step_has_not_ended_and_resumes(tiny_run_copy):
    """ended_summary's contract: a summary that says interrupted has not ended, even at the
    last env step (this version's loops never write one, a signal there finishes the run; an
    older or hand-edited summary may): resume is not refused as complete."""
    from dqn.run_state import ended_summary, prepare_resume

    path = tiny_run_copy / "summary.json"
    summary = json.loads(path.read_text())
    assert ended_summary(tiny_run_copy, 600) == summary  # finished: 600 of 600, no signal
    path.write_text(json.dumps({**summary, "interrupted": True}))
    assert ended_summary(tiny_run_copy, 600) is None
    assert prepare_resume(tiny_run_copy).loop.env_step == 600


def test_an_n_step_run_resumes_with_its_pending_steps(tmp_path):
    # With n_step 3 a checkpoint taken mid-episode holds up to 2 steps still waiting for their
    # third successor; resuming without them would store other transitions than the full run.
    from conftest import TINY_RUN

    from dqn import train
    from dqn.loop import resume

    config = DQNConfig(**TINY_RUN).replace(n_step=3)
    train(config, run_dir=tmp_path / "full", progress=False, log_tensorboard=False)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp_path / "full" / "config.yaml", run)
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step-000000200", run / "checkpoints" / "step-000000200"
    )
    with np.load(run / "checkpoints" / "step-000000200" / "loop.npz") as npz:
        assert 1 <= len(npz["pending0.actions"]) <= 2  # mid-episode at step 200
    resume(run, progress=False, log_tensorboard=False)
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "full" / "metrics.csv").read_bytes()


# ---------------------------------------------------------------------- determinism (slow)
@pytest.mark.slow
def test_same_seed_same_metrics_other_seed_other_metrics(tmp_path):
    from conftest import TINY_RUN

    from dqn import train

    config = DQNConfig(**{**TINY_RUN, "jit_compile": True, "deterministic": True})

    def metrics(cfg, name):
        train(cfg, run_dir=tmp_path / name, progress=False, log_tensorboard=False)
        return (tmp_path / name / "metrics.csv").read_bytes()

    first = metrics(config, "a")
    assert metrics(config, "b") == first
    assert metrics(config.replace(seed=1), "c") != first


# ---------------------------------------------------------------------- processes (slow)
# Checkpoints every 700 steps, rows every 500: a checkpoint falls between two rows (an open
# metric window) and, for CartPole, almost surely mid-episode.
SHORT = [
    "total_env_steps=6000",
    "hidden_sizes=[32,32]",
    "learning_starts_env_steps=500",
    "train_every_env_steps=8",
    "gradient_steps_per_train=2",
    "target_update_every_grad_steps=100",
    "checkpoint_every_env_steps=700",
    "eval_every_env_steps=500",
    "eval_episodes=2",
    "epsilon_decay_fraction=0.3",
]
TRAIN = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"


def start(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def start_run(run_dir, *extra, env=None):
    """A SHORT run; ``extra`` overrides replace SHORT's values of their keys (a key may be
    given only once on the command line)."""
    keys = {item.partition("=")[0] for item in extra}
    return start(
        "--config",
        ROOT / "configs" / "cartpole.yaml",
        "--no-progress",
        "--run-dir",
        run_dir,
        "--set",
        *[item for item in SHORT if item.partition("=")[0] not in keys],
        *extra,
        env=env,
    )


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def rows(run_dir):
    path = run_dir / "metrics.csv"
    return path.read_text().splitlines()[1:] if path.is_file() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """All the processes at once (they share two cores): an uninterrupted run, a diverging run,
    and one run stopped by each signal once it has checkpointed, then resumed."""
    base = tmp_path_factory.mktemp("runs")
    full, diverging = (
        start_run(base / "full"),
        start_run(
            base / "diverging",
            "learning_rate=10",
            "loss=l2",
            "max_grad_norm=null",
            "learning_starts_env_steps=1000",
        ),
    )
    # The killed run's temporary folder, to see what a SIGKILL leaves in it.
    (base / "tmp").mkdir()
    killed_env = {**os.environ, "TMPDIR": str(base / "tmp")}
    stopped = {
        signal.SIGKILL: start_run(base / "SIGKILL", env=killed_env),
        signal.SIGINT: start_run(base / "SIGINT"),
    }
    signalled = set()
    deadline = time.time() + 240
    while len(signalled) < len(stopped):
        for sig, proc in stopped.items():
            # Past the first checkpoint (700) and the row at 1500: the signal lands wherever
            # the loop happens to be (for SIGINT that step is where the checkpoint is written).
            # No waiting here: while one stopped run wrote its checkpoint and exited, the other
            # once ran to its end before it was signalled.
            if sig not in signalled and len(rows(base / sig.name)) >= 3:
                proc.send_signal(sig)
                signalled.add(sig)
            assert proc.poll() is None or sig in signalled, finish(proc)
        assert time.time() < deadline
        time.sleep(0.05)
    results = {sig: (*finish(proc, 60), rows(base / sig.name)) for sig, proc in stopped.items()}
    resumes = {sig: start("--resume", base / sig.name, "--no-progress") for sig in stopped}
    return {
        "base": base,
        "full": finish(full),
        "diverging": finish(diverging),
        "stopped": results,
        "resumed": {sig: finish(proc) for sig, proc in resumes.items()},
    }


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_stopped_run_resumes_to_the_same_metrics(sig, runs):
    base = runs["base"]
    assert runs["full"][0] == 0, runs["full"][2]
    code, out, err, rows_when_stopped = runs["stopped"][sig]
    assert 3 <= len(rows_when_stopped) < 12
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 130, err
        assert "Traceback" not in err and "interrupted; checkpoint saved" in out
    resumed_code, _, resumed_err = runs["resumed"][sig]
    assert resumed_code == 0, resumed_err
    if sig == signal.SIGKILL:
        # Killed, it cleaned nothing up at exit, and left nothing that needed it (TensorFlow's
        # AutoGraph deletes the sources it converts only at exit: dqn turns it off).
        assert not list((base / "tmp").iterdir())
    resumed_metrics = (base / sig.name / "metrics.csv").read_bytes()
    assert resumed_metrics == (base / "full" / "metrics.csv").read_bytes()
    assert len(rows(base / "full")) == 12


@pytest.mark.slow
def test_sigint_writes_a_full_checkpoint_where_the_signal_found_the_run(runs):
    run_dir = runs["base"] / "SIGINT"
    checkpoints = [p.name for p in list_checkpoints(run_dir)]  # after the resumed run: 3 kept
    assert checkpoints == ["step-000006000", "step-000005600", "step-000004900"]
    set_aside = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert not [name for name in set_aside if name.startswith((".", "corrupt"))]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 6000 and summary["interrupted"] is False


@pytest.mark.slow
def test_a_diverging_run_stops_with_exit_3_and_keeps_its_last_checkpoint(runs):
    from dqn.agent import DQNAgent

    run_dir = runs["base"] / "diverging"
    code, _, err = runs["diverging"]
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "training diverged at env step" in lines[0]
    assert "max_grad_norm" in lines[0] and "learning_rate" in lines[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["diverged"] in lines[0]
    [last] = list_checkpoints(run_dir)  # from before divergence; the diverged state is not saved
    assert last.name == "step-000000700" and summary["env_steps"] < 1400
    verify_checkpoint(last)
    agent = DQNAgent.load(run_dir)
    assert np.isfinite(agent.q_values(np.zeros(4, np.float32))).all()


def test_numpy_scalars_and_tuples_of_an_env_come_back_as_they_were():
    # A user env's state may hold numpy scalars and tuples: after a checkpoint round trip they
    # must be the same types (a 0-d array or a list behaves differently: x[0], hashing, ==).
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.score = np.float32(2.5)  # (np.float64 is a Python float: stored as one)
    env.unwrapped.count = np.int64(7)
    env.unwrapped.last_pair = (1, 2.5)
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))  # as on disk
    restored = gym.make("CartPole-v1")
    restore_env_state(restored, snapshot)
    core = restored.unwrapped
    assert type(core.score) is np.float32 and core.score == 2.5
    assert type(core.count) is np.int64 and core.count == 7
    assert type(core.last_pair) is tuple and core.last_pair == (1, 2.5)


def test_a_wrappers_running_statistics_come_back_and_the_episodes_continue_exactly():
    """NormalizeObservation keeps its running mean, variance and count in an object of its own
    (RunningMeanStd): recorded field by field, a restored env normalizes as the original did
    (without them the resumed run differed, and no warning said why)."""
    from gymnasium.wrappers import NormalizeObservation

    env = NormalizeObservation(gym.make("CartPole-v1"))
    env.reset(seed=3)
    for _ in range(40):  # statistics far from their start (mean 0, variance 1)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))  # as on disk
    restored = NormalizeObservation(gym.make("CartPole-v1"))
    restore_env_state(restored, snapshot)
    assert snapshot.uncaptured == []
    assert restored.obs_rms.count == env.obs_rms.count and type(restored.obs_rms.count) is float
    for a in [0, 1, 1, 0, 1] * 20:
        one, two = env.step(a), restored.step(a)
        assert one[0].tobytes() == two[0].tobytes() and one[1:4] == two[1:4]
        if one[2] or one[3]:
            assert env.reset()[0].tobytes() == restored.reset()[0].tobytes()


def test_what_a_checkpoint_cannot_capture_is_named_with_its_layer_and_descriptions_are_not():
    """State in an object that is not plain numbers (RecordEpisodeStatistics' deques) is named
    in any layer, as Layer.attribute, for the resume's warning; a class, a dtype or a function
    an env keeps describes it and is no such state (it was named, a false alarm)."""
    import random

    env = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))
    core = env.unwrapped
    core.dtype, core.kind, core.scale = np.dtype(np.float32), np.float64, abs
    # A random.Random shows one float in its __dict__ once gauss() ran; its generator is in C.
    core.noise = random.Random(0)
    core.noise.gauss(0.0, 1.0)
    env.reset(seed=0)
    assert capture_env_state(env).uncaptured == [
        "RecordEpisodeStatistics.time_queue",
        "RecordEpisodeStatistics.return_queue",
        "RecordEpisodeStatistics.length_queue",
        "CartPoleEnv.noise",
    ]


def test_the_makers_of_a_vector_envs_copies_are_no_state_even_as_a_spent_generator():
    # gymnasium 1.0's make_vec hands SyncVectorEnv a generator of env makers, which it keeps,
    # spent, as env_fns (1.4 keeps a list): it is rebuilt with the env, so nothing is missing.
    make = functools.partial(gym.make, "Acrobot-v1")
    for makers in ([make, make], (m for m in [make, make])):
        env = gym.vector.SyncVectorEnv(makers)
        env.reset(seed=0)
        assert capture_env_state(env).uncaptured == []
        env.close()


class Counted:
    def __init__(self):
        self.n, self.history = 1, [1.0]


def test_state_that_is_only_partly_plain_is_named_and_a_partial_is_a_description():
    """Objects, tuples and arrays that are plain in part would be written half (a list back as
    an array), fail to write (an array in the JSON) or fail to read (an object array in the
    .npz, read without pickle): each is named as state the checkpoint cannot capture; a tuple
    of plain data is checked as a table is, and named by the restore where it differs."""
    import functools

    env = gym.make("CartPole-v1")
    core = env.unwrapped
    core.counted = Counted()  # a number and a list
    core.last = (3, np.zeros(2))  # a scalar and an array
    core.labels = np.array(["a", None], dtype=object)
    core.shaping = functools.partial(abs)  # describes the env, as a function does
    env.reset(seed=0)
    snapshot = capture_env_state(env)
    assert snapshot.uncaptured == ["CartPoleEnv.counted", "CartPoleEnv.labels"]
    assert restore_env_state(gym.make("CartPole-v1"), snapshot) == [
        "CartPoleEnv.counted",
        "CartPoleEnv.labels",
        "CartPoleEnv.last",
    ]


def test_a_toy_text_env_s_transition_table_is_checked_on_restore_not_named_uncaptured():
    """FrozenLake's P (state -> action -> [(probability, next state, reward, done)]) is built
    when the env is made: a checkpoint keeps its digest and a restore names it only where the
    fresh env's differs (every resume of a FrozenLake run warned that it "may differ")."""
    env = gym.make("FrozenLake-v1", map_name="8x8")
    env.reset(seed=0)
    env.step(1)
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))  # as on disk
    assert snapshot.uncaptured == []
    same = gym.make("FrozenLake-v1", map_name="8x8")
    assert restore_env_state(same, snapshot) == []
    assert same.unwrapped.s == env.unwrapped.s
    assert [same.step(a) for a in (2, 2, 1)] == [env.step(a) for a in (2, 2, 1)]
    sure_footed = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False)
    assert restore_env_state(sure_footed, snapshot) == ["FrozenLakeEnv.P"]
    edited = gym.make("FrozenLake-v1", map_name="8x8")
    probability, state, reward, done = edited.unwrapped.P[0][0][0]
    edited.unwrapped.P[0][0][0] = (probability, state, reward + 1.0, done)
    assert restore_env_state(edited, snapshot) == ["FrozenLakeEnv.P"]


def test_a_table_s_digest_tells_its_containers_and_scalars_apart(monkeypatch):
    from dqn import envstate

    digest = envstate._table_digest
    tables = [
        {0: [(1.0, 1, 0.0, False)]},
        {0: [[1.0, 1, 0.0, False]]},  # a list where a tuple was
        {0: [(1.0, 1, 0, False)]},  # an int where a float was
        {0: [(1.0, 1, 0.0, 0)]},  # an int where a bool was
        {"0": [(1.0, 1, 0.0, False)]},  # a string key
        {0: [(1.0, 1, 0.0, False)], 1: []},
        {0: [(np.float32(1.0), 1, 0.0, False)]},
        {0: [(np.float64(1.0), 1, 0.0, False)]},
        {0: [np.zeros(2, np.float32)]},
        {0: [np.zeros((2, 1), np.float32)]},
        {0: [[0.0], [0.0]]},
        {0: [[0.0, 0.0]]},
    ]
    digests = [digest(t) for t in tables]
    assert None not in digests and len(set(digests)) == len(tables)
    assert digest({0: [(1.0, 1, 0.0, False)]}) == digests[0]  # the same table built again
    assert digest({0: [object()]}) is None and digest(np.zeros(2)) is None
    monkeypatch.setattr(envstate, "TABLE_ITEMS", 5)
    assert digest([1, 2, 3, 4]) is not None and digest([1, 2, 3, 4, 5]) is None  # 5 and a list


def flat_frozen_lake(**kwargs):
    return gym.wrappers.FlattenObservation(gym.make("FrozenLake-v1", **kwargs))


def counted_frozen_lake(**kwargs):
    return gym.wrappers.RecordEpisodeStatistics(flat_frozen_lake(**kwargs))


@pytest.mark.parametrize("population", [False, True])
def test_a_resume_warns_of_state_it_cannot_capture_once_and_of_a_checked_table_not_at_all(
    population, tmp_path
):
    from dqn import train_population
    from dqn.loop import resume, train
    from dqn.population import resume_population
    from tests.conftest import TINY_RUN, register_once

    lake = register_once("DqnTestReliabilityLake-v1", flat_frozen_lake)
    counted = register_once("DqnTestReliabilityCountedLake-v1", counted_frozen_lake)
    for env_id, expected in [
        (lake, []),
        (
            counted,
            [
                f"{counted} keeps state in RecordEpisodeStatistics.time_queue, "
                "RecordEpisodeStatistics.return_queue, RecordEpisodeStatistics.length_queue, "
                "which the checkpoint does not restore: "
                f"{'each resumed member' if population else 'the resumed run'} may differ from "
                "an uninterrupted one"
            ],
        ),
    ]:
        config = DQNConfig(**{**TINY_RUN, "env_id": env_id, "learner": "numpy"})
        whole, again = tmp_path / env_id / "whole", tmp_path / env_id / "again"
        if population:
            firsts = train_population(config, [({}, 0), ({}, 1)], out_dir=whole, progress=False)
            shutil.copytree(whole, again)
            (again / "population-step.json").write_text(
                json.dumps({"env_step": 200, "stopped": []})
            )
        else:
            firsts = [train(config, run_dir=whole, progress=False, log_tensorboard=False)]
            (again / "checkpoints").mkdir(parents=True)
            shutil.copy(whole / "config.yaml", again)
            shutil.copytree(
                whole / "checkpoints" / "step-000000200", again / "checkpoints" / "step-000000200"
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if population:
                seconds = resume_population(again, progress=False)
            else:
                seconds = [resume(again, progress=False, log_tensorboard=False)]
        assert [str(w.message) for w in caught if w.category is CheckpointWarning] == expected
        for first, second in zip(firsts, seconds):  # FrozenLake's own state is all restored
            assert (second.run_dir / "metrics.csv").read_bytes() == (
                first.run_dir / "metrics.csv"
            ).read_bytes()


@pytest.mark.parametrize("path", ["tests.test_reliability:NoSuchTally", "no_such_module:Tally"])
def test_a_recorded_class_that_is_gone_is_a_value_error_naming_it(path):
    # A checkpoint of a class since renamed or removed: ValueError, which a resume reports as
    # a checkpoint that does not fit the env (an AttributeError would be a traceback).
    env = Tallied(gym.make("CartPole-v1"))
    env.reset(seed=0)
    env.step(0)
    snapshot = capture_env_state(env)
    snapshot.layers[0]["tally"]["class"] = path
    with pytest.raises(ValueError, match=f"the class {path} of its recorded state cannot be"):
        restore_env_state(Tallied(gym.make("CartPole-v1")), snapshot)


def _tally_snapshot(**class_entry):
    """A snapshot of a Tallied CartPole as written to disk, its tally's record changed."""
    env = Tallied(gym.make("CartPole-v1"))
    env.reset(seed=0)
    env.step(0)
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))
    snapshot.layers[0]["tally"].update(class_entry)
    return snapshot


def test_a_checkpoint_cannot_make_a_class_that_deletes_a_file_when_collected(tmp_path):
    """Restoring is reading data: a recorded class of Python's own library is refused (and one
    with a __del__). tempfile's closer is a plain Python object whose __del__ unlinks its
    ``name``: made from a checkpoint and collected with the env, it deleted whatever file the
    checkpoint named."""
    import gc

    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    fields = {"file": {"value": 1}, "name": {"value": str(victim)}, "delete": {"value": True}}
    snapshot = _tally_snapshot(**{"class": "tempfile:_TemporaryFileCloser", "fields": fields})
    env = Tallied(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="tempfile:_TemporaryFileCloser .* of Python's own"):
        restore_env_state(env, snapshot)
    del env
    gc.collect()
    assert victim.read_text() == "kept"


def test_a_recorded_class_is_looked_up_without_running_a_modules_getattr(monkeypatch):
    # A module's __getattr__ is code: a checkpoint naming a name it would answer runs nothing.
    import types

    calls = []
    lazy = types.ModuleType("dqn_test_lazy_module")
    lazy.__getattr__ = lambda name: calls.append(name) or (_ for _ in ()).throw(RuntimeError())
    monkeypatch.setitem(sys.modules, "dqn_test_lazy_module", lazy)
    snapshot = _tally_snapshot(**{"class": "dqn_test_lazy_module:Tally"})
    with pytest.raises(ValueError, match="cannot be found in the modules the env has loaded"):
        restore_env_state(Tallied(gym.make("CartPole-v1")), snapshot)
    assert calls == []


def test_a_checkpoint_imports_no_module(tmp_path, monkeypatch):
    # A module the env has not loaded is not imported for a checkpoint (importing runs it).
    (tmp_path / "dqn_checkpoint_named_me.py").write_text(
        f"open({str(tmp_path / 'ran')!r}, 'w').close()\nclass Tally:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    snapshot = _tally_snapshot(**{"class": "dqn_checkpoint_named_me:Tally"})
    with pytest.raises(ValueError, match="cannot be found in the modules the env has loaded"):
        restore_env_state(Tallied(gym.make("CartPole-v1")), snapshot)
    assert not (tmp_path / "ran").exists()


def test_a_helper_class_of_another_module_the_env_loaded_is_made_again(tmp_path, monkeypatch):
    # A wrapper's statistics object of a class from a module of the user's own (or another
    # library's, as Stable-Baselines3's RunningMeanStd), loaded with the env: restored as before.
    import importlib

    (tmp_path / "dqn_test_helper_stats.py").write_text(
        "class RunningStat:\n    def __init__(self):\n        self.n, self.total = 0, 0.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = importlib.import_module("dqn_test_helper_stats")
    try:
        snapshot = _tally_snapshot(**{"class": "dqn_test_helper_stats:RunningStat"})
        restored = Tallied(gym.make("CartPole-v1"))
        restore_env_state(restored, snapshot)
        assert type(restored.tally) is helper.RunningStat
        assert vars(restored.tally) == {"n": 1, "total": 1.0}
    finally:
        sys.modules.pop("dqn_test_helper_stats")


def test_every_npz_header_format_is_read_back_through_the_size_check(tmp_path):
    # read_npz checks each header before np.load: formats 1.0 (what np.savez writes), 2.0 (a
    # header past 64 KB, which np.load then refuses as unsafe; written here at a small size) and
    # 3.0 (field names beyond latin-1) are read.
    import io
    import zipfile

    from dqn.agent_files import read_npz

    arrays = {
        "empty": (np.zeros((0, 4), np.float32), (1, 0)),
        "scalar": (np.float32(3.5), (1, 0)),
        "text": (np.array('{"bit_generator": "PCG64"}'), (1, 0)),
        "v2": (np.arange(6, dtype=np.float64).reshape(2, 3), (2, 0)),
        "named": (np.zeros(3, dtype=[("\u03b8", "<f4"), ("x", "<i8")]), (3, 0)),
    }
    with zipfile.ZipFile(tmp_path / "all.npz", "w") as archive:
        for key, (value, version) in arrays.items():
            data = io.BytesIO()
            np.lib.format.write_array(data, np.asarray(value), version=version)
            archive.writestr(f"{key}.npy", data.getvalue())
    back = read_npz(tmp_path / "all.npz")
    assert back.keys() == arrays.keys()
    for key, (value, _) in arrays.items():
        assert back[key].dtype == np.asarray(value).dtype and np.array_equal(back[key], value)


class CollectedTally:
    def __del__(self):  # acts when collected: not made from a checkpoint, even in the env's package
        pass


def test_a_checkpoint_cannot_make_a_class_with_a_finalizer():
    snapshot = _tally_snapshot(**{"class": f"{CollectedTally.__module__}:CollectedTally"})
    with pytest.raises(ValueError, match="CollectedTally of its recorded state is not a plain"):
        restore_env_state(Tallied(gym.make("CartPole-v1")), snapshot)


def _on_disk(env) -> EnvSnapshot:
    """A snapshot of ``env`` as a checkpoint's loop.json holds it."""
    snapshot = capture_env_state(env)
    return snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))


def test_state_a_fresh_env_holds_and_the_checkpoint_lacks_is_named_not_refused():
    # An env edited since the checkpoint (an attribute added), or a wrapper of a newer
    # gymnasium: the fresh env's value stays, and the resume's warning names it.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.step(0)
    snapshot = _on_disk(env)
    del snapshot.layers[0]["_elapsed_steps"]
    restored = gym.make("CartPole-v1")
    assert restore_env_state(restored, snapshot) == ["TimeLimit._elapsed_steps"]
    assert restored.unwrapped.state.tolist() == env.unwrapped.state.tolist()


def _stepped_cartpole() -> tuple[gym.Env, EnvSnapshot, dict]:
    """A CartPole two steps in, its snapshot as read from disk, and the snapshot's record of
    its PassiveEnvChecker (to edit as another version of dqn or gymnasium wrote it)."""
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.step(0), env.step(1)
    snapshot = _on_disk(env)
    checker = [type(layer).__name__ for layer in wrapper_chain(env)].index("PassiveEnvChecker")
    return env, snapshot, snapshot.layers[checker]


def test_a_checkpoint_of_a_gymnasium_whose_checker_had_fewer_flags_resumes_without_a_warning():
    # Gymnasium 1.0's PassiveEnvChecker has no checked_data_reuse: a resume under 1.4 warned
    # that the run may differ, for a flag that only says whether the checker warns again.
    env, snapshot, checker = _stepped_cartpole()
    for flag in ("checked_data_reuse", "checked_render"):  # 1.0's checker has the second only
        checker.pop(flag, None)
    restored = gym.make("CartPole-v1")
    assert restore_env_state(restored, snapshot) == []
    assert restored.step(1)[0].tolist() == env.step(1)[0].tolist()


@pytest.mark.parametrize("entry, restores", [({"value": None}, True), ({"value": 3}, False)])
def test_an_older_dqns_null_record_of_the_checkers_copy_is_passed_over_and_no_other(
    entry, restores
):
    # dqn recorded PassiveEnvChecker's _previous_data, None after the env's second step, until
    # it learned that it is no state: its checkpoints resume; a value there is no record of its.
    env, snapshot, checker = _stepped_cartpole()
    checker["_previous_data"] = entry
    restored = gym.make("CartPole-v1")
    if not restores:
        with pytest.raises(ValueError, match="PassiveEnvChecker._previous_data is not state dqn"):
            restore_env_state(restored, snapshot)
        return
    assert restore_env_state(restored, snapshot) == []
    assert restored.unwrapped.state.tolist() == env.unwrapped.state.tolist()
    assert restored.step(1)[0].tolist() == env.step(1)[0].tolist()


@pytest.mark.parametrize(
    "env_id, name, entry, problem",
    [
        ("CartPole-v1", "gravity", {"value": [1, 2]}, "CartPoleEnv.gravity is not a number, a"),
        ("CartPole-v1", "gravity", {"value": 3, "tuple": True}, "CartPoleEnv.gravity is not a"),
        ("CartPole-v1", "gravity", {"size": 3}, "CartPoleEnv.gravity is not an entry dqn writes"),
        ("CartPole-v1", "gravity", 3, "CartPoleEnv.gravity is not an entry dqn writes"),
    ],
)
def test_a_record_of_another_layout_is_refused_before_anything_is_set(env_id, name, entry, problem):
    # A record of no layout capture_env_state writes is refused, and the fresh env is left as
    # it was made: every record is read before any is set.
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(1)
    snapshot = _on_disk(env)
    snapshot.layers[-1][name] = entry
    fresh = gym.make(env_id)
    before = [dict(vars(layer)) for layer in wrapper_chain(fresh)]
    with pytest.raises(ValueError, match=re.escape(f"its recorded {problem}")):
        restore_env_state(fresh, snapshot)
    assert [vars(layer) for layer in wrapper_chain(fresh)] == before  # nothing set


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"class": 7}, "its recorded Tallied.tally names no class"),
        ({"fields": [1]}, "its recorded Tallied.tally has no mapping of fields"),
        ({"fields": {"n": {"generator": {}}}}, "Tallied.tally.n is not a number or an array"),
        ({"fields": {"__class__": {"value": 1}}}, "state of Tallied.tally names '__class__'"),
    ],
)
def test_an_objects_record_must_name_its_class_and_its_numbers(change, problem):
    snapshot = _tally_snapshot(**change)
    with pytest.raises(ValueError, match=re.escape(problem)):
        restore_env_state(Tallied(gym.make("CartPole-v1")), snapshot)


class Stats:
    def __init__(self):
        self.mean = None  # not a number until the first step: not an object of numbers yet


class ChangesKinds(gym.Env):
    """An env of the user's whose attributes hold one kind of value when it is made and
    another once it runs: each was refused on resume by a kind check, and is restored."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.stats, self.buffer, self.path, self.last = Stats(), collections.deque(), [0], {}
        self.noise, self.goal, self.t = 0, (0, 0), 0
        self.local = _local_object()

    @functools.cached_property
    def dt(self):
        return 0.02

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.noise = np.random.default_rng(1)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        self.stats.mean = float(self.t) * self.dt
        self.buffer, self.path, self.last = [1, 2], [(1, 2), (3, 4)], 1.0
        self.goal, self.local.x = {"x": 1}, float(self.t)
        return np.zeros(2, np.float32), float(self.noise.random()), False, False, {}


def _local_object():
    class Local:  # a helper class defined in a function: not found by name, but already there
        pass

    return Local()


def test_attributes_that_change_kind_as_the_env_runs_are_restored():
    env = ChangesKinds()
    env.reset(seed=0)
    for action in (0, 1, 0):
        env.step(action)
    snapshot = _on_disk(env)
    fresh = ChangesKinds()
    # A list of tuples and a dict are tables, checked rather than set: named where they differ.
    assert restore_env_state(fresh, snapshot) == ["ChangesKinds.path", "ChangesKinds.goal"]
    assert (fresh.stats.mean, fresh.buffer, fresh.last, fresh.dt) == (0.06, [1, 2], 1.0, 0.02)
    assert fresh.local.x == 3.0 and fresh.noise.random() == env.noise.random()


@pytest.mark.parametrize("kind", ["MT19937", "Philox", "SFC64", "PCG64DXSM"])
def test_a_generator_of_any_of_numpys_bit_generators_is_recorded_and_restored(kind):
    # MT19937's key, Philox's counter and SFC64's state are arrays: a run of an env holding
    # such a generator stopped at its first checkpoint, which JSON could not write.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.unwrapped.noise = np.random.Generator(getattr(np.random, kind)(7))
    env.unwrapped.noise.random(5)
    snapshot = _on_disk(env)  # through JSON, as loop.json holds it
    fresh = gym.make("CartPole-v1")
    restore_env_state(fresh, snapshot)
    assert fresh.unwrapped.noise.random(3).tolist() == env.unwrapped.noise.random(3).tolist()


@pytest.mark.parametrize(
    "state, problem",
    [
        (
            {"key": list(range(624)), "pos": 10**6},
            "its generator's pos is 1000000, not in [0, 624]",
        ),
        ({"key": [0, 0, 0], "pos": 0}, "its generator's state is not one of MT19937's"),
    ],
)
def test_a_generator_state_numpy_would_read_past_its_buffer_is_refused(state, problem):
    # numpy takes an MT19937 position of 10**6, and its first draw crashed the process.
    from dqn.envstate import generator_from_state

    with pytest.raises(ValueError, match=re.escape(problem)):
        generator_from_state({"bit_generator": "MT19937", "state": state})


def test_fields_recorded_for_what_holds_none_are_refused():
    # CartPole's metadata is a dict of its class: fields set on it failed after other records
    # were set, with an AttributeError.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    snapshot = _on_disk(env)
    snapshot.layers[-1]["metadata"] = {
        "fields": {"x": {"value": 1}},
        "class": "dqn.envstate:_Plain",
    }
    with pytest.raises(ValueError, match="its recorded CartPoleEnv.metadata is not state dqn"):
        restore_env_state(gym.make("CartPole-v1"), snapshot)


@pytest.mark.parametrize("entry", [{"value": 3}, {"array": "env0.x", "scalar": True}])
def test_a_record_cannot_set_a_wrappers_spaces(entry):
    # A wrapper's _observation_space is None unless it overrides its env's space, and a Space is
    # never recorded: a number there made the wrapper's observation_space a number.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    snapshot = _on_disk(env)
    snapshot.layers[0]["_observation_space"] = entry
    snapshot.arrays["env0.x"] = np.array(3.0)
    with pytest.raises(ValueError, match="its recorded TimeLimit._observation_space is not state"):
        restore_env_state(gym.make("CartPole-v1"), snapshot)


@pytest.mark.parametrize("name", ["__class__", "reset", "np_random", "unwrapped", "9lives"])
def test_a_record_cannot_name_a_method_a_property_or_a_dunder(name):
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    snapshot = _on_disk(env)
    snapshot.layers[-1][name] = {"value": 3}
    with pytest.raises(ValueError, match="its recorded state of CartPoleEnv names"):
        restore_env_state(gym.make("CartPole-v1"), snapshot)


@pytest.mark.parametrize("name", ["test", "default_rng", "Generator", 7])
def test_a_recorded_generator_must_name_one_of_numpys_bit_generators(name):
    # np.random.test() runs numpy's own test suite: a checkpoint names data, never a function.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))
    snapshot.layers[-1]["_np_random"]["generator"]["bit_generator"] = name
    with pytest.raises(ValueError, match=f"bit_generator {name!r} is not numpy's"):
        restore_env_state(gym.make("CartPole-v1"), snapshot)


class Tally:
    def __init__(self):
        self.n, self.total = 0, 0.0


class Tallied(gym.Wrapper):
    """A wrapper that makes its statistics object on its first reset, not in __init__."""

    def __init__(self, env):
        super().__init__(env)
        self.tally = None

    def reset(self, **kwargs):
        if self.tally is None:
            self.tally = Tally()
        return self.env.reset(**kwargs)

    def step(self, action):
        out = self.env.step(action)
        self.tally.n, self.tally.total = self.tally.n + 1, self.tally.total + out[1]
        return out


def test_an_object_a_wrapper_makes_on_its_first_reset_is_made_again_on_restore():
    """Restored onto a fresh env, which has not been reset, such an object is still None: it is
    made again from its recorded class (the resume was refused as not fitting the env)."""
    env = Tallied(gym.make("CartPole-v1"))
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    snapshot = capture_env_state(env)
    snapshot = snapshot._replace(layers=json.loads(json.dumps(snapshot.layers)))  # as on disk
    restored = Tallied(gym.make("CartPole-v1"))
    restore_env_state(restored, snapshot)
    assert type(restored.tally) is Tally and vars(restored.tally) == {"n": 3, "total": 3.0}


def test_a_snapshot_of_another_wrapper_chain_is_refused():
    # zip() over chains of different lengths would set each layer's attributes on another
    # layer (a TimeLimit's _elapsed_steps on an OrderEnforcing...) without a word.
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    snapshot = capture_env_state(env)
    longer = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="wrapper layers"):
        restore_env_state(longer, snapshot)
    with pytest.raises(ValueError, match="wrapper layers"):
        restore_env_state(gym.make("CartPole-v1").unwrapped, snapshot)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds through /proc")
def test_a_folder_written_atomically_is_on_disk_before_it_is_renamed_into_place(
    tmp_path, monkeypatch
):
    """Every file and folder of a checkpoint is flushed before the rename that makes it one,
    and the rename after: a machine that crashes (not only the process) could otherwise leave
    a checkpoint in place whose files never reached the disk."""
    import os

    from dqn.io import write_dir_atomically

    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recorded_replace(source, target):
        events.append(("replace", str(source)))
        replace(source, target)

    def fill(folder):
        (folder / "replay.npz").write_bytes(b"x")
        (folder / "agent").mkdir()
        (folder / "agent" / "agent.json").write_bytes(b"{}")

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    write_dir_atomically(tmp_path / "step-000000100", fill)
    [renamed] = [i for i, (what, _) in enumerate(events) if what == "replace"]
    tmp = events[renamed][1]
    before = {path for what, path in events[:renamed] if what == "fsync"}
    assert before == {f"{tmp}/replay.npz", f"{tmp}/agent/agent.json", f"{tmp}/agent", tmp}
    assert events[renamed + 1 :] == [("fsync", str(tmp_path))]


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_folder_write_stopped_between_its_two_renames_keeps_the_previous_folder(
    tmp_path, monkeypatch, error
):
    """Replacing a folder takes two renames (the old one aside, the new one in): an error or a
    Ctrl-C between them left no folder at the name, and the next write deleted the old one."""
    import os

    from dqn import io

    final = tmp_path / "agent"
    io.write_dir_atomically(final, lambda folder: (folder / "v").write_text("1"))
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder into place
            raise error
        real(src, dst)

    monkeypatch.setattr(io.os, "replace", second_fails)
    with pytest.raises(type(error)):
        io.write_dir_atomically(final, lambda folder: (folder / "v").write_text("2"))
    monkeypatch.undo()
    assert (final / "v").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["agent"]  # no temporary or .old folder


def test_a_resume_refuses_a_config_yaml_whose_seed_was_edited(tmp_path):
    from dqn.errors import CheckpointError
    from dqn.run_state import check_run_config

    DQNConfig(seed=1).to_yaml(tmp_path / "config.yaml")
    check_run_config(tmp_path, DQNConfig(seed=1))
    with pytest.raises(CheckpointError, match=r"\(seed\)"):
        check_run_config(tmp_path, DQNConfig(seed=0))


def test_a_prune_removes_the_folder_a_killed_replace_left_aside(tmp_path):
    # commit_dir moves a replaced checkpoint to .step-N.old; killed before it deletes it, the
    # next prune must (a checkpoint holds the replay buffer: hundreds of MB).
    from dqn.checkpoint import prune_checkpoints

    folder = tmp_path / "checkpoints"
    for name in ("step-000000200", ".step-000000200.old", ".step-000000100.trash"):
        (folder / name).mkdir(parents=True)
        (folder / name / "replay.npz").write_bytes(b"x")
    prune_checkpoints(tmp_path, keep=3)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000000200"]


def test_a_checkpoint_set_aside_again_replaces_the_one_set_aside_before(tmp_path):
    from dqn.checkpoint import set_aside_one

    for content in ("first", "second"):
        (tmp_path / "step-000000600").mkdir()
        (tmp_path / "step-000000600" / "loop.json").write_text(content)
        target = set_aside_one(tmp_path / "step-000000600")
    assert target.name == "corrupt-step-000000600"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt-step-000000600"]
    assert (target / "loop.json").read_text() == "second"


def test_a_file_and_a_folder_named_near_the_filesystems_limit_are_written_whole(tmp_path):
    # Their temporary names beside them must fit in 255 bytes too (a name of 250 is allowed).
    from dqn.io import atomic_write_text, write_dir_atomically

    name = "r" * 250
    atomic_write_text(tmp_path / name, "text")
    assert (tmp_path / name).read_text() == "text"
    folder = tmp_path / "d" / ("é" * 125)  # 250 bytes of UTF-8: cut whole, not mid-character
    (tmp_path / "d").mkdir()
    write_dir_atomically(folder, lambda tmp: (tmp / "a.txt").write_text("a"))
    assert (folder / "a.txt").read_text() == "a"


def test_a_runs_default_folder_names_its_env_loss_and_seed_in_one_folder_name(tmp_path):
    # An env id of a module's own (module:EnvId) or a namespace (ALE/Pong-v5) is one folder.
    import re

    from dqn.checkpoint import make_run_dir
    from dqn.config import DQNConfig

    for env_id, shown in (
        ("mypkg.envs:Corridor-v0", "mypkg.envs_Corridor-v0"),
        ("A/B-v5", "A_B-v5"),
    ):
        config = DQNConfig(output_dir=str(tmp_path), loss="l2", seed=7).replace(env_id=env_id)
        run = make_run_dir(config)
        assert run.parent == tmp_path and run.is_dir()
        assert re.fullmatch(rf"{re.escape(shown)}-l2-seed7-\d{{8}}-\d{{6}}-\d{{6}}", run.name)


def test_two_runs_named_at_the_same_instant_never_share_a_folder(tmp_path, monkeypatch):
    # Same config, same microsecond (or a clock set back): the second is refused, not handed
    # the first one's folder to mix its metrics and checkpoints into.
    import datetime

    from dqn import checkpoint
    from dqn.config import DQNConfig

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5, 6)

    monkeypatch.setattr(checkpoint, "datetime", Frozen)
    config = DQNConfig(output_dir=str(tmp_path))
    checkpoint.make_run_dir(config)
    with pytest.raises(FileExistsError):
        checkpoint.make_run_dir(config)


def test_a_folder_with_something_to_resume_is_never_called_one_to_delete(tmp_path):
    # A checkpointed run killed while holding its folder leaves its .lock beside its files; a
    # population killed after its first checkpoint has its step marker. Both continue with a
    # resume: telling the user to delete them would throw the run away.
    from dqn.agent_files import POPULATION_FILE, STEP_FILE
    from dqn.checkpoint import check_new_folder
    from dqn.errors import ConfigError

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000100").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / ".lock").write_text("12345\n")
    population = tmp_path / "population"
    population.mkdir()
    (population / POPULATION_FILE).write_text("{}")
    (population / STEP_FILE).write_text("{}")
    for folder in (run, population):
        with pytest.raises(ConfigError, match=r"is not empty: give a new folder \(a stopped one"):
            check_new_folder(folder, resume="dqn-train --resume")
    # Without the checkpoint, or the marker, there is nothing to continue from.
    shutil.rmtree(run / "checkpoints")
    (population / STEP_FILE).unlink()
    for folder in (run, population):
        with pytest.raises(ConfigError, match="holds no checkpoint to continue from: delete it"):
            check_new_folder(folder)


class InPlaceWalker(gym.Env):
    """An env whose step moves its position array in place."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = np.zeros(2)
        return self.position.copy(), {}

    def step(self, action):
        self.position += 1.0  # in place
        return self.position.copy(), 1.0, False, False, {}


def test_a_snapshot_restored_twice_gives_each_env_the_state_it_recorded():
    env = InPlaceWalker()
    env.reset(seed=0)
    env.step(0)
    snapshot = capture_env_state(env)
    first, second = InPlaceWalker(), InPlaceWalker()
    restore_env_state(first, snapshot)
    for _ in range(3):
        first.step(0)
    restore_env_state(second, snapshot)
    np.testing.assert_array_equal(first.position, [4.0, 4.0])
    np.testing.assert_array_equal(second.position, [1.0, 1.0])


def test_strict_json_writes_every_nan_and_infinity_as_null_inside_tuples_too():
    from dqn.io import strict_json

    value = {"a": (1.0, math.nan), "b": [{"c": (math.inf, -math.inf)}], "d": 2}
    assert json.loads(strict_json(value)) == {"a": [1.0, None], "b": [{"c": [None, None]}], "d": 2}


def test_a_temporary_name_cut_inside_a_character_stays_utf8():
    # TensorFlow's writers cannot take a name that is not UTF-8: a folder written whole
    # (an export) is filled under this name.
    from dqn.io import tmp_prefix

    prefix = tmp_prefix(Path("a" + "é" * 40))  # byte 64 is the first half of an é
    assert prefix == "." + "a" + "é" * 31 + "."
    assert len(prefix.encode("utf-8")) <= 66


def test_a_dangling_trash_link_left_by_an_earlier_removal_goes_with_the_next_one(tmp_path):
    # A linked checkpoint removed half-way (renamed to .trash, then killed), whose target was
    # deleted since: the link leads nowhere, and must not stop the next removal of the name.
    from dqn.io import remove_whole

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".step-000000600.trash").symlink_to(tmp_path / "gone")
    (folder / "step-000000600").mkdir()
    (folder / "step-000000600" / "loop.json").write_text("{}")
    remove_whole(folder / "step-000000600")
    assert list(folder.iterdir()) == []


def test_a_folder_is_not_written_over_a_link_in_its_place(tmp_path):
    from dqn.io import commit_dir

    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "model.keras").write_text("v3")
    (tmp_path / "current").symlink_to(tmp_path / "v3")
    (tmp_path / "new").mkdir()
    with pytest.raises(NotADirectoryError, match="is not a folder; not replaced"):
        commit_dir(tmp_path / "new", tmp_path / "current")
    assert (tmp_path / "current").is_symlink()
    assert (tmp_path / "current" / "model.keras").read_text() == "v3"


def test_only_the_nulls_read_back_become_nan_and_no_key_is_added():
    from dqn.io import nulls_as_nan

    read = nulls_as_nan({"mean": None, "best": 1.5, "note": None}, ["mean", "best", "absent"])
    assert read.keys() == {"mean", "best", "note"}
    assert math.isnan(read["mean"]) and read["best"] == 1.5 and read["note"] is None


def test_checkpoints_past_a_billion_env_steps_are_listed_in_step_order(tmp_path):
    # total_env_steps goes to 10**12, and step 1,000,000,000's folder has ten digits: the
    # reader took nine only, so such checkpoints were never listed, pruned or resumed from.
    from dqn.agent_files import checkpoint_dir, checkpoint_step
    from dqn.checkpoint import remove_leftovers

    steps = [999_999_900, 1_000_000_200, 10**12, 1_000_000_000]
    for step in steps:
        checkpoint_dir(tmp_path, step).mkdir(parents=True)
    assert [checkpoint_step(p) for p in list_checkpoints(tmp_path)] == sorted(steps, reverse=True)
    assert checkpoint_dir(tmp_path, 10**12).name == "step-1000000000000"
    leftover = tmp_path / "checkpoints" / ".step-1000000400.old"
    leftover.mkdir()
    remove_leftovers(tmp_path)
    assert not leftover.exists()


@pytest.mark.slow
def test_the_checkpoint_fuzzer_runs_and_finds_nothing_in_a_few_cases(capsys):
    # tests/fuzz_checkpoint.py is run by hand (hundreds of cases); a few here keep it working.
    from tests.fuzz_checkpoint import main

    assert main(["--cases", "12", "--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"resumed: \d+, refused: \d+, env's: \d+, other: 0 \(12 cases\)", out[-1])
