"""Populations: members in one program equal single runs, touch nothing of each other, stop
alone, resume exactly, and write run folders the rest of the package reads.

Tiny runs (a [32, 32] net, 3,000 env steps) with the numpy learner for the loop's own
properties; ``tests/test_tf_population.py`` and ``tests/test_numpy_population.py`` hold each
population learner equal to its single learner update by update.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig
from dqn.errors import CheckpointError, CheckpointWarning, ConfigError
from dqn.population import Member, resume_population, train_population
from dqn.replay import check_population_fits
from tests.conftest import package_folder

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(
    hidden_sizes=[32, 32],
    total_env_steps=3_000,
    learning_starts_env_steps=500,
    train_every_env_steps=64,
    gradient_steps_per_train=16,
    target_update_every_grad_steps=32,
    eval_every_env_steps=1_000,
    eval_episodes=3,
    final_eval_episodes=5,
    checkpoint_every_env_steps=1_000,
    n_step=3,
    learner="numpy",
)
BASE = DQNConfig.from_yaml(ROOT / "configs" / "cartpole.yaml", TINY)


def metrics_text(run_dir: Path) -> str:
    return (Path(run_dir) / "metrics.csv").read_text()


def columns(text: str) -> dict[str, list[str]]:
    lines = [line.split(",") for line in text.splitlines()]
    return {name: [row[i] for row in lines[1:]] for i, name in enumerate(lines[0])}


# CartPole steps through dqn.lockstep's numpy pass, Acrobot one env at a time through gymnasium;
# with n_step = 1 a member's steps go into its ring without its n-step window.
# A 30-step limit ends most CartPole episodes by truncation, not termination.
@pytest.mark.parametrize(
    "env_id, n_step, limit",
    [("CartPole-v1", 3, None), ("Acrobot-v1", 3, None), ("CartPole-v1", 1, None)]
    + [("CartPole-v1", 3, 30), ("CartPole-v1", 1, 30)],  # one-step rows have their own path
)
def test_a_population_of_one_is_the_single_run(tmp_path, env_id, n_step, limit):
    from dqn.loop import train

    base = BASE.replace(env_id=env_id, n_step=n_step)
    if limit is not None:
        base = base.replace(env_kwargs={"max_episode_steps": limit})
    config = base.replace(seed=5)
    single = train(config, run_dir=tmp_path / "single", progress=False, log_tensorboard=False)
    [member] = train_population(
        base, [({}, 5)], out_dir=tmp_path / "pop", progress=False, log_tensorboard=False
    )
    a, b = columns(metrics_text(single.run_dir)), columns(metrics_text(member.run_dir))
    assert list(a) == list(b)
    # Same env steps, episodes, exploration and evaluations; the update metrics agree to float32
    # rounding (BLAS sums a stacked product in another order than a 2-D one).
    for name in ("env_step", "grad_steps", "episodes", "epsilon", "train_return_mean"):
        assert a[name] == b[name], name
    for name in ("loss", "q_mean", "grad_norm", "td_error_abs_mean"):
        np.testing.assert_allclose(np.float64(a[name]), np.float64(b[name]), rtol=1e-3)
    np.testing.assert_allclose(
        np.float64(a["eval_return_mean"]), np.float64(b["eval_return_mean"]), rtol=0.05
    )
    # The same transitions in the same slots of the replay ring, bit for bit.
    first = Path("checkpoints") / "step-000001000" / "replay.npz"
    with np.load(single.run_dir / first) as x, np.load(member.run_dir / first) as y:
        for name in ("obs", "actions", "rewards", "next_obs", "terminated", "position"):
            assert x[name].tobytes() == y[name].tobytes(), name


def test_a_member_at_epsilon_0_draws_from_its_generator_as_little_as_a_single_run(tmp_path):
    # Epsilon reaches 0 halfway: from there a single run's agent draws no exploration number,
    # and a member must not either, or its saved agent explores with other draws than the run's.
    from dqn.loop import train

    base = BASE.replace(epsilon_end=0.0, epsilon_decay_fraction=0.5, total_env_steps=2_000)
    single = train(
        base.replace(seed=5), run_dir=tmp_path / "single", progress=False, log_tensorboard=False
    )
    [member] = train_population(
        base, [({}, 5)], out_dir=tmp_path / "pop", progress=False, log_tensorboard=False
    )
    a, b = DQNAgent.load(single.run_dir), DQNAgent.load(member.run_dir)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


def test_a_members_probe_columns_are_nan_at_the_row_where_learning_starts(tmp_path):
    # Learning starts after env step 1,000, which has a row: no gradient step yet, so no probe
    # (as in a single run); the probe is drawn at the next row, from 2,000 transitions.
    base = BASE.replace(learning_starts_env_steps=1_000, total_env_steps=2_000)
    [member] = train_population(base, [({}, 0)], out_dir=tmp_path / "p", progress=False)
    rows = columns(metrics_text(member.run_dir))
    assert rows["env_step"] == ["1000", "2000"]
    probed = [name for name in rows if name.startswith(("grad_norm/", "dead_fraction/"))]
    assert probed
    for name in probed:
        assert np.isnan(float(rows[name][0])) and np.isfinite(float(rows[name][1])), name


def test_a_members_probe_batch_is_drawn_once_and_kept_in_every_later_checkpoint(tmp_path):
    # As a single run's (docs/metrics.md): drawn at the first row after learning starts (1,000
    # here), the same batch at 2,000 and 3,000, not a new draw from the grown replay.
    [member] = train_population(BASE, [({}, 0)], out_dir=tmp_path / "p", progress=False)
    probes = []
    for step in (1_000, 2_000, 3_000):
        with np.load(member.run_dir / "checkpoints" / f"step-{step:09d}" / "loop.npz") as saved:
            probes.append({k: saved[k] for k in saved.files if k.startswith("probe.")})
    assert len(probes[0]) == 5
    for later in probes[1:]:
        for name, value in probes[0].items():
            np.testing.assert_array_equal(later[name], value, err_msg=name)


def test_cartpoles_stepped_in_one_pass_write_what_gymnasium_one_by_one_writes(
    tmp_path, monkeypatch
):
    """dqn.lockstep in training and evaluation changes no byte a member writes (timings aside):
    metrics, replay, the loop's arrays, the env state a checkpoint holds."""
    import dqn.evaluation
    import dqn.lockstep
    import dqn.population_loop

    members = [({"loss": "huber"}, 1), ({"loss": "l2"}, 2), ({}, 3)]
    fast = train_population(BASE, members, out_dir=tmp_path / "fast", progress=False)
    with monkeypatch.context() as m:  # every env stepped by gymnasium itself
        for module in (dqn.evaluation, dqn.population_loop):
            m.setattr(module, "lockstep", dqn.lockstep.Lockstep)
        slow = train_population(BASE, members, out_dir=tmp_path / "slow", progress=False)
    assert isinstance(dqn.population_loop.lockstep([]), dqn.lockstep.Lockstep)  # restored
    for a, b in zip(fast, slow):
        files = sorted(p.relative_to(a.run_dir) for p in a.run_dir.rglob("*") if p.is_file())
        data = [f for f in files if f.suffix in (".csv", ".npz")]
        assert len([f for f in data if f.name == "loop.npz"]) == 3  # three checkpoints each
        for f in data:
            assert (a.run_dir / f).read_bytes() == (b.run_dir / f).read_bytes(), f
        for loop_json in a.run_dir.glob("checkpoints/*/loop.json"):  # env state, counters
            ours = json.loads(loop_json.read_text())
            theirs = json.loads((b.run_dir / loop_json.relative_to(a.run_dir)).read_text())
            for timing in ("train_seconds", "eval_seconds"):
                del ours[timing], theirs[timing]
            assert ours == theirs


def test_changing_one_member_leaves_the_others_bit_identical(tmp_path):
    members = [Member({"loss": "huber"}, 1, "a"), Member({"loss": "l2"}, 2, "b")]
    # Its own learning rate and epsilon schedule: each member acts and logs with its own.
    changed = Member({"loss": "huber", "learning_rate": 0.01, "epsilon_end": 0.3}, 1, "a")
    first = train_population(
        BASE, [*members, Member({}, 3, "c")], out_dir=tmp_path / "x", progress=False
    )
    second = train_population(
        BASE, [changed, members[1], Member({}, 3, "c")], out_dir=tmp_path / "y", progress=False
    )
    assert metrics_text(first[0].run_dir) != metrics_text(second[0].run_dir)
    assert columns(metrics_text(second[0].run_dir))["epsilon"][-1] == "0.3"
    for i in (1, 2):
        assert metrics_text(first[i].run_dir) == metrics_text(second[i].run_dir)


