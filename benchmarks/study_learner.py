"""Where the loss study's learner loses time against its bursts timed alone: ``python -m
benchmarks.study_learner [--members 25] [--env-steps 15000] [--rounds 2]``.

The anatomy (``benchmarks.learner_anatomy``) times a population step on random rows in a process
of its own; inside the loss study (p2) the learner's calls take longer per member-step. This
times the same members three ways, each round in fresh processes (one thread), alternating:

- bursts: the population learner of one study chunk (``--members`` members of the default
  config, the study's five variants interleaved as ``dqn-compare`` chunks them) on random rows,
  alone: the best of three 128-step bursts, per member-step (``population_scaling``'s timing);
- loop, alone: the same members trained by ``dqn.train_population`` for ``--env-steps`` env
  steps: its learner's calls after the first (which traces and compiles), from the
  population's ``timing.json``, per member-step;
- loop, two at once: two such chunks (other seeds for the second) started together, as the
  study's two worker processes run.

It prints each way's median over the rounds and its ratio to the bursts': what the loop adds
and what the second process adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.args import Parser, positive_int
from benchmarks.population_scaling import (
    REPEATS,
    K,
    best_burst_seconds,
    random_population,
    run_children,
    wait_for_all,
)
from benchmarks.populations import STUDY_VARIANTS

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"


def study_members(members: int, first_seed: int):
    """A chunk of the loss study: member i runs variant i mod 5 with seed first_seed + i."""
    from dqn.compare import Variant
    from dqn.population import Member

    variants = [Variant.parse(v) for v in STUDY_VARIANTS]
    chosen = [variants[i % len(variants)] for i in range(members)]
    return [
        Member(dict(v.overrides), first_seed + i, f"{v.label}-{i}") for i, v in enumerate(chosen)
    ]


def base_config(env_steps: int | None = None):
    """configs/cartpole.yaml, run for ``env_steps`` (None: its own length)."""
    from dqn.config import DQNConfig

    config = DQNConfig.from_yaml(CONFIG)
    return config if env_steps is None else config.replace(total_env_steps=env_steps)


def time_bursts(members: int) -> float:
    """Microseconds per member-step of the chunk's learner on random rows, best of bursts."""
    base = base_config()  # random rows: the run's length plays no part
    configs = [base.replace(seed=m.seed, **m.overrides) for m in study_members(members, 0)]
    learner, rows, active = random_population(members, base.hidden_sizes[0], configs=configs)
    learner.burst(rows, active)  # compiles
    return best_burst_seconds(learner, rows, active, REPEATS) / K / members * 1e6


def time_loop(members: int, env_steps: int, first_seed: int) -> float:
    """Microseconds per member-step of the learner's calls (after the first) in a population
    run of the chunk."""
    from dqn.population import train_population
    from dqn.population_files import TIMING_FILE

    base = base_config(env_steps)
    with tempfile.TemporaryDirectory() as tmp:
        train_population(
            base.replace(output_dir=tmp),
            study_members(members, first_seed),
            out_dir=Path(tmp) / "population",
            progress=False,
            log_tensorboard=False,
        )
        t = json.loads((Path(tmp) / "population" / TIMING_FILE).read_text())
    calls = t["learner_calls"] - 1
    if calls < 1:
        raise ValueError(f"{env_steps} env steps make {t['learner_calls']} learner call(s): need 2")
    seconds = t["learner_seconds"] - t["first_learner_call_seconds"]
    return seconds / (calls * base.gradient_steps_per_train * members) * 1e6


def child(job: dict) -> dict:
    from dqn.runtime import configure_blas, configure_tensorflow

    configure_tensorflow(1)
    configure_blas(1)
    if job["way"] == "bursts":
        return {"us": time_bursts(job["members"])}
    return {"us": time_loop(job["members"], job["env_steps"], job["first_seed"])}


WAYS = ("bursts", "loop, alone", "loop, two at once")


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--members", type=positive_int, default=25)
    p.add_argument("--env-steps", type=positive_int, default=15_000)
    p.add_argument("--rounds", type=positive_int, default=2)
    p.add_argument("--one", help=argparse.SUPPRESS)  # a child's job, as JSON
    p.add_argument("--barrier", help=argparse.SUPPRESS)  # a child's: folder:N, see wait_for_all
    args = p.parse_args(argv)
    if args.one:
        wait_for_all(args.barrier)  # two chunks start their runs together
        print(json.dumps(child(json.loads(args.one))))
        return 0
    from dqn.config import first_burst_env_step
    from dqn.errors import ConfigError

    # The config at its own length: at --env-steps a short run is a ConfigError (learning
    # would never start) before this check could name what --env-steps needs.
    c = base_config()
    need = first_burst_env_step(c) + c.train_every_env_steps  # the second call's env step
    if args.env_steps < need:
        p.error(f"--env-steps {args.env_steps}: at least {need} make the two learner calls needed")
    try:
        base_config(args.env_steps)
    except ConfigError as exc:
        p.error(f"--env-steps {args.env_steps}: {exc}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OPENBLAS_NUM_THREADS": "1"}

    def cmd(way: str, first_seed: int = 0) -> list[str]:
        job = dict(way=way, members=args.members, env_steps=args.env_steps, first_seed=first_seed)
        return [sys.executable, "-m", "benchmarks.study_learner", "--one", json.dumps(job)]

    times: dict[str, list[float]] = {w: [] for w in WAYS}
    for _ in range(args.rounds):
        times["bursts"] += [r["us"] for r in run_children([cmd("bursts")], env)]
        times["loop, alone"] += [r["us"] for r in run_children([cmd("loop")], env)]
        pair = [cmd("loop"), cmd("loop", args.members)]
        times["loop, two at once"] += [r["us"] for r in run_children(pair, env)]
    print(report(times, args))
    return 0


def report(times: dict[str, list[float]], args) -> str:
    what = (
        f"{args.members} members of the loss study's five variants, default config, TF learner, "
        f"one thread; loops of {args.env_steps:,} env steps; medians of {args.rounds} rounds"
    )
    lines = [
        f"| the learner's gradient step | us per member-step | / bursts | each run | {what}",
        "|---|---:|---:|---|",
    ]
    first = statistics.median(times["bursts"])
    for way in WAYS:
        runs = ", ".join(f"{t:.0f}" for t in times[way])
        mid = statistics.median(times[way])
        lines.append(f"| {way} | {mid:.0f} | {mid / first:.2f}x | {runs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
