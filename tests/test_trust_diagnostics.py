"""scripts/trust_diagnostics.py refuses what it cannot read in one line, before TensorFlow."""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.conftest import refusal, run_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "trust_diagnostics.py"
RUN = '{"variant": "huber", "seed": 0, "final_eval_mean": 9.5, "diverged_at_env_step": null}'


def load_script():
    spec = importlib.util.spec_from_file_location("trust_diagnostics", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_runs(tmp_path, rows: dict) -> list:
    """A run folder per name (config.yaml of 5,000 env steps, metrics.csv of its rows: env_step,
    zero_grad_fraction, td_error_abs_p50, q_abs_max; q_mean 0), as the report reads them."""
    from dqn.config import DQNConfig

    runs = []
    for name, lines in rows.items():
        run = tmp_path / name / "run"
        run.mkdir(parents=True)
        DQNConfig(total_env_steps=5000).to_yaml(run / "config.yaml")
        text = "env_step,zero_grad_fraction,td_error_abs_p50,q_abs_max,q_mean\n"
        text += "".join(",".join(map(str, line)) + ",0\n" for line in lines)
        (run / "metrics.csv").write_text(text)
        runs.append(tmp_path / name)
    return runs


@pytest.mark.parametrize(
    "args, results, fragment",
    [
        (["missing"], "[]", "missing has no results.json"),
        (["study"], "[]", "study/results.json holds no runs"),
        (["study", "--episodes", "0"], "[]", "--episodes must be in [1, 1_000_000], got 0"),
        # dqn-evaluate's cap: a billion episodes was accepted, and its report left running.
        (
            ["study", "--episodes", "1000000000"],
            "[]",
            "--episodes must be in [1, 1_000_000], got 1000000000",
        ),
        (["study"], "{x", "cannot read study/results.json: Expecting property name"),
        (["study"], '[{"variant": "huber"}]', "study/results.json: run 1 has no 'seed'"),
        (["study"], '{"variant": "huber"}', "study/results.json is not a list of runs"),
        (["study"], f"[{RUN}]", "study/results.json: run 1 has no run folder"),
        # Neither evaluated nor stopped by the guard: there is no final policy to read.
        (
            ["study"],
            f"[{RUN.replace('9.5', 'null')}]",
            "study/results.json: run 1 has no final evaluation",
        ),
    ],
)
def test_what_it_cannot_read_is_one_line_and_exit_2(
    args, results, fragment, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "results.json").write_text(results)
    script = load_script()
    # Refused before the report (and TensorFlow) starts; were it not, the test fails, not hangs.
    monkeypatch.setattr(script, "report", lambda *a: pytest.fail("not refused: the report ran"))
    assert script.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"trust_diagnostics.py: error: {fragment}"), err


def test_an_episode_count_that_is_no_number_is_one_line_from_the_command_line(tmp_path):
    assert refusal(run_script("trust_diagnostics.py", tmp_path, "--episodes", "abc")) == (
        "trust_diagnostics.py: error: argument --episodes: invalid int value: 'abc' "
        "(see trust_diagnostics.py --help)"
    )


def test_gradient_starvation_reads_the_first_row_and_the_runs_that_reached_the_end(tmp_path):

    # Four runs: two reached total_env_steps = 5,000; two stopped at 2,500 (left out of the
    # end's medians, counted in the first evaluation's).
    rows = {
        "a": [(2500, 0.9, 7.0, 20.0), (5000, 0.8, 8.0, 21.0)],
        "b": [(2500, 0.5, 1.0, 30.0), (5000, 0.4, 10.0, 25.0)],
        "c": [(2500, 0.7, 50.0, 900.0)],
        # Evaluated before its first gradient step: that row has no fraction, the next one counts.
        "d": [(1000, "", "", ""), (2500, 0.6, 5.0, 10.0)],
    }
    runs = write_runs(tmp_path, rows)
    script = load_script()
    assert script.gradient_starvation(*script.read_variant(runs)) == (
        "median zero-grad fraction at the first evaluation 0.650 (4 runs); at env step 5,000 "
        "(2 runs): median |TD error| 9.0, median max |Q| 23.0"
    )


def test_q_propagation_of_a_study_too_short_for_its_steps_says_so():
    # Under 10k env steps it printed "median mean Q ; runs whose ...", an empty list.
    import numpy as np

    from dqn.config import DQNConfig

    metrics = [{"env_step": np.array([2500.0, 5000.0]), "q_mean": np.array([3.0, 120.0])}]
    assert load_script().q_propagation(DQNConfig(total_env_steps=5000), metrics) == (
        "median mean Q at 10k, 25k, 50k: no run reached them; runs whose mean Q exceeded "
        "1/(1-gamma) = 100: 1 of 1"
    )


