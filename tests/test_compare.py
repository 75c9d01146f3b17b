"""The loss comparison: variants, a smoke run writing every output, resume, reproducibility."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from dqn.compare import RESULT_COLUMNS, Variant, run_comparison, summarize_run
from dqn.config import DQNConfig
from dqn.errors import CheckpointError, ConfigError
from dqn.population_files import read_population

TINY = DQNConfig(
    total_env_steps=2000,
    learning_starts_env_steps=500,
    eval_every_env_steps=1000,
    eval_episodes=3,
    hidden_sizes=(16, 16),
    train_every_env_steps=50,
    gradient_steps_per_train=10,
    target_update_every_grad_steps=20,
)
OUTPUTS = (
    "results.csv",
    "results.json",
    "summary.md",
    "learning_curves.png",
    "zero_grad_fraction.png",
    "td_error_quantiles.png",
    "dead_units.png",
)


def test_variant_parsing():
    assert Variant.parse("huber") == Variant("huber", (("loss", "huber"),))
    v = Variant.parse("l2+clip:loss=l2,max_grad_norm=10")
    assert v.label == "l2+clip" and dict(v.overrides) == {"loss": "l2", "max_grad_norm": 10}
    assert v.config(TINY, seed=4).max_grad_norm == 10 and v.config(TINY, 4).seed == 4
    with pytest.raises(ConfigError, match="unknown loss 'hubre'"):
        Variant.parse("hubre").config(TINY, 0)


def test_summarize_run_on_hand_made_rows():
    rows = [
        {
            "eval_return_mean": 10.0,
            "zero_grad_fraction": float("nan"),
            "over_bound_fraction": float("nan"),
            "q_abs_max": float("nan"),
        },
        {
            "eval_return_mean": 60.0,  # above the last: the final evaluation is the last one
            "zero_grad_fraction": 0.5,
            "over_bound_fraction": 0.5,
            "q_abs_max": 7.0,
        },
        {
            "eval_return_mean": 50.0,
            "zero_grad_fraction": 0.1,
            "over_bound_fraction": 0.3,
            "q_abs_max": 9.0,
        },
    ]
    s = summarize_run(rows, first_solve=None)
    assert s["final_eval_mean"] == 50.0 and s["eval_auc"] == 40.0
    assert s["zero_grad_fraction_mean"] == pytest.approx(0.3)
    assert s["q_abs_max"] == 9.0 and s["first_solve_env_step"] is None


def test_summarize_run_means_each_fraction_over_its_own_column_and_takes_the_largest_q():
    # over_bound_fraction_mean is the NaN-skipping mean of its own column, not of the
    # zero-gradient one; q_abs_max is the largest |Q| of the whole run, not the last row's.
    nan = float("nan")
    rows = [
        {
            "eval_return_mean": 1.0,
            "zero_grad_fraction": 0.0,
            "over_bound_fraction": 0.9,
            "q_abs_max": 30.0,
        },
        {
            "eval_return_mean": 2.0,
            "zero_grad_fraction": 0.2,
            "over_bound_fraction": nan,
            "q_abs_max": 4.0,
        },
        {
            "eval_return_mean": 3.0,
            "zero_grad_fraction": 0.4,
            "over_bound_fraction": 0.5,
            "q_abs_max": 5.0,
        },
    ]
    s = summarize_run(rows, first_solve=700)
    assert s["over_bound_fraction_mean"] == pytest.approx((0.9 + 0.5) / 2)
    assert s["zero_grad_fraction_mean"] == pytest.approx((0.0 + 0.2 + 0.4) / 3)
    assert s["q_abs_max"] == 30.0 and s["first_solve_env_step"] == 700


def _ended_run(run: Path, rows: str, summary: dict) -> Path:
    """A run folder of metrics.csv ``rows`` (env_step, eval_return_mean, zero_grad_fraction,
    over_bound_fraction, q_abs_max) and ``summary``, as a study's row reads it."""
    run.mkdir()
    header = "env_step,eval_return_mean,zero_grad_fraction,over_bound_fraction,q_abs_max\n"
    (run / "metrics.csv").write_text(header + rows)
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_the_row_of_a_diverged_run_says_where_it_stopped(tmp_path):
    from dqn.study_runs import _ended_row

    summary = {"env_steps": 1234, "diverged": "diverged at env step 1234: q_abs_max 1e+05"}
    summary |= {"interrupted": False, "first_solve_env_step": None, "train_seconds": 3.0}
    run = _ended_run(tmp_path / "run", "1000,20.0,0.5,0.5,30.0\n", summary)
    row = _ended_row(TINY, "huber", run)
    assert row["diverged_at_env_step"] == 1234 and row["final_eval_mean"] == 20.0
    (run / "summary.json").write_text(json.dumps(summary | {"diverged": None}))
    assert (
        _ended_row(TINY.replace(total_env_steps=1234), "huber", run)["diverged_at_env_step"] is None
    )


def test_a_runs_row_holds_its_whole_evaluation_curve(tmp_path):
    # The curve of results.json: every evaluation of metrics.csv as [env_step, mean], the
    # first one too; final_eval_mean is the last, eval_auc the mean of all.
    from dqn.study_runs import _ended_row

    summary = {"env_steps": 1500, "diverged": None, "interrupted": False}
    summary |= {"first_solve_env_step": 1500, "train_seconds": 3.14159}
    rows = "500,10.0,0.1,0.0,3.0\n1000,20.0,0.3,0.2,4.0\n1500,60.0,0.2,0.1,5.0\n"
    run = _ended_run(tmp_path / "run", rows, summary)
    config = TINY.replace(total_env_steps=1500, loss="l2", seed=4)
    row = _ended_row(config, "l2-variant", run)
    assert row["curve"] == [[500, 10.0], [1000, 20.0], [1500, 60.0]]
    assert (row["variant"], row["loss"], row["seed"]) == ("l2-variant", "l2", 4)
    assert row["final_eval_mean"] == 60.0 and row["eval_auc"] == 30.0
    assert row["first_solve_env_step"] == 1500 and row["train_seconds"] == 3.14