def test_another_seed_for_one_member_leaves_the_others_bit_identical(tmp_path):
    # Each member's env, exploration and replay sampling come from its own seed alone.
    base = BASE.replace(total_env_steps=1_500)
    first = train_population(
        base, [({}, 1), ({}, 2)], out_dir=tmp_path / "x", progress=False, log_tensorboard=False
    )
    second = train_population(
        base, [({}, 7), ({}, 2)], out_dir=tmp_path / "y", progress=False, log_tensorboard=False
    )
    assert metrics_text(first[0].run_dir) != metrics_text(second[0].run_dir)
    assert metrics_text(first[1].run_dir) == metrics_text(second[1].run_dir)


def test_a_members_checkpoint_holds_its_target_network_between_two_syncs(tmp_path):
    # 8 trains of 16 gradient steps by env step 1000, a sync every 48: the checkpoint's target
    # is the online network of grad step 96, not of 128, as a single run's checkpoint holds.
    from dqn.loop import train

    config = BASE.replace(total_env_steps=1_000, target_update_every_grad_steps=48, seed=5)
    single = train(config, run_dir=tmp_path / "single", progress=False, log_tensorboard=False)
    [member] = train_population(
        config, [({}, 5)], out_dir=tmp_path / "pop", progress=False, log_tensorboard=False
    )
    agent = Path("checkpoints") / "step-000001000" / "agent"
    a, b = DQNAgent.load(single.run_dir / agent), DQNAgent.load(member.run_dir / agent)
    assert a.state.grad_steps == b.state.grad_steps == 128
    assert not np.allclose(b.state.target, b.state.online, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(b.state.target, a.state.target, rtol=1e-3, atol=1e-6)


def test_a_diverging_member_is_stopped_and_the_others_go_on(tmp_path):
    wild = Member({"loss": "l2", "learning_rate": 5.0, "learning_rate_end": None}, 1, "wild")
    calm = Member({}, 2, "calm")
    alone = train_population(BASE, [calm], out_dir=tmp_path / "alone", progress=False)
    both = train_population(BASE, [wild, calm], out_dir=tmp_path / "both", progress=False)
    assert both[0].diverged and "diverged at env step" in both[0].diverged
    summary = json.loads((both[0].run_dir / "summary.json").read_text())
    assert summary["diverged"] == both[0].diverged and summary["env_steps"] < 3_000
    # Stopped by the guard: not an interruption to resume, nor on_eval's stop.
    assert (summary["interrupted"], summary["stopped_by_on_eval"]) == (False, False)
    assert not both[0].interrupted
    assert both[1].diverged is None and both[1].summary["env_steps"] == 3_000
    assert metrics_text(both[1].run_dir) == metrics_text(alone[0].run_dir)


def test_a_population_the_guard_stops_whole_at_an_evaluation_step_ends_cleanly(tmp_path):
    # The first burst (env step 512) trips the guard for both members, and 512 is an
    # evaluation step: with no member left the loop must not evaluate an empty population.
    config = BASE.replace(eval_every_env_steps=512, max_abs_q=1e-6)
    results = train_population(config, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    for r in results:
        assert "diverged at env step 512" in r.diverged and r.summary["env_steps"] == 512
    # Before its first checkpoint (1,000): its resume says why, not "train it again" alone,
    # which would diverge again.
    from dqn.errors import CheckpointError

    said = r"every member was stopped before its first checkpoint \(member0-seed1: training div"
    with pytest.raises(CheckpointError, match=said + ".* lower learning_rate.* train it again$"):
        resume_population(tmp_path / "p", progress=False)


@pytest.mark.parametrize("final, interrupted", [(False, True), (True, False)])
def test_a_signal_during_the_last_step_finds_the_population_complete(
    tmp_path, monkeypatch, final, interrupted
):
    """As a single run (tests/test_train.py): a signal during the final evaluation ends every
    member as finished; one during an earlier evaluation stops them at a checkpoint, and
    train_population raises TrainingInterrupted carrying their results."""
    from dqn.errors import TrainingInterrupted
    from dqn.population_loop import PopulationLoop

    evaluate = PopulationLoop._evaluate

    def signalled(self, step, epsilon, active, last):
        if last == final:
            signal.raise_signal(signal.SIGTERM)
        return evaluate(self, step, epsilon, active, last)

    monkeypatch.setattr(PopulationLoop, "_evaluate", signalled)
    members = [Member({}, 1), Member({}, 2)]
    if interrupted:
        with pytest.raises(TrainingInterrupted, match="resume_population") as stopped:
            train_population(BASE, members, out_dir=tmp_path / "p", progress=False)
        results = stopped.value.result
    else:
        results = train_population(BASE, members, out_dir=tmp_path / "p", progress=False)
    for r in results:
        assert r.summary["interrupted"] is interrupted is r.interrupted
        assert r.stop_signal == (signal.SIGTERM if interrupted else None)
        assert r.summary["env_steps"] == (3_000 if final else 1_000)


@pytest.mark.parametrize(
    "members, stopped",
    [
        ([Member({}, 1), Member({"loss": "l2"}, 2)], []),
        # a member the guard stopped (wild: at env step 512) stays stopped when it resumes
        ([Member({"max_abs_q": 1e-6}, 1, "wild"), Member({}, 2, "calm")], [0]),
    ],
    ids=["all running", "one stopped by the guard"],
)
def test_a_signal_between_checkpoints_checkpoints_that_step_and_resumes_exactly(
    members, stopped, tmp_path, monkeypatch
):
    from dqn.errors import TrainingInterrupted
    from dqn.population_loop import PopulationLoop

    evaluate = PopulationLoop._evaluate

    def signalled(self, step, epsilon, active, last):
        if step == 1_500:  # checkpoints come every 1,000 steps
            signal.raise_signal(signal.SIGTERM)
        return evaluate(self, step, epsilon, active, last)

    base = BASE.replace(eval_every_env_steps=500)
    with monkeypatch.context() as m:
        m.setattr(PopulationLoop, "_evaluate", signalled)
        with pytest.raises(TrainingInterrupted):
            train_population(base, members, out_dir=tmp_path / "p", progress=False)
    marker = json.loads((tmp_path / "p" / "population-step.json").read_text())
    assert marker == {"env_step": 1_500, "stopped": stopped}
    with warnings.catch_warnings():  # from its marker's step, every checkpoint good: no warning
        warnings.simplefilter("error", CheckpointWarning)
        resumed = resume_population(tmp_path / "p", progress=False)
    whole = train_population(base, members, out_dir=tmp_path / "whole", progress=False)
    for i in stopped:
        assert "diverged at env step 512" in resumed[i].diverged
    for a, b in zip(resumed, whole):
        assert metrics_text(a.run_dir) == metrics_text(b.run_dir)


def test_a_population_saved_before_n_step_existed_reads_as_one_step_targets(tmp_path):
    from dqn.population_files import POPULATION_FILE, read_population

    config = DQNConfig(seed=3).to_dict()
    del config["n_step"]  # as population.json held it before the key was added
    members = [{"config": config, "run_dir": "member0-seed3"}]
    (tmp_path / POPULATION_FILE).write_text(json.dumps({"members": members}))
    [saved], [run_dir] = read_population(tmp_path)
    assert saved.n_step == 1 and saved.seed == 3 and run_dir == tmp_path / "member0-seed3"


def test_member_folders_load_as_agents_and_evaluate(tmp_path):
    [member] = train_population(BASE, [({}, 0)], out_dir=tmp_path / "p", progress=False)
    agent = DQNAgent.load(member.run_dir)
    assert agent.grad_steps == int(columns(metrics_text(member.run_dir))["grad_steps"][-1])
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dqn-evaluate"), str(member.run_dir), "--episodes", "2"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_the_bar_shows_no_median_before_the_first_evaluation():
    from types import SimpleNamespace as NS

    from dqn.population_progress import REPORT_EVERY, progress_reporter

    def member(eval_mean):
        return NS(config=BASE, stopped=None, loop=NS(eval_mean=eval_mean, first_solve=None))

    loop = NS(step=0, slots=[member(float("nan")), member(float("nan"))])
    bar = progress_reporter(True, loop)
    bar(REPORT_EVERY, running=2)
    assert "eval_median=-" in bar.bar.postfix  # not "nan", which read as a broken run
    loop.slots[0].loop.eval_mean = 120.0
    bar(2 * REPORT_EVERY, running=2)
    assert "eval_median=120" in bar.bar.postfix
    bar.close()


def test_a_resumed_populations_bar_starts_at_its_step_and_counts_only_running_members():
    from types import SimpleNamespace as NS

    from dqn.population_progress import REPORT_EVERY, progress_reporter

    def member(eval_mean, stopped=None, first_solve=None):
        return NS(
            config=NS(total_env_steps=1000),
            stopped=stopped,
            loop=NS(eval_mean=eval_mean, first_solve=first_solve),
        )

    # Resumed at step 500: a member stopped (its eval 10 no longer counts), one solved.
    slots = [member(10.0, stopped="non-finite"), member(100.0, first_solve=400), member(200.0)]
    loop = NS(step=500, slots=slots)
    bar = progress_reporter(True, loop)
    assert bar.bar.n == 500 and bar.bar.total == 1000
    bar(500 + REPORT_EVERY, running=2)
    assert bar.bar.n == 750
    assert "solved=1" in bar.bar.postfix
    assert "eval_median=150" in bar.bar.postfix  # of 100 and 200, not 100 with the stopped 10
    loop.step = 900  # every member stopped before the end: the bar shows where they got to
    bar.close()
    assert bar.bar.n == 900


def test_the_bar_counts_a_member_stopped_after_it_solved_as_solved():
    # on_eval's usual stop is "solved, stop": such a member still counts among those solved.
    from types import SimpleNamespace as NS

    from dqn.population_progress import REPORT_EVERY, progress_reporter

    def member(stopped, first_solve):
        return NS(config=BASE, stopped=stopped, loop=NS(eval_mean=100.0, first_solve=first_solve))

    slots = [member("stopped_by_on_eval", 250), member(None, None), member(None, 500)]
    bar = progress_reporter(True, NS(step=0, slots=slots))
    bar(REPORT_EVERY, running=2)
    assert "solved=2" in bar.bar.postfix and "running=2" in bar.bar.postfix
    bar.close()


def test_a_progress_callback_counts_the_last_steps_once_when_every_member_stopped():
    from types import SimpleNamespace

    from dqn.population_progress import progress_reporter

    loop = SimpleNamespace(
        step=0, slots=[SimpleNamespace(stopped="x"), SimpleNamespace(stopped="x")]
    )
    got = []
    report = progress_reporter(got.append, loop)
    loop.step = 100
    report.close()
    assert got == [100]  # the loop's own steps, not 0 for no member running


def test_a_population_writes_where_its_loop_time_went(tmp_path, monkeypatch):
    from dqn.population_loop import PopulationLoop

    checkpoint = PopulationLoop._checkpoint

    def slow_last_checkpoint(self, step):  # 0.3 s more, in the loop's time, not the members'
        checkpoint(self, step)
        if step == BASE.total_env_steps:
            time.sleep(0.3)

    monkeypatch.setattr(PopulationLoop, "_checkpoint", slow_last_checkpoint)
    [member] = train_population(BASE, [({}, 0)], out_dir=tmp_path / "p", progress=False)
    timing = json.loads((tmp_path / "p" / "timing.json").read_text())
    assert timing["env_steps"] == [0, 3_000] and timing["members"] == 1
    # One learner call per burst of gradient_steps_per_train (16) steps.
    grad_steps = int(columns(metrics_text(member.run_dir))["grad_steps"][-1])
    assert timing["learner_calls"] * 16 == grad_steps > 0
    parts = ("learner_seconds", "evaluation_seconds", "diagnostics_seconds")
    assert 0 < timing["first_learner_call_seconds"] <= timing["learner_seconds"]
    assert all(timing[p] > 0 for p in parts)  # BASE keeps diagnostics on
    assert sum(timing[p] for p in parts) <= timing["loop_seconds"]
    # A member's train_seconds: the loop's time less evaluations up to its final checkpoint,
    # whose write is not counted, as a single run's is not (tests/test_train.py).
    train_seconds = json.loads((member.run_dir / "summary.json").read_text())["train_seconds"]
    assert 0 < train_seconds <= timing["loop_seconds"] - timing["evaluation_seconds"] - 0.3


def test_members_that_cannot_share_a_program_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="hidden_sizes"):
        train_population(
            BASE,
            [({}, 0), ({"hidden_sizes": [8]}, 1)],
            out_dir=tmp_path / "p",
            progress=False,
        )
    with pytest.raises(ConfigError, match="unknown loss"):
        train_population(BASE, [({"loss": "hubr"}, 0)], out_dir=tmp_path / "p", progress=False)
    assert not (tmp_path / "p").exists()


# Another valid value of each key the members of one program must share (dqn.members).
OTHER_VALUE = {
    "env_id": "Acrobot-v1",
    "env_kwargs": {"max_episode_steps": 100},
    "hidden_sizes": [8],
    "activation": "tanh",
    "batch_size": 16,
    "total_env_steps": 2_000,
    "train_every_env_steps": 32,
    "gradient_steps_per_train": 8,
    "learning_starts_env_steps": 400,
    "eval_every_env_steps": 500,
    "eval_episodes": 2,
    "final_eval_episodes": 3,
    "eval_seed": 5,
    "checkpoint_every_env_steps": 500,
    "keep_checkpoints": 2,
    "num_envs": 2,
    "learner": "tensorflow",
    "jit_compile": False,
    "diagnostics": False,
    "num_threads": 2,
    "deterministic": False,
}


@pytest.mark.parametrize("key", OTHER_VALUE)
def test_members_must_share_each_key_of_the_one_program(tmp_path, key):
    # One member's value would silently hold for all (an eval_seed, a schedule's start).
    from dqn.members import SHARED_KEYS

    assert set(OTHER_VALUE) == set(SHARED_KEYS)
    assert getattr(BASE, key) != OTHER_VALUE[key]
    with pytest.raises(ConfigError, match=f"members differ in '{key}'"):
        train_population(
            BASE, [({}, 0), ({key: OTHER_VALUE[key]}, 1)], out_dir=tmp_path / "p", progress=False
        )
    assert not (tmp_path / "p").exists()


def test_a_population_whose_first_rows_meet_a_full_disk_keeps_no_folder(tmp_path, monkeypatch):
    """As a single run: population.json, member folders and empty metrics.csv files with no row
    and no step marker were neither resumable nor new; the same call now trains once there is
    room."""
    import errno

    from dqn import run_log

    def full(self, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_log.RunLog, "write", full)
    out = tmp_path / "made" / "p"
    with pytest.raises(OSError, match="No space left on device"):
        train_population(BASE, [({}, 0), ({}, 1)], out_dir=out, progress=False)
    assert not (tmp_path / "made").exists()
    monkeypatch.undo()
    results = train_population(BASE, [({}, 0), ({}, 1)], out_dir=out, progress=False)
    assert [len(r.history) for r in results] == [3, 3]


def test_population_members_step_one_env_each(tmp_path):
    with pytest.raises(ConfigError, match="one env each .*num_envs=2"):
        train_population(
            BASE.replace(num_envs=2), [({}, 0), ({}, 1)], out_dir=tmp_path / "p", progress=False
        )
    assert not (tmp_path / "p").exists()


def test_the_first_solve_is_the_first_evaluation_at_the_bar_and_a_resume_keeps_it(tmp_path):
    base = BASE.replace(solve_return=1.0)  # every evaluation of CartPole clears it
    whole = train_population(base, [({}, 0), ({}, 1)], out_dir=tmp_path / "whole", progress=False)
    assert [m.first_solve_env_step for m in whole] == [1_000, 1_000]
    shutil.copytree(tmp_path / "whole", tmp_path / "again")
    (tmp_path / "again" / "population-step.json").write_text(
        json.dumps({"env_step": 2_000, "stopped": []})
    )
    again = resume_population(tmp_path / "again", progress=False)
    assert [m.first_solve_env_step for m in again] == [1_000, 1_000]


def test_a_population_whose_replays_do_not_fit_this_memory_is_not_resumed(tmp_path, monkeypatch):
    # Checked before the rings are allocated and read back, as a new population is: a resume on
    # a machine with less memory was a MemoryError traceback, or swapped.
    from dqn import members
    from dqn.errors import CheckpointError

    train_population(BASE, [({}, 0), ({}, 1)], out_dir=tmp_path / "whole", progress=False)
    shutil.copytree(tmp_path / "whole", tmp_path / "again")
    (tmp_path / "again" / "population-step.json").write_text(
        json.dumps({"env_step": 2_000, "stopped": []})
    )
    leftover = tmp_path / "again" / "member0-seed0" / "checkpoints" / ".step-000000500.x1y2.tmp"
    leftover.mkdir()  # a killed write's: a resume removes it, a refusal must not
    files = {p: p.read_bytes() for p in (tmp_path / "again").rglob("*") if p.is_file()}
    monkeypatch.setattr(members, "available_memory_bytes", lambda: 1_000)
    with pytest.raises(CheckpointError) as refused:
        resume_population(tmp_path / "again", progress=False)
    message = str(refused.value)
    assert message.startswith(f"population {tmp_path / 'again'} cannot be resumed in this memory")
    assert "\n" not in message
    assert {p: p.read_bytes() for p in (tmp_path / "again").rglob("*") if p.is_file()} == files
    assert leftover.is_dir()


def test_a_member_whose_evaluation_equals_the_bar_has_solved(tmp_path):
    # "solved" is eval >= the bar: a perfect 500 against CartPole's 500 counts.
    base = BASE.replace(eval_episodes=1)  # one episode: a whole-number return, met exactly
    [first] = train_population(base, [({}, 0)], out_dir=tmp_path / "a", progress=False)
    evals = columns(metrics_text(first.run_dir))
    bar = float(evals["eval_return_mean"][evals["env_step"].index("1000")])
    [again] = train_population(
        base.replace(solve_return=bar), [({}, 0)], out_dir=tmp_path / "b", progress=False
    )
    assert again.first_solve_env_step == 1_000, (bar, again.first_solve_env_step)


def test_a_population_checkpoints_its_last_step_off_the_checkpoint_period(tmp_path):
    # 2,500 env steps, a checkpoint every 1,000: the last, at 2,500, is the one a reader loads.
    members = train_population(
        BASE.replace(total_env_steps=2_500), [({}, 0), ({}, 1)], out_dir=tmp_path, progress=False
    )
    for m in members:
        steps = sorted(p.name for p in (m.run_dir / "checkpoints").iterdir())
        assert steps[-1] == "step-000002500", steps


def test_a_population_that_does_not_fit_in_memory_is_refused_with_the_bytes():
    with pytest.raises(ConfigError) as err:
        check_population_fits([(100_000, 4)] * 50, available=100_000_000)
    message = str(err.value)
    # 50 rings x 100,000 transitions x (2 * 4 + 3) float32 = 220,000,000 bytes.
    assert "220,000,000 bytes" in message and "100,000,000 bytes" in message
    check_population_fits([(100_000, 4)] * 50, available=220_000_000)  # exactly fits
    assert "train fewer members at once" in message and "hidden_sizes" not in message


def test_a_member_too_large_for_memory_is_told_what_besides_its_ring_to_lower():
    # hidden_sizes=[100000, 100000], one member, one process: it was told to lower buffer_size
    # or train fewer members at once, and hidden_sizes was not named.
    with pytest.raises(ConfigError) as err:
        check_population_fits([(1_000, 4)], available=10**9, other_bytes=10**11)
    message = str(err.value)
    assert message.startswith("1 member (replay rings of 1,000 transitions")
    assert "(100,000,000,000 of the bytes needed are for the networks" in message
    assert "fewer members" not in message
    assert message.endswith(
        "lower buffer_size, hidden_sizes or a burst's rows (gradient_steps_per_train x batch_size)"
    )


def test_a_populations_memory_is_rings_members_compiled_groups_and_a_runtime():
    """The estimate behind the refusal, term by term: 25 default members hold 25 full rings (of
    50,000 transitions: a run of 50,000 env steps stores no more, whatever its buffer_size of
    100,000) and ``member_bytes`` each; the TensorFlow learner compiles them in groups of 4 (7
    groups of ``PROGRAM_BYTES``), the numpy learner compiles nothing but holds 6 more copies of each
    member's 67,586 parameters once some members are stopped; a new process adds its runtime."""
    from dqn.members import PROCESS_BYTES, PROGRAM_BYTES, member_bytes, population_bytes

    tf, np_ = DQNConfig(), DQNConfig(learner="numpy")
    ring = 50_000 * (2 * 4 + 3) * 4
    members = 25 * (ring + member_bytes(tf, 4, 2))
    assert population_bytes([tf] * 25, 4, 2, runtime=False) == members + 7 * PROGRAM_BYTES
    params = (4 * 256 + 256) + (256 * 256 + 256) + (256 * 2 + 2)
    members_np = 25 * (ring + member_bytes(np_, 4, 2))
    assert population_bytes([np_] * 25, 4, 2, runtime=False) == members_np + 25 * 4 * 6 * params
    with_runtime = population_bytes([tf] * 25, 4, 2, runtime=True)
    assert with_runtime == members + 7 * PROGRAM_BYTES + PROCESS_BYTES
    small = DQNConfig(hidden_sizes=(64, 64))  # 73 KB of state a member: one group of 61
    assert (
        population_bytes([small] * 32, 4, 2, runtime=False)
        == 32 * (ring + member_bytes(small, 4, 2)) + PROGRAM_BYTES
    )


def test_a_population_beyond_this_machine_leaves_no_folder(tmp_path):
    with pytest.raises(ConfigError, match="bytes of memory are available"):
        train_population(
            BASE.replace(buffer_size=10**9, total_env_steps=10**9),
            [({}, s) for s in range(200)],
            out_dir=tmp_path / "p",
            progress=False,
        )
    assert not (tmp_path / "p").exists()


def test_two_members_of_one_config_and_seed_are_refused(tmp_path):
    # A seed repeated in a list of pairs trained the same run twice, byte for byte.
    with pytest.raises(ConfigError, match="members 'member0' and 'member2' are the same run"):
        train_population(BASE, [({}, 0), ({}, 1), ({}, 0)], out_dir=tmp_path / "p", progress=False)
    assert not (tmp_path / "p").exists()


def test_a_key_members_must_share_is_refused_naming_a_member_that_differs(tmp_path):
    members = [({}, 0), ({}, 1), ({"hidden_sizes": [16]}, 2)]
    with pytest.raises(
        ConfigError, match=r"'hidden_sizes' \(member 0: \(32, 32\), member 2: \(16,\)\)"
    ):
        train_population(BASE, members, out_dir=tmp_path / "p", progress=False)


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_population_stopped_while_its_members_are_built_leaves_nothing(
    tmp_path, monkeypatch, stop
):
    # Ctrl-C in its first second left population.json and the members' config.yaml without a
    # step marker: neither resume_population nor a new train_population would take the folder.
    import dqn.population

    real_new_loop = dqn.population._new_loop

    def stopped(configs, run_dirs, out, log_tensorboard):
        real_new_loop(configs, run_dirs, out, log_tensorboard)  # config.yaml, logs
        assert (out / "population.json").exists() and (run_dirs[0] / "config.yaml").exists()
        raise stop

    monkeypatch.setattr(dqn.population, "_new_loop", stopped)
    (tmp_path / "elsewhere").mkdir()  # a member's own folder, outside the population's, empty
    run_dirs = [tmp_path / "p" / "a", tmp_path / "elsewhere"]
    args = (BASE, [({}, 0), ({}, 1)])
    with pytest.raises(stop):
        train_population(*args, out_dir=tmp_path / "p", run_dirs=run_dirs, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]
    assert list((tmp_path / "elsewhere").iterdir()) == []
    monkeypatch.setattr(dqn.population, "_new_loop", real_new_loop)
    results = train_population(*args, out_dir=tmp_path / "p", run_dirs=run_dirs, progress=False)
    assert [r.final_eval_mean is not None for r in results] == [True, True]


# ---------------------------------------------------------------------- resume
RUNNER = """
import sys
from dqn import DQNConfig
from dqn.population import Member, train_population
base = DQNConfig.from_yaml(sys.argv[1], {overrides!r})
members = [Member({{"loss": "huber"}}, 0, "a"), Member({{"loss": "l2"}}, 1, "b"),
           Member({{"loss": "clipped_delta"}}, 2, "c")]
train_population(base, members, out_dir=sys.argv[2], progress=False)
"""


@pytest.mark.slow
def test_a_population_killed_with_sigkill_resumes_to_the_same_metrics(tmp_path):
    overrides = {**TINY, "total_env_steps": 6_000}
    script = RUNNER.format(overrides=overrides)
    config = str(ROOT / "configs" / "cartpole.yaml")
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-c", script, config, str(whole)], check=True)
    killed, tmp = tmp_path / "killed", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-c", script, config, str(killed)], env=env)
    marker = killed / "population-step.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if marker.is_file() and json.loads(marker.read_text())["env_step"] >= 2_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(marker.read_text())["env_step"] < 6_000, "killed too late to test resume"
    assert not list(tmp.iterdir())  # nothing a process cleans up only at exit (AutoGraph's files)
    results = resume_population(killed, progress=False)
    for label, result in zip("abc", results):
        assert metrics_text(result.run_dir) == metrics_text(
            whole / f"{label}-seed{'abc'.index(label)}"
        )


DIES_BETWEEN_MEMBER_CHECKPOINTS = """
import os
from dqn import checkpoint
write = checkpoint.write_checkpoint
def write_or_die(run_dir, env_step, fill, keep):
    if run_dir.name.startswith("b") and env_step == 2_000:
        os._exit(9)  # as SIGKILL: no finally, no handler; a's checkpoint of step 2,000 is out
    return write(run_dir, env_step, fill, keep)
checkpoint.write_checkpoint = write_or_die
"""


def test_a_population_killed_between_two_members_checkpoints_resumes_with_one_kept(tmp_path):
    """keep_checkpoints: 1, killed after member a wrote step 2,000 and before b did: the step
    marker still says 1,000, so a's checkpoint of step 1,000 must still be there."""
    overrides = {**TINY, "keep_checkpoints": 1}
    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "l2"}, 1, "b")]
    whole = train_population(BASE.replace(**overrides), members, out_dir=tmp_path / "whole")
    script = DIES_BETWEEN_MEMBER_CHECKPOINTS + RUNNER.format(overrides=overrides)
    killed = tmp_path / "killed"
    config = str(ROOT / "configs" / "cartpole.yaml")
    assert subprocess.run([sys.executable, "-c", script, config, str(killed)]).returncode == 9
    assert json.loads((killed / "population-step.json").read_text())["env_step"] == 1_000
    resumed = resume_population(killed, progress=False)
    for first, second in zip(whole, resumed):
        assert metrics_text(first.run_dir) == metrics_text(second.run_dir)
        assert [p.name for p in (second.run_dir / "checkpoints").iterdir()] == ["step-000003000"]