class AlwaysLeft:
    def act(self, obs):
        return 0


def test_episode_ends_are_counted_on_the_runs_own_env_and_evaluation_seeds():
    """Pushing left ends a CartPole episode with the pole down within ~10 steps; a run whose
    env_kwargs cut episodes at 5 steps sees only time limits. The script made a plain
    CartPole-v1, whatever the run trained on."""
    from dqn.config import DQNConfig

    script = load_script()
    plain = script.episode_ends(AlwaysLeft(), DQNConfig(), 3)
    assert plain == {"cart": 0, "pole": 3, "time limit": 0}
    short = DQNConfig(env_kwargs={"max_episode_steps": 5}, n_step=1)
    assert script.episode_ends(AlwaysLeft(), short, 3) == {"cart": 0, "pole": 0, "time limit": 3}


def test_a_study_on_another_env_is_refused_in_one_line(tmp_path):
    from dqn.config import DQNConfig
    from dqn.errors import DQNError

    run = tmp_path / "runs" / "huber-seed0"
    (run / "run").mkdir(parents=True)
    DQNConfig(env_id="Acrobot-v1").to_yaml(run / "run" / "config.yaml")
    with pytest.raises(DQNError, match="trained on Acrobot-v1: this report reads CartPole-v1"):
        load_script().read_variant([run])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "has no column 'env_step'"),  # an empty file
        ("env_step,q_mean\n2500,1.0\n", "has no column 'q_abs_max'"),
        (
            "env_step,q_abs_max,q_mean,td_error_abs_p50,zero_grad_fraction\nabc,1,1,1,0\n",
            ", line 2, cannot be read: could not convert",
        ),
        (
            "env_step,q_abs_max,q_mean,td_error_abs_p50,zero_grad_fraction\n2500,1,1,1\n",
            ", line 2, cannot be read: it does not have the header's cells",
        ),
        # Cut inside the header, or inside the last row's last number (0.55 read as 0.5).
        ("env_step,q_abs_max,q_mean,td_error_abs_p50,zero_grad_fraction,lo", "cut short"),
        ("env_step,q_abs_max,q_mean,td_error_abs_p50,zero_grad_fraction\n2500,1,1,1,0.5", "cut"),
    ],
)
def test_a_runs_damaged_metrics_is_named_not_a_traceback(text, fragment, tmp_path):
    # A KeyError, ValueError or TypeError deep in the report before: exit 1 and a traceback.
    from dqn.errors import DQNError

    path = tmp_path / "metrics.csv"
    path.write_text(text)
    with pytest.raises(DQNError, match=f"^{re.escape(str(path))}.*{fragment}"):
        load_script()._metrics(path)