@pytest.mark.slow
def test_smoke_comparison_writes_every_output_and_resumes(tmp_path):
    variants = [Variant.parse("huber"), Variant.parse("clipped_delta")]
    rows = run_comparison(TINY, variants, [0, 1], tmp_path, workers=2, progress=False)
    assert [(r["variant"], r["seed"]) for r in rows] == [
        ("huber", 0),
        ("huber", 1),
        ("clipped_delta", 0),
        ("clipped_delta", 1),
    ]
    for name in OUTPUTS:
        assert (tmp_path / name).is_file(), name
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == list(RESULT_COLUMNS)
    assert "P(huber > clipped_delta)" in (tmp_path / "summary.md").read_text()

    # In one chunk, a run's result.json and summary.json were deleted, its sibling's kept (no
    # kill leaves this: a worker writes result.json files after all summaries): that run alone
    # is trained again, afresh. The other chunk was killed after its final checkpoint (the
    # window before the summaries): both lost their result.json and one its summary.json.
    chunks = sorted(
        sorted(d.parent.name for d in read_population(folder)[1])
        for folder in (tmp_path / "populations").iterdir()
    )
    assert chunks == [
        ["clipped_delta-seed0", "huber-seed0"],
        ["clipped_delta-seed1", "huber-seed1"],
    ]
    runs = tmp_path / "runs"
    finished = runs / "huber-seed1" / "result.json"
    before = finished.stat().st_mtime_ns
    lost = runs / "clipped_delta-seed1" / "result.json"
    lost_row = json.loads(lost.read_text())
    lost.unlink()
    (lost.parent / "run" / "summary.json").unlink()
    for name in ("huber-seed0", "clipped_delta-seed0"):
        (runs / name / "result.json").unlink()
    (runs / "huber-seed0" / "run" / "summary.json").unlink()
    manifests = {
        m: m.stat().st_mtime_ns for m in runs.glob("*seed0/run/checkpoints/*/manifest.json")
    }
    again = run_comparison(TINY, variants, [0, 1], tmp_path, workers=1, progress=False)
    assert finished.stat().st_mtime_ns == before  # not redone
    assert lost.is_file()  # redone
    redone = again[3]
    # Reproducible: the re-run of (clipped_delta, 1) gives the same row but for its wall time.
    for key in RESULT_COLUMNS:
        if key != "train_seconds":
            assert redone[key] == lost_row[key], key
    # The other chunk was finished from its final checkpoint, not trained again: the same rows.
    assert [again[0], again[2]] == [rows[0], rows[2]]
    assert {m: m.stat().st_mtime_ns for m in manifests} == manifests


@pytest.mark.slow
def test_a_run_stopped_by_the_divergence_guard_is_recorded_not_fatal(tmp_path):
    # |Q| passes 0.5 within a few hundred updates: the guard stops that run; the comparison
    # records where, keeps the evaluations made before, and still writes every output.
    cfg = TINY.replace(max_abs_q=0.5, eval_every_env_steps=250)
    rows = run_comparison(cfg, [Variant.parse("l2")], [0], tmp_path, workers=1, progress=False)
    (row,) = rows
    assert row["diverged_at_env_step"] is not None
    assert row["diverged_at_env_step"] < cfg.total_env_steps
    for name in OUTPUTS:
        assert (tmp_path / name).is_file(), name
    assert "| l2 | 1 |" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_a_study_of_runs_that_share_a_program_and_runs_that_cannot_trains_both(tmp_path, capsys):
    # A vectorized run (num_envs > 1) cannot join a population: it trains in a process of its
    # own beside the study's populations. The bar said "2 runs in 1 population and 1 in
    # processes of their own", which reads as three runs.
    variants = [Variant.parse("huber"), Variant.parse("vec:num_envs=2")]
    cfg = TINY.replace(learning_starts_env_steps=600)
    rows = run_comparison(cfg, variants, [0], tmp_path, workers=1, progress=True)
    assert [(r["variant"], r["seed"]) for r in rows] == [("huber", 0), ("vec", 0)]
    assert all(np.isfinite(r["final_eval_mean"]) for r in rows)
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("2 runs: 1 in 1 population, 1 in processes of their own: "), first
    assert len(list((tmp_path / "populations").iterdir())) == 1
    assert (tmp_path / "runs" / "vec-seed0" / "run" / "summary.json").is_file()


