"""The dqn side of the benchmark: ``dqn.loop.train`` runs timed by the step clock.

Each function here is one worker job (see ``benchmarks.worker``), run in a process of its own,
and returns plain JSON-able values. TensorFlow is imported by ``dqn.loop.train`` inside the job, so
the process that launches the jobs never loads it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.clock import StepClock, eval_windows, register_clocked_env, train_seconds_at
from benchmarks.settings import Settings, dqn_overrides


def _base_config(job: dict[str, Any]):
    from dqn.config import DQNConfig

    return DQNConfig.from_yaml(job["config"]) if job.get("config") else DQNConfig()


def _train(config, made: list[StepClock]):
    """``dqn.loop.train`` in a scratch folder: (result, training clock, evaluation clock)."""
    from dqn.loop import train

    made.clear()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            config.replace(output_dir=tmp),
            run_dir=Path(tmp) / "run",
            progress=False,
            log_tensorboard=False,
        )
    evals = [c for c in made if c.resets and c.resets[0][1] == config.eval_seed]
    trains = [c for c in made if c not in evals]
    return result, trains[0] if trains else None, evals[0] if evals else None


def _threads(config) -> str:
    threads = config.num_threads
    jit = " + XLA" if config.jit_compile else ""
    return f"TF and BLAS {threads} thread{'s' if threads != 1 else ''} (config num_threads){jit}"


def work_throughput(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_throughput``: seconds from the first reset to each env step in ``marks``."""
    s = Settings.from_dict(job["settings"])
    made: list[StepClock] = []
    total = s.total_env_steps
    base = _base_config(job)
    config = base.replace(
        **{**dqn_overrides(s), "env_id": register_clocked_env(s.env_id, made)},
        num_envs=1,  # one env, as in SB3's runs (see work_vector for more)
        **job.get("overrides", {}),
        seed=job["seed"],
        # No evaluation or checkpoint inside the timed steps (one of each follows the last).
        eval_every_env_steps=total,
        eval_episodes=1,
        checkpoint_every_env_steps=total + 1,
    )
    _, clock, _ = _train(config, made)
    elapsed = clock.elapsed_at(job["marks"])
    return {"elapsed": [elapsed[m] for m in job["marks"]], "threads": _threads(config)}


