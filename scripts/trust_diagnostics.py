"""Why CartPole runs fail, from the run folders of a dqn-compare study (docs/trust.md).

    python scripts/trust_diagnostics.py results/sweep [results/sweep2 ...] [--episodes 20]

Per variant it prints
- how much of a batch the loss gives no gradient, and what is left unlearned: the median over
  runs of the zero-gradient fraction at the first evaluation after learning starts and, over
  the runs that reached ``total_env_steps``, the medians of their last logged median |TD
  error| and largest |Q| (a loss whose gradient vanishes for large errors, as clipped_delta's,
  leaves both where they start);
- the median mean-Q at 10k, 25k and 50k env steps beside (1 - gamma^k) / (1 - gamma), the value
  after k exact target syncs of a policy that never fails (k = bursts so far, for configs with
  one sync per burst) and the largest return a CartPole policy can have, 1 / (1 - gamma);
- how the greedy episodes of each final policy below the solve threshold end: the cart off the
  track (|x| > 2.4), the pole down (|theta| > 12 degrees) or the 500-step time limit. Episode i
  is reset with seed eval_seed + i (10000 + i by default), as in the runs' evaluations.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import numpy as np

from dqn.command_line import Parser, fail
from dqn.config import MAX_EVAL_EPISODES, DQNConfig, read_saved_config
from dqn.envs import config_env, solve_return
from dqn.errors import DQNError
from dqn.report import run_name
from dqn.run_log import read_metrics
from dqn.study_runs import check_result_rows

PROG = Path(__file__).name
X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


# What the report reads of each run of results.json.
NEEDS = ("variant", "seed", "final_eval_mean", "diverged_at_env_step")


def episode_ends(agent, config: DQNConfig, episodes: int) -> dict[str, int]:
    """How ``episodes`` greedy episodes of ``agent`` end, on the run's own env (its env_kwargs
    too), episode i reset with seed eval_seed + i as in the run's evaluations."""
    ends = {"cart": 0, "pole": 0, "time limit": 0}
    with contextlib.closing(config_env(config)) as env:
        for i in range(episodes):
            obs, _ = env.reset(seed=config.eval_seed + i)
            terminated = truncated = False
            while not (terminated or truncated):
                obs, _, terminated, truncated, _ = env.step(agent.act(obs))
            if not terminated:
                ends["time limit"] += 1
            elif abs(obs[0]) > X_LIMIT:
                ends["cart"] += 1
            elif abs(obs[2]) > THETA_LIMIT:
                ends["pole"] += 1
    return ends


def read_variant(runs: list[Path]) -> tuple[DQNConfig, list[dict[str, np.ndarray]]]:
    """A variant's config (its first run's: a study shares it) and every run's metrics.csv."""
    config = read_saved_config(runs[0] / "run" / "config.yaml")  # as dqn reads a run's
    if config.env_id != "CartPole-v1":  # the episode ends read CartPole's cart and pole
        raise DQNError(f"{runs[0]} trained on {config.env_id}: this report reads CartPole-v1 runs")
    return config, [_metrics(r / "run" / "metrics.csv") for r in runs]


# The columns this report reads.
NEEDED = ("env_step", "q_abs_max", "q_mean", "td_error_abs_p50", "zero_grad_fraction")


def _metrics(path: Path) -> dict[str, np.ndarray]:
    """A run's metrics.csv; a DQNError naming the file where it is cut short, holds a cell that
    is not a number, or lacks a column this report reads (a KeyError or ValueError deep in the
    report before, a traceback)."""
    # read_metrics names a file cut short (a header cut there read as a run of no rows,
    # reported as one without diagnostics), a row of other length and a cell not a number.
    metrics = read_metrics(path)
    if missing := [name for name in NEEDED if name not in metrics]:
        raise DQNError(f"{path} has no column {missing[0]!r}: is it a dqn run's metrics.csv?")
    return metrics


def q_propagation(config: DQNConfig, metrics: list[dict[str, np.ndarray]]) -> str:
    ceiling = 1 / (1 - config.gamma)
    parts = []
    for step in (10_000, 25_000, 50_000):
        q = [m["q_mean"][m["env_step"] == step] for m in metrics]
        q = [float(v[0]) for v in q if len(v)]
        if not q:
            continue
        k = step // config.train_every_env_steps - (
            config.learning_starts_env_steps // config.train_every_env_steps
        )
        parts.append(
            f"{step // 1000}k: {np.median(q):.1f} (after {k} syncs "
            f"{(1 - config.gamma**k) * ceiling:.1f})"
        )
    peaks = [np.nanmax(m["q_mean"]) for m in metrics if np.isfinite(m["q_mean"]).any()]
    over = sum(p > ceiling for p in peaks)
    # (A study shorter than 10k env steps has no row at those steps.)
    at = "; ".join(parts) or "at 10k, 25k, 50k: no run reached them"
    return (
        f"median mean Q {at}; runs whose mean Q exceeded 1/(1-gamma) = "
        f"{ceiling:.0f}: {over} of {len(peaks)}"
    )