def test_a_study_worker_does_not_load_the_report_and_its_statistics():
    # A worker process (dqn.study_runs) reads its runs' metrics.csv; the report, with
    # scipy.stats (0.75 s to import after TensorFlow), is the parent's, once per study.
    code = (
        "import sys, dqn.study_runs\n"
        "print([m for m in ('dqn.report', 'scipy.stats') if m in sys.modules])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_variants_file_keeps_its_order_and_overrides(tmp_path):
    from dqn.compare import read_variants_file

    path = tmp_path / "sweep.yaml"
    path.write_text(
        "# a sweep\nbase: {}\nsync16: {target_update_every_grad_steps: 16}\n"
        "double: {double_dqn: true, max_grad_norm: 10}\nempty:\n"
    )
    variants = read_variants_file(path)
    assert [v.label for v in variants] == ["base", "sync16", "double", "empty"]
    assert variants[0].config(TINY, 3) == TINY.replace(seed=3)
    assert variants[1].config(TINY, 0).target_update_every_grad_steps == 16
    assert (
        variants[2].config(TINY, 0).double_dqn and variants[2].config(TINY, 0).max_grad_norm == 10
    )
    assert variants[3].overrides == ()


def test_the_committed_sweep_file_builds_valid_configs():
    from dqn.compare import read_variants_file

    root = Path(__file__).resolve().parent.parent / "configs" / "sweeps"
    base = DQNConfig.from_yaml(root / "cartpole-trust-base.yaml")
    for variant in read_variants_file(root / "cartpole-trust.yaml"):
        variant.config(base, 0)  # raises ConfigError on a bad key or value


def test_the_figures_skip_a_variant_whose_runs_stopped_before_any_evaluation(tmp_path):
    # sync8 of the default-config sweep: every run hit the divergence guard at its first burst.
    from dqn.report import load_curves

    header = "env_step,eval_return_mean\n"
    for name, text in (("ok-seed0", header + "2500,20.0\n5000,40.0\n"), ("early-seed0", header)):
        (tmp_path / "runs" / name / "run").mkdir(parents=True)
        (tmp_path / "runs" / name / "run" / "metrics.csv").write_text(text)
    rows = [{"variant": "ok", "seed": 0}, {"variant": "early", "seed": 0}]
    curves = load_curves(tmp_path, rows)
    assert list(curves) == ["ok"]
    np.testing.assert_array_equal(curves["ok"][0]["eval_return_mean"], [20.0, 40.0])


def test_an_evaluated_run_without_its_metrics_file_is_named_when_the_figures_leave_it_out(
    tmp_path,
):
    # Deleted by hand: its curve was silently missing (one run's curve drawn as the variant's).
    from dqn.report import load_curves

    (tmp_path / "runs" / "ok-seed0" / "run").mkdir(parents=True)
    (tmp_path / "runs" / "ok-seed0" / "run" / "metrics.csv").write_text(
        "env_step,eval_return_mean\n2500,20.0\n"
    )
    rows = [result_row(variant="ok", seed=0), result_row(variant="ok", seed=1)]
    with pytest.warns(UserWarning, match=r"ok-seed1/run/metrics.csv is missing: the figures"):
        curves = load_curves(tmp_path, rows)
    assert len(curves["ok"]) == 1
    # A run stopped before its first evaluation has no curve to miss: no warning.
    never = result_row(variant="ok", seed=1, final_eval_mean=float("nan"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_curves(tmp_path, [rows[0], never])


# Three runs of variant "a", one value a run at every evaluation; seed 0 diverged after two of
# the four. Per run: (eval returns, zero-grad, td p50, p90, p99, dead, saturated fractions).
FIGURE_RUNS = {
    0: ([0.0, 0.0], 0.0, 1.0, 2.0, 3.0, 0.0, 0.0),
    1: ([10.0, 20.0, 30.0, 40.0], 0.1, 2.0, 4.0, 6.0, 0.1, 0.2),
    2: ([30.0, 40.0, 50.0, 60.0], 0.5, 10.0, 20.0, 30.0, 0.5, 0.7),
}
FIGURE_COLUMNS = [
    "zero_grad_fraction",
    "td_error_abs_p50",
    "td_error_abs_p90",
    "td_error_abs_p99",
    "dead_fraction/hidden_0",
    "saturated_fraction/hidden_1",
]


def drawn_figures(tmp_path, monkeypatch) -> dict:
    """{figure: (y scale, y axis bottom, {line label: (x, y)})} of plot_all over FIGURE_RUNS,
    the diverged run listed first."""
    import matplotlib.pyplot as plt

    import dqn.report as report

    rows = []
    for seed, (returns, *values) in FIGURE_RUNS.items():
        run = tmp_path / "runs" / f"a-seed{seed}" / "run"
        run.mkdir(parents=True)
        lines = ["env_step,eval_return_mean," + ",".join(FIGURE_COLUMNS)]
        lines += [
            f"{1000 * (k + 1)},{r}," + ",".join(map(str, values)) for k, r in enumerate(returns)
        ]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        stopped = 2000 if len(returns) < 4 else None
        rows.append(result_row(variant="a", seed=seed, diverged_at_env_step=stopped))
    figures = {}

    def record(fig, path):
        (ax,) = fig.axes
        lines = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.lines}
        figures[path.name] = (ax.get_yscale(), ax.get_ylim()[0], lines)
        plt.close(fig)
        return path

    monkeypatch.setattr(report, "_save", record)
    report.plot_all(tmp_path, rows)
    return figures


STEPS = [1000, 2000, 3000, 4000]
LABEL = "a (2 of 3 runs at the end)"


def test_runs_of_different_lengths_are_drawn_on_the_longest_run_s_steps(tmp_path, monkeypatch):
    # The run listed first diverged early: its steps were taken for all (a ValueError).
    figures = drawn_figures(tmp_path, monkeypatch)
    assert set(figures) == {
        "learning_curves.png",
        "zero_grad_fraction.png",
        "td_error_quantiles.png",
        "dead_units.png",
    }
    x, _ = figures["zero_grad_fraction.png"][2][LABEL]
    assert x == STEPS


def test_the_learning_curve_goes_on_past_the_last_evaluation_of_a_diverged_run(
    tmp_path, monkeypatch
):
    # Past 2000 the IQM is over the two runs left: with two runs, their mean.
    x, y = drawn_figures(tmp_path, monkeypatch)["learning_curves.png"][2][LABEL]
    assert x == STEPS
    assert y[2:] == pytest.approx([(30 + 50) / 2, (40 + 60) / 2])
    assert y[0] == pytest.approx((0 + 10 + 30) / 3)  # three runs: nothing trimmed


def test_the_zero_grad_and_td_error_figures_draw_the_median_over_seeds(tmp_path, monkeypatch):
    figures = drawn_figures(tmp_path, monkeypatch)
    # Seeds 0.0, 0.1, 0.5 at the first two evaluations (median 0.1, mean 0.2); then 0.1, 0.5.
    _, zero = figures["zero_grad_fraction.png"][2][LABEL]
    assert zero == pytest.approx([0.1, 0.1, 0.3, 0.3])
    _, p50 = figures["td_error_quantiles.png"][2][f"{LABEL} p50"]
    assert p50 == pytest.approx([2.0, 2.0, 6.0, 6.0])  # 1, 2, 10: mean 13/3
    _, p99 = figures["td_error_quantiles.png"][2][f"{LABEL} p99"]
    assert p99 == pytest.approx([6.0, 6.0, 18.0, 18.0])


def test_the_dead_units_figure_draws_the_mean_over_seeds_of_dead_and_saturated_units(
    tmp_path, monkeypatch
):
    lines = drawn_figures(tmp_path, monkeypatch)["dead_units.png"][2]
    assert set(lines) == {f"{LABEL} dead_fraction/hidden_0", f"{LABEL} saturated_fraction/hidden_1"}
    # Seeds 0.0, 0.1, 0.5 (mean 0.2, median 0.1); then 0.1, 0.5.
    assert lines[f"{LABEL} dead_fraction/hidden_0"][1] == pytest.approx([0.2, 0.2, 0.3, 0.3])
    # Seeds 0.0, 0.2, 0.7 (mean 0.3, median 0.2); then 0.2, 0.7.
    saturated = lines[f"{LABEL} saturated_fraction/hidden_1"][1]
    assert saturated == pytest.approx([0.3, 0.3, 0.45, 0.45])


def test_td_errors_are_drawn_on_a_log_scale_and_fractions_on_a_linear_one_from_zero(
    tmp_path, monkeypatch
):
    figures = drawn_figures(tmp_path, monkeypatch)
    assert figures["td_error_quantiles.png"][0] == "log"  # spans orders of magnitude
    for name in ("zero_grad_fraction.png", "dead_units.png"):
        assert figures[name][:2] == ("linear", 0.0)


def test_a_diagnostics_series_without_values_is_left_out_and_one_value_is_a_marker():
    # diagnostics: false (all NaN) was a legend entry with no line; one evaluation, a line of
    # no length.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dqn.report import _diagnostic_line, _legend

    fig, ax = plt.subplots()
    steps = np.array([500.0, 1000.0])
    assert _diagnostic_line(ax, steps, np.array([np.nan, np.nan]), "off", None) is None
    assert ax.get_lines() == []
    _legend(ax)
    assert ax.get_legend() is None and "no run logged" in ax.texts[0].get_text()
    color = _diagnostic_line(ax, steps, np.array([0.5, np.nan]), "one", None, ls="-")
    (line,) = ax.get_lines()
    assert line.get_marker() == "o" and line.get_color() == color
    _diagnostic_line(ax, steps, np.array([0.5, 0.25]), "two", None, ls="-")
    assert ax.get_lines()[1].get_marker() in ("None", None, "")
    plt.close(fig)


def test_the_summary_says_how_train_seconds_compare_across_population_sizes():
    # A run's train_seconds in a population is its share of the population's: the same run
    # retrained alone read 7.9 s against 0.7 s.
    from dqn.report import summary_markdown

    text = summary_markdown([result_row(variant="huber", seed=0)], 475.0)
    assert "Train s: a run's wall time less its evaluations" in text
    assert "the population's time divided by its members" in text


def test_the_memory_check_counts_the_heaviest_chunks_that_run_at_once():
    """A pool of 2 workers holds 2 chunks at a time: at worst the two that need the most, here
    [big, big] and [small, big], not the three small members nor the lone big one."""
    from dqn.members import env_of, heaviest_at_once

    small = DQNConfig(buffer_size=1_000)
    big = DQNConfig(buffer_size=400_000, total_env_steps=400_000)
    chunks = [[small] * 3, [big] * 2, [small, big], [big]]
    spaces = {env_of(small): (4, 2)}
    held = heaviest_at_once(chunks, 2, spaces)
    assert held == [[big] * 2, [small, big]]
    assert len(heaviest_at_once(chunks, 9, spaces)) == 4  # more workers than chunks: every one


def test_the_memory_check_counts_each_chunk_with_its_own_envs_observations(monkeypatch):
    """A variant may train on another env, and its rings hold rows of its own observations:
    Acrobot's 6-D rows (2 * 6 + 3 floats) outweigh CartPole's 4-D ones (2 * 4 + 3). Two chunks
    held at once need the sum of their own estimates: exactly that fits, a byte less is
    refused, naming both observation sizes."""
    from dqn import members
    from dqn.members import check_memory, env_of, heaviest_at_once, population_bytes

    cart, acro = DQNConfig(), DQNConfig(env_id="Acrobot-v1")
    spaces = {env_of(cart): (4, 2), env_of(acro): (6, 3)}
    assert heaviest_at_once([[cart] * 3, [acro] * 3], 1, spaces) == [[acro] * 3]
    need = population_bytes([cart] * 3, 4, 2, True) + population_bytes([acro] * 3, 6, 3, True)
    monkeypatch.setattr(members, "available_memory_bytes", lambda: need)
    check_memory([[cart] * 3, [acro] * 3], spaces, new_processes=True)
    monkeypatch.setattr(members, "available_memory_bytes", lambda: need - 1)
    with pytest.raises(ConfigError, match=r"6 members \(replay rings .* 4-D and 6-D obs"):
        check_memory([[cart] * 3, [acro] * 3], spaces, new_processes=True)


def test_a_study_is_refused_only_when_the_chunks_it_holds_at_once_do_not_fit(tmp_path, monkeypatch):
    """60 runs on 2 workers train as 3 chunks of 20, 2 at a time: 2 processes of 20 members
    must fit, not 60 members. One byte short is refused with nothing written; exactly enough
    goes on (to the training, which this test stops)."""
    from dqn import compare, runtime
    from dqn.members import population_bytes

    class Trains(Exception):
        pass

    def no_training(*args):
        def run(tasks, on_steps):
            raise Trains(len(tasks))
            yield

        return run

    monkeypatch.setattr(compare, "backend_runner", no_training)
    base = DQNConfig()
    two = 2 * population_bytes([base] * 20, 4, 2, runtime=True)
    variants = [Variant.parse("l2"), Variant.parse("huber")]

    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda *a, **k: two - 1)
    with pytest.raises(ConfigError, match=r"40 members .*in 2 new processes\) need"):
        run_comparison(base, variants, range(30), tmp_path / "refused", workers=2, progress=False)
    assert not (tmp_path / "refused").exists()

    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda *a, **k: two)
    with pytest.raises(Trains) as trained:
        run_comparison(base, variants, range(30), tmp_path / "fits", workers=2, progress=False)
    assert trained.value.args == (3,)