def test_a_member_trained_on_without_the_population_is_named(tmp_path):
    """Its checkpoints are all past the step marker's (as after ``dqn-train --resume`` of it)."""
    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "l2"}, 1, "b")]
    train_population(BASE, members, out_dir=tmp_path / "p", progress=False)
    (tmp_path / "p" / "population-step.json").write_text('{"env_step": 1000, "stopped": []}')
    shutil.rmtree(tmp_path / "p" / "b-seed1" / "checkpoints" / "step-000001000")
    with pytest.raises(
        CheckpointError,
        match="member b-seed1 has checkpoints only past the population's env step 1000 "
        "\\(newest: 3000\\).*continue each member alone instead: dqn.loop.resume",
    ):
        resume_population(tmp_path / "p", progress=False)


def test_resuming_a_population_whose_member_folder_is_gone_names_it(tmp_path):
    from dqn.errors import CheckpointError

    config = BASE.replace(
        total_env_steps=1_000, eval_every_env_steps=500, checkpoint_every_env_steps=500
    )
    train_population(config, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    shutil.rmtree(tmp_path / "p" / "member1-seed2")
    with pytest.raises(CheckpointError, match="member member1-seed2's run folder is missing"):
        resume_population(tmp_path / "p")
    # A stopped member's too: the others trained to the end, then reading its summary was a
    # FileNotFoundError traceback.
    (tmp_path / "p" / "population-step.json").write_text('{"env_step": 500, "stopped": [1]}')
    with pytest.raises(CheckpointError, match="member member1-seed2's run folder is missing"):
        resume_population(tmp_path / "p", progress=False)


def test_a_member_whose_checkpoints_folder_is_a_link_is_not_resumed(tmp_path):
    # Through the link, a resume deleted checkpoints newer than its step, pruned old ones and
    # wrote new ones in the folder it led to: another run's checkpoints.
    from dqn.errors import CheckpointError

    config = BASE.replace(total_env_steps=1_000, checkpoint_every_env_steps=500)
    train_population(config, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    (tmp_path / "p" / "population-step.json").write_text('{"env_step": 500, "stopped": []}')
    checkpoints = tmp_path / "p" / "member1-seed2" / "checkpoints"
    checkpoints.rename(tmp_path / "elsewhere")
    checkpoints.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    kept = sorted(p.name for p in (tmp_path / "elsewhere").iterdir())
    with pytest.raises(CheckpointError, match=f"{checkpoints} is a link: a resume deletes"):
        resume_population(tmp_path / "p", progress=False)
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == kept


def test_a_member_whose_checkpoint_has_other_metrics_columns_is_not_resumed(tmp_path):
    # As a run's resume refuses it: with a column renamed (the manifest re-signed), the
    # population trained on to its next row and stopped there with csv's ValueError.
    from dqn.checkpoint import write_manifest
    from dqn.errors import CheckpointError

    config = BASE.replace(total_env_steps=1_000, checkpoint_every_env_steps=500)
    train_population(config, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    (tmp_path / "p" / "population-step.json").write_text('{"env_step": 500, "stopped": []}')
    checkpoint = tmp_path / "p" / "member1-seed2" / "checkpoints" / "step-000000500"
    metrics = checkpoint / "metrics.csv"
    metrics.write_text(metrics.read_text().replace("q_abs_max", "q_max", 1))
    write_manifest(checkpoint, 500)
    with pytest.raises(
        CheckpointError,
        match=r"columns are not the ones the population writes \(q_max not among them\)",
    ):
        resume_population(tmp_path / "p", progress=False)


def _without(key):
    def damage(member):
        summary = json.loads((member / "summary.json").read_text())
        (member / "summary.json").write_text(
            json.dumps({k: v for k, v in summary.items() if k != key})
        )

    return damage


@pytest.mark.parametrize(
    "stopped, damage, problem",
    [
        (
            [1],
            lambda member: (member / "summary.json").unlink(),
            "member member1-seed2 is recorded as stopped, and its summary.json is unreadable",
        ),
        ([1], _without("train_seconds"), "and its summary.json has no train_seconds"),
        (
            [1],
            lambda member: (member / "metrics.csv").unlink(),
            "and its metrics.csv is unreadable (FileNotFoundError)",
        ),
        ([7], lambda member: None, "population-step.json stops members it does not have"),
    ],
)
def test_a_step_marker_that_stops_a_member_whose_results_cannot_be_read_is_refused(
    tmp_path, stopped, damage, problem
):
    # A stopped member's results are read from its summary.json and metrics.csv at the end:
    # without them (a marker edited, or a member's file deleted), the others trained to the
    # end, then a FileNotFoundError or KeyError traceback.
    from dqn.errors import CheckpointError

    config = BASE.replace(total_env_steps=1_000, checkpoint_every_env_steps=500)
    train_population(config, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False)
    (tmp_path / "p" / "member0-seed1" / "summary.json").unlink()  # member 0 resumes
    damage(tmp_path / "p" / "member1-seed2")
    marker = {"env_step": 500, "stopped": stopped}
    (tmp_path / "p" / "population-step.json").write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match=re.escape(problem)):
        resume_population(tmp_path / "p", progress=False)


def test_resuming_a_population_whose_member_config_was_edited_is_refused(tmp_path):
    # A member resumes with the config it was trained with: an edit of its config.yaml would
    # take no effect and describe a run that never happened, as for a single run's resume.
    from dqn.population_files import STEP_FILE, write_step_marker

    base = BASE.replace(total_env_steps=2_000)
    results = train_population(
        base, [({}, 1), ({}, 2)], out_dir=tmp_path / "p", progress=False, log_tensorboard=False
    )
    write_step_marker(tmp_path / "p", 1_000, [])  # as if killed before its last step marker
    edited = results[1].run_dir / "config.yaml"
    edited.write_text(edited.read_text().replace("gamma: 0.99", "gamma: 0.5"))
    assert "gamma: 0.5" in edited.read_text()
    with pytest.raises(CheckpointError, match=r"config\.yaml differs .* \(gamma\)"):
        resume_population(tmp_path / "p", progress=False)
    assert json.loads((tmp_path / "p" / STEP_FILE).read_text())["env_step"] == 1_000


def test_resume_refuses_a_folder_that_is_not_a_population(tmp_path):
    from dqn.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a population folder"):
        resume_population(tmp_path)
    with pytest.raises(CheckpointError, match="^no population folder at .*gone$"):
        resume_population(tmp_path / "gone")  # not "is not one (population.json is missing)"
    assert not (tmp_path / "gone").exists()
    shutil.rmtree(tmp_path)


def test_pairs_get_one_folder_each_and_a_clash_is_refused(tmp_path):
    from dqn.population import as_member

    pairs = [({"loss": "huber"}, 0), ({"loss": "l2"}, 0)]
    assert [as_member(p, i).label for i, p in enumerate(pairs)] == ["member0", "member1"]
    with pytest.raises(ConfigError, match="same run folder"):
        train_population(
            BASE, [Member({}, 0, "x"), Member({"loss": "l2"}, 0, "x")], out_dir=tmp_path / "p"
        )
    for bad in (3, ({}, 1.7), ({}, True), ({}, "1")):  # a seed is an integer, not rounded
        with pytest.raises(ConfigError, match="an \\(overrides, seed\\) pair"):
            train_population(BASE, [bad], out_dir=tmp_path / "p")
    assert as_member(({}, np.int64(4))).seed == 4
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("overrides", [0, "", False, [("loss", "l2")]])
def test_overrides_that_are_not_a_mapping_are_refused_not_taken_as_none(overrides, tmp_path):
    # `dict(overrides or {})` trained the base config for 0, "" or False, and took a list of
    # pairs as a mapping, without a word.
    with pytest.raises(ConfigError, match="overrides a mapping of config keys"):
        train_population(BASE, [(overrides, 0)], out_dir=tmp_path / "p", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_members_seed_is_an_integer_as_in_a_pair(tmp_path):
    # Member({}, np.int64(1)) got as far as population.json and raised "Object of type int64 is
    # not JSON serializable"; Member({}, 1.0) and Member({}, "1") trained, folder "...-seed1.0".
    assert type(Member({}, np.int64(1)).seed) is int
    for bad in (1.0, "1", True, None):
        with pytest.raises(ConfigError, match=f"member 'm': seed must be an integer, got {bad!r}"):
            Member({}, bad, "m")


@pytest.mark.parametrize("which", ["out_dir", "run_dirs"])
def test_a_folder_that_cannot_be_made_is_named_in_one_line(which, tmp_path):
    # hold_folders made the folders outside train's `writing`: a raw NotADirectoryError.
    from dqn.errors import OutputError

    (tmp_path / "afile").write_text("")
    where = tmp_path / "afile" / "x"
    folders = {"out_dir": where} if which == "out_dir" else {"out_dir": tmp_path / "p"}
    if which == "run_dirs":
        folders["run_dirs"] = [where]
    with pytest.raises(
        OutputError, match=f"^cannot write the .* folder {where}: .*afile is a file$"
    ):
        train_population(BASE, [({}, 0)], progress=False, **folders)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # "p" made, then taken away


@pytest.mark.parametrize(
    "members, out, run_dirs, fragment",
    [
        (Member({}, 1), "p", None, "members is a list of members"),
        (({}, 1), "p", None, "members is a list of members"),
        ([({}, 1)], "p", ["p"], "run folder {tmp}/p is the population folder"),
        ([({}, 1)], "r/p", ["r"], "run folder {tmp}/r holds the population folder"),
        ([({}, 1), ({}, 2)], "p", ["r", "r/s"], "run folder {tmp}/r holds {tmp}/r/s"),
    ],
    ids=["one Member", "one pair", "run is population", "run holds population", "nested runs"],
)
def test_members_and_folders_that_would_mix_are_refused(
    members, out, run_dirs, fragment, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    tmp = tmp_path.resolve()
    with pytest.raises(ConfigError, match=re.escape(fragment.format(tmp=tmp))):
        train_population(BASE, members, out_dir=out, run_dirs=run_dirs, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["run", "population", "study's runs"])
def test_a_member_folder_inside_another_of_the_packages_folders_is_refused(kind, tmp_path):
    # The population's own folder was checked, its members' folders given elsewhere were not:
    # a member written into a study's runs/ was counted by the study's next rerun as its own.
    holder = package_folder(kind, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    mine = holder / "mine"
    with pytest.raises(ConfigError) as refused:
        train_population(BASE, [({}, 1)], out_dir=tmp_path / "p", run_dirs=[mine], progress=False)
    assert f"run folder {mine} is inside the {kind} folder {holder}, whose" in str(refused.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_tensorflow_population_resumes_from_an_older_step_exactly(tmp_path):
    # Resuming from the step-2,000 marker of a finished population recomputes steps 2,001 to
    # 3,000 (the newer checkpoints are dropped): every member's metrics.csv must come out the
    # same, byte for byte. The SIGKILL test above does this with a real kill (numpy learner).
    # The marker is at step 1,500, between two evaluations and mid-episode, and the target sync
    # (every 48 grad steps) leaves target and online apart there: the resume must put back the
    # update metrics gathered since the evaluation at 1,000, each episode's return so far and
    # the target network, or the rows from 2,000 on differ.
    base = BASE.replace(
        learner="tensorflow",
        checkpoint_every_env_steps=500,
        keep_checkpoints=6,
        target_update_every_grad_steps=48,
    )
    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "clipped_delta"}, 1, "b")]
    whole = train_population(base, members, out_dir=tmp_path / "whole", progress=False)
    shutil.copytree(tmp_path / "whole", tmp_path / "again")
    (tmp_path / "again" / "population-step.json").write_text(
        json.dumps({"env_step": 1_500, "stopped": []})
    )
    seen = []  # each member's checkpoints when the resumed population first reports progress

    def progress(steps):
        if not seen:
            seen.extend(sorted(p.name for p in (r / "checkpoints").iterdir()) for r in run_dirs)

    run_dirs = [tmp_path / "again" / f"{m.label}-seed{m.seed}" for m in members]
    again = resume_population(tmp_path / "again", progress=progress)
    for first, second, before in zip(whole, again, seen):
        assert second.run_dir.parent.name == "again"
        assert before[-1] == "step-000001500"  # the abandoned steps' checkpoints are gone
        assert metrics_text(first.run_dir) == metrics_text(second.run_dir)
        steps = sorted(p.name for p in (second.run_dir / "checkpoints").iterdir())
        assert steps[-1] == "step-000003000"
        # Every episode's return, the one open at 1,500 too (metrics.csv's mean of the last
        # ten may no longer hold it).
        last = Path("checkpoints") / "step-000003000" / "loop.npz"
        with np.load(first.run_dir / last) as x, np.load(second.run_dir / last) as y:
            assert x["episode_returns"].tobytes() == y["episode_returns"].tobytes()


def test_tensorflow_populations_of_the_same_settings_share_one_compiled_burst(
    tmp_path, monkeypatch
):
    # train_population in a loop traced and XLA-compiled its burst again each call, and XLA
    # never frees a compiled program, so a notebook's loop of studies grew each call. Members
    # that differ from another call's only in their seeds share its burst; anything else
    # compiles its own; and the shared burst learns what one of its own would, to the bit.
    from dqn import tf_population

    monkeypatch.setattr(tf_population, "_SHARED", {})
    base = BASE.replace(
        learner="tensorflow",
        total_env_steps=1_000,
        eval_every_env_steps=500,
        checkpoint_every_env_steps=1_000,
    )

    def study(name, seeds, loss="huber"):
        members = [Member({"loss": loss}, seed, "m") for seed in seeds]
        return train_population(base, members, out_dir=tmp_path / name, progress=False)

    study("first", [2, 3])
    (burst,) = tf_population._SHARED.values()
    shared = study("shared", [0, 1])
    assert list(tf_population._SHARED.values()) == [burst]
    study("other-loss", [0, 1], loss="l2")
    assert len(tf_population._SHARED) == 2
    monkeypatch.setattr(tf_population, "_SHARED", {})
    alone = study("alone", [0, 1])
    assert len(tf_population._SHARED) == 1  # its own, compiled afresh
    for a, b in zip(shared, alone):
        assert metrics_text(a.run_dir) == metrics_text(b.run_dir)


def test_a_population_killed_before_its_summaries_is_finished_not_trained_again(tmp_path):
    """Killed after the final checkpoint, before b's summary.json: resume writes it from that
    checkpoint and trains no step (no checkpoint written again, timing.json as it was)."""
    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "l2"}, 1, "b")]
    whole = train_population(BASE, members, out_dir=tmp_path / "p", progress=False)
    with pytest.raises(CheckpointError, match="already complete"):
        resume_population(tmp_path / "p", progress=False)
    summaries = [(r.run_dir / "summary.json").read_text() for r in whole]
    metrics = [metrics_text(r.run_dir) for r in whole]
    timing = (tmp_path / "p" / "timing.json").read_text()
    final = whole[1].run_dir / "checkpoints" / "step-000003000" / "manifest.json"
    written = final.stat().st_mtime_ns
    (whole[1].run_dir / "summary.json").unlink()
    finished = resume_population(tmp_path / "p", progress=False)
    assert [(r.run_dir / "summary.json").read_text() for r in finished] == summaries
    assert [metrics_text(r.run_dir) for r in finished] == metrics
    assert [r.final_eval_mean for r in finished] == [r.final_eval_mean for r in whole]
    assert final.stat().st_mtime_ns == written
    assert (tmp_path / "p" / "timing.json").read_text() == timing