def gradient_starvation(config: DQNConfig, metrics: list[dict[str, np.ndarray]]) -> str:
    # The first evaluation with a gradient step before it (before any, the fraction is NaN).
    first = []
    for m in metrics:
        logged = m["zero_grad_fraction"][np.isfinite(m["zero_grad_fraction"])]
        first += logged[:1].tolist()
    ended = [
        m for m in metrics if len(m["env_step"]) and m["env_step"][-1] == config.total_env_steps
    ]
    if not first:  # "nan (0 runs)" and numpy's warnings about an empty slice, before
        return (
            "no gradient diagnostics (runs trained with diagnostics: false, or stopped before a "
            "gradient step)"
        )
    text = f"median zero-grad fraction at the first evaluation {np.median(first):.3f}"
    text += f" ({len(first)} runs)"
    if ended:
        td = np.median([m["td_error_abs_p50"][-1] for m in ended])
        q = np.median([m["q_abs_max"][-1] for m in ended])
        text += (
            f"; at env step {config.total_env_steps:,} ({len(ended)} runs): median |TD error| "
            f"{td:.1f}, median max |Q| {q:.1f}"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args(argv)
    # Checked before TensorFlow loads: one line and exit 2, as the package's commands do. The
    # cap is dqn-evaluate's: more episodes than that is a typo, and would run for days.
    if not 1 <= args.episodes <= MAX_EVAL_EPISODES:
        return fail(PROG, f"--episodes must be in [1, {MAX_EVAL_EPISODES:_}], got {args.episodes}")
    try:
        studies = [(study, read_runs(study)) for study in args.studies]
    except ValueError as exc:
        return fail(PROG, exc)
    try:
        report(studies, args.episodes)
    except DQNError as exc:
        return fail(PROG, exc)
    except OSError as exc:  # a run's files, unreadable or gone since they were checked
        return fail(PROG, f"cannot read {exc.filename or 'a run'}: {exc.strerror or exc}")
    return 0


def read_runs(study: Path) -> list[dict]:
    """The runs of a study's results.json, whose run folders are there. ValueError naming the
    file where it cannot be read, or is not what dqn-compare writes."""
    path = study / "results.json"
    if not path.is_file():
        raise ValueError(f"{study} has no results.json")
    try:
        rows = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ValueError(f"cannot read {path}: {exc}") from None
    check_result_rows(path, rows, NEEDS)
    if not rows:  # the report read TensorFlow in, then said nothing of nothing, exit 0
        raise ValueError(f"{path} holds no runs")
    for i, row in enumerate(rows, 1):
        _check_run(path, i, row)
    return rows


def _check_run(path: Path, i: int, row: dict) -> None:
    """Run ``i`` of results.json ``path`` has a final evaluation, and its run folder."""
    if row["final_eval_mean"] is None and row["diverged_at_env_step"] is None:
        raise ValueError(f"{path}: run {i} has no final evaluation, and the guard did not stop it")
    run = _run_folder(path.parent, row)
    if not run.is_dir():  # a study whose run folders were removed (only its results kept)
        raise ValueError(f"{path}: run {i} has no run folder {run}")


def _run_folder(study: Path, row: dict) -> Path:
    return study / "runs" / run_name(row["variant"], row["seed"])


def report(studies: list[tuple[Path, list[dict]]], episodes: int) -> None:
    """``studies``: each study folder with its runs, as read_runs reads them. Every run's files
    are read (its metrics, and the final policy of each run below the solve threshold) before a
    line is printed: a run without checkpoints, found after half the report was printed, left a
    partial report above its error."""
    from dqn.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(1)
    from dqn import DQNAgent

    variants = []
    for study, rows in studies:
        for label in dict.fromkeys(r["variant"] for r in rows):
            mine = [r for r in rows if r["variant"] == label]
            runs = [_run_folder(study, r) for r in mine]
            config, metrics = read_variant(runs)
            with contextlib.closing(config_env(config)) as env:
                threshold = solve_return(config, env)
            failed = [
                (r, DQNAgent.load(run / "run"))
                for r, run in zip(mine, runs)
                if r["diverged_at_env_step"] is None and r["final_eval_mean"] < threshold
            ]
            variants.append((f"{study.name} / {label}", config, metrics, failed))
    total = {"cart": 0, "pole": 0, "time limit": 0}
    for name, config, metrics, failed in variants:
        print(f"{name}: {gradient_starvation(config, metrics)}")
        print(f"{name}: {q_propagation(config, metrics)}")
        for r, agent in failed:
            ends = episode_ends(agent, config, episodes)
            total = {k: total[k] + ends[k] for k in total}
            print(
                f"    seed {r['seed']}: final eval {r['final_eval_mean']:.1f}; "
                + ", ".join(f"{k}: {v}" for k, v in ends.items())
            )
    print(
        "all final policies below the solve threshold (not stopped by the guard), episode "
        f"ends: {total}"
    )


if __name__ == "__main__":
    sys.exit(main())