class Sized(gym.Env):
    """An env whose observation width is one of its keyword arguments."""

    action_space = gym.spaces.Discrete(2)

    def __init__(self, width: int = 4):
        self.observation_space = gym.spaces.Box(-1, 1, (width,), np.float32)


def test_the_memory_check_counts_variants_of_one_env_id_with_their_own_env_kwargs(
    tmp_path, monkeypatch
):
    """Two variants of one env id whose env_kwargs change its observations: each chunk is
    counted with its own width. Keyed by the id alone, the last variant's (2-D) stood for both,
    and a study whose 64-D chunk did not fit went on to train."""
    from dqn import compare, runtime
    from dqn.members import population_bytes
    from tests.conftest import register_once

    def no_training(*args):
        return lambda tasks, on_steps: pytest.fail("it trained")

    monkeypatch.setattr(compare, "backend_runner", no_training)
    base = DQNConfig(env_id=register_once("DqnTestSized-v0", Sized, max_episode_steps=50))
    wide = Variant("wide", (("env_kwargs", {"width": 64}),))
    narrow = Variant("narrow", (("env_kwargs", {"width": 2}),))
    # One worker holds one chunk at a time: the heaviest, wide's two members.
    need = population_bytes([wide.config(base, 0)] * 2, 64, 2, runtime=True)
    monkeypatch.setattr(runtime, "cgroup_memory_headroom", lambda *a, **k: need - 1)
    with pytest.raises(ConfigError, match=r"2 members .* 64-D obs"):
        run_comparison(base, [wide, narrow], range(2), tmp_path / "s", workers=1, progress=False)
    assert not (tmp_path / "s").exists()


def result_row(**changes) -> dict:
    """One run's row of results.csv, as the summary reads it."""
    row = dict(
        variant="l2",
        seed=0,
        first_solve_env_step=None,
        final_eval_mean=0.0,
        eval_auc=0.0,
        zero_grad_fraction_mean=0.0,
        q_abs_max=5.0,
        diverged_at_env_step=None,
        train_seconds=1.0,
    )
    return {**row, **changes}


def test_the_head_to_head_line_gives_the_mann_whitney_p_value_of_the_runs():
    # scipy's where no two runs tie; with the ties of runs that all end at 500, the permutation
    # test's (dqn.stats.mwu_pvalue), here at its floor: every permutation is less extreme.
    from scipy import stats

    from dqn.report import summary_markdown

    a, b = [300.0, 410.0, 500.0, 480.0], [100.0, 150.0, 90.0, 305.0]
    rows = [result_row(variant="huber", seed=i, final_eval_mean=v) for i, v in enumerate(a)]
    rows += [
        result_row(variant="clipped_delta", seed=i, final_eval_mean=v) for i, v in enumerate(b)
    ]
    p = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue  # exact for 4 and 4: 2 x 2/70
    [line] = [t for t in summary_markdown(rows, 475.0).split("\n\n") if "on final" in t]
    assert line.startswith("P(huber > clipped_delta) on final evaluation: 0.94 [")
    assert line.endswith(f"; Mann-Whitney p = {p:.2g}, two-sided") and f"{p:.2g}" == "0.057"
    tied = [
        result_row(variant=r["variant"], seed=r["seed"], final_eval_mean=500.0) for r in rows[:4]
    ]
    tied += [result_row(variant="clipped_delta", seed=i, final_eval_mean=9.0) for i in range(30)]
    tied += [result_row(variant="huber", seed=i, final_eval_mean=500.0) for i in range(4, 30)]
    [line] = [t for t in summary_markdown(tied, 475.0).split("\n\n") if "on final" in t]
    assert line.endswith("; Mann-Whitney p = 0.0001, two-sided"), line