def test_a_population_killed_in_its_final_prune_is_tidied_when_finished(tmp_path):
    """Killed in the members' final prune, before the summaries: a member held half of its
    oldest checkpoint and a hidden leftover of a killed write. Finished from the final
    checkpoint, the population prunes them as a single run's resume does."""
    import shutil

    config = BASE.replace(keep_checkpoints=2)
    [member] = train_population(
        config, [Member({}, 0, "a")], out_dir=tmp_path / "p", progress=False
    )
    folder = member.run_dir / "checkpoints"
    half = folder / "step-000001000"
    shutil.copytree(folder / "step-000002000", half)
    (half / "replay.npz").unlink()
    (folder / ".step-000003000.k1ll3d.tmp").mkdir()
    metrics = metrics_text(member.run_dir)
    (member.run_dir / "summary.json").unlink()
    resume_population(tmp_path / "p", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000002000", "step-000003000"]
    assert metrics_text(member.run_dir) == metrics


def test_a_damaged_member_checkpoint_sends_the_population_back_to_an_older_common_step(
    tmp_path,
):
    from dqn.errors import CheckpointWarning

    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "l2"}, 1, "b")]
    whole = train_population(BASE, members, out_dir=tmp_path / "whole", progress=False)
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "whole", again)
    (again / "population-step.json").write_text(json.dumps({"env_step": 2_000, "stopped": []}))
    # An edited config.yaml is refused first, and nothing is deleted.
    config_file = again / "b-seed1" / "config.yaml"
    original = config_file.read_text()
    config_file.write_text(original.replace("gamma: 0.99", "gamma: 0.5"))
    listing = sorted(str(p.relative_to(again)) for p in again.rglob("*"))
    with pytest.raises(CheckpointError, match="config.yaml differs .* \\(gamma\\)"):
        resume_population(again, progress=False)
    assert sorted(str(p.relative_to(again)) for p in again.rglob("*")) == listing
    config_file.write_text(original)

    damaged = again / "b-seed1" / "checkpoints" / "step-000002000" / "replay.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.warns(CheckpointWarning, match="resumes from env step 1000, not 2000: member b"):
        resumed = resume_population(again, progress=False)
    for first, second in zip(whole, resumed):
        assert metrics_text(first.run_dir) == metrics_text(second.run_dir)
    # The damaged checkpoint is kept for inspection, as a run's resume keeps one; a's good one
    # of 2,000 was written again.
    set_aside = sorted(p.name for p in again.glob("*/checkpoints/corrupt-*"))
    assert set_aside == ["corrupt-step-000002000"]
    assert (damaged.parent.parent / set_aside[0]).is_dir()  # b's


