"""train_population's on_eval: train's callback, per member.

After each member's evaluation it gets that member's metrics.csv row and the member as an agent
(dqn.member_agent.MemberAgent). Watching changes no byte any member writes; False stops that
member alone, at a resumable checkpoint of its own, and a resumed population keeps it stopped.
"""

import json

import numpy as np
import pytest

from dqn import DQNAgent
from dqn.agent_files import list_checkpoints
from dqn.errors import CheckpointError, InputError
from dqn.loop import resume
from dqn.population import Member, resume_population, train_population
from tests.test_population import BASE, metrics_text

# Evaluations every 500 env steps, checkpoints every 1,000: a stop at 1,500 falls between two.
CONFIG = BASE.replace(eval_every_env_steps=500)
MEMBERS = [Member({"loss": "huber"}, 1, "a"), Member({"loss": "l2"}, 2, "b")]


def population(tmp_path, name="p", on_eval=None, config=CONFIG):
    return train_population(
        config,
        MEMBERS,
        out_dir=tmp_path / name,
        progress=False,
        log_tensorboard=False,
        on_eval=on_eval,
    )


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The population as it goes with no on_eval."""
    return population(tmp_path_factory.mktemp("plain"))


def stop_a_at(step):
    return lambda row, member: not (member.index == 0 and row["env_step"] == step)


def out_of_disk_at_marker(step, tmp_path, monkeypatch, on_eval):
    """The population of ``population`` ended by a full disk as it writes its step marker of
    ``step`` (earlier markers are written); its folder."""
    from dqn.population_loop import PopulationLoop

    write_marker = PopulationLoop._write_marker

    def full_disk(self, at):
        if at == step:
            raise OSError(28, "No space left on device")
        write_marker(self, at)

    monkeypatch.setattr(PopulationLoop, "_write_marker", full_disk)
    with pytest.raises(OSError, match="No space left"):
        population(tmp_path, on_eval=on_eval)
    monkeypatch.undo()
    return tmp_path / "p"


def test_watching_every_member_changes_no_byte(plain, tmp_path):
    seen, saved = [], {}
    probe = np.array([0.01, -0.02, 0.03, 0.04], np.float32)

    def watch(row, member):
        assert type(member.index) is int
        seen.append((member.index, row["env_step"]))
        q = member.q_values(probe)
        assert member.act(probe) == int(q.argmax())  # greedy: draws nothing from its RNG
        saved[member.index] = (member.save(tmp_path / f"latest-{member.index}"), q)
        row["eval_return_mean"] = -1.0  # the function's copy, not the run's

    results = population(tmp_path, on_eval=watch)
    steps = [500, 1000, 1500, 2000, 2500, 3000]
    assert seen == [(i, s) for s in steps for i in (0, 1)]
    for ours, theirs in zip(results, plain):
        assert metrics_text(ours.run_dir) == metrics_text(theirs.run_dir)
        assert ours.summary["stopped_by_on_eval"] is False and not ours.summary["interrupted"]
    # What a member saves is the agent its run folder holds at the end, and acts the same.
    for i, result in enumerate(results):
        folder, q = saved[i]
        final = DQNAgent.load(result.run_dir)
        assert DQNAgent.load(folder).grad_steps == final.grad_steps
        np.testing.assert_allclose(final.q_values(probe), q, rtol=1e-5, atol=1e-6)


def test_a_member_evaluated_side_by_side_plays_the_episodes_evaluate_plays(plain, tmp_path):
    # README: evaluate_side_by_side takes a member as it takes an agent, the same returns as
    # evaluate's episodes one after another (they differ in length: which is which matters).
    import gymnasium as gym

    from dqn.evaluation import evaluate, evaluate_side_by_side

    one, copies = gym.make("CartPole-v1"), [gym.make("CartPole-v1") for _ in range(4)]
    pairs = []

    def both(row, member):
        pairs.append(
            (evaluate(member, one, 9, 20_000), evaluate_side_by_side(member, copies, 9, 20_000))
        )

    results = population(tmp_path, on_eval=both)
    assert len(pairs) == 12 and any(len(set(a[2])) > 1 for a, _ in pairs)
    assert all(a == b for a, b in pairs), pairs
    for ours, theirs in zip(results, plain):  # and watching so changes no byte
        assert metrics_text(ours.run_dir) == metrics_text(theirs.run_dir)


def test_false_stops_that_member_alone_at_a_checkpoint_of_its_own(plain, tmp_path):
    a, b = population(tmp_path, on_eval=stop_a_at(1500))
    assert a.summary["interrupted"] and a.summary["stopped_by_on_eval"] is True
    assert (a.interrupted, a.stop_signal, b.interrupted) == (True, None, False)  # as TrainResult
    assert a.summary["env_steps"] == 1500 and a.diverged is None
    assert (a.run_dir / "checkpoints" / "step-000001500").is_dir()  # not a multiple of 1,000
    assert metrics_text(plain[0].run_dir).startswith(metrics_text(a.run_dir))
    assert metrics_text(b.run_dir) == metrics_text(plain[1].run_dir)
    assert b.summary["env_steps"] == 3000 and not b.summary["interrupted"]
    marker = json.loads((tmp_path / "p" / "population-step.json").read_text())
    assert marker == {"env_step": 3000, "stopped": [0]}

    finished = resume(a.run_dir, progress=False, log_tensorboard=False)  # the member, alone
    assert finished.summary["env_steps"] == 3000 and not finished.interrupted


def test_a_population_resumed_keeps_a_member_stopped_between_two_of_its_markers(
    plain, tmp_path, monkeypatch
):
    """Member a stops at 1,500; a full disk ends the population at 2,000, before the marker of
    2,000 is written. The marker of 1,000 already names a stopped, so a resume from 1,000 trains
    b alone, to the bytes of a population never stopped."""
    import dqn.population
    from tests.conftest import count_closes

    out = out_of_disk_at_marker(2000, tmp_path, monkeypatch, stop_a_at(1500))
    assert json.loads((out / "population-step.json").read_text()) == {
        "env_step": 1000,
        "stopped": [0],
    }
    stopped_summary = (out / "a-seed1" / "summary.json").read_text()
    made, closed = count_closes(monkeypatch, dqn.population, "config_env")
    a, b = resume_population(out, progress=False, log_tensorboard=False)
    assert len(closed) == len(made) and set(map(id, closed)) == set(map(id, made))  # a's too
    assert (out / "a-seed1" / "summary.json").read_text() == stopped_summary
    assert a.summary["env_steps"] == 1500 and a.summary["stopped_by_on_eval"] is True
    assert a.history[-1]["env_step"] == 1500  # read back from its metrics.csv
    assert metrics_text(b.run_dir) == metrics_text(plain[1].run_dir)
    # a's stop checkpoint (past the marker the resume started from) is kept: it resumes a alone.
    assert sorted(c.name for c in list_checkpoints(a.run_dir)) == [
        "step-000001000",
        "step-000001500",
    ]


def test_a_population_one_member_of_which_was_stopped_and_the_other_finished_is_complete(
    tmp_path,
):
    a, b = population(tmp_path, on_eval=stop_a_at(1500))
    assert (a.summary["env_steps"], b.summary["env_steps"]) == (1500, 3000)
    # How many members trained together, the stopped one's too; and each member's own seed.
    assert a.summary["population_members"] == b.summary["population_members"] == 2
    written = json.loads((tmp_path / "p" / "population.json").read_text())
    assert [m["seed"] for m in written["members"]] == [m.seed for m in MEMBERS]
    with pytest.raises(CheckpointError, match=r"is already complete \(3000 env steps\)"):
        resume_population(tmp_path / "p", progress=False)


def test_a_population_stopped_before_its_first_marker_has_no_checkpoint_to_resume(
    tmp_path, monkeypatch
):
    """Member a stops at 500 (its own checkpoint); a full disk ends the population at its first
    marker (1,000): the population has no step to resume from, and says so, rather than sending
    the user to continue each member alone from a marker of step 0 it never wrote."""
    out_of_disk_at_marker(1000, tmp_path, monkeypatch, stop_a_at(500))
    assert not (tmp_path / "p" / "population-step.json").exists()
    with pytest.raises(CheckpointError, match="has no checkpoint yet"):
        resume_population(tmp_path / "p", progress=False)


def test_a_member_stopped_by_on_eval_keeps_only_its_newest_checkpoints(tmp_path):
    a, _ = population(tmp_path, on_eval=stop_a_at(1500), config=CONFIG.replace(keep_checkpoints=1))
    assert [c.name for c in list_checkpoints(a.run_dir)] == ["step-000001500"]


def test_a_population_every_member_of_which_was_stopped_has_nothing_to_resume(tmp_path):
    results = population(tmp_path, on_eval=lambda row, member: row["env_step"] < 1500)
    assert [r.summary["env_steps"] for r in results] == [1500, 1500]
    with pytest.raises(CheckpointError, match="every member was stopped .* or on_eval"):
        resume_population(tmp_path / "p", progress=False)


def test_false_at_the_final_evaluation_leaves_the_members_finished(tmp_path):
    results = population(tmp_path, on_eval=lambda row, member: row["env_step"] < 3000)
    for r in results:
        assert r.summary["env_steps"] == 3000 and not r.summary["interrupted"]


@pytest.mark.parametrize("answer", [0, "stop"])
def test_an_answer_other_than_a_bool_or_none_is_refused_in_one_line(tmp_path, answer):
    with pytest.raises(InputError, match=r"on_eval returned .*: it returns False to stop the mem"):
        population(tmp_path, on_eval=lambda row, member: answer)


def test_an_on_eval_that_is_not_a_function_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match=r"on_eval must be a function of \(row, member\), got int"):
        population(tmp_path, on_eval=1)
    assert not (tmp_path / "p").exists()
    with pytest.raises(InputError, match="on_eval must be a function"):
        resume_population(tmp_path / "p", on_eval="stop")


def test_a_member_refuses_observations_it_cannot_take(tmp_path):
    errors = []

    def misuse(row, member):
        for call in (
            lambda: member.act(np.zeros(3)),
            lambda: member.q_values(np.full(4, np.nan)),
            lambda: member.save(member.run_dir),  # a run folder is not an agent folder
            lambda: member.act(np.zeros(4), 0.5),  # DQNAgent.act's call: a TypeError it was
            lambda: member.act(np.zeros(4), -0.5),  # not a rate either
            lambda: member.act(np.full(4, np.nan)),  # named as act's, not q_values'
            lambda: member.save(5),  # pathlib's TypeError, as for DQNAgent.save it is not
        ):
            try:
                call()
            except Exception as exc:
                errors.append(str(exc))
        return False

    population(tmp_path, on_eval=misuse, config=CONFIG.replace(total_env_steps=1000))
    assert "act takes one observation of shape [4], got [3]" in errors[0]
    assert "NaN or inf" in errors[1]
    assert "cannot save the agent to" in errors[2] and "metrics.csv" in errors[2]
    assert errors[3].startswith("a population member acts greedily here (epsilon 0), got epsil")
    assert errors[4].startswith("a population member acts greedily here (epsilon 0), got epsil")
    assert errors[5].startswith("act got an observation with NaN or inf")
    assert errors[6] == "a member's save takes a folder's path (a str or Path), got int"
    assert len(errors) == 14  # both members, seven refusals each


def test_a_members_save_reads_a_leading_tilde_as_the_home_folder(tmp_path, monkeypatch):
    # It made a folder named ~ in the working folder, as DQNAgent.save no longer did.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    saved = []

    def keep(row, member):
        saved.append(member.save(f"~/best{member.index}"))

    population(tmp_path, on_eval=keep, config=CONFIG.replace(total_env_steps=1000))
    assert not (tmp_path / "~").exists()
    assert saved[0] == tmp_path / "home" / "best0" and (saved[0] / "agent.json").is_file()


def test_a_tensorflow_members_view_follows_its_parameters(tmp_path):
    """With the TF learner the member reads the parameters the latest burst returned."""
    probe = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    seen = []
    results = population(
        tmp_path,
        on_eval=lambda row, member: seen.append(member.q_values(probe)),
        config=CONFIG.replace(learner="tensorflow", total_env_steps=1000),
    )
    assert not np.allclose(seen[0], seen[2])  # bursts ran between the two evaluations
    final = DQNAgent.load(results[0].run_dir)
    np.testing.assert_allclose(final.q_values(probe), seen[2], rtol=1e-5, atol=1e-6)


def test_an_error_in_on_eval_keeps_the_population_at_a_checkpoint_that_resumes_it_exactly(
    plain, tmp_path
):
    """Member b's on_eval fails at 1,500, between two checkpoints (every 1,000): every member's
    row of that step is logged, the population is checkpointed there, and the error goes up;
    resume_population then ends it to the bytes of a population never stopped."""
    calls = []

    def fail_for_b(row, member):
        calls.append((member.index, row["env_step"]))
        if member.index == 1 and row["env_step"] == 1500:
            raise KeyError("a bug in the caller's function")

    with pytest.raises(KeyError) as error:
        population(tmp_path, on_eval=fail_for_b)
    out = tmp_path / "p"
    assert error.value.__notes__ == [
        "the population was checkpointed at env step 1500 before this error: "
        f"dqn.population.resume_population({str(out)!r}) continues it"
    ]
    assert calls[-2:] == [(0, 1500), (1, 1500)]
    assert json.loads((out / "population-step.json").read_text()) == {
        "env_step": 1500,
        "stopped": [],
    }
    results = resume_population(out, progress=False, log_tensorboard=False)
    for ours, theirs in zip(results, plain):
        assert metrics_text(ours.run_dir) == metrics_text(theirs.run_dir)


@pytest.mark.parametrize("failing", [1, 0], ids=["stop then fail", "fail then stop"])
def test_a_member_asked_to_stop_at_the_step_of_an_on_eval_error_stops(failing, tmp_path):
    """At step 1,500 one member's on_eval raises and the other's returns False, in either order:
    the members after the failing one are still asked, and the one that asked stops there (its
    own checkpoint and summary), so a resumed population keeps it stopped."""
    calls, stopping = [], 1 - failing

    def fail_for_one_stop_the_other(row, member):
        calls.append((member.index, row["env_step"]))
        if row["env_step"] == 1500:
            if member.index == failing:
                raise KeyError("a bug in the caller's function")
            return False

    with pytest.raises(KeyError):
        population(tmp_path, on_eval=fail_for_one_stop_the_other)
    out = tmp_path / "p"
    assert calls[-2:] == [(0, 1500), (1, 1500)]
    assert json.loads((out / "population-step.json").read_text()) == {
        "env_step": 1500,
        "stopped": [stopping],
    }
    folder = out / f"{MEMBERS[stopping].label}-seed{MEMBERS[stopping].seed}"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["stopped_by_on_eval"] is True and summary["env_steps"] == 1500
    results = resume_population(out, progress=False, log_tensorboard=False)
    assert results[stopping].summary["env_steps"] == 1500
    assert results[failing].summary["env_steps"] == 3000


def test_a_member_agents_q_values_are_its_functions_and_other_shapes_are_refused(tmp_path):
    # No training: a MemberAgent over a linear Q-function, Q(s) = s W. One observation gives
    # [n_actions], a batch [n, n_actions]; any other shape is refused, not reshaped (8 numbers
    # are not two observations of 4, nor is a [2, 2, 4] stack a batch).
    from dqn import DQNConfig
    from dqn.member_agent import MemberAgent

    w = np.arange(8, dtype=np.float32).reshape(4, 2) - 3.5
    member = MemberAgent(
        0,
        DQNConfig(),
        tmp_path,
        (4, 2),
        lambda obs: obs @ w,
        lambda: None,
        lambda *a: None,
        np.random.default_rng(0),
    )
    s = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    np.testing.assert_array_equal(member.q_values(s), s @ w)
    batch = np.stack([s, -s, 2 * s])
    np.testing.assert_array_equal(member.q_values(batch), batch @ w)
    assert member.act(s) == int(np.argmax(s @ w)) and member.act(-s) == int(np.argmax(-s @ w))
    for bad in (np.zeros(8), np.zeros((2, 2, 4)), np.zeros((3, 5))):
        with pytest.raises(InputError, match=r"observations must have shape \[4\] or \[n, 4\]"):
            member.q_values(bad)