def test_the_median_first_solve_counts_runs_that_never_solved_as_infinitely_late():
    # 2 of 7 solved: the median run (the 4th) never did. Over the solvers alone it read 1,500.
    # The interval [x_(1), x_(7)] of 7 runs covers with 1 - 2/2^7 >= 95%: from 1,000 to never.
    from dqn.report import summary_markdown

    rows = [result_row(seed=0, first_solve_env_step=1_000)]
    rows += [result_row(seed=1, first_solve_env_step=2_000)]
    rows += [result_row(seed=s) for s in range(2, 7)]
    line = next(r for r in summary_markdown(rows, 475.0).splitlines() if r.startswith("| l2 |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[3].startswith("2/7")
    assert cells[5] == "not reached [1,000, not reached]", cells[5]


def test_a_study_on_an_env_without_a_threshold_says_so_rather_than_eval_inf():
    from dqn.report import summary_markdown

    row = result_row(variant="l2", final_eval_mean=-80.0, eval_auc=-90.0)
    header, _, cells = summary_markdown([row, {**row, "seed": 1}], float("inf")).splitlines()[:3]
    assert "solved (no threshold: set solve_return)" in header and "inf" not in header
    assert cells.startswith("| l2 | 2 | n/a | n/a | n/a | ")  # not "0/2 [0.00, 0.84]"
    assert "solved (eval >= -100)" in summary_markdown([row, {**row, "seed": 1}], -100.0)


def test_variants_with_their_own_thresholds_are_counted_each_against_its_own():
    # A variant on Acrobot (solved at -100) beside CartPole ones (475): each counts its own.
    from dqn.report import summary_markdown

    row = result_row(variant="cartpole", final_eval_mean=470.0, eval_auc=400.0)
    acrobot = {**row, "variant": "acrobot", "final_eval_mean": -90.0, "first_solve_env_step": 9}
    text = summary_markdown([row, acrobot], {"cartpole": 475.0, "acrobot": -100.0})
    lines = text.splitlines()
    assert "solved (eval >= its threshold)" in lines[0]
    assert lines[2].startswith("| cartpole (>= 475) | 1 | 0/1") and "| 0/1 [" in lines[2]
    assert lines[3].startswith("| acrobot (>= -100) | 1 | 1/1") and lines[3].count("| 1/1 [") == 2
    same = summary_markdown([row], {"cartpole": 475.0}).splitlines()
    assert "solved (eval >= 475)" in same[0] and same[2].startswith("| cartpole | 1 |")


def test_an_ab_study_compares_its_two_variants_head_to_head():
    """Two variants on one threshold: P(first > second) on the final evaluation and on the AUC,
    as Mann-Whitney's U / nm; with another env's variant, or a third variant, no such line."""
    from dqn.report import summary_markdown

    row = result_row(variant="huber", first_solve_env_step=5000, final_eval_mean=1.0, eval_auc=10.0)
    a = [row, {**row, "seed": 1, "final_eval_mean": 3.0, "eval_auc": 30.0}]  # finals 1, 3
    b = [{**r, "variant": "elu", "final_eval_mean": 2.0, "eval_auc": 0.0} for r in a]  # 2, 2
    text = summary_markdown(a + b, 475.0)
    # Final: of the 4 pairs (1 or 3 against 2 or 2) huber wins 2, so 0.50; AUC: all 4, so 1.00.
    assert "P(huber > elu) on final evaluation: 0.50 [" in text
    assert "P(huber > elu) on eval AUC: 1.00 [95% CI 1.00, 1.00; the runs do not overlap" in text
    assert "P(elu" not in text
    three = summary_markdown(a + b + [{**r, "variant": "l2"} for r in a], 475.0)
    assert "P(" not in three
    two_envs = summary_markdown(a + b, {"huber": 475.0, "elu": -100.0})
    assert "P(" not in two_envs
    # The fix against the bug is compared in a study of more variants, on one threshold only.
    bug = [{**r, "variant": "clipped_delta"} for r in b]
    third = [{**r, "variant": "acrobot"} for r in a]
    bars = {"huber": 475.0, "clipped_delta": 475.0, "acrobot": -100.0}
    assert "P(huber > clipped_delta) on final evaluation" in summary_markdown(a + bug + third, bars)
    other_env = summary_markdown(a + bug, {"huber": 475.0, "clipped_delta": -100.0})
    assert "P(" not in other_env


def test_a_run_stopped_before_its_first_evaluation_is_left_out_of_the_iqm_and_ranked_last():
    """Its final eval and AUC are NaN: scipy's trim_mean and Mann-Whitney then return NaN for
    the whole variant. It is left out of the IQMs (the cell says of how many runs) and ranks
    below every run in P(A > B): 9 huber runs at 500 and one with no evaluation against 10
    clipped_delta runs of 100-109 win 90 of the 100 pairs."""
    import math

    from dqn.report import summary_markdown

    huber = [
        result_row(variant="huber", seed=s, final_eval_mean=500.0, eval_auc=400.0) for s in range(9)
    ]
    huber.append(
        result_row(
            variant="huber",
            seed=9,
            final_eval_mean=math.nan,
            eval_auc=math.nan,
            diverged_at_env_step=900,
        )
    )
    cd = [
        result_row(variant="clipped_delta", seed=s, final_eval_mean=100.0 + s, eval_auc=90.0 + s)
        for s in range(10)
    ]
    text = summary_markdown(huber + cd, 475.0)
    row = next(line for line in text.splitlines() if line.startswith("| huber |"))
    assert "| 500 [500, 500] (of 9 runs) | 400 [400, 400] (of 9 runs) |" in row
    assert "nan" not in text
    assert "P(huber > clipped_delta) on final evaluation: 0.90 [95% CI" in text
    # With no evaluation on either side there is nothing to rank: it read "0.50 [95% CI 0.50,
    # 0.50]", a certain tie over no data.
    nan = float("nan")
    none = [{**r, "final_eval_mean": nan, "eval_auc": nan} for r in huber[:3] + cd[:3]]
    text = summary_markdown(none, 475.0)
    assert (
        "P(huber > clipped_delta) on final evaluation: no run of either has an evaluation" in text
    )
    assert "> clipped_delta) on eval AUC: no run of either" in text and "0.50 [" not in text


def test_a_variant_with_no_evaluated_run_ranks_below_one_whose_runs_all_have_one():
    # Only one side has nothing to rank: not "no run of either", but P 0 (its runs rank last).
    from dqn.report import summary_markdown

    nan = float("nan")
    none = [result_row(variant="huber", seed=s, final_eval_mean=nan, eval_auc=nan) for s in (0, 1)]
    evaluated = [result_row(variant="clipped_delta", seed=s) for s in (0, 1)]
    text = summary_markdown(none + evaluated, 475.0)
    assert "P(huber > clipped_delta) on final evaluation: 0.00 [" in text
    assert "no run of either" not in text


def test_a_summary_row_gives_the_mean_zero_grad_fraction_and_the_median_train_seconds():
    # One run of three far off: its mean and its median differ (0.3 and 0.1; 11 s and 2 s).
    from dqn.report import summary_markdown

    zero, seconds = [0.0, 0.1, 0.8], [1.0, 2.0, 30.0]
    rows = [
        result_row(seed=s, zero_grad_fraction_mean=zero[s], train_seconds=seconds[s])
        for s in range(3)
    ]
    row = summary_markdown(rows, 475.0).splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[7] == f"{sum(zero) / 3:.3f}" == "0.300"
    assert cells[-1] == "2.0"


def test_runs_that_all_tie_are_not_said_not_to_overlap():
    # Every run of both at 500: P is 0.50 with a zero-width interval, yet the runs overlap.
    from dqn.report import summary_markdown

    rows = [
        result_row(variant=v, seed=s, final_eval_mean=500.0) for v in ("a", "b") for s in (0, 1)
    ]
    text = summary_markdown(rows, 475.0)
    said = "P(a > b) on final evaluation: 0.50 [95% CI 0.50, 0.50; every run of both ends at 500 "
    assert said + "(2 and 2 runs)]; Mann-Whitney p = 1," in text
    assert "do not overlap" not in text


def test_too_few_runs_for_an_interval_say_so_rather_than_a_zero_width_one():
    """One run has no bootstrap interval, and 5 or fewer have no 95% order-statistic interval
    of the median (even [min, max] covers it with 1 - 2 / 2^5 = 0.94)."""
    from dqn.report import summary_markdown

    one = result_row(variant="huber", first_solve_env_step=5000, final_eval_mean=500.0)
    text = summary_markdown([one, result_row(variant="clipped_delta")], 475.0)
    row = next(line for line in text.splitlines() if line.startswith("| huber |"))
    assert "| 5,000 [n/a, n/a] | 500 [n/a] |" in row
    assert "P(huber > clipped_delta) on final evaluation: 1.00 [no 95% CI with one run]" in text
    # Two runs a side that do not overlap: every resample gives 1.00, an interval of no width.
    two = [{**one, "seed": s} for s in (0, 1)]
    low = [result_row(variant="clipped_delta", seed=s) for s in (0, 1)]
    assert (
        "P(huber > clipped_delta) on final evaluation: 1.00 [95% CI 1.00, 1.00; the runs do not "
        "overlap (2 and 2 runs)]"
    ) in summary_markdown(two + low, 475.0)


def test_the_summary_counts_a_final_eval_at_the_bar_and_shows_the_largest_q():
    from dqn.compare import seed_table
    from dqn.report import summary_markdown

    rows = [
        result_row(variant="huber", seed=0, final_eval_mean=475.0, eval_auc=123.0, q_abs_max=10.0),
        result_row(variant="huber", seed=1, final_eval_mean=474.9, eval_auc=123.0, q_abs_max=30.0),
    ]
    row = next(line for line in summary_markdown(rows, 475.0).splitlines() if "| huber |" in line)
    cells = [c.strip() for c in row.split("|")]
    assert cells[4].startswith("1/2")  # ended >= 475: the run at exactly 475 counts
    assert "| 30.0 |" in row  # max abs Q: the largest of the runs', not their mean
    table = seed_table(rows)
    assert "| huber | 0 | not reached | 475.0 | 1.0 |" in table and "123.0" not in table
    stopped = result_row(variant="l2", seed=2, final_eval_mean=float("nan"))  # before any eval
    assert "| l2 | 2 | not reached | no evaluation | 1.0 |" in seed_table([stopped])
    # A null for it (JSON has no NaN) is no evaluation too: it crashed the count.
    unread = [result_row(variant="l2", seed=3, final_eval_mean=None)]
    unread.append({**unread[0], "seed": 4, "final_eval_mean": 480.0})
    row = next(line for line in summary_markdown(unread, 475.0).splitlines() if "| l2 |" in line)
    assert [c.strip() for c in row.split("|")][4].startswith("1/2")


def test_a_curve_that_ends_with_fewer_runs_than_its_variant_has_says_so():
    """A diverged run leaves the learning curve after its last evaluation, while the table
    counts it there: clipped_delta's curve ended at 146 over its 25 runs that reached the end,
    beside a table IQM of 103 over all 30, and nothing on the figure said so."""
    from dqn.report import curve_label

    assert curve_label("clipped_delta", 25, 30) == "clipped_delta (25 of 30 runs at the end)"
    assert curve_label("huber", 30, 30) == "huber"
    assert curve_label("a", 2, 3) == "a (2 of 3 runs at the end)"  # one run short is said too


def test_a_variant_shorter_than_the_others_is_not_said_to_have_lost_its_runs():
    # The count compared each run's last step with the study's: a variant with its own, shorter
    # total_env_steps read "short (0 of 3 runs at the end)" though none diverged.
    from dqn.report import runs_at_end

    rows = [result_row(variant="long", seed=s) for s in range(3)]
    rows += [{**result_row(variant="short", seed=s), "total_env_steps": 2_000} for s in range(3)]
    rows[4]["diverged_at_env_step"] = 900
    rows[5]["diverged_at_env_step"] = float("nan")  # not stopped, as read back from a CSV
    assert runs_at_end(rows, "long") == (3, 3)
    assert runs_at_end(rows, "short") == (2, 3)


def test_the_summary_counts_the_runs_the_guard_stopped():
    from dqn.report import summary_markdown

    rows = [result_row(variant="huber", seed=s) for s in range(3)]
    rows[1]["diverged_at_env_step"] = 900
    header, _, huber = summary_markdown(rows, 475.0).splitlines()[:3]
    cells = dict(zip(header.split("|"), huber.split("|")))
    assert cells[" diverged "] == " 1 "  # the one run with a diverged_at_env_step


def new_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots()[0]


def test_a_figure_that_fails_to_write_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    from dqn import io
    from dqn.report import _save

    path = tmp_path / "learning_curves.png"
    path.write_bytes(b"the previous figure")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _save(new_figure(), path)
    assert path.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_figure_that_cannot_be_written_is_named_and_leaves_nothing(tmp_path):
    from dqn.errors import os_problem
    from dqn.report import _save

    path = tmp_path / "learning_curves.png"
    path.mkdir()  # where the figure should go
    with pytest.raises(OSError) as err:
        _save(new_figure(), path)
    assert os_problem(err.value) == f"Is a directory: {path}"
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and not any(path.iterdir())


def test_a_run_of_the_study_differs_by_its_settings_but_not_by_output_dir(tmp_path):
    # A rerun whose --config names another output_dir is the same study: its runs are kept.
    from dqn.agent_files import STUDY_RUN
    from dqn.study_runs import settings_difference

    entry = tmp_path / "runs" / "l2-seed0"
    (entry / STUDY_RUN).mkdir(parents=True)
    DQNConfig(loss="l2", output_dir="results/a").to_yaml(entry / STUDY_RUN / "config.yaml")
    same = DQNConfig(loss="l2", output_dir="elsewhere").to_dict()
    assert settings_difference(entry, same) is None
    other = DQNConfig(loss="l2", gamma=0.5, output_dir="elsewhere").to_dict()
    assert settings_difference(entry, other) == "gamma: 0.99 there, 0.5 now"


def test_results_csv_writes_a_zero_as_zero_and_only_a_missing_value_as_empty(tmp_path):
    import csv

    from dqn.compare import write_results

    # A run that never scored and no sample without gradient: 0, not "not recorded".
    row = result_row(loss="l2", seed=0, over_bound_fraction_mean=0.0)
    write_results([row], tmp_path)
    with open(tmp_path / "results.csv", newline="") as fh:
        (got,) = list(csv.DictReader(fh))
    assert got["seed"] == "0" and got["final_eval_mean"] == "0.0"
    assert got["zero_grad_fraction_mean"] == "0.0" and got["over_bound_fraction_mean"] == "0.0"
    assert got["first_solve_env_step"] == "" and got["diverged_at_env_step"] == ""


def test_a_run_stopped_before_its_first_evaluation_is_strict_json_and_reads_back_as_nan(tmp_path):
    import json
    import math

    from dqn.compare import write_results
    from dqn.io import strict_json
    from dqn.study_runs import NAN_COLUMNS, read_result

    def strict(text):  # as JavaScript's JSON.parse or jq: no NaN, no Infinity
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))

    nan = float("nan")
    row = result_row(loss="l2", seed=3, diverged_at_env_step=1200, curve=[])
    row.update({k: nan for k in NAN_COLUMNS})
    write_results([row], tmp_path)
    (written,) = strict((tmp_path / "results.json").read_text())
    assert all(written[k] is None for k in NAN_COLUMNS) and written["diverged_at_env_step"] == 1200

    (tmp_path / "result.json").write_text(strict_json(row))
    back = read_result(tmp_path, "l2", 3)
    assert all(math.isnan(back[k]) for k in NAN_COLUMNS)
    assert back["first_solve_env_step"] is None and back["diverged_at_env_step"] == 1200


