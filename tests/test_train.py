"""The training loop: pure helpers, and short runs end to end (learning itself: test_learning)."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn import DQNConfig, train
from dqn.config import LOSS_NAMES
from dqn.loop import linear_epsilon
from dqn.replay import Batch

ROOT = Path(__file__).resolve().parent.parent
CARTPOLE = DQNConfig.from_yaml(ROOT / "configs" / "cartpole.yaml")


def test_linear_epsilon_schedule():
    cfg = DQNConfig(
        total_env_steps=1000,
        epsilon_start=1.0,
        epsilon_end=0.1,
        epsilon_decay_fraction=0.5,
        learning_starts_env_steps=10,
    )
    assert linear_epsilon(0, cfg) == 1.0
    assert linear_epsilon(250, cfg) == pytest.approx(0.55)
    assert linear_epsilon(500, cfg) == pytest.approx(0.1)
    assert linear_epsilon(900, cfg) == pytest.approx(0.1)
    assert linear_epsilon(5, cfg.replace(epsilon_decay_fraction=0.0)) == 0.1


def test_train_accepts_any_registered_env_with_vector_obs_and_discrete_actions(tmp_path):
    from tests.test_learning import ECHO

    result = train(ECHO.replace(output_dir=str(tmp_path)), progress=False)
    assert result.solve_return is None  # the env declares no reward_threshold
    assert result.run_dir.parent == tmp_path
    assert [row["env_step"] for row in result.history] == [600, 1200]
    assert result.agent.grad_steps == 2 * (1200 - 200) // 4
    # Shown in a notebook, a result is its figures: not every metrics row and episode return.
    shown = repr(result)
    assert "final_eval_mean=" in shown and "history" not in shown and "summary" not in shown
    assert len(shown) < 600


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("loss", [n for n in LOSS_NAMES if n != "huber"])
def test_every_loss_trains_end_to_end_with_the_default_config(tmp_path, loss):
    cfg = CARTPOLE.replace(
        loss=loss, total_env_steps=4000, eval_every_env_steps=2000, output_dir=str(tmp_path)
    )
    result = train(cfg, progress=False)
    rows = read_metrics(result.run_dir)
    assert [int(r["env_step"]) for r in rows] == [2000, 4000]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert result.agent.grad_steps > 0


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_with_143(tmp_path):
    # SIGINT (exit 130) and resuming from the checkpoint: tests/test_reliability.py.
    run_dir = tmp_path / "run"
    code = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--config",
            str(ROOT / "configs" / "cartpole.yaml"),
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--set",
            "total_env_steps=1000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").is_file() or not read_metrics(run_dir):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted; checkpoint saved" in out
    assert "Traceback" not in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stop_signal"] == signal.SIGTERM
    step = summary["env_steps"]
    # Not the final evaluation it never reached: the last periodic one, named with its step.
    last = int(read_metrics(run_dir)[-1]["env_step"])
    assert "final greedy evaluation" not in out
    assert f"last greedy evaluation (10 episodes, at env step {last}): " in out
    assert (run_dir / "checkpoints" / f"step-{step:09d}" / "agent" / "online.keras").is_file()


@pytest.mark.parametrize("at_step, interrupted", [(300, True), (600, False)])
def test_a_signal_during_the_last_step_finds_the_run_complete(
    tmp_path, monkeypatch, at_step, interrupted
):
    """SIGTERM during an evaluation: mid-run it stops the run at a checkpoint and train raises
    TrainingInterrupted (a KeyboardInterrupt: a script ends there, as on any Ctrl-C) carrying
    the result; during the last step's (before its final checkpoint) the run has taken every
    step, so it ends finished, which a study then records as a result rather than training it
    again."""
    from dqn import loop
    from tests.conftest import TINY_RUN  # 600 env steps, an evaluation every 100

    evaluate = loop._evaluate_and_log

    def signalled(config, agent, eval_env, replay, state, step, *rest):
        if step == at_step:
            signal.raise_signal(signal.SIGTERM)  # the loop's handler sets its stop flag
        return evaluate(config, agent, eval_env, replay, state, step, *rest)

    monkeypatch.setattr(loop, "_evaluate_and_log", signalled)
    from dqn.errors import TrainingInterrupted

    config = DQNConfig(**TINY_RUN, learner="numpy", output_dir=str(tmp_path))
    if interrupted:
        with pytest.raises(TrainingInterrupted) as stopped:
            train(config, progress=False)
        assert isinstance(stopped.value, KeyboardInterrupt) and stopped.value.signum == 15
        result = stopped.value.result
        assert str(stopped.value) == (
            f"SIGTERM stopped training at env step {at_step}, after a resumable checkpoint: "
            f"dqn.loop.resume({str(result.run_dir)!r}) continues it"
        )
    else:
        result = train(config, progress=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert result.interrupted is interrupted and summary["interrupted"] is interrupted
    assert summary["env_steps"] == at_step
    assert result.stop_signal == (signal.SIGTERM if interrupted else None)
    if interrupted:  # and the message's call takes it on to the end
        monkeypatch.setattr(loop, "_evaluate_and_log", evaluate)
        assert loop.resume(result.run_dir, progress=False).summary["env_steps"] == 600


def test_train_is_a_function_and_the_loop_a_module_whatever_the_import_order():
    import subprocess
    import sys

    code = (
        "import dqn.loop, dqn\n"
        "from dqn import train\n"
        "from dqn.loop import resume\n"
        "assert callable(train) and train is dqn.loop.train and train.__name__ == 'train'\n"
        "assert callable(resume) and dqn.train is train\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_last_evaluation_uses_final_eval_episodes(tmp_path, monkeypatch):
    # CartPole-v1's criterion is a mean over 100 episodes: the final row is evaluated with
    # final_eval_episodes, every earlier row with eval_episodes.
    import importlib

    from tests.conftest import TINY_RUN

    loop = importlib.import_module("dqn.loop")

    calls = []
    real = loop.evaluate_side_by_side

    def counting(agent, envs, episodes, seed):
        calls.append((episodes, len(envs)))  # (episodes, how many side by side)
        return real(agent, envs, episodes, seed)

    monkeypatch.setattr(loop, "evaluate_side_by_side", counting)
    config = DQNConfig(**TINY_RUN).replace(eval_episodes=2, final_eval_episodes=7)
    train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    assert calls == [(2, 2)] * 5 + [(7, 7)]  # rows at 100, 200, ..., 600 env steps


def test_a_runs_evaluation_plays_the_episodes_evaluate_plays_one_after_another(tmp_path):
    # Side by side, one forward pass a step for all of them; the same episodes (episode i reset
    # with eval_seed + i) as dqn.evaluation.evaluate plays with the agent, one at a time.
    import gymnasium as gym

    from dqn.agent import DQNAgent
    from dqn.evaluation import evaluate
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN).replace(final_eval_episodes=7, eval_episodes=3)
    result = train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    agent = DQNAgent.load(tmp_path / "run")  # the final checkpoint: the agent at env step 600
    mean, std, returns = evaluate(agent, gym.make(config.env_id), 7, config.eval_seed)
    assert len(set(returns)) > 1  # episodes of different lengths: not all cut at one step
    final_std = float(read_metrics(tmp_path / "run")[-1]["eval_return_std"])
    assert (result.final_eval_mean, final_std) == (mean, std)


def test_env_kwargs_reach_every_env_a_run_makes(tmp_path):
    """gym.make's keywords (config key env_kwargs) for the training env, the evaluation env,
    a vector env, a population's envs, a resume and dqn-evaluate: episodes cut at 20 steps
    anywhere show that the keyword got there (CartPole-v1's own limit is 500)."""
    from dqn.cli import evaluate_main
    from dqn.loop import resume
    from dqn.population import train_population
    from tests.conftest import TINY_RUN

    config = DQNConfig(
        **TINY_RUN, learner="numpy", output_dir=str(tmp_path), env_kwargs={"max_episode_steps": 20}
    )
    cut = {"run": train(config, progress=False)}
    cut["vector"] = train(config.replace(num_envs=2), progress=False)
    [member] = train_population(config, [({}, 1)], out_dir=tmp_path / "pop", progress=False)
    cut["member"] = member
    for name, result in cut.items():
        rows = result.history
        assert np.nanmax([r["train_return_mean"] for r in rows]) <= 20, name  # training episodes
        assert np.nanmax([r["eval_return_mean"] for r in rows]) <= 20, name  # evaluation episodes
        assert 0 < result.summary["final_eval_mean"] <= 20, name
    run_dir = cut["run"].run_dir
    assert "env_kwargs:\n  max_episode_steps: 20\n" in (run_dir / "config.yaml").read_text()
    shutil.rmtree(sorted((run_dir / "checkpoints").iterdir())[-1])  # resume from step 400
    (run_dir / "summary.json").unlink()
    resumed = resume(run_dir, progress=False)
    assert np.nanmax([r["train_return_mean"] for r in resumed.history]) <= 20
    assert evaluate_main([str(run_dir), "--episodes", "5"]) == 0


def test_an_env_kwarg_the_env_does_not_take_is_refused_before_anything_is_written(tmp_path):
    from dqn.errors import ConfigError

    config = DQNConfig(output_dir=str(tmp_path), env_kwargs={"bogus": 1})
    for bad in (config, config.replace(num_envs=2)):
        with pytest.raises(ConfigError, match=r"env 'CartPole-v1' does not take env_kwargs") as e:
            train(bad, progress=False)
        assert "\n" not in str(e.value) and "bogus" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_an_n_step_longer_than_the_envs_time_limit_is_refused_before_anything_is_written(
    tmp_path,
):
    """The n - 1 steps before a time-limit cut are not stored (dqn.nstep), so with
    max_episode_steps < n_step no CartPole episode the limit cuts stores anything, and the first
    burst had an empty buffer to sample (a traceback, mid-run). n_step == the limit stores one
    transition an episode, and trains."""
    from dqn.compare import Variant, run_comparison
    from dqn.errors import ConfigError
    from dqn.population import train_population
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN, output_dir=str(tmp_path), learner="numpy", n_step=10)
    short = config.replace(env_kwargs={"max_episode_steps": 5})
    why = r"'n_step' must be <= the env's time limit \(max_episode_steps=5\), got 10"
    for call in (
        lambda: train(short, progress=False),
        lambda: train(short.replace(num_envs=2), progress=False),
        lambda: train_population(short, [({}, 0)], out_dir=tmp_path / "p", progress=False),
    ):
        with pytest.raises(ConfigError, match=why):
            call()
    # A member or a variant of its own n_step is named (members share their env_kwargs).
    limited = config.replace(n_step=5, env_kwargs={"max_episode_steps": 8})
    longer = r"config key 'n_step' must be <= the env's time limit \(max_episode_steps=8\), got 10"
    with pytest.raises(ConfigError, match="^member 'member1': " + longer):
        train_population(limited, [({}, 0), ({"n_step": 10}, 1)])
    variants = [Variant.parse("five:n_step=5"), Variant.parse("ten:n_step=10")]
    with pytest.raises(ConfigError, match="^variant 'ten': " + longer):
        run_comparison(limited, variants, [0], tmp_path / "study", progress=False)
    assert list(tmp_path.iterdir()) == []
    at_limit = config.replace(env_kwargs={"max_episode_steps": 10})
    assert train(at_limit, progress=False, log_tensorboard=False).agent.grad_steps > 0