def test_a_population_folder_listing_no_members_is_refused(tmp_path):
    (tmp_path / "population.json").write_text('{"members": []}')
    with pytest.raises(CheckpointError, match="lists no members"):
        resume_population(tmp_path)


def _progress_reporter(stopped: list):
    """A progress reporter over a loop of members stopped as ``stopped`` says (None: running),
    at step 0: (loop, the callback's calls, reporter)."""
    from types import SimpleNamespace

    from dqn.population_progress import progress_reporter

    loop = SimpleNamespace(step=0, slots=[SimpleNamespace(stopped=s) for s in stopped])
    got = []
    return loop, got, progress_reporter(got.append, loop)


def test_a_progress_callback_gets_the_env_steps_of_every_running_member():
    from dqn.population_progress import REPORT_EVERY

    loop, got, report = _progress_reporter([None, None])
    report(REPORT_EVERY, running=2)
    loop.step = REPORT_EVERY + 10
    report.close()
    assert got == [2 * REPORT_EVERY, 2 * 10]


def test_a_progress_callback_whose_last_report_was_the_last_step_is_not_called_with_zero():
    # The calls add up to the env steps taken, and none of them is an empty one.
    from dqn.population_progress import REPORT_EVERY

    loop, got, report = _progress_reporter([None] * 3)
    report(REPORT_EVERY, running=3)
    report(2 * REPORT_EVERY, running=3)
    loop.step = 2 * REPORT_EVERY  # the population's last step
    report.close()
    assert got == [3 * REPORT_EVERY, 3 * REPORT_EVERY]


