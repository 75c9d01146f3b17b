"""train's on_eval: a function called after each evaluation, which may stop the run.

Stopping is an interruption like a signal's: a resumable checkpoint, and ``resume`` then takes
the run to the same bytes as a run never stopped. Watching (reading rows, saving the agent,
greedy actions) changes nothing in the run.
"""

import json

import numpy as np
import pytest

from dqn import DQNConfig, train
from dqn.errors import CheckpointWarning, ConfigError, InputError
from dqn.loop import check_on_eval, resume
from tests.conftest import TINY_RUN  # 600 env steps, an evaluation every 100

CONFIG = DQNConfig(**TINY_RUN, learner="numpy")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The run as it goes with no on_eval."""
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    train(CONFIG, run_dir=run_dir, progress=False, log_tensorboard=False)
    return run_dir


def test_watching_every_evaluation_leaves_the_run_as_it_was(plain, tmp_path):
    seen = []

    def watch(row, agent):
        seen.append(row)
        agent.save(tmp_path / "latest")  # a "keep the newest agent" callback
        agent.act(np.zeros(agent.obs_dim, np.float32))  # greedy: draws nothing
        row["eval_return_mean"] = -1.0  # the function's copy, not the run's

    result = train(
        CONFIG, run_dir=tmp_path / "run", progress=False, on_eval=watch, log_tensorboard=False
    )
    assert [r["env_step"] for r in seen] == [100, 200, 300, 400, 500, 600]
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == (plain / "metrics.csv").read_bytes()
    assert result.history[-1]["eval_return_mean"] != -1.0
    assert not result.interrupted and result.summary["stopped_by_on_eval"] is False
    assert (tmp_path / "latest" / "online.keras").is_file()


@pytest.mark.parametrize("stop", [False, np.False_])
def test_false_stops_the_run_at_a_checkpoint_and_resume_ends_it_as_if_never_stopped(
    plain, tmp_path, stop
):
    run_dir = tmp_path / "run"
    result = train(
        CONFIG,
        run_dir=run_dir,
        progress=False,
        log_tensorboard=False,
        on_eval=lambda row, agent: stop if row["env_step"] == 300 else None,
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result.interrupted and result.stop_signal is None
    assert summary["interrupted"] and summary["stopped_by_on_eval"] is True
    assert summary["env_steps"] == 300 == result.history[-1]["env_step"]
    assert (run_dir / "checkpoints" / "step-000000300").is_dir()  # not a multiple of 200

    finished = resume(run_dir, progress=False, log_tensorboard=False)
    assert not finished.interrupted and finished.summary["stopped_by_on_eval"] is False
    assert (run_dir / "metrics.csv").read_bytes() == (plain / "metrics.csv").read_bytes()


def test_false_at_the_final_evaluation_leaves_the_run_finished(tmp_path):
    result = train(
        CONFIG,
        run_dir=tmp_path / "run",
        progress=False,
        log_tensorboard=False,
        on_eval=lambda row, agent: row["env_step"] < 600,
    )
    assert not result.interrupted and result.summary["env_steps"] == 600


@pytest.mark.parametrize("answer", [0, 1, "stop", [False]])
def test_an_answer_other_than_a_bool_or_none_is_refused_in_one_line(tmp_path, answer):
    with pytest.raises(InputError, match=r"on_eval returned .*: it returns False to stop"):
        train(
            CONFIG,
            run_dir=tmp_path / "run",
            progress=False,
            log_tensorboard=False,
            on_eval=lambda row, agent: answer,
        )
    # At the first evaluation, before the first checkpoint: metrics.csv holds its row.
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 2


def test_an_on_eval_that_is_not_a_function_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match="on_eval must be a function of .row, agent., got dict"):
        train(CONFIG, run_dir=tmp_path / "run", on_eval={"stop": True})
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="on_eval must be a function"):
        resume(tmp_path / "run", on_eval=1)
    # One argument where two are passed: refused now, not at the first evaluation.
    with pytest.raises(InputError, match="a function of two arguments .row, agent."):
        train(CONFIG, run_dir=tmp_path / "run", on_eval=lambda row: None)
    assert not (tmp_path / "run").exists()
    train_fine = [lambda row, agent: None, lambda *args: None, lambda row, agent, extra=0: None]
    for on_eval in train_fine:
        check_on_eval(on_eval)


def test_a_run_that_failed_before_its_first_checkpoint_is_not_sent_to_resume(tmp_path, monkeypatch):
    import dqn.checkpoint

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dqn.checkpoint, "write_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(CONFIG, run_dir=tmp_path / "run", progress=False)
    monkeypatch.undo()
    # Its folder holds config.yaml and metrics.csv but no checkpoint: resume has nothing to
    # take, so the refusal says to delete it, not to resume it.
    with pytest.raises(ConfigError, match="holds no checkpoint to continue from: delete it"):
        train(CONFIG, run_dir=tmp_path / "run", progress=False)


def test_a_run_killed_before_its_config_yaml_is_not_sent_to_resume(tmp_path):
    """Killed between taking its .lock and writing config.yaml (or during that write), a run
    leaves hidden files only: the refusal sent the user to --resume, which refused it too."""
    from dqn.checkpoint import check_new_folder

    for leftovers in ([".lock"], [".lock", ".config.yaml.x1y2.tmp"]):
        folder = tmp_path / f"run{len(leftovers)}"
        folder.mkdir()
        for name in leftovers:
            (folder / name).write_text("")
        with pytest.raises(ConfigError, match="holds no checkpoint to continue from: delete it"):
            check_new_folder(folder)
    project = tmp_path / "project"  # a folder of the user's own: not called one to delete
    (project / ".git").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is not empty: give a new folder") as refused:
        check_new_folder(project)
    assert "delete it" not in str(refused.value)
    # A population with its step marker has a checkpoint: named to resume, not to delete.
    from dqn.population_files import POPULATION_FILE, STEP_FILE

    population = tmp_path / "population"
    population.mkdir()
    for name in (POPULATION_FILE, STEP_FILE):
        (population / name).write_text("{}")
    with pytest.raises(ConfigError, match="is not empty: give a new folder") as refused:
        check_new_folder(population, resume="dqn.population.resume_population(folder)")
    assert "delete it" not in str(refused.value)
    assert "resume_population(folder)" in str(refused.value)


def test_an_error_in_on_eval_keeps_the_run_at_a_checkpoint_that_resumes_it_exactly(plain, tmp_path):
    # Checkpoints every 200 env steps; the error comes at the evaluation of step 300, whose
    # 100 steps would otherwise be lost with the caller's bug.
    def broken(row, agent):
        if row["env_step"] == 300:
            raise KeyError("a bug in the caller's function")

    run_dir = tmp_path / "run"
    with pytest.raises(KeyError) as error:
        train(CONFIG, run_dir=run_dir, progress=False, log_tensorboard=False, on_eval=broken)
    assert error.value.__notes__ == [
        f"the run was checkpointed at env step 300 before this error: "
        f"dqn.loop.resume({str(run_dir)!r}) continues it"
    ]
    assert (run_dir / "checkpoints" / "step-000000300").is_dir()
    resume(run_dir, progress=False, log_tensorboard=False)
    assert (run_dir / "metrics.csv").read_bytes() == (plain / "metrics.csv").read_bytes()


def init(seed):
    import keras

    return keras.initializers.GlorotUniform(seed=seed)


def sequential_net(obs_dim, n_actions):
    import keras

    return keras.Sequential(
        [
            keras.Input((obs_dim,)),
            keras.layers.Dense(16, "tanh", kernel_initializer=init(1), name="hidden"),
            keras.layers.Dense(n_actions, kernel_initializer=init(2), name="q"),
        ]
    )


def nested_net(obs_dim, n_actions):
    import keras

    body = keras.Sequential(
        [keras.layers.Dense(16, "tanh", kernel_initializer=init(1), name="hidden")], name="body"
    )
    obs = keras.Input((obs_dim,))
    return keras.Model(
        obs, keras.layers.Dense(n_actions, kernel_initializer=init(2), name="q")(body(obs))
    )


@pytest.mark.parametrize(
    "network_fn, layers",
    [(sequential_net, ["hidden", "q"]), (nested_net, ["body", "q"])],
    ids=["sequential", "nested"],
)
def test_a_run_of_a_keras_network_fn_resumes_as_if_never_stopped(network_fn, layers, tmp_path):
    # A fresh Sequential's variables are named "sequential/hidden/...", the one a checkpoint
    # loads "hidden/..." (and a model nested in another alike): the resume's metrics.csv rows
    # did not fit the run's columns (a ValueError traceback) until the columns were named by
    # the top-level layers, whose names a save and load keep.
    kwargs = dict(progress=False, log_tensorboard=False, network_fn=network_fn)
    config = CONFIG.replace(learner="tensorflow")  # numpy's takes a chain of Dense layers only
    train(config, run_dir=tmp_path / "plain", **kwargs)
    header = (tmp_path / "plain" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c.startswith("grad_norm/")] == [f"grad_norm/{n}" for n in layers]
    stopped = train(
        config,
        run_dir=tmp_path / "run",
        on_eval=lambda row, agent: False if row["env_step"] == 300 else None,
        **kwargs,
    )
    assert stopped.interrupted
    # config.yaml's comment names the network_fn's network, and a resume that writes a lost
    # config.yaml again from the checkpoint writes that comment too.
    config_yaml = (tmp_path / "plain" / "config.yaml").read_text()
    assert config_yaml.startswith("# The Q-network was built by a network_fn (")
    (tmp_path / "run" / "config.yaml").unlink()
    with pytest.warns(CheckpointWarning, match="has no config.yaml: written again"):
        resume(tmp_path / "run", progress=False, log_tensorboard=False)
    assert (tmp_path / "run" / "config.yaml").read_text() == config_yaml
    assert (tmp_path / "run" / "metrics.csv").read_bytes() == (
        tmp_path / "plain" / "metrics.csv"
    ).read_bytes()


def test_a_run_whose_columns_the_loaded_network_does_not_write_is_refused_untouched(
    tmp_path, monkeypatch
):
    # As a run an earlier dqn wrote for a Sequential network_fn ("grad_norm/sequential"):
    # here the loaded network names one layer more than the run's metrics.csv has.
    from dqn.agent import DQNAgent
    from dqn.errors import CheckpointError

    run_dir = tmp_path / "run"
    train(
        CONFIG,
        run_dir=run_dir,
        progress=False,
        log_tensorboard=False,
        on_eval=lambda row, agent: False if row["env_step"] == 300 else None,
    )
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    names = DQNAgent.diagnostic_names
    monkeypatch.setattr(DQNAgent, "diagnostic_names", lambda self: [*names(self), "grad_norm/x"])
    with pytest.raises(CheckpointError, match="has no column grad_norm/x that the loaded"):
        resume(run_dir, progress=False, log_tensorboard=False)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_metrics_csv_holds_each_row_by_the_time_on_eval_gets_it(tmp_path):
    # A user watching a run (tail -f, a notebook reading metrics.csv) sees each row as it comes.
    rows_on_disk = []

    def count(row, agent):
        text = (tmp_path / "run" / "metrics.csv").read_text()
        rows_on_disk.append(len(text.splitlines()) - 1)  # less the header

    train(CONFIG, run_dir=tmp_path / "run", progress=False, on_eval=count, log_tensorboard=False)
    assert rows_on_disk == list(range(1, len(rows_on_disk) + 1)) and len(rows_on_disk) > 1