def test_results_keep_each_run_s_curve_and_csv_writes_no_evaluation_as_nan(tmp_path):
    # results.json is the study's whole record (its curves, for plots of one's own); in
    # results.csv an empty cell is "not recorded", where NaN is "stopped before an evaluation".
    import csv

    from dqn.compare import write_results

    curve = [[150, 9.0], [300, 21.5]]
    row = result_row(loss="l2", seed=0, final_eval_mean=float("nan"), curve=curve)
    write_results([row], tmp_path)
    (written,) = json.loads((tmp_path / "results.json").read_text())
    assert written["curve"] == curve
    with open(tmp_path / "results.csv", newline="") as fh:
        (got,) = list(csv.DictReader(fh))
    assert got["final_eval_mean"] == "nan" and got["first_solve_env_step"] == ""


def test_a_rerun_s_bar_starts_from_the_steps_its_checkpoints_hold_and_ends_at_the_total(
    tmp_path, monkeypatch
):
    # A stopped study's rerun sat at 0 while 30 runs loaded (about 40 s), with an ETA of the
    # whole study: it starts where the step marker and the checkpoints say now.
    from dqn import compare
    from dqn.agent_files import CHECKPOINTS, STUDY_RUN
    from dqn.population_files import write_step_marker
    from dqn.study_runs import Job, _population_worker, _run_worker, task_steps_done

    steps, config = 1000, DQNConfig().to_dict()  # the bar counts `steps` a run
    jobs = [Job(f"l2-seed{k}", config, "l2", str(tmp_path / f"l2-seed{k}")) for k in range(3)]
    chunk = tmp_path / "populations" / "abc"
    chunk.mkdir(parents=True)
    write_step_marker(chunk, 400, stopped=[])
    for step in ("000000700", "000000350"):  # the newest checkpoint is where it resumes
        (tmp_path / "l2-seed2" / STUDY_RUN / CHECKPOINTS / f"step-{step}").mkdir(parents=True)
    tasks = [
        ("population-abc", _population_worker, (jobs[:2], str(chunk), "population-abc")),
        ("l2-seed2", _run_worker, (config, "l2", jobs[2].folder)),
        ("fresh", _population_worker, (jobs[:1], str(tmp_path / "populations" / "new"), "fresh")),
    ]
    assert [task_steps_done(t) for t in tasks] == [2 * 400, 700, 0]

    bars = []

    class Bar:
        def __init__(self, total, *, initial, **_):
            self.total, self.initial, self.n = total, initial, initial
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, **_): ...

        def close(self): ...

    def run_tasks(tasks, on_steps):
        on_steps("population-abc", 250)  # the chunk reports only what it trains now
        yield "population-abc", [("l2-seed0", {}), ("l2-seed1", {})]
        on_steps("population-abc", 100)  # its last report, after its result: counted there
        yield "l2-seed2", {}
        yield "fresh", [("l2-seed9", {})]

    monkeypatch.setattr(compare, "progress_bar", Bar)
    rows = {"huber-seed0": {}}  # finished before: its steps are done
    # Each run's own length: l2-seed9's variant sets a total_env_steps of its own (the bar
    # counted every run at the base config's).
    lengths = {f"l2-seed{k}": steps for k in range(3)} | {"huber-seed0": steps, "l2-seed9": 3000}
    compare._train_tasks(tasks, run_tasks, rows, lengths, progress=True)
    (bar,) = bars
    assert bar.initial == 1 * steps + 2 * 400 + 700  # the finished run, the chunk, the run
    assert (bar.total, bar.n) == (4 * steps + 3000, 4 * steps + 3000) and len(rows) == 5