def test_a_progress_callback_counts_no_steps_for_a_stopped_member():
    # One of three members stopped: each report counts the steps of the two still running.
    from dqn.population_progress import REPORT_EVERY

    loop, got, report = _progress_reporter(["diverged", None, None])
    report(REPORT_EVERY, running=2)
    loop.step = REPORT_EVERY + 5
    report.close()
    assert got == [2 * REPORT_EVERY, 2 * 5]


def test_a_member_with_a_checkpoint_at_the_step_marker_has_not_trained_past_it(tmp_path):
    # trained_past: the newest step of a run all of whose checkpoints lie past the marker, None
    # if one lies at or before it (keep_checkpoints 1 leaves only the marker's own).
    from dqn.agent_files import CHECKPOINTS
    from dqn.population_files import trained_past

    run = tmp_path / "run"
    (run / CHECKPOINTS / "step-000001000").mkdir(parents=True)
    assert trained_past(run, 1000) is None
    assert trained_past(run, 1500) is None
    assert trained_past(run, 999) == 1000
    (run / CHECKPOINTS / "step-000002000").mkdir()
    assert trained_past(run, 500) == 2000
    assert trained_past(run, 1000) is None
    assert trained_past(tmp_path / "empty", 0) is None


def test_each_member_explores_by_its_own_epsilon_schedule():
    # Members sharing a schedule share its computation; each still gets its own schedule's
    # value: linear from epsilon_start to epsilon_end over epsilon_decay_fraction x 1,000 steps.
    from dqn.population_loop import EpsilonSchedule

    base = DQNConfig(total_env_steps=1_000, learning_starts_env_steps=100, n_step=1)
    a = base.replace(epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_fraction=0.5)
    b = base.replace(epsilon_start=0.5, epsilon_end=0.1, epsilon_decay_fraction=1.0)
    c = base.replace(epsilon_start=0.2, epsilon_end=0.2)
    d = a.replace(epsilon_decay_fraction=1.0)  # a's ends, over the whole run
    schedule = EpsilonSchedule([a, a.replace(seed=1), b, c, b.replace(seed=2), d])
    np.testing.assert_allclose(schedule.at(250), [0.5, 0.5, 0.4, 0.2, 0.4, 0.75])
    np.testing.assert_allclose(schedule.at(1_000), [0.0, 0.0, 0.1, 0.2, 0.1, 0.0])