def test_a_metrics_csv_cut_inside_its_header_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    """It read as a run of no rows: "no gradient diagnostics", exit 0."""
    monkeypatch.chdir(tmp_path)
    write_runs(tmp_path / "study" / "runs", {"huber-seed0": [(5000, 0.5, 1.0, 2.0)]})
    (tmp_path / "study" / "results.json").write_text(f"[{RUN.replace('9.5', '500.0')}]")
    metrics = Path("study/runs/huber-seed0/run/metrics.csv")
    metrics.write_text(metrics.read_text().splitlines()[0][:-3])  # as `head -c` cuts it
    assert load_script().main(["study"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"trust_diagnostics.py: error: {metrics} is cut short: its last line has no end"
    ]


def test_runs_trained_without_diagnostics_say_so_rather_than_nan(tmp_path):
    from dqn.config import DQNConfig

    run = tmp_path / "a" / "run"
    run.mkdir(parents=True)
    config = DQNConfig(total_env_steps=5000, diagnostics=False)
    config.to_yaml(run / "config.yaml")
    text = "env_step,zero_grad_fraction,td_error_abs_p50,q_abs_max,q_mean\n2500,,,3.0,1.0\n"
    (run / "metrics.csv").write_text(text)
    script = load_script()
    assert script.gradient_starvation(*script.read_variant([tmp_path / "a"])) == (
        "no gradient diagnostics (runs trained with diagnostics: false, or stopped before a "
        "gradient step)"
    )


def test_a_run_without_checkpoints_is_refused_before_a_line_of_the_report(
    tmp_path, capsys, monkeypatch
):
    """The report printed the variants before it, then the error: a partial report, exit 2."""

    monkeypatch.chdir(tmp_path)
    rows = []
    for variant, final in (("huber", 500.0), ("l2", 9.5)):  # l2's run is below the threshold
        write_runs(tmp_path / "study" / "runs", {f"{variant}-seed0": [(5000, 0.5, 1.0, 2.0)]})
        rows.append(RUN.replace('"huber"', f'"{variant}"').replace("9.5", str(final)))
    (tmp_path / "study" / "results.json").write_text(f"[{', '.join(rows)}]")
    assert load_script().main(["study"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    err = err.strip().splitlines()
    assert len(err) == 1 and "l2-seed0" in err[0], err


def test_gradient_starvation_takes_the_first_fraction_and_the_finished_runs_ends(tmp_path):

    # The first fractions (0.9, 0.8, 0.7) and the last (0.1, 0.2, 0.7) have medians 0.8 and
    # 0.2; the finished runs' TD errors (2, 4) and all runs' (2, 4, 100) have 3 and 4.
    rows = {
        "a": [(2500, 0.9, 1.0, 1.0), (5000, 0.1, 2.0, 3.0)],
        "b": [(2500, 0.8, 1.0, 1.0), (5000, 0.2, 4.0, 5.0)],
        "c": [(2500, 0.7, 100.0, 200.0)],  # stopped before total_env_steps
    }
    runs = write_runs(tmp_path, rows)
    script = load_script()
    assert script.gradient_starvation(*script.read_variant(runs)) == (
        "median zero-grad fraction at the first evaluation 0.800 (3 runs); at env step 5,000 "
        "(2 runs): median |TD error| 3.0, median max |Q| 4.0"
    )


def test_q_propagation_gives_the_median_over_runs_the_syncs_so_far_and_the_runs_over_100():
    import numpy as np

    from dqn.config import DQNConfig

    # One sync per 500 env steps once learning starts at 2,000 (4 bursts' worth): k = 16, 46
    # and 96 at 10k, 25k and 50k. Only the first run's mean Q passes 1/(1 - 0.99) = 100.
    config = DQNConfig(train_every_env_steps=500, learning_starts_env_steps=2000)
    steps = np.array([10_000.0, 25_000.0, 50_000.0])
    metrics = [
        {"env_step": steps, "q_mean": np.array(q)}
        for q in ([10.0, 40.0, 150.0], [20.0, 60.0, 90.0], [30.0, 50.0, 70.0])
    ]
    after = {k: 100 * (1 - 0.99**k) for k in (16, 46, 96)}
    assert load_script().q_propagation(config, metrics) == (
        f"median mean Q 10k: 20.0 (after 16 syncs {after[16]:.1f}); "
        f"25k: 50.0 (after 46 syncs {after[46]:.1f}); "
        f"50k: 90.0 (after 96 syncs {after[96]:.1f}); "
        "runs whose mean Q exceeded 1/(1-gamma) = 100: 1 of 3"
    )


def test_the_report_replays_each_run_below_the_threshold_and_adds_their_episode_ends(
    tmp_path, capsys, monkeypatch
):
    from dqn import DQNAgent

    monkeypatch.chdir(tmp_path)
    # CartPole-v1 is solved at 475: a run at exactly 475 solved it, one stopped by the guard
    # has no policy worth replaying; the other three are replayed, each ending (1, 2, 3).
    runs = [("huber", 0, 475.0, None), ("huber", 1, 100.0, None), ("huber", 2, None, 3000)]
    runs += [("huber", 3, 200.0, None), ("l2", 0, 50.0, None)]
    rows = []
    for variant, seed, final, diverged in runs:
        write_runs(tmp_path / "study" / "runs", {f"{variant}-seed{seed}": [(5000, 0.5, 1.0, 2.0)]})
        keys = ("variant", "seed", "final_eval_mean", "diverged_at_env_step")
        rows.append(dict(zip(keys, (variant, seed, final, diverged))))
    (tmp_path / "study" / "results.json").write_text(json.dumps(rows))
    script = load_script()
    monkeypatch.setattr(DQNAgent, "load", staticmethod(lambda path: path))
    monkeypatch.setattr(
        script, "episode_ends", lambda agent, config, n: {"cart": 1, "pole": 2, "time limit": 3}
    )
    assert script.main(["study"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(";")[0] for line in out if line.startswith("    ")] == [
        "    seed 1: final eval 100.0",
        "    seed 3: final eval 200.0",
        "    seed 0: final eval 50.0",
    ]
    assert out[-1].endswith("episode ends: {'cart': 3, 'pole': 6, 'time limit': 9}")