def test_the_progress_bar_says_how_the_runs_are_split_between_populations_and_processes():
    from dqn.compare import _bar_label

    def tasks(*names):
        return [(name, None, None) for name in names]

    assert _bar_label(4, tasks("l2-seed0", "l2-seed1", "huber-seed0", "huber-seed1")) == (
        "4 runs, a process each"
    )
    assert _bar_label(150, tasks("population-0", "population-1")) == "150 runs in 2 populations"
    assert _bar_label(5, tasks("population-0")) == "5 runs in 1 population"
    assert _bar_label(6, tasks("population-0", "vec-seed0", "vec-seed1")) == (
        "6 runs: 4 in 1 population, 2 in processes of their own"
    )
    assert _bar_label(1, tasks("population-0")) == "1 run in 1 population"
    assert _bar_label(0, tasks()) == "every run finished"


def test_the_default_worker_count_gives_each_thread_a_core(tmp_path, monkeypatch):
    # Each worker runs num_threads TensorFlow threads: one worker per CPU oversubscribed the
    # cores num_threads times over.
    from dqn import compare, runtime

    class Stop(Exception):
        pass

    seen = []

    def backend(name, workers, address):
        seen.append(workers)
        raise Stop  # before anything is written or trained

    monkeypatch.setattr(runtime, "usable_cores", lambda: 8)
    monkeypatch.setattr(compare, "backend_runner", backend)
    for threads in (1, 2, 3, 16):
        with pytest.raises(Stop):
            run_comparison(TINY.replace(num_threads=threads), ["huber"], [0], tmp_path / "s")
    assert seen == [8, 4, 2, 1] and not (tmp_path / "s").exists()