def work_vector(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_vector``: a whole run with ``num_envs`` > 1, timed by dqn's own clock.

    A vector env steps all its copies in one call, so there is no per-env step to wrap with a
    StepClock: the time is ``TrainResult.train_seconds`` (from the first reset to the end of
    the loop, evaluation excluded; one evaluation follows the last step).
    """
    s = Settings.from_dict(job["settings"])
    total = s.total_env_steps
    config = _base_config(job).replace(
        **dqn_overrides(s),
        **job["overrides"],
        seed=job["seed"],
        eval_every_env_steps=total,
        eval_episodes=1,
        checkpoint_every_env_steps=total + 1,
    )
    result, _, _ = _train(config, [])
    return {
        "seconds": result.train_seconds,
        "env_steps": int(result.history[-1]["env_step"]),
        "threads": _threads(config),
    }


def work_solve(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_solve``: the configured run over ``seeds``, with its evaluation curve.

    Curve rows are (env_step, eval_return_mean, train seconds so far), evaluation time excluded.
    """
    base = _base_config(job)
    made: list[StepClock] = []
    overrides = {
        "env_id": register_clocked_env(base.env_id, made),
        "eval_every_env_steps": job["eval_every_env_steps"],
        "eval_episodes": job["eval_episodes"],
        # The evaluation at the last step is the final one, of final_eval_episodes (100 in the
        # default config), where SB3's side evaluates eval_episodes (10) at every mark, the last
        # included: the final means and "seeds >= 475 at end" would compare a 100-episode
        # mean with 10-episode ones, which vary more. Both sides evaluate alike.
        "final_eval_episodes": job["eval_episodes"],
        "eval_seed": job["eval_seed"],
    }
    if job.get("total_env_steps"):
        overrides["total_env_steps"] = job["total_env_steps"]
    # SB3 writes no checkpoints; dqn's periodic ones are left out of the timed run too.
    total = overrides.get("total_env_steps", base.total_env_steps)
    overrides["checkpoint_every_env_steps"] = total + 1
    runs = []
    for seed in job["seeds"]:
        config = base.replace(**overrides, seed=seed)
        result, clock, eval_clock = _train(config, made)
        windows = eval_windows(eval_clock.resets, eval_clock.step_times, config.eval_seed)
        curve = [
            (
                int(row["env_step"]),
                float(row["eval_return_mean"]),
                train_seconds_at(clock.start, clock.step_times[int(row["env_step"]) - 1], windows),
            )
            for row in result.history
        ]
        runs.append(
            {
                "seed": seed,
                "curve": curve,
                "threshold": result.solve_return,
                "reported_train_seconds": result.train_seconds,
            }
        )
    summary = (
        f"{'x'.join(map(str, config.hidden_sizes))} net, {config.total_env_steps} steps, "
        f"train every {config.train_every_env_steps} x {config.gradient_steps_per_train}, "
        f"{config.loss}, lr {config.learning_rate:g}"
    )
    lr_end = getattr(config, "learning_rate_end", None)
    summary += f" -> {lr_end:g}" if lr_end is not None else ""
    summary += f", grad norm <= {config.max_grad_norm:g}" if config.max_grad_norm else ""
    summary += ", double DQN" if config.double_dqn else ""
    return {"runs": runs, "threads": _threads(config), "config_summary": summary}


def work_library_path(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_library_path``: the default config, trained from this fresh process, or
    (``warm``) after TensorFlow already ran an operation, as in a notebook or a project with
    TensorFlow code of its own. ``seconds``: ``TrainResult.train_seconds``; ``wait_seconds``:
    from after the caller's own TensorFlow work to ``train``'s return, everything dqn does in
    between (in a fresh process TensorFlow's import, with TensorFlow running first the start of
    the learner's process); ``learner``: the class that trained."""
    if job["warm"]:
        import tensorflow as tf

        (tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()
    t0 = time.perf_counter()
    from dqn.config import parse_overrides

    config = _base_config(job).replace(seed=job["seed"], **parse_overrides(job["overrides"]))
    result, _, _ = _train(config, [])
    return {
        "seconds": result.train_seconds,
        "wait_seconds": time.perf_counter() - t0,
        "learner": type(result.agent.learner).__name__,
        "threads": _threads(config),
    }


def work_population_throughput(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_population``: a population of ``members`` runs with these settings in one
    process, timed by the population's own progress callback.

    Not by step clocks around each member's env: a wrapped env is stepped by gymnasium one by
    one, while the population steps plain CartPoles in one numpy pass (``dqn.lockstep``). The
    callback fires at the end of every ``REPORT_EVERY``-th loop step, when every member has
    stepped, acted and learned for it, so marks must be multiples of ``REPORT_EVERY``; the run
    goes one report past the last mark, so its final evaluation and checkpoint are not timed.
    """
    from dqn.population import Member, train_population
    from dqn.population_progress import REPORT_EVERY

    s = Settings.from_dict(job["settings"])
    marks = job["marks"]
    if any(m % REPORT_EVERY for m in marks):
        raise ValueError(f"population marks must be multiples of {REPORT_EVERY}: {marks}")
    total = max(marks) + REPORT_EVERY
    base = _base_config(job).replace(
        **dqn_overrides(s.replace(total_env_steps=total)),
        num_envs=1,
        **job.get("overrides", {}),
        eval_every_env_steps=total,
        eval_episodes=1,
        final_eval_episodes=1,
        checkpoint_every_env_steps=total + 1,
    )
    seeds = range(job["first_seed"], job["first_seed"] + job["members"])
    reports: list[float] = []  # reports[k]: the time at env step REPORT_EVERY * (k + 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = train_population(
            base.replace(output_dir=tmp),
            [Member({}, seed) for seed in seeds],
            out_dir=Path(tmp) / "population",
            progress=lambda member_steps: reports.append(time.perf_counter()),
            log_tensorboard=False,
        )
    if any(r.diverged for r in results):
        raise RuntimeError("a member diverged: the aggregate rate would count fewer members")
    return {
        "elapsed": [reports[m // REPORT_EVERY - 1] - start for m in marks],
        "members": len(results),
        "threads": _threads(base),
    }


def work_study(job: dict[str, Any]) -> dict[str, Any]:
    """Worker ``dqn_study``: ``dqn-compare``'s study (variants x seeds of a config) with a
    runner, in a scratch folder: its wall time, and per run its gradient steps and outcome."""
    import time

    from benchmarks.floor import grad_step_flops
    from dqn.compare import Variant, run_comparison
    from dqn.config import parse_overrides
    from dqn.envs import check_env
    from dqn.population_files import TIMING_FILE
    from dqn.run_log import read_metrics

    base = _base_config(job).replace(**parse_overrides(job.get("overrides", [])))
    obs_dim, n_actions = check_env(base.env_id)
    variants = [Variant.parse(v) for v in job["variants"]]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rows = run_comparison(
            base,
            variants,
            list(range(job["seeds"])),
            tmp,
            workers=job["workers"],
            progress=False,
            runner=job["runner"],
        )
        wall = time.perf_counter() - t0
        grad_steps = []
        for metrics in sorted(Path(tmp, "runs").glob("*/run/metrics.csv")):
            column = read_metrics(metrics)["grad_steps"]
            grad_steps.append(int(column[-1]) if len(column) else 0)
        # Each population chunk's loop: its wall time and the learner's and evaluations' shares.
        timings = [json.loads(p.read_text()) for p in sorted(Path(tmp).rglob(TIMING_FILE))]
    return {
        "wall_seconds": wall,
        "grad_steps": grad_steps,
        "timings": timings,
        "runs": len(rows),
        "final_evals": [r["final_eval_mean"] for r in rows],
        "variants": [r["variant"] for r in rows],
        "flops_per_step": grad_step_flops(obs_dim, base.hidden_sizes, n_actions, base.batch_size),
        "threads": _threads(base),
    }