def test_member_settings_are_each_members_own_numbers():
    # The [P] arrays both population learners read, against each config's closed forms:
    # discount gamma^n, schedule length (total // every - starts // every) * grad steps, a
    # constant rate's end = its start, no clipping = inf.
    from dqn.config import LOSS_NAMES
    from dqn.members import member_settings

    a = DQNConfig(
        gamma=0.9,
        n_step=3,
        learning_rate=1e-3,
        learning_rate_end=None,
        total_env_steps=1000,
        learning_starts_env_steps=100,
        train_every_env_steps=4,
        gradient_steps_per_train=2,
        target_tau=0.25,
        target_update_every_grad_steps=7,
        adam_epsilon=1e-5,
        loss="l2",
        loss_bound=2.0,
        max_grad_norm=None,
        double_dqn=True,
    )
    b = a.replace(  # the schedule's keys are shared (one program); every other one differs
        gamma=0.95,
        n_step=1,
        learning_rate=2e-3,
        learning_rate_end=1e-4,
        target_tau=1.0,
        target_update_every_grad_steps=50,
        adam_epsilon=1e-7,
        loss="huber",
        loss_bound=1.0,
        max_grad_norm=0.5,
        double_dqn=False,
    )
    s = member_settings([a, b])
    np.testing.assert_allclose(s.discount, [0.9**3, 0.95], rtol=1e-15)
    assert s.total_grad_steps.tolist() == [(250 - 25) * 2] * 2
    np.testing.assert_allclose(s.learning_rate, [1e-3, 2e-3], rtol=1e-15)
    np.testing.assert_allclose(s.learning_rate_end, [1e-3, 1e-4], rtol=1e-15)
    np.testing.assert_array_equal(s.target_tau, np.float32([0.25, 1.0]))
    np.testing.assert_array_equal(s.adam_epsilon, np.float32([1e-5, 1e-7]))
    np.testing.assert_array_equal(s.max_grad_norm, np.float32([np.inf, 0.5]))
    np.testing.assert_array_equal(s.loss_bound, np.float32([2.0, 1.0]))
    assert s.target_every.tolist() == [7, 50] and s.double_dqn.tolist() == [True, False]
    assert s.loss_id.tolist() == [LOSS_NAMES.index("l2"), LOSS_NAMES.index("huber")]