def test_a_comma_inside_brackets_belongs_to_its_value():
    from dqn.compare import Variant

    v = Variant.parse("wide:hidden_sizes=[512,512],loss=l2")
    assert v.label == "wide"
    assert dict(v.overrides) == {"hidden_sizes": [512, 512], "loss": "l2"}
    v = Variant.parse("kw:env_kwargs={max_episode_steps: 50, sutton_barto_reward: true},n_step=3")
    assert dict(v.overrides) == {
        "env_kwargs": {"max_episode_steps": 50, "sutton_barto_reward": True},
        "n_step": 3,
    }


def test_variants_on_two_envs_are_named_and_not_compared_head_to_head():
    # CartPole's returns against Acrobot's, under one solve_return, read "P(cp > ac) = 1.00".
    from dqn.report import summary_markdown

    rows = [
        result_row(variant=v, seed=s, final_eval_mean=9.0) for v in ("cp", "ac") for s in (0, 1)
    ]
    envs = {"cp": "CartPole-v1", "ac": "Acrobot-v1"}
    text = summary_markdown(rows, 100.0, envs=envs)
    assert "P(" not in text
    assert "| cp (CartPole-v1) | 2 |" in text and "| ac (Acrobot-v1) | 2 |" in text
    text = summary_markdown(rows, 100.0, envs={"cp": "CartPole-v1", "ac": "CartPole-v1"})
    assert "P(cp > ac) on final evaluation" in text and "(CartPole-v1)" not in text


@pytest.mark.parametrize(
    "values, cell",
    [
        ([0.6, 0.65, 0.68, 0.6], "0.625 ["),
        ([9.2, 9.35, 9.35, 9.5], "9.35 ["),
        ([463.0] * 4, "463 ["),
    ],
)
def test_an_iqm_cell_keeps_three_significant_figures(values, cell):
    # FrozenLake's 0.6-0.68 read "1 [1, 1]" beside "0/4" runs solved at 0.7.
    from dqn.report import summary_markdown

    rows = [result_row(variant="huber", seed=i, final_eval_mean=v) for i, v in enumerate(values)]
    [line] = [t for t in summary_markdown(rows, 0.7).splitlines() if t.startswith("| huber |")]
    assert f"| {cell}" in line, line


def test_a_damaged_metrics_csv_is_said_and_left_out_of_the_figures(tmp_path):
    # A row cut short gave float(None)'s TypeError after results and summary were written.
    from dqn.report import load_curves
    from dqn.run_log import read_metrics

    rows = [result_row(variant="huber", seed=s, final_eval_mean=9.0) for s in (0, 1)]
    for s, text in (
        (0, "env_step,eval_return_mean\n100,9.0\n"),
        (1, "env_step,eval_return_mean\n100,9."),
    ):
        folder = tmp_path / "runs" / f"huber-seed{s}" / "run"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(text)
    with pytest.warns(UserWarning, match=r"huber-seed1.*cut short: .* leave that run out"):
        curves = load_curves(tmp_path, rows)
    assert len(curves["huber"]) == 1
    bad = tmp_path / "bad.csv"
    for text, said in (
        (b"env_step,eval_return_mean\n100\n", "line 2, cannot be read: it does not have"),
        (b"env_step,eval_return_mean\n100,abc\n", "line 2, cannot be read: could not convert"),
        (b"env_step,eval_return_mean\n100,9.\xff\n", "cannot be read: invalid start byte"),
        # csv's own error: a cell past its field size limit (131,072 characters).
        (b"env_step\n" + b"1" * 140_000 + b"\n", "cannot be read: field larger than field"),
    ):
        bad.write_bytes(text)
        with pytest.raises(CheckpointError, match=said):
            read_metrics(bad)


def test_a_variant_no_run_of_which_was_evaluated_is_named_in_the_figure(tmp_path, monkeypatch):
    import matplotlib.axes

    from dqn.report import plot_all

    rows = [result_row(variant="huber", seed=0, final_eval_mean=9.0)]
    rows += [result_row(variant="clipped_delta", seed=0, final_eval_mean=None)]
    folder = tmp_path / "runs" / "huber-seed0" / "run"
    folder.mkdir(parents=True)
    from dqn.run_log import METRICS_COLUMNS

    row = {"env_step": "100", "eval_return_mean": "9.0"}
    cells = [row.get(c, "") for c in METRICS_COLUMNS]
    (folder / "metrics.csv").write_text(",".join(METRICS_COLUMNS) + "\n" + ",".join(cells) + "\n")
    labels = []
    real = matplotlib.axes.Axes.legend

    def legend(ax, *args, **kwargs):
        labels.extend(ax.get_legend_handles_labels()[1])
        return real(ax, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", legend)
    plot_all(tmp_path, rows)
    assert "clipped_delta: no run reached an evaluation" in labels
    # Evaluated, but its metrics.csv gone: not "no run reached an evaluation".
    labels.clear()
    rows[1]["final_eval_mean"] = 9.0
    with pytest.warns(UserWarning, match="clipped_delta-seed0.*is missing"):
        plot_all(tmp_path, rows)
    assert "clipped_delta: its runs' metrics.csv missing or damaged" in labels


def test_forty_variants_get_forty_lines():
    from dqn.report import _variant_line

    lines = [_variant_line(i) for i in range(40)]
    assert len({(line["color"], line["ls"]) for line in lines}) == 40


def test_a_label_with_underscores_at_its_edges_shows_as_itself_in_markdown():
    # "_base_" rendered as an emphasised "base", "__init__" as a strong "init".
    from dqn.report import md, summary_markdown

    assert md("_base_") == r"\_base\_" and md("__init__") == r"\_\_init\_\_"
    assert md("clipped_delta") == "clipped_delta"  # inside a word: markdown leaves it alone
    rows = [result_row(variant=v, seed=0) for v in ("_base_", "b")]
    text = summary_markdown(rows, 475.0)
    assert "| \\_base\\_ | 1 |" in text and "P(\\_base\\_ > b)" in text
