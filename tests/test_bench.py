"""The pure parts of the benchmark: FLOP counts, unit conversions, the step clock, the table.

No timing is asserted, and nothing here needs torch (the one SB3 check skips without it).
"""

import json
import os
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from benchmarks import bench, clock, floor, regimes, sb3_worker, settings, table
from dqn.config import DQNConfig, total_grad_steps


def test_grad_step_flops_of_a_tiny_net():
    # Layers [2 -> 3 -> 2], batch 4. A forward pass: 2*4*2*3 + 2*4*3*2 = 48 + 48 = 96 FLOPs.
    # Backward: dW of both layers (96) plus dx of the second layer only (48) = 144.
    # One step: online forward 96 + target forward 96 + backward 144 = 336;
    # double DQN adds an online forward on s': 432.
    assert floor.mlp_forward_flops(4, [2, 3, 2]) == 96
    assert floor.grad_step_flops(2, [3], 2, batch=4) == 336
    assert floor.grad_step_flops(2, [3], 2, batch=4, double_dqn=True) == 432


def test_zoo_floor_counts():
    # [4 -> 256 -> 256 -> 2], batch 64: forward 2*64*(4*256 + 256*256 + 256*2) = 8,585,216.
    forward = 8_585_216
    assert floor.grad_step_flops(4, [256, 256], 2, batch=64) == 4 * forward - 2 * 64 * 4 * 256
    # Bursts after env steps 1024, 1280, ..., 49920: 192 of 128 gradient steps.
    assert floor.grad_steps(settings.ZOO) == 192 * 128


@pytest.mark.parametrize("name", ["ZOO", "EVERY_STEP", "EVERY_4_STEPS", "CLEANRL"])
def test_grad_step_count_agrees_with_dqn_config_and_sb3(name):
    s = getattr(settings, name)
    config = DQNConfig().replace(**settings.dqn_overrides(s))
    assert floor.grad_steps(s) == total_grad_steps(config)
    # SB3's schedule, step by step: a burst after every train_freq-th env step past
    # learning_starts.
    bursts = sum(
        1
        for step in range(1, s.total_env_steps + 1)
        if step % s.train_every_env_steps == 0 and step > s.learning_starts_env_steps
    )
    assert floor.grad_steps(s) == bursts * s.gradient_steps_per_train


@pytest.mark.parametrize("name", ["ZOO", "EVERY_STEP", "EVERY_4_STEPS", "CLEANRL"])
def test_the_settings_override_what_the_default_config_changed(name):
    """The workers start from configs/cartpole.yaml; SB3 has none of its three changes."""
    s = getattr(settings, name)
    default = DQNConfig.from_yaml(Path(__file__).parent.parent / "configs" / "cartpole.yaml")
    assert default.n_step > 1 and default.learning_rate_end is not None  # what it changed
    config = default.replace(**settings.dqn_overrides(s))
    assert config.n_step == 1  # SB3's DQN: one-step TD targets
    assert config.learning_rate_end is None  # SB3's constant learning rate
    assert config.max_grad_norm == s.max_grad_norm


def test_target_period_in_grad_steps():
    # SB3 syncs every 10 env steps between bursts of 128: one sync per burst.
    assert settings.target_update_every_grad_steps(settings.ZOO) == 128
    assert settings.target_update_every_grad_steps(settings.EVERY_STEP) == 500
    assert settings.target_update_every_grad_steps(settings.EVERY_4_STEPS) == 125
    assert settings.target_update_every_grad_steps(settings.CLEANRL) == 50
    with pytest.raises(ValueError, match="multiple"):
        settings.target_update_every_grad_steps(
            settings.EVERY_4_STEPS.replace(target_update_every_env_steps=502)
        )


def test_settings_round_trip_and_sb3_kwargs():
    s = settings.ZOO
    assert settings.Settings.from_dict(s.to_dict()) == s
    kw = settings.sb3_kwargs(s, seed=3)
    assert (kw["train_freq"], kw["gradient_steps"], kw["target_update_interval"]) == (256, 128, 10)
    assert kw["policy_kwargs"]["net_arch"] == [256, 256]
    with pytest.raises(ValueError, match="Huber"):
        settings.sb3_kwargs(settings.CLEANRL)


@pytest.mark.parametrize("quick", [False, True])
def test_regime_e_runs_sb3_on_cleanrl_settings(quick):
    dqn_s, sb3_s = regimes.e_settings(quick)
    # dqn runs CleanRL's settings as they are; SB3 the same but for its only loss.
    assert dqn_s.loss == "l2" and sb3_s == dqn_s.replace(loss="huber")
    short = {"total_env_steps": 3_000, "learning_starts_env_steps": 1_000} if quick else {}
    assert dqn_s == settings.CLEANRL.replace(**short)
    kw = settings.sb3_kwargs(sb3_s, seed=0)
    assert kw["policy_kwargs"]["net_arch"] == [120, 84]
    assert (kw["batch_size"], kw["learning_rate"], kw["buffer_size"]) == (128, 2.5e-4, 10_000)
    assert (kw["train_freq"], kw["gradient_steps"], kw["target_update_interval"]) == (10, 1, 500)
    assert (kw["exploration_fraction"], kw["exploration_final_eps"]) == (0.5, 0.05)
    assert kw["max_grad_norm"] == float("inf") and kw["tau"] == 1.0
    # Both libraries take the same number of gradient steps, so the same work per env step.
    config = DQNConfig().replace(**settings.dqn_overrides(dqn_s))
    assert total_grad_steps(config) == floor.grad_steps(sb3_s)
    assert kw["learning_starts"] == (1_000 if quick else 10_000)


def test_regime_e_jobs(monkeypatch):
    # No process is started: the jobs regime (e) would launch, recorded.
    jobs = {}
    monkeypatch.setattr(regimes, "timed", lambda label, job, env=None: jobs.setdefault(label, job))
    out = regimes.regime_e(quick=False, config=bench.DEFAULT_CONFIG)
    dqn_s, sb3_s = regimes.e_settings(False)
    assert out["settings"] == dqn_s and out["sb3_settings"] == sb3_s
    sb3 = jobs["SB3"]
    # SB3's run is the throughput worker of (a), (b), (c): the same step clock and marks as dqn's.
    assert sb3["worker"] == "sb3_throughput" and sb3["torch_threads"] == 1
    assert settings.Settings.from_dict(sb3["settings"]) == sb3_s
    for label in ("dqn", "dqn, learner numpy"):
        assert jobs[label]["worker"] == "dqn_throughput"
        assert settings.Settings.from_dict(jobs[label]["settings"]) == dqn_s
        assert jobs[label]["marks"] == sb3["marks"] == [100_000]
    (vector,) = [job for job in jobs.values() if job["worker"] == "dqn_vector"]
    assert vector["overrides"] == {"learner": "numpy", "num_envs": regimes.VECTOR_ENVS}


@pytest.mark.parametrize(
    "s, target_period, max_norm, widths",
    [
        (settings.ZOO, 10, 10.0, [256, 256, 2]),
        (regimes.e_settings(False)[1], 500, float("inf"), [120, 84, 2]),
    ],
    ids=["zoo", "e"],
)
def test_sb3_accepts_the_kwargs(s, target_period, max_norm, widths):
    pytest.importorskip("torch")
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.DQN("MlpPolicy", gym.make("CartPole-v1"), **settings.sb3_kwargs(s))
    assert model.target_update_interval == target_period and model.max_grad_norm == max_norm
    layers = [m.out_features for m in model.q_net.q_net if hasattr(m, "out_features")]
    assert layers == widths