def test_a_members_bytes_are_the_documented_sum():
    # member_bytes's docstring: 4 bytes x (6 copies of the P parameters + a burst of rows of
    # 2 obs_dim + 3 floats, 4.25 times its size with the TensorFlow learner, + 3 activations per
    # hidden or output unit per probe state).
    from dqn.diagnostics import PROBE_SIZE
    from dqn.members import member_bytes

    config = DQNConfig(hidden_sizes=(64, 32), batch_size=16, gradient_steps_per_train=3)
    params = (4 * 64 + 64) + (64 * 32 + 32) + (32 * 2 + 2)
    rows = 3 * 16 * (2 * 4 + 3)
    activations = 3 * PROBE_SIZE * (64 + 32 + 2)
    assert member_bytes(config, 4, 2) == 4 * (6 * params + 17 * rows // 4 + activations)
    numpy = config.replace(learner="numpy")
    assert member_bytes(numpy, 4, 2) == 4 * (6 * params + rows + activations)


def test_a_chain_whose_layers_do_not_connect_is_refused():
    # Layer 1's kernel must take layer 0's output width: [4, 16] then [8, 2] is no chain.
    from dqn.members import check_members

    base = DQNConfig(hidden_sizes=(16,))
    shapes = [(4, 16), (16,), (8, 2), (2,)]
    with pytest.raises(ValueError, match="layer 1"):
        check_members([base], shapes, ["relu", "linear"], ["relu", "linear"], np.zeros((1, 98)))


def test_a_bias_that_does_not_match_its_kernel_is_refused():
    # Layer 0's kernel [4, 16] has 16 outputs: a bias of 8 is no Dense layer.
    from dqn.members import check_members

    base = DQNConfig(hidden_sizes=(16,))
    shapes = [(4, 16), (8,), (16, 2), (2,)]
    with pytest.raises(ValueError, match="layer 0"):
        check_members([base], shapes, ["relu", "linear"], ["relu", "linear"], np.zeros((1, 122)))


def test_a_shared_key_mismatch_names_the_first_member_that_differs():
    # Members 1 and 2 both differ from member 0: the message names member 1, the first.
    from dqn.members import population_mismatch

    configs = [BASE, BASE.replace(batch_size=16, seed=1), BASE.replace(batch_size=8, seed=2)]
    why = population_mismatch(configs)
    assert f"(member 0: {BASE.batch_size}, member 1: 16)" in why


def test_the_memory_check_counts_no_runtime_for_a_process_that_loaded_it(monkeypatch):
    # TensorFlow loaded already: its runtime is not counted, and the message does not say it is.
    import dqn.members as members

    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    monkeypatch.setattr(members, "available_memory_bytes", lambda: 1000)
    need = members.population_bytes([BASE], 4, 2, runtime=False)
    with pytest.raises(ConfigError, match=f"need {need:,} bytes") as refused:
        members.check_memory([[BASE]], {members.env_of(BASE): (4, 2)})
    assert "runtime" not in str(refused.value).split("bytes, but")[0]


def test_a_population_stopped_before_its_first_checkpoint_says_to_train_it_again(tmp_path):
    """Killed in its first seconds: population.json and the members' config.yaml, no step
    marker. The resume refused for want of a checkpoint and train_population sent the user
    back to the resume; both now say there is nothing to continue."""
    from dqn.errors import CheckpointError, ConfigError
    from dqn.population_files import STEP_FILE

    members = [Member({"loss": "huber"}, 0, "a"), Member({"loss": "l2"}, 1, "b")]
    train_population(BASE, members, out_dir=tmp_path / "p", progress=False)
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(tmp_path / "p" / "population.json", killed)  # its member folders: absent
    assert not (killed / STEP_FILE).exists()
    with pytest.raises(CheckpointError, match="no checkpoint yet .* delete the folder and train"):
        resume_population(killed, progress=False)
    with pytest.raises(ConfigError, match="holds no checkpoint to continue from: delete it"):
        train_population(BASE, members, out_dir=killed, progress=False)


def test_a_population_folder_moved_elsewhere_still_names_its_own_member_folders(tmp_path):
    # population.json names each member's folder relative to the population's: a population
    # copied or moved to another disk resumes in its new place, not in the old one's folders.
    from dqn.population_files import read_population, write_population

    old = tmp_path / "old" / "pop"
    old.mkdir(parents=True)
    config = DQNConfig(seed=4)
    write_population(old, [("a", 4)], [old / "a-seed4"], [config])
    new = tmp_path / "new" / "pop"
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    configs, run_dirs = read_population(new)
    assert configs == [config]
    assert [Path(d).resolve() for d in run_dirs] == [(new / "a-seed4").resolve()]


@pytest.mark.parametrize("learner", ["numpy", "tensorflow"])
def test_a_tanh_population_of_one_learns_as_the_single_run_does(tmp_path, learner):
    # The population learner must run the members' own activation, the one their saved
    # networks hold (a relu learner under a tanh network trains one net and saves another).
    from dqn.loop import train

    base = BASE.replace(
        activation="tanh", total_env_steps=1_000, eval_every_env_steps=1_000, learner=learner
    )
    single = train(
        base.replace(seed=5), run_dir=tmp_path / "single", progress=False, log_tensorboard=False
    )
    [member] = train_population(
        base, [({}, 5)], out_dir=tmp_path / "pop", progress=False, log_tensorboard=False
    )
    a, b = columns(metrics_text(single.run_dir)), columns(metrics_text(member.run_dir))
    for name in ("loss", "q_mean", "grad_norm"):
        np.testing.assert_allclose(np.float64(a[name]), np.float64(b[name]), rtol=1e-3)
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.testing.assert_allclose(
        DQNAgent.load(member.run_dir).q_values(obs),
        DQNAgent.load(single.run_dir).q_values(obs),
        rtol=1e-3,
        atol=1e-5,
    )


def test_a_members_bad_override_is_named_by_its_label(tmp_path):
    # Among 30 members, the one whose override is wrong: its label starts the one line.
    good, bad = Member({"loss": "l2"}, 0, "fine"), Member({"learning_rate": -1.0}, 0, "fast")
    with pytest.raises(ConfigError, match=r"^member 'fast': .*learning_rate"):
        train_population(BASE, [good, bad], out_dir=tmp_path / "pop", progress=False)
    assert not (tmp_path / "pop").exists()


@pytest.mark.parametrize(
    "text",
    [
        '{"env_step": null, "stopped": []}',
        '{"env_step": 5, "stopped": 5}',
        "[]",
        '{"stopped": []}',
        '{"env_step": Infinity, "stopped": []}',  # int() of it was an OverflowError
        '{"env_step": 5, "stopped": "12"}',  # read as members 1 and 2
        '{"env_step": 5.5, "stopped": [true]}',
    ],
)
def test_a_step_marker_that_is_not_one_is_called_corrupt(text, tmp_path):
    from dqn.errors import CheckpointError
    from dqn.population_files import STEP_FILE, read_step_marker

    (tmp_path / STEP_FILE).write_text(text)
    with pytest.raises(CheckpointError, match=f"{STEP_FILE} is corrupt$"):
        read_step_marker(tmp_path)