class CutShort(gym.Env):
    """An env that cuts its own episodes (truncated, no TimeLimit) after 3 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, False, self.t >= 3, {}


def short_factory(**kwargs):
    # An entry point that puts its own time limit on the env (registered without one).
    return gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, 5)


def test_a_time_limit_an_env_factory_puts_on_is_checked_against_n_step_up_front(tmp_path):
    """Registered without max_episode_steps, an env whose entry point wraps it in a TimeLimit
    of 5 steps started, stored nothing with n_step 10 and stopped at its first burst, leaving
    a run folder behind: it is refused before anything is written, as a registered limit is."""
    from dqn.errors import ConfigError
    from tests.conftest import TINY_RUN, register_once

    env_id = register_once("DqnTestShortFactory-v0", short_factory)
    config = DQNConfig(**TINY_RUN, env_id=env_id, output_dir=str(tmp_path), n_step=10)
    why = r"'n_step' must be <= the env's time limit \(max_episode_steps=5\), got 10"
    with pytest.raises(ConfigError, match=why):
        train(config, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_burst_with_nothing_stored_is_a_one_line_config_error(tmp_path):
    """An env that truncates its own episodes before n_step steps (no time limit that
    check_n_step could read) stores nothing: the run and a population stop with one line
    naming n_step at the first burst, not with numpy's error from sampling an empty buffer.
    Before their first evaluation there, they keep nothing: their folders go too."""
    from dqn.errors import ConfigError
    from dqn.population import train_population
    from tests.conftest import TINY_RUN, register_once

    env_id = register_once("DqnTestCutShort-v0", CutShort)
    config = DQNConfig(**TINY_RUN, env_id=env_id, output_dir=str(tmp_path), n_step=5)
    config = config.replace(learner="numpy", eval_every_env_steps=200)
    why = r"^nothing is stored to learn from at env step 104, .* before n_step=5 steps"
    with pytest.raises(ConfigError, match=why):
        train(config, progress=False, log_tensorboard=False)
    with pytest.raises(ConfigError, match=why):
        train_population(config, [({}, 0)], out_dir=tmp_path / "p", progress=False)
    assert list(tmp_path.iterdir()) == []
    assert train(config.replace(n_step=3), progress=False).agent.grad_steps > 0


def test_a_metrics_row_keeps_the_largest_of_max_metrics_and_the_mean_of_the_others():
    from dqn.run_log import MetricWindow
    from dqn.step_metrics import METRIC_NAMES

    window = MetricWindow()
    for value in (1.0, 5.0, 3.0):  # three bursts between two rows
        window.add(np.full(len(METRIC_NAMES), value))
    row = dict(zip(METRIC_NAMES, window.pop()))
    assert row["q_abs_max"] == row["td_error_abs_max"] == 5.0
    assert row["loss"] == row["q_mean"] == 3.0
    assert window.pop() is None  # the window starts again empty


def test_a_metrics_rows_train_return_is_the_mean_of_the_last_ten_episodes():
    from dqn.run_log import metrics_row

    row = metrics_row(1_000, 10, [float(r) for r in range(20)], 0.1, 9.0, 1.0, None)
    assert row["train_return_mean"] == 14.5 and row["episodes"] == 20


def test_a_metrics_rows_epsilon_is_the_schedules_value_to_a_millionth():
    from dqn.run_log import metrics_row

    row = metrics_row(1_000, 10, [], 0.98765432, 9.0, 1.0, None)
    assert row["epsilon"] == pytest.approx(0.98765432, abs=1e-6)


def test_the_progress_bar_moves_by_the_steps_taken_and_ends_at_the_total(tmp_path, capsys):
    from dqn.run_log import METRICS_COLUMNS, RunLog
    from dqn.run_state import LoopState

    loop = LoopState(columns=list(METRICS_COLUMNS), obs=np.zeros((1, 4)))
    log = RunLog(tmp_path, loop, total=1000, progress=True, log_tensorboard=False)
    for step in range(1, 1001):  # the loop's calls: the bar moves every 250 steps
        log.advance_to(step, every=250)
        assert log._bar.n == step - step % 250
    log.close()
    capsys.readouterr()


def test_read_metrics_reads_an_empty_cell_as_nan_not_zero(tmp_path):
    from dqn.run_log import read_metrics

    (tmp_path / "metrics.csv").write_text("env_step,eval_return_mean\n100,\n200,9.5\n")
    columns = read_metrics(tmp_path / "metrics.csv")
    np.testing.assert_array_equal(columns["env_step"], [100.0, 200.0])
    np.testing.assert_array_equal(columns["eval_return_mean"], [np.nan, 9.5])


@pytest.mark.parametrize("ending", ["finished", "refused", "diverged", "second ctrl-c"])
def test_every_env_a_run_makes_is_closed_once_and_its_learner_stopped(
    tmp_path, monkeypatch, ending
):
    """However a run ends, the envs it made (its training env, its evaluation env) are closed
    once each, and its learner is stopped: a learner process held by the traceback of a second
    Ctrl-C would outlive the run in a notebook."""
    import dqn.loop
    from dqn.errors import CheckpointError, DivergenceError
    from dqn.numpy_learner import NumpyLearner
    from tests.conftest import TINY_RUN, count_closes

    made, closed = count_closes(monkeypatch, dqn.loop, "make_stepper")
    evals, eval_closed = count_closes(monkeypatch, dqn.loop, "config_env")
    stops = []
    monkeypatch.setattr(NumpyLearner, "stop", lambda self: stops.append(self))
    config = DQNConfig(**TINY_RUN, learner="numpy", output_dir=str(tmp_path))

    def ctrl_c(row, agent):
        raise KeyboardInterrupt

    run = lambda **kw: train(config, progress=False, log_tensorboard=False, **kw)  # noqa: E731
    if ending == "finished":
        run()
    elif ending == "refused":  # after the env is made, before the run folder
        with pytest.raises(CheckpointError, match="no run, checkpoint or agent folder"):
            run(init_from=tmp_path / "no-such-run")
    elif ending == "diverged":
        with pytest.raises(DivergenceError):
            train(config.replace(max_abs_q=1e-6), progress=False, log_tensorboard=False)
    else:
        with pytest.raises(KeyboardInterrupt):
            run(on_eval=ctrl_c)
    assert len(made) == 1 and closed == made
    assert len(eval_closed) == len(evals) and set(map(id, eval_closed)) == set(map(id, evals))
    assert len(stops) == (0 if ending == "refused" else 1)


def test_a_diverged_runs_summary_counts_the_seconds_it_trained(tmp_path):
    from dqn.errors import DivergenceError
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN, learner="numpy", max_abs_q=1e-6, output_dir=str(tmp_path))
    t0 = time.perf_counter()
    with pytest.raises(DivergenceError):
        train(config, progress=False, log_tensorboard=False)
    wall = time.perf_counter() - t0
    [run_dir] = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["diverged"] and 0 < summary["train_seconds"] < wall


def test_summary_json_is_strict_json_and_a_missing_evaluation_reads_back_as_nan(tmp_path):
    # A run the guard stopped before its first evaluation has no final one: null in the file
    # (jq and JavaScript refuse Python's bare NaN), NaN again for dqn's readers.
    import math

    from dqn.run_log import write_summary
    from dqn.run_state import LoopState, ended_summary

    config = DQNConfig()
    loop = LoopState(columns=[], obs=np.zeros((1, 4), np.float32))
    assert math.isnan(loop.eval_mean) and math.isnan(loop.eval_std)
    write_summary(tmp_path, config, loop, 1200, 475.0, None, "the loss is NaN")
    text = (tmp_path / "summary.json").read_text()
    written = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert written["final_eval_mean"] is None and written["final_eval_std"] is None
    assert written["first_solve_env_step"] is None and written["env_steps"] == 1200
    summary = ended_summary(tmp_path, config.total_env_steps)  # diverged: it has ended
    assert math.isnan(summary["final_eval_mean"]) and math.isnan(summary["final_eval_std"])


def test_train_seconds_is_the_final_checkpoints_so_a_run_finished_from_it_says_the_same(
    tmp_path, monkeypatch
):
    # The last checkpoint's write is not training time: a run killed after its final checkpoint
    # and before its summary, finished by resume, wrote a train_seconds that also counted the
    # resume's own time; a population's member never counted that write.
    from dqn import checkpoint
    from dqn.loop import resume
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN)
    write = checkpoint.write_checkpoint

    def slow_final_write(run_dir, env_step, *args, **kwargs):  # 0.3 s that no one may count
        written = write(run_dir, env_step, *args, **kwargs)
        if env_step == config.total_env_steps:
            time.sleep(0.3)
        return written

    monkeypatch.setattr(checkpoint, "write_checkpoint", slow_final_write)
    run = tmp_path / "run"
    train(config, run_dir=run, progress=False, log_tensorboard=False)
    summary = (run / "summary.json").read_text()
    (run / "summary.json").unlink()
    time.sleep(0.3)  # and none of the resume's either
    finished = resume(run, progress=False).train_seconds
    assert round(finished, 3) == json.loads(summary)["train_seconds"]
    assert (run / "summary.json").read_text() == summary


def _one_point_env(**kwargs):
    import gymnasium as gym
    import numpy as np

    class OnePoint(gym.Env):
        """Every episode: one step, reward 1, whatever the action (a return of exactly 1)."""

        observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), 1.0, True, False, {}

    return OnePoint()


def test_an_evaluation_mean_equal_to_solve_return_counts_as_solved(tmp_path):
    # "solved" is a mean of at least solve_return (CartPole-v1: 475; 500 is its maximum).
    from dqn import train
    from tests.conftest import TINY_RUN, register_once

    env_id = register_once("DqnTestOnePoint-v0", _one_point_env)
    config = DQNConfig(
        **{**TINY_RUN, "n_step": 1}, env_id=env_id, solve_return=1.0, output_dir=str(tmp_path)
    )
    result = train(config, progress=False, log_tensorboard=False)
    assert result.first_solve_env_step == config.eval_every_env_steps


def test_a_rows_epsilon_is_the_schedules_at_the_env_step_it_reached(tmp_path):
    # One env: the loop step that reached env step s acted with the schedule's value at s (its
    # first env step), here 1 - s / 600 over the whole run, not the value at s - 1.
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN).replace(
        epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_fraction=1.0
    )
    train(config, run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    rows = read_metrics(tmp_path / "run")
    assert [int(r["env_step"]) for r in rows] == [100, 200, 300, 400, 500, 600]
    for row in rows:
        assert float(row["epsilon"]) == pytest.approx(1 - int(row["env_step"]) / 600, abs=1e-6)


def test_the_probe_batch_is_drawn_once_and_kept_in_every_later_checkpoint(tmp_path):
    # docs/metrics.md: the probe is drawn at the first row after learning starts (here 200, of
    # 200 transitions) and is the same batch in every later row, not a new draw from the
    # grown replay.
    from tests.conftest import TINY_RUN

    train(DQNConfig(**TINY_RUN), run_dir=tmp_path / "run", progress=False, log_tensorboard=False)
    probes = []
    for step in (200, 400, 600):
        folder = tmp_path / "run" / "checkpoints" / f"step-{step:09d}"
        with np.load(folder / "loop.npz") as saved:
            probes.append({k: saved[k] for k in saved.files if k.startswith("probe.")})
    assert sorted(probes[0]) == [f"probe.{k}" for k in sorted(Batch._fields)]
    for later in probes[1:]:
        for name, value in probes[0].items():
            np.testing.assert_array_equal(later[name], value, err_msg=name)
    # Drawn from the first 200 transitions only: states of the first 200 env steps.
    with np.load(tmp_path / "run" / "checkpoints" / "step-000000200" / "replay.npz") as replay:
        stored = {row.tobytes() for row in replay["obs"]}
    assert all(row.tobytes() in stored for row in probes[2]["probe.obs"])


def test_a_signal_between_the_config_and_the_loop_takes_the_run_folder_back(tmp_path, monkeypatch):
    # Its folder (config.yaml, tb/) was neither new nor resumable: the same --run-dir and
    # --resume both refused it. A signal in the loop carries run_dir and keeps the run's files.
    from dqn import loop
    from tests.conftest import TINY_RUN

    def stopped(config, run_dir, *args):
        (run_dir / "tb").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_run", stopped)
    config = DQNConfig(**TINY_RUN, learner="numpy")
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=tmp_path / "made" / "run", progress=False)
    assert list(tmp_path.iterdir()) == []

    def in_the_loop(config, run_dir, *args):
        exc = KeyboardInterrupt()
        exc.run_dir = run_dir
        raise exc

    monkeypatch.setattr(loop, "_run", in_the_loop)
    with pytest.raises(KeyboardInterrupt):
        train(config, run_dir=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "config.yaml").is_file()