def test_eval_windows_and_train_seconds():
    # Evaluation 1 starts at t=1.0 (reset seeded 10000), plays 5 steps across two episodes
    # and ends at t=2.0; evaluation 2 starts at t=10.0 and ends at t=10.3.
    resets = [(0, 10000, 1.0), (3, 10001, 1.5), (5, 10000, 10.0)]
    steps = [1.1, 1.2, 1.4, 1.6, 2.0, 10.1, 10.3]
    windows = clock.eval_windows(resets, steps, 10000)
    assert windows == [(1.0, 2.0), (10.0, 10.3)]
    # From 0.5 to 5.0 with the first evaluation (1 s) taken out: 3.5 s.
    assert clock.train_seconds_at(0.5, 5.0, windows) == pytest.approx(3.5)
    assert clock.train_seconds_at(0.5, 11.0, windows) == pytest.approx(10.5 - 1.0 - 0.3)


def test_step_clock_through_a_registered_id():
    made = []
    env_id = clock.register_clocked_env("CartPole-v1", made)
    try:
        env = gym.make(env_id)
        assert made == [env] and env.spec.reward_threshold == 475
        env.reset(seed=0)
        for _ in range(5):
            env.step(0)
        assert len(env.step_times) == 5 and env.resets[0][:2] == (0, 0)
        elapsed = env.elapsed_at([1, 5])
        assert 0 <= elapsed[1] <= elapsed[5]
    finally:
        del gym.registry[env_id]


def test_first_solve():
    curve = [(2500, 100.0, 1.0), (5000, 480.0, 2.5), (7500, 500.0, 4.0)]
    assert table.first_solve(curve, 475.0) == (5000, 2.5)
    assert table.first_solve(curve[:1], 475.0) is None


