"""The five regimes of ``python -m benchmarks.bench``: which jobs each one runs, with what.

Each ``regime_*`` function launches its worker jobs (one process each, see
``benchmarks.worker``) and returns the raw results that ``benchmarks.table`` formats.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.floor import grad_step_flops, grad_steps
from benchmarks.settings import CLEANRL, ZOO, Settings
from benchmarks.worker import timed

REGIMES = ("a", "b", "c", "d", "e", "f", "p1", "p2", "p3")
LIBRARY_PATH_RUNS, LIBRARY_PATH_SEED = 3, 4  # (f): runs of each kind, alternating
EVAL = {"eval_every_env_steps": 2_500, "eval_episodes": 10, "eval_seed": 10_000}
WARMUP_ENV_STEPS, MEASURED_ENV_STEPS = 1_000, 10_000  # (b), (c): timed after learning starts
NUMPY = {"learner": "numpy"}
VECTOR_ENVS = 8  # (e), vectorized: envs stepped together


def throughput_runs(
    settings: Settings, marks: list[int], config: Path, sb3_settings: Settings | None = None
) -> dict:
    """dqn (as configured: the TensorFlow learner), dqn with the numpy learner, and SB3.

    SB3 runs ``sb3_settings`` if given (``settings`` otherwise), with the same marks.
    """
    job = {"settings": settings.to_dict(), "seed": 0, "marks": marks}
    dqn_job = {**job, "worker": "dqn_throughput", "config": str(config)}
    sb3_job = {**job, "settings": (sb3_settings or settings).to_dict()}
    return {
        "dqn": timed("dqn", dqn_job),
        "dqn_numpy": timed("dqn, learner numpy", {**dqn_job, "overrides": NUMPY}),
        "sb3": timed("SB3", {**sb3_job, "worker": "sb3_throughput", "torch_threads": 1}),
    }


def regime_a(quick: bool, config: Path) -> dict:
    """rl-baselines3-zoo settings: wall seconds of the whole run, and its compute floor."""
    s = ZOO.replace(total_env_steps=3_000) if quick else ZOO
    runs = throughput_runs(s, [s.total_env_steps], config)
    shape = (s.batch_size, s.hidden_sizes[0], s.hidden_sizes[1])
    rate = timed(
        "matmul rate",
        {"worker": "matmul", "shape": shape, "seconds": 0.5 if quick else 3.0},
        # One BLAS thread, like both libraries.
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    flops = grad_step_flops(4, s.hidden_sizes, 2, s.batch_size)
    steps = grad_steps(s)
    return {
        "settings": s,
        **runs,
        "grad_steps": steps,
        "flops_per_step": flops,
        "rate": rate,
        "floor_seconds": steps * flops / rate["flops_per_second"] if rate else None,
    }


def regime_rate(s: Settings, quick: bool, config: Path) -> dict:
    """(b), (c): env steps per second over the measured steps after learning starts + warm-up."""
    warmup, measured = (200, 1_000) if quick else (WARMUP_ENV_STEPS, MEASURED_ENV_STEPS)
    if quick:
        s = s.replace(learning_starts_env_steps=500)
    first = s.learning_starts_env_steps + warmup
    s = s.replace(total_env_steps=first + measured)
    runs = throughput_runs(s, [first, first + measured], config)
    return {"settings": s, **runs, "measured": measured}


def regime_d(quick: bool, config: Path, seeds: int) -> dict:
    """dqn's config against SB3's zoo settings over seeds: time to first solve, final eval."""
    evaluation = {**EVAL, "eval_every_env_steps": 1_000} if quick else EVAL
    total = 3_000 if quick else None
    job = {"seeds": list(range(seeds)), **evaluation}
    dqn = timed(
        f"dqn x {seeds} seeds",
        {**job, "worker": "dqn_solve", "config": str(config), "total_env_steps": total},
    )
    zoo = ZOO.replace(total_env_steps=total) if quick else ZOO
    sb3 = timed(
        f"SB3 x {seeds} seeds",
        {**job, "worker": "sb3_solve", "settings": zoo.to_dict(), "torch_threads": 1},
    )
    return {"dqn": dqn, "sb3": sb3, "seeds": seeds, "eval": evaluation}


def e_settings(quick: bool) -> tuple[Settings, Settings]:
    """(e)'s settings for dqn and for SB3: CleanRL's, except that SB3 trains with Huber.

    SB3's DQN has no other loss; dqn keeps CleanRL's squared error (see ``settings.CLEANRL``).
    Everything else, and so the work per env step, is the same in both.
    """
    s = CLEANRL
    if quick:
        s = s.replace(total_env_steps=3_000, learning_starts_env_steps=1_000)
    return s, s.replace(loss="huber")


def regime_e(quick: bool, config: Path) -> dict:
    """CleanRL's settings: env steps per second of the whole run, dqn and SB3 in this run.

    The same throughput runs as (a), marked at the last step, plus dqn vectorized.
    """
    s, sb3 = e_settings(quick)
    runs = throughput_runs(s, [s.total_env_steps], config, sb3_settings=sb3)
    job = {"settings": s.to_dict(), "seed": 0, "config": str(config)}
    vector = timed(
        f"dqn, learner numpy, {VECTOR_ENVS} envs",
        {**job, "worker": "dqn_vector", "overrides": {**NUMPY, "num_envs": VECTOR_ENVS}},
    )
    return {"settings": s, "sb3_settings": sb3, **runs, "vector": vector}


def regime_f(quick: bool, config: Path) -> dict:
    """The library path: the default config trained from a fresh process (the CLI's path) and
    after TensorFlow already ran (a notebook, a project with its own TensorFlow code),
    alternating, LIBRARY_PATH_RUNS of each; each run in a process of its own."""
    overrides = ["total_env_steps=3000", "learning_starts_env_steps=1000"] if quick else []
    runs: dict[str, list] = {"fresh": [], "warm": []}
    for _ in range(1 if quick else LIBRARY_PATH_RUNS):
        for kind in runs:
            job = {
                "worker": "dqn_library_path",
                "warm": kind == "warm",
                "config": str(config),
                "seed": LIBRARY_PATH_SEED,
                "overrides": overrides,
            }
            runs[kind].append(timed(f"dqn, {kind} process", job))
    return runs