def test_missing_extra_prints_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # find_spec then returns None
    assert sb3_worker.missing_extra() == sb3_worker.INSTALL_HINT
    assert bench.main(["--quick"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -c constraints.txt -e ".[bench]"' in err and "make bench" in err


def test_table_from_worker_results():
    zoo = settings.ZOO
    rate = settings.EVERY_STEP.replace(total_env_steps=12_000)
    threads = {"threads": "x"}
    results = {
        "a": {
            "settings": zoo,
            "dqn": {"elapsed": [10.0], **threads},
            "dqn_numpy": {"elapsed": [12.0], **threads},
            "sb3": {"elapsed": [40.0], **threads},
            "grad_steps": 100,
            "flops_per_step": 1e9,
            "rate": {"flops_per_second": 2e10, "how": "numpy"},
            "floor_seconds": 5.0,
        },
        "b": {
            "settings": rate,
            "measured": 10_000,
            "dqn": {"elapsed": [1.0, 3.0], **threads},
            "dqn_numpy": None,
            "sb3": {"elapsed": [1.0, 9.0], **threads},
        },
        "d": {
            "seeds": 2,
            "eval": regimes.EVAL,
            "sb3": None,
            "dqn": {
                "config_summary": "c",
                **threads,
                "runs": [
                    {"curve": [(2500, 10.0, 1.0), (5000, 500.0, 3.0)], "threshold": 475.0},
                    {"curve": [(2500, 480.0, 2.0), (5000, 300.0, 4.0)], "threshold": 475.0},
                ],
            },
        },
        "e": {
            "settings": settings.CLEANRL,
            "sb3_settings": settings.CLEANRL.replace(loss="huber"),
            "dqn": {"elapsed": [4.0], **threads},
            "dqn_numpy": {"elapsed": [5.0], **threads},
            "sb3": {"elapsed": [20.0], **threads},
            "vector": {"seconds": 2.0, "env_steps": 100_004, **threads},
        },
    }
    text = table.table(results, quick=False)
    row = {
        line.split(" | ")[0] + line.split(" | ")[1]: line
        for line in text.splitlines()
        if line.count("|") > 5
    }

    def find(fragment):
        (line,) = [v for k, v in row.items() if fragment in k]
        return line

    assert "| 10.0 | 40.0 | 0.25x |" in find("(a) zoo")
    assert "| 12.0 | 40.0 | 0.30x |" in find("(a) the same, dqn with learner: numpy")
    assert "| 2.00x | 8.00x |" in find("wall / floor")  # 10 / 5 and 40 / 5
    # (b): 10,000 steps in 2 s and in 8 s; the numpy learner's run failed.
    assert "| 5,000 | 1,250 | 4.00x |" in find("(b) 64x64")
    assert "| failed | 1,250 | - |" in find("(b) the same")
    # (d): both seeds solve (at 3.0 s and 2.0 s: median 2.5); one ends below 475; SB3 failed.
    assert "| 2.5 | failed |" in find("median train wall s to first eval >= 475")
    assert "| 1/2 | failed |" in find("seeds >= 475 at end")
    # (e): 100,000 steps in 4 s and 5 s, 100,004 in 2 s vectorized; SB3's 100,000 in 20 s.
    assert "| 25,000 | 5,000 | 5.00x | >= 3 |" in find(
        "(e) CleanRL settings: 100,000 steps, 120x84"
    )
    assert "| 20,000 | 5,000 | 4.00x | >= 3 |" in find("(e) the same, dqn with learner: numpy")
    assert "| 50,002 | 5,000 | 10.00x | >= 3 |" in find("(vectorized")
    # CleanRL's dqn.py is not run here: its settings name the rows, no figure of its own is given.
    assert "CleanRL settings" in text.split("\n\n")[0]
    (note,) = [line for line in text.splitlines() if line.startswith("- (e):")]
    assert "is not run here" in note and "env steps/s" not in note
    # SB3 failed in (e): no ratio, and no figure from elsewhere in its place.
    results["e"]["sb3"] = None
    failed = table.table({"e": results["e"]}, quick=False)
    (line,) = [v for v in failed.splitlines() if v.startswith("| (e) the same, dqn with learner")]
    assert "| 20,000 | failed | - | >= 3 |" in line


def test_regime_f_alternates_fresh_and_warm_runs_and_reports_their_medians(monkeypatch):
    from benchmarks import regimes
    from benchmarks.table import table

    jobs = []

    def fake_timed(label, job):
        jobs.append(job)
        return {"seconds": 20.0 if job["warm"] else 10.0 + len(jobs), "threads": "1"}

    monkeypatch.setattr(regimes, "timed", fake_timed)
    runs = regimes.regime_f(False, Path("configs/cartpole.yaml"))
    assert [j["warm"] for j in jobs] == [False, True] * regimes.LIBRARY_PATH_RUNS
    assert {j["seed"] for j in jobs} == {regimes.LIBRARY_PATH_SEED}
    # fresh runs took 11, 13, 15 s (median 13); warm 20 s each: 20 / 13 = 1.54x.
    text = table({"f": runs}, quick=False)
    assert "| median train wall s | 13.0 | - |  |  |" in text
    assert "| median train wall s | 20.0 | - | 1.54x of fresh | <= 1.1 |" in text


def only_line(text):
    """``find(fragment)``: the one line of ``text`` that holds ``fragment`` (fails on 0 or 2)."""

    def find(fragment):
        (line,) = [line for line in text.splitlines() if fragment in line]
        return line

    return find


def test_population_rows_from_worker_results():
    """(p1) adds the two processes' rates; (p2) divides by the floor of the steps taken."""
    members = {"members": 32, "threads": "x"}
    results = {
        "p1": {
            "b": {
                "settings": settings.EVERY_STEP,
                "measured": 1_000,
                "members": 32,
                "runs": {
                    "sb3": {"elapsed": [1.0, 2.0], "threads": "x"},  # 1,000 env steps/s
                    "numpy/1 process, 1 thread": {"elapsed": [1.0, 2.0], **members},
                    "numpy/2 processes": [
                        {"elapsed": [0.0, 1.0], "members": 16},  # 16,000 env steps/s
                        {"elapsed": [0.0, 2.0], "members": 16},  # 8,000
                    ],
                    "tensorflow/1 process, 2 threads": None,
                },
            }
        },
        "p2": {
            "seeds": 10,
            "cores": 2,
            "rate": {"flops_per_second": 9e10, "how": "numpy"},  # the floor's: 90 GFLOP/s a core
            "members": 25,
            # The anatomy's numpy matmul, alone in its process, is not the floor's rate.
            "anatomy": {"numpy": 85.0, "best": 100.0, "xla": 72.0, "step": 60.0},
            "hidden": 128,
            "runs": {
                # 2,000 steps x 9 GFLOP at 2 x 90 GFLOP/s: a floor of 100 s.
                "population": {
                    "wall_seconds": 125.0,
                    "grad_steps": [1_000, 1_000],
                    "flops_per_step": 9e9,
                    "timings": [  # two chunks: means loop 110, learner 75, evaluations 15
                        {
                            "members": 25,
                            "loop_seconds": 100.0,
                            "learner_seconds": 70.0,
                            "evaluation_seconds": 10.0,
                            "first_learner_call_seconds": 3.0,
                        },
                        {
                            "members": 25,
                            "loop_seconds": 120.0,
                            "learner_seconds": 80.0,
                            "evaluation_seconds": 20.0,
                            "first_learner_call_seconds": 5.0,
                        },
                    ],
                },
                "process": {
                    "wall_seconds": 375.0,
                    "grad_steps": [1_000, 1_000],
                    "flops_per_step": 9e9,
                },
            },
        },
        "p3": {"seeds": 2, "run": {"wall_seconds": 50.0, "final_evals": [500.0, 100.0]}},
    }
    text = table.table(results, quick=False)
    find = only_line(text)

    assert "| 32,000 | 1,000 | 32.00x | >= 20 |" in find("learner numpy, 1 process, 1 thread")
    assert "| 24,000 | 1,000 | 24.00x | >= 20 |" in find("learner numpy, 2 processes")
    assert "| failed | 1,000 | - | >= 20 |" in find("learner tensorflow, 1 process, 2 threads")
    assert "| 125.0 | - | 1.25x of floor | <= 1.25 floor |" in find("(p2) loss study")
    assert "| 375.0 | - | 3.00x |" in find("(p2) the same, one process per run")
    assert "| 72.0 | 90.0 | 1.25x of floor |  |" in find("(p2) a TF learner's matmuls alone")
    assert "| 60.0 | 90.0 | 1.50x of floor |  |" in find("(p2) a TF learner's whole population")
    assert "25 members of [128, 128]" in find("(p2) a TF learner's matmuls alone")
    best = find("(p2) the core's best float32 matmul rate")
    assert "| 100.0 | 90.0 | the floor's rate is 90% of it |  |" in best
    assert "matmul (85.0 GFLOP/s, alone;" in text  # the anatomy's own, in its note
    # The core's best rate (100) beats the floor's (90): at it the floor is 90 s, not 100.
    fastest = find("against its floor at the fastest one-thread matmul rate")
    assert "(numpy [1024, 1024], 1.11x the floor's rate per core)" in fastest
    assert "| 125.0 | - | 1.39x of that floor |  |" in fastest
    loop = find("where a population's loop went, mean of its 2 chunks of 25 members")
    assert "| 75.0 (68%) / 15.0 (14%) / 20.0 (18%) | - | loop 110.0 s |" in loop
    assert "compilation, 4.0 s)" in text
    assert "the rest of the loop (acting, env steps, replay, the diagnostics probe," in text
    # Newer results time the diagnostics probe apart from the rest.
    for chunk, probe in zip(results["p2"]["runs"]["population"]["timings"], (4.0, 6.0)):
        chunk["diagnostics_seconds"] = probe
    text = table.table(results, quick=False)
    loop = only_line(text)("learner / evaluations / diagnostics probe / the rest")
    assert "| 75.0 (68%) / 15.0 (14%) / 5.0 (5%) / 15.0 (14%) | - | loop 110.0 s |" in loop
    assert "the diagnostics probe (per-layer gradient norms, dead units), and the rest" in text
    assert "| 50.0 | - | 1/2 |" in find("(p3) trust check")
    assert "the 2,000 gradient steps" in text
    # XLA's matmuls faster than numpy's (as on an AVX-512 EPYC whose OpenBLAS reports Haswell).
    results["p2"]["anatomy"] = {"numpy": 85.0, "best": 100.0, "xla": 150.0, "step": 120.0}
    fastest = only_line(table.table(results, quick=False))("at the fastest one-thread")
    assert "(XLA's batched products, 1.67x the floor's rate per core)" in fastest
    assert "| 125.0 | - | 2.08x of that floor |  |" in fastest
    # No rate beats the floor's: it is already at the fastest rate, and no row repeats it.
    results["p2"]["anatomy"] = {"numpy": 85.0, "best": 90.0, "xla": 72.0, "step": 60.0}
    assert "at the fastest one-thread" not in table.table(results, quick=False)
    # Adam's share of the step, when the anatomy measured it (older results did not).
    assert "Adam's update" not in text
    results["p2"]["anatomy"]["adam_fraction"] = 0.114
    adam = only_line(table.table(results, quick=False))("of that whole step, Adam's update")
    assert "| share of the step's time | 11% | - |" in adam
    assert "| threads |" not in text  # no single-run regime ran: no thread settings to show


def test_p2_floor_adds_the_rates_its_processes_measured_together():
    """Two one-thread processes at once that each ran at 8.5 GFLOP/s (one alone: 10) price the
    floor at 17 GFLOP/s, not 2 x 10: cores that slow each other down are not counted twice."""
    run = {"wall_seconds": 125.0, "grad_steps": [1_000, 1_000], "flops_per_step": 1.7e9}
    alone = {"flops_per_second": 1e10, "how": "numpy"}
    together = [{"flops_per_second": 8.5e9, "how": "numpy"}] * 2
    p2 = {"seeds": 10, "cores": 2, "rate": alone, "together": together, "members": 25}
    p2["runs"] = {"population": run, "process": None}
    find = only_line(table.table({"p2": p2}, quick=False))

    # 2,000 steps x 1.7 GFLOP at 17 GFLOP/s: a floor of 200 s.
    assert "| 125.0 | - | 0.62x of floor |" in find("(p2) loss study")
    assert "| 17.0 | 20.0 | 0.85x |" in find("(p2) the floor's rate: 2 one-thread processes")
    assert "2 processes of it at once, added up" in find("the compute floor is 200.0 s")
    # A process that failed to report leaves no floor rather than a wrong one.
    p2["together"] = [together[0], None]
    text = table.table({"p2": p2}, quick=False)
    assert "| 125.0 | - | - |" in text
    assert "the compute floor is" not in text
    # Nor a floor's rate to hold the anatomy's rates to.
    p2["anatomy"] = {"numpy": 85.0, "best": 100.0, "xla": 150.0, "step": 60.0}
    find = only_line(table.table({"p2": p2}, quick=False))
    assert "| 150.0 | failed | - |" in find("(p2) a TF learner's matmuls alone")
    assert "| 100.0 | failed | - |" in find("(p2) the core's best float32 matmul rate")


def test_p2_prices_its_floor_at_the_configs_own_largest_product():
    from benchmarks.populations import anatomy_hidden, floor_shape

    default = DQNConfig.from_yaml(bench.DEFAULT_CONFIG)
    assert floor_shape(default) == (64, 256, 256)
    assert anatomy_hidden(default) == 256

    # [4 -> 120 -> 84 -> 2]: the hidden-to-hidden layer 120 x 84 is the step's big product.
    assert floor_shape(DQNConfig(hidden_sizes=(120, 84), batch_size=128)) == (128, 120, 84)
    assert floor_shape(DQNConfig(hidden_sizes=(32,), batch_size=16)) == (16, 32, 32)
    assert floor_shape(DQNConfig(hidden_sizes=(8, 64, 16), batch_size=32)) == (32, 64, 16)
    # The anatomy times 4 -> H -> H -> 2 at batch 64, so only such configs get one.
    assert anatomy_hidden(DQNConfig(hidden_sizes=(64, 64), batch_size=64)) == 64
    assert anatomy_hidden(DQNConfig(hidden_sizes=(120, 84), batch_size=64)) is None
    assert anatomy_hidden(DQNConfig(hidden_sizes=(64, 64), batch_size=32)) is None
    assert anatomy_hidden(DQNConfig(env_id="Acrobot-v1", hidden_sizes=(64, 64))) is None


def test_first_call_runs_both_ways(capsys):
    from benchmarks import first_call
    from dqn import fastcall, tf_population

    assert first_call.main(["--members", "2", "--hidden", "8", "--pairs", "1"]) == 0
    text = capsys.readouterr().out
    assert "| third run |" in text and "| check's outputs |" in text
    assert tf_population.call_compiled is fastcall.call_compiled  # put back


def test_lockstep_cost_runs_both_ways(capsys):
    from benchmarks import lockstep_cost

    assert lockstep_cost.main(["--members", "3", "--steps", "200", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "gymnasium, one by one" in out and "dqn.lockstep" in out
    assert "x faster" in out or "x slower" in out  # a few members can make lockstep slower


def test_lockstep_cost_says_slower_when_lockstep_took_longer():
    """A ratio of 0.6 (lockstep took longer) was printed "lockstep is 0.6x faster"."""
    from benchmarks.lockstep_cost import verdict

    assert verdict(2.0) == "lockstep is 2.0x faster"
    assert verdict(1.0) == "lockstep is 1.0x faster"
    assert verdict(0.6) == "lockstep is 1.7x slower"


def test_eval_width_plays_the_same_episodes_both_ways(capsys):
    from benchmarks import eval_width

    assert eval_width.main(["--members", "2", "--hidden", "8", "--episodes", "3"]) == 0
    assert "side by side" in capsys.readouterr().out


def test_run_eval_plays_the_same_episodes_one_at_a_time_and_side_by_side(tiny_run, capsys):
    from benchmarks import run_eval

    # main asserts that both ways give the same mean, std and returns before it prints the
    # ratio.
    assert run_eval.main([str(tiny_run), "--episodes", "3", "7"]) == 0
    out = capsys.readouterr().out
    assert out.count("side by side") == 2 and "  7 episodes" in out


@pytest.mark.parametrize("name", ["nonexistent", "metrics.csv"])
def test_run_eval_of_a_path_with_no_run_is_one_line(name, tmp_path, capsys):
    """A CheckpointError traceback and exit 1 before; dqn-evaluate says it in one line."""
    from benchmarks import run_eval

    path = tmp_path / name
    if name == "metrics.csv":  # a run's file given for its folder
        path.write_text("env_step\n")
    with pytest.raises(SystemExit) as exit_:
        run_eval.main([str(path), "--episodes", "2"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and f"no run, checkpoint or agent folder at {path}" in line


def test_library_path_refuses_a_bad_seed_before_it_trains(monkeypatch, capsys):
    """The worker's ConfigError came out as a traceback, exit 1."""
    from benchmarks import library_path

    monkeypatch.setattr(library_path, "work_library_path", lambda job: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        library_path.main(["cold", "--seed", "-1"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "config key 'seed' must be in" in line


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--seed", "-1", "--steps", "1500"], "config key 'seed'"),
        (["--steps", "100"], "'learning_starts_env_steps' must be in"),  # starts at 1,000
    ],
)
def test_population_of_one_refuses_a_bad_config_before_it_trains(argv, named, monkeypatch, capsys):
    import dqn
    from benchmarks import population_of_one

    monkeypatch.chdir(BENCHMARKS.parent)  # it reads configs/cartpole.yaml
    monkeypatch.setattr(dqn, "train", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(dqn, "train_population", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(SystemExit) as exit_:
        population_of_one.main(["--learner", "numpy", *argv])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and named in line


def test_report_stats_gets_the_same_interval_both_ways(capsys):
    from benchmarks import report_stats

    # main asserts that the two intervals are equal before it prints the ratio.
    assert report_stats.main(["--runs", "6", "--resamples", "50"]) == 0
    assert "mannwhitneyu per resample" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        report_stats.main(["--runs", "1"])
    assert stop.value.code == 2
    assert "at least 2 runs, got 1" in capsys.readouterr().err


def test_learner_anatomy_states_the_floor_ratios_of_its_rates():
    from benchmarks.learner_anatomy import report

    out = report({"numpy": 100.0, "xla": 80.0, "step": 50.0}, members=3, hidden=16)
    assert "| XLA: the step's four hidden-layer products alone | 80.0 | 1.25 |" in out
    assert "| XLA: the whole population step (matmul FLOPs / time) | 50.0 | 2.00 |" in out
    assert "at least 1.25x the compute floor; its whole step takes 2.00x" in out
    out = report({"numpy": 1.0, "xla": 1.0, "step": 1.0, "head_dots_us": 40.0,
                  "head_columns_us": 7.0}, members=3, hidden=16)  # fmt: skip
    assert "| backward as XLA dots (tf.matmul's gradient) | 40.0 |" in out
    assert "| backward column by column (dqn.tf_population.narrow_matmul) | 7.0 |" in out
    assert "core's best" not in out  # results from before it was measured
    # 1.25x the floor at a floor rate of 80 GFLOP/s is 64 GFLOP/s: 64% of a best of 100.
    out = report({"numpy": 80.0, "best": 100.0, "xla": 80.0, "step": 50.0}, members=3, hidden=16)
    assert "The floor's rate is 80% of numpy's [1024, 1024] x [1024, 1024] rate" in out
    assert "at 1.25x its floor runs its matmuls at 64% of that" in out


def test_population_scaling_times_calls_of_the_burst_it_is_given(monkeypatch):
    from benchmarks import population_scaling

    seen = []
    real = population_scaling.best_burst_seconds

    def spy(learner, rows, active, repeats):
        seen.append((rows.shape[1], repeats))
        return real(learner, rows, active, 1)

    monkeypatch.setattr(population_scaling, "best_burst_seconds", spy)
    one = population_scaling.measure(2, 8, "numpy", k=1)
    assert seen == [(1, 3 * 128)]  # one-step calls, as many steps timed as in 3 bursts of 128
    assert one["members"] == 2 and one["step_ms"] > 0
    with pytest.raises(SystemExit) as refused:
        population_scaling.main(["--burst", "129"])
    assert refused.value.code == 2


def test_population_scaling_processes_time_their_bursts_together():
    """The children of --processes wait for each other before timing: one that compiles late
    does not leave the others timing alone. Each child reports how many had arrived when it
    went on."""
    from benchmarks.population_scaling import run_children

    child = (
        "import json, os, sys, time\n"
        "from benchmarks.population_scaling import wait_for_all\n"
        "time.sleep(float(sys.argv[1]))\n"  # compiling, for as long as it takes
        "wait_for_all(sys.argv[-1])\n"
        "print(json.dumps({'arrived': len(os.listdir(sys.argv[-1].rpartition(':')[0]))}))\n"
    )
    cmds = [[sys.executable, "-c", child, str(s)] for s in (0.0, 0.2, 1.0)]
    out = run_children(cmds, dict(os.environ))
    assert [r["arrived"] for r in out] == [3, 3, 3]  # none went on before the slowest arrived


def test_population_scaling_a_failing_child_stops_the_others():
    """A child that dies before the barrier does not leave the others waiting there for it, nor
    the parent waiting for them."""
    import subprocess
    import time

    from benchmarks.population_scaling import run_children

    waits = (
        "import sys\n"
        "from benchmarks.population_scaling import wait_for_all\n"
        "wait_for_all(sys.argv[-1])\n"
    )
    dies = "import sys\nsys.exit('broken before the barrier')\n"
    start = time.monotonic()
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_children(
            [[sys.executable, "-c", waits], [sys.executable, "-c", dies]], dict(os.environ)
        )
    assert "broken before the barrier" in failed.value.stderr
    assert time.monotonic() - start < 30  # not the barrier's 600 s


def test_population_scaling_processes_prints_medians_and_their_ratio(monkeypatch, capsys):
    from benchmarks import population_scaling

    runs = []

    def fake(cmds, env):
        runs.append(len(cmds))
        step_ms = 1.0 if len(cmds) == 1 else 1.5  # a member: 1000 us alone, 1500 at once
        return [{"step_ms": step_ms * 4} for _ in cmds]

    monkeypatch.setattr(population_scaling, "run_children", fake)
    assert population_scaling.main(["--members", "4", "--processes", "2"]) == 0
    assert runs == [1, 2] * population_scaling.ROUNDS  # alternating, alone first
    assert "| 4 | 1000 | 1500 | 1.50x |" in capsys.readouterr().out


def test_learner_anatomy_runs(capsys):
    from benchmarks import learner_anatomy

    assert learner_anatomy.main(["--members", "2", "--hidden", "8", "--seconds", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "floor rate / this" in out
    assert "Adam's update is " in out


def test_the_anatomys_plain_step_really_replaces_adam():
    """What the Adam row times without Adam: Adam's moments stay zero through the traced burst
    and a later one (the plain step is in the compiled program), while Adam's own do not."""
    import dqn.tf_population
    from benchmarks.learner_anatomy import plain_step_population, sgd_update
    from benchmarks.population_scaling import random_population

    plain = plain_step_population(2, 8)
    assert dqn.tf_population.adam_update is not sgd_update  # the patch is undone
    _, rows, active = random_population(2, 8)
    plain.burst(rows, active)
    for m in range(2):
        state = plain.member_state(m)
        assert not state.adam_m.any() and not state.adam_v.any()
        assert state.grad_steps == 2 * rows.shape[1]
    adam = random_population(2, 8)[0]
    adam.burst(rows, active)
    assert adam.member_state(0).adam_m.any()


def test_xla_schedule_reports_medians_and_the_ratio_per_work():
    from benchmarks.xla_schedule import ROWS, table

    def side(us, switches):
        return {key: (us * (i + 1), switches) for i, (key, _) in enumerate(ROWS)}

    runs = {
        "sequential": [side(100.0, 0.0), side(120.0, 0.0), side(110.0, 0.0)],
        "concurrent": [side(150.0, 2.0), side(130.0, 2.0), side(140.0, 2.0)],
    }
    lines = table(runs)
    assert lines[0].startswith("median of 3 processes per side")
    assert len(lines) == 3 + len(ROWS)
    # First work: medians 110 and 140 us; 140 / 110 = 1.27x. Second: 220 and 280.
    assert lines[3].endswith("| 110 (0.0) | 140 (2.0) | 1.27x |")
    assert lines[4].endswith("| 220 (0.0) | 280 (2.0) | 1.27x |")


def test_p1_rounds_take_each_ratio_within_its_round():
    """Round 1: SB3 1,000/s, dqn 20,000/s (20x); round 2: SB3 500/s (the machine slowed),
    dqn 12,500/s (25x); round 3: SB3 2,000/s, dqn 36,000/s (18x). The row gives the median
    rate of each side and the median of the three within-round ratios (20x), not a ratio of
    medians across rounds, and lists every round's."""

    def pair(seconds):  # two processes of 16 members, 1,000 env steps each in `seconds`
        return [{"elapsed": [0.0, seconds], "members": 16}] * 2

    def sb3(seconds):
        return {"elapsed": [0.0, seconds], "threads": "x"}

    layout = "tensorflow/2 processes"
    rounds = [
        {"sb3": sb3(1.0), "tensorflow/1 process, 1 thread": None, layout: pair(1.6)},
        {"sb3": sb3(2.0), layout: pair(2.56)},
        {"sb3": sb3(0.5), layout: pair(32 / 36)},
    ]
    r = {"settings": settings.EVERY_STEP, "measured": 1_000, "members": 32}
    results = {"p1": {"c": {**r, "runs": rounds[0], "rounds": rounds}}}
    find = only_line(table.table(results, quick=False))

    row = find("learner tensorflow, 2 processes, median of 3 rounds")
    assert "| 20,000 | 1,000 | 20.00x (rounds: 20.00x, 25.00x, 18.00x) | >= 20 |" in row
    assert "| failed | 1,000 | - | >= 20 |" in find("learner tensorflow, 1 process, 1 thread")

    rounds[1][layout] = None  # a failed run in any round: no median ratio
    row = only_line(table.table(results, quick=False))("2 processes, median of 3 rounds")
    assert "| failed | 1,000 | - | >= 20 |" in row


HLO = """\
%while_body (arg: (s32[], f32[4,67586])) -> (s32[], f32[4,67586]) {
  %arg = (s32[], f32[4,67586]{1,0}) parameter(0)
  %flat = f32[4,67586]{1,0} get-tuple-element(%arg), index=1
  %x = f32[4,64,4]{2,1,0} fusion(%flat), kind=kLoop, calls=%c1
  %w1 = f32[4,4,256]{2,1,0} fusion(%flat), kind=kLoop, calls=%c2
  %w2 = f32[4,256,256]{2,1,0} fusion(%flat), kind=kLoop, calls=%c3, metadata={op_type="SplitV"}
  %first = f32[4,64,256]{2,1,0} dot(%x, %w1), lhs_batch_dims={0}, lhs_contracting_dims={2}
  %relu = f32[4,64,256]{2,1,0} fusion(%first, %flat), kind=kLoop, calls=%c4
  %hidden = f32[4,64,256]{2,1,0} dot(%relu, %w2), lhs_batch_dims={0}, lhs_contracting_dims={2}
  %dw = f32[4,256,256]{2,1,0} dot(%relu, %hidden), lhs_batch_dims={0}, lhs_contracting_dims={1}
  %one = f32[64,256]{1,0} dot(%relu1, %w2one), lhs_contracting_dims={1}
  %relu1 = f32[64,256]{1,0} fusion(%flat), kind=kLoop, calls=%c5
  %w2one = f32[256,256]{1,0} fusion(%flat), kind=kLoop, calls=%c6
  %adam = f32[4,67586]{1,0} fusion(%flat, %dw), kind=kLoop, calls=%c7, metadata={op_type="Sub"}
  %flatone = f32[67586]{0} fusion(%flat), kind=kLoop, calls=%c8
  ROOT %tuple = (s32[], f32[4,67586]{1,0}) tuple(%i, %adam)
}
"""


def test_the_step_profile_sorts_ops_into_the_kinds_the_floor_needs():
    """A hidden-layer product has an [H, H] matrix among its operands or as its output (the
    first layer's product has the same output shape, and is not one); a pass over parameters
    writes [H, H] or a flat parameter row; with a group of one, XLA drops the member axis."""
    from benchmarks.step_profile import KINDS, family, hlo_ops, kind_of

    ops = hlo_ops(HLO)
    assert "tuple" not in ops and "arg" not in ops  # tuple-shaped: no one output array
    assert ops["hidden"].operands == ("relu", "w2") and ops["hidden"].shape == (4, 64, 256)
    assert ops["adam"].source == "Sub" and ops["relu"].source == ""
    products, others, passes, rest = KINDS
    expected = {
        "first": others,
        "hidden": products,
        "dw": products,
        "one": products,
        "w2": passes,
        "w2one": passes,
        "adam": passes,
        "flatone": passes,
        "relu": rest,
        "x": rest,
        "w1": rest,
    }
    assert {name: kind_of(ops[name], ops, 256) for name in expected} == expected
    assert family("MatMul_1.116") == "MatMul_1" and family("wrapped_multiply") == "wrapped_multiply"


def test_step_profile_runs_and_finds_every_hidden_layer_product(capsys):
    import re

    from benchmarks import step_profile

    # 5 members of [32, 32] are one group; the table rows are the four kinds and their sum.
    # Four calls of 32 steps: the 128 steps of one default burst, every call recorded.
    assert step_profile.main(["--members", "5", "--hidden", "32", "--burst", "32"]) == 0
    out = capsys.readouterr().out
    for kind in (*step_profile.KINDS, "all ops, added up"):
        assert f"| {kind} |" in out
    found, expected = re.search(r"products recorded: ([\d,]+) \(.*: ([\d,]+)\)", out).groups()
    assert found == expected == "512"  # 4 a step x 128 steps x 1 group
    assert "The 4 calls of 32 steps took" in out
    with pytest.raises(SystemExit) as refused:  # 128 / 3 steps would not be one burst's
        step_profile.main(["--burst", "3"])
    assert refused.value.code == 2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--regimes", ""], "--regimes names none"),
        (["--regimes", "a,zz"], "unknown regime 'zz'"),
        (["--config", "no/such.yaml"], "config file not found"),
        (["--out", "."], "is a folder; give the file to write"),
        (["--out", "afile/table.md"], "cannot write --out afile/table.md"),
        (["--out", "afile/sub/table.md"], "afile is not a folder"),
        # SB3 trains CartPole-v1 whatever the config: dqn on another env is no comparison.
        (["--config", str(bench.REPO / "configs/acrobot.yaml")], "give a config of env_id"),
    ],
)
def test_the_bench_refuses_bad_arguments_before_it_runs(
    argv, fragment, tmp_path, monkeypatch, capsys
):
    # Before, an unwritable --out failed after the whole run (half an hour for all regimes).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(argv)
    assert exit_.value.code == 2 and fragment in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BENCHMARK_SCRIPTS = sorted(
    path.stem for path in BENCHMARKS.glob("*.py") if "Parser(__file__, __doc__)" in path.read_text()
)


def test_every_benchmark_with_options_parses_them_with_the_one_line_parser():
    sources = BENCHMARKS.glob("*.py")
    assert [p.name for p in sources if "ArgumentParser(" in p.read_text()] == []
    assert len(BENCHMARK_SCRIPTS) >= 19


@pytest.mark.parametrize("name", BENCHMARK_SCRIPTS)
def test_a_benchmarks_usage_error_is_one_line_naming_how_it_is_run(name, capsys):
    import importlib

    module = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--bogus"])
    lines = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"python -m benchmarks.{name}: error: ")
    assert lines[0].endswith(f"(see python -m benchmarks.{name} --help)")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    usage = capsys.readouterr().out
    assert exit_.value.code == 0 and usage.startswith(f"usage: python -m benchmarks.{name}")
    first_paragraph = " ".join(module.__doc__.split("\n\n")[0].split())
    assert first_paragraph[:40] in " ".join(usage.split())


@pytest.mark.parametrize("population", [False, True])
def test_stop_at_solve_stops_each_seed_and_gives_it_the_final_evaluation(
    tmp_path, capsys, population
):
    from benchmarks import stop_at_solve

    out = tmp_path / "rows.csv"
    tiny = ["hidden_sizes=[16]", "total_env_steps=1000", "learning_starts_env_steps=200"]
    tiny += ["eval_every_env_steps=500", "eval_episodes=2", "final_eval_episodes=3"]
    # A bar of 1 is met by any CartPole episode: every seed stops at its first evaluation.
    argv = ["--learner", "numpy", "--seeds", "2", "--confirm", "2", "--out", str(out)]
    stop_at_solve.main(
        [*argv, *(["--population"] if population else []), "--set", *tiny, "solve_return=1"]
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "learner,seed,stop_env_step,stop_eval,final_eval_100,stopped"
    assert [line.split(",")[:3] + line.split(",")[5:] for line in lines[1:]] == [
        ["numpy", "0", "500", "True"],
        ["numpy", "1", "500", "True"],
    ]
    assert "2 of 2 seeds stopped" in capsys.readouterr().out


def test_train_loop_refuses_counts_it_cannot_run_before_starting_a_process(capsys, monkeypatch):
    from benchmarks import train_loop

    monkeypatch.setattr(train_loop, "in_a_process", lambda *a: pytest.fail("a process started"))
    for argv, said in (
        (["--steps", "599"], "--steps must be"),
        (["--members", "-1"], "--members must be"),
        (["--members", "2", "--resume"], "--resume times dqn.loop.resume of single runs"),
    ):
        with pytest.raises(SystemExit) as exit_:
            train_loop.main(argv)
        (line,) = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and said in line


def test_stop_at_solve_refuses_a_bad_override_in_one_line(tmp_path, capsys):
    from benchmarks import stop_at_solve

    for override, named in (
        ("loss=l3", "loss"),
        ("seed=3", "--seeds"),
        ("learner=numpy", "--learner"),
    ):
        with pytest.raises(SystemExit) as exit_:
            stop_at_solve.main(["--out", str(tmp_path / "x.csv"), "--set", override])
        assert exit_.value.code == 2 and named in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_subnormals_counts_and_flushes_what_float32_cannot_hold_as_normal():
    import numpy as np

    from benchmarks.subnormals import TINY, count, flushed

    values = np.array([0.0, -0.0, TINY, TINY / 2, -TINY / 4, 1e-45, 1.0], np.float32)
    assert TINY == np.float32(2.0**-126)
    assert count(values) == (2, 3)  # +-0; TINY/2, -TINY/4, 1e-45 (the smallest subnormal)
    out = flushed(values)
    assert out.dtype == np.float32 and count(out) == (5, 0)
    assert out[2] == TINY and out[-1] == 1.0  # normal values are kept


def test_subnormals_reads_the_last_dead_fractions(tmp_path):
    from benchmarks.subnormals import last_dead_fractions

    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "env_step,dead_fraction/hidden_0,dead_fraction/hidden_1\n2500,0.5,0.25\n5000,0.125,0.375\n"
    )
    assert last_dead_fractions(csv) == {"hidden_0": 0.125, "hidden_1": 0.375}


def test_subnormals_refuses_a_bad_config_in_one_line(tmp_path, capsys):
    from benchmarks import subnormals

    with pytest.raises(SystemExit) as refused:
        subnormals.main(["--config", str(tmp_path / "nope.yaml")])
    assert refused.value.code == 2
    assert "config file not found" in capsys.readouterr().err


def test_study_learner_chunks_members_as_the_study_interleaves_its_variants():
    from benchmarks.populations import STUDY_VARIANTS
    from benchmarks.study_learner import study_members
    from dqn.compare import Variant

    members = study_members(7, 25)
    labels = [Variant.parse(v).label for v in STUDY_VARIANTS]
    assert [m.label.rpartition("-")[0] for m in members] == labels + labels[:2]
    assert [m.seed for m in members] == list(range(25, 32))
    assert members[4].overrides == {"loss": "l2", "max_grad_norm": 10.0}


def test_study_learner_times_the_calls_after_the_first_per_member_step(monkeypatch):
    """The loop's figure is the learner's seconds after its first call over the member-steps of
    those calls: 2 members, calls at env steps 1,024 and 1,280 (the second one timed)."""
    import dqn.population
    from benchmarks import study_learner

    def fake_train(config, members, out_dir, **_):
        assert config.total_env_steps == 1_300 and len(members) == 2
        out_dir.mkdir(parents=True)
        timing = {"learner_calls": 2, "learner_seconds": 3.0, "first_learner_call_seconds": 2.0}
        (out_dir / "timing.json").write_text(json.dumps(timing))

    monkeypatch.setattr(dqn.population, "train_population", fake_train)
    # 1.0 s for 128 steps of 2 members.
    assert study_learner.time_loop(2, 1_300, 0) == pytest.approx(1e6 / 256)
    with pytest.raises(SystemExit) as refused:
        study_learner.main(["--env-steps", "1279"])
    assert refused.value.code == 2


def test_study_learner_reports_medians_and_their_ratio_to_the_bursts():
    from argparse import Namespace

    from benchmarks.study_learner import report

    times = {"bursts": [500.0, 480.0], "loop, alone": [520.0, 510.0], "loop, two at once": [600.0]}
    text = report(times, Namespace(members=25, env_steps=15_000, rounds=2))
    assert "| bursts | 490 | 1.00x | 500, 480 |" in text
    assert "| loop, alone | 515 | 1.05x | 520, 510 |" in text
    assert "| loop, two at once | 600 | 1.22x | 600 |" in text


def test_autograph_trace_alternates_fresh_processes_and_reports_medians(monkeypatch, capsys):
    from types import SimpleNamespace

    from benchmarks import autograph_trace

    order = []

    def fake_run(command, **kwargs):
        kind, on = command[command.index("--child") + 1 :][:2]
        order.append((kind, on))
        cpu = {"on": 3.0, "off": 1.0}[on] + len(order) / 100  # distinct, so medians are checked
        return SimpleNamespace(stdout=f"noise\n[{cpu}, {cpu + 0.5}]\n")

    monkeypatch.setattr(autograph_trace.subprocess, "run", fake_run)
    assert autograph_trace.main(["--rounds", "3", "--members", "4"]) == 0
    ons = [on for _, on in order]
    assert ons == ["on", "off", "off", "on", "on", "off"] * 2  # who goes first alternates
    out = capsys.readouterr().out
    # single: on at calls 1, 4, 5 (3.01, 3.04, 3.05), off at 2, 3, 6 (1.02, 1.03, 1.06)
    assert "default config: median first call 3.04 -> 1.03 s CPU, 3.54 -> 1.53 s wall" in out
    assert "population of 4: median first call 3.10 -> 1.09 s CPU" in out


def test_diagnostics_cost_warms_up_both_settings_before_any_counted_run(monkeypatch, capsys):
    """The learner's compiled functions are keyed by the whole config, diagnostics included: a
    warm-up with only one setting left the other side's first counted run to compile."""
    from types import SimpleNamespace

    import dqn.loop
    import dqn.runtime
    from benchmarks import diagnostics_cost

    runs = []

    def fake_train(config, **_):
        runs.append(config.diagnostics)
        return SimpleNamespace(train_seconds=1.0 + len(runs))

    monkeypatch.setattr(dqn.runtime, "import_tensorflow_quietly", lambda *a: None)
    monkeypatch.setattr(dqn.loop, "train", fake_train)
    assert diagnostics_cost.main(["--seeds", "2"]) == 0
    assert sorted(runs[:2]) == [False, True]  # uncounted: one of each
    assert runs[2:] == [True, False, False, True]
    out = capsys.readouterr().out
    assert "seed 0 diagnostics on : 4.00 s" in out  # the third run is the first counted


def test_diagnostics_cost_refuses_a_bad_config_in_one_line(tmp_path, capsys):
    from benchmarks import diagnostics_cost

    with pytest.raises(SystemExit) as refused:
        diagnostics_cost.main(["--config", str(tmp_path / "nope.yaml")])
    (line,) = capsys.readouterr().err.splitlines()
    assert refused.value.code == 2 and "config file not found" in line


def test_the_bench_refuses_a_cartpole_config_with_another_bar(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("solve_return: 400\n")
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--config", str(config)])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "sets solve_return 400" in line
    config.write_text("solve_return: 475\n")
    assert bench.parse_args(["--config", str(config)]).config == config


def test_the_table_names_the_config_it_was_given():
    d = {"seeds": 1, "eval": regimes.EVAL, "sb3": None, "dqn": None}
    p3 = {"seeds": 2, "run": {"wall_seconds": 50.0, "final_evals": [500.0, 100.0]}}
    text = table.table({"d": d, "p3": p3}, quick=False, config="configs/mine.yaml")
    assert "(d) dqn: configs/mine.yaml (?)" in text
    assert "(p3) trust check: configs/mine.yaml x 2 seeds" in text
    assert "cartpole.yaml" not in text
    assert bench.shown(bench.DEFAULT_CONFIG) == "configs/cartpole.yaml"
    assert bench.shown(Path("/elsewhere/c.yaml")) == "/elsewhere/c.yaml"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_the_bench_refuses_an_out_whose_folder_takes_no_files(capsys):
    # /proc exists, so making the folder passed, and the table was lost after the whole run.
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--out", "/proc/bench-f.md"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "no file can be made in /proc" in line


def test_the_bench_prints_its_table_and_one_line_when_the_final_write_fails(
    tmp_path, monkeypatch, capsys
):
    import dqn.io

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(bench, "missing_extra", lambda: None)
    fresh = {"seconds": 10.0, "threads": "1"}
    monkeypatch.setattr(regimes, "regime_f", lambda *a: {"fresh": [fresh], "warm": [fresh]})
    monkeypatch.setattr(dqn.io, "atomic_write_text", refuse)
    assert bench.main(["--regimes", "f", "--out", str(tmp_path / "t.md")]) == 2
    out, err = capsys.readouterr()
    assert "| (f) library path" in out
    (line,) = [x for x in err.splitlines() if x != "(f)"]
    assert "cannot write --out" in line and "Permission denied" in line
    assert list(tmp_path.iterdir()) == []


def test_an_out_in_new_folders_is_checked_without_making_them(tmp_path, monkeypatch, capsys):
    """Checking --out made its folders: a bench refused after (the bench extra missing) left
    them behind. They are made when the table is written."""
    out = tmp_path / "nd4" / "sub" / "b.md"
    argv = ["--quick", "--regimes", "f", "--out", str(out), "--seeds", "1"]
    monkeypatch.setattr(bench, "missing_extra", lambda: "install the bench extra")
    assert bench.main(argv) == 2
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(bench, "missing_extra", lambda: None)
    fresh = {"seconds": 10.0, "threads": "1"}
    monkeypatch.setattr(regimes, "regime_f", lambda *a: {"fresh": [fresh], "warm": [fresh]})
    assert bench.main(argv) == 0
    assert "| (f) library path" in out.read_text()


def test_stop_at_solve_interrupted_writes_no_rows_and_exits_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C left a header-only CSV (and a traceback), and the rerun refused: --out exists."""
    from types import SimpleNamespace

    import dqn
    from benchmarks import stop_at_solve

    calls = []

    def fake_train(config, **_):
        calls.append(config.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        history = [{"env_step": 500, "eval_return_mean": 10.0}]
        return SimpleNamespace(history=history, agent=None, interrupted=False, final_eval_mean=9.0)

    monkeypatch.setattr(dqn, "train", fake_train)
    out = tmp_path / "rows.csv"
    try:
        code = stop_at_solve.main(["--learner", "numpy", "--seeds", "3", "--out", str(out)])
    except KeyboardInterrupt:
        pytest.fail("the interrupt ended stop_at_solve with a traceback")
    assert code == 130
    assert calls == [0, 1] and list(tmp_path.iterdir()) == []
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "python -m benchmarks.stop_at_solve: interrupted; no rows written"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_stop_at_solve_refuses_an_unwritable_out_before_training(monkeypatch, capsys):
    import dqn
    from benchmarks import stop_at_solve

    monkeypatch.setattr(dqn, "train", lambda *a, **k: pytest.fail("trained"))
    for out in ("/proc/nope/s.csv", "/proc/s.csv"):
        with pytest.raises(SystemExit) as exit_:
            stop_at_solve.main(["--learner", "numpy", "--out", out])
        (line,) = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and f"cannot write --out {out}" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["stop_at_solve", "--out", "x.csv", "--set", "bogus_key=3"],
        ["subnormals", "--config", "/nonexistent.yaml"],
        ["diagnostics_cost", "--config", "/nonexistent.yaml"],
    ],
)
def test_a_bad_config_is_one_line_before_tensorflows_start_up(argv, tmp_path):
    """TensorFlow's import printed its start-up lines (8 of them) before the one-line error."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{argv[0]}", *argv[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_while_training_passes_on_its_training_runs_failure(monkeypatch, capsys):
    """A training child that failed left "0 loads ... 0 failed" and exit 0."""
    from benchmarks import read_while_training

    for every in ("0", "-5"):
        with pytest.raises(SystemExit) as exit_:
            read_while_training.main(["--every", every])
        (line,) = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and "--every: must be a positive integer" in line
    failing = "import sys; print('noise\\ndqn-train: error: bad key', file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(read_while_training, "TRAIN", failing)
    assert read_while_training.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        "python -m benchmarks.read_while_training: the training run failed (exit 2): "
        "dqn-train: error: bad key"
    ]


@pytest.mark.parametrize("shape", ["bogus", "64,64", "64,x:1", "64,64:0", ",:1", "64:-1"])
def test_learner_process_cost_refuses_a_bad_shape_in_one_line(shape, capsys):
    from benchmarks import learner_process_cost

    with pytest.raises(SystemExit) as exit_:
        learner_process_cost.main(["--shape", shape, "64,64:1"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "must be HIDDEN:K" in line and repr(shape) in line
    assert learner_process_cost.shape("120,84:128") == ((120, 84), 128)


def test_study_learner_names_what_env_steps_needs_before_the_configs_own_error(capsys):
    from benchmarks import study_learner

    with pytest.raises(SystemExit) as exit_:
        study_learner.main(["--env-steps", "10"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "--env-steps 10: at least" in line


def test_population_memory_refuses_a_run_too_short_before_its_children(monkeypatch, capsys):
    import subprocess

    from benchmarks import population_memory

    monkeypatch.chdir(BENCHMARKS.parent)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a child started"))
    with pytest.raises(SystemExit) as exit_:
        population_memory.main(["--members", "1", "2", "--steps", "600", "--hidden", "16"])
    (line,) = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "--steps 600" in line and "learning_starts" in line
    # A child that fails anyway: its last line, passed on, and its exit code.
    failed = subprocess.CompletedProcess([], 1, "", "Traceback (most recent call last):\nboom\n")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    assert population_memory.main(["--members", "1", "--steps", "3000", "--hidden", "16"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "python -m benchmarks.population_memory: the run of 1 members failed: boom"


def test_regime_d_gives_dqn_the_final_evaluation_sb3_gets(monkeypatch):
    """dqn's last evaluation was its final one, 100 episodes, against SB3's 10."""
    from benchmarks import dqn_worker

    seen = []

    def fake_train(config, made):
        seen.append(config)
        raise StopIteration

    monkeypatch.setattr(dqn_worker, "_train", fake_train)
    job = {"seeds": [0], **regimes.EVAL, "config": str(bench.DEFAULT_CONFIG)}
    with pytest.raises(StopIteration):
        dqn_worker.work_solve(job)
    (config,) = seen
    assert config.final_eval_episodes == config.eval_episodes == regimes.EVAL["eval_episodes"]
