"""Why CartPole runs fail, from the run folders of a dqn-compare study (docs/trust.md).

    python scripts/trust_diagnostics.py results/sweep [results/sweep2 ...] [--episodes 20]

Per variant it prints
- the median mean-Q at 10k, 25k and 50k env steps beside (1 - gamma^k) / (1 - gamma), the value
  after k exact target syncs of a policy that never fails (k = bursts so far, for configs with
  one sync per burst) and the largest return a CartPole policy can have, 1 / (1 - gamma);
- how the greedy episodes of each final policy below the solve threshold end: the cart off the
  track (|x| > 2.4), the pole down (|theta| > 12 degrees) or the 500-step time limit. Episode i
  is reset with seed 10000 + i, as in the runs' evaluations.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from dqn.config import DQNConfig
from dqn.run_log import read_metrics

X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


def episode_ends(agent, episodes: int, seed: int = 10_000) -> dict[str, int]:
    env = gym.make("CartPole-v1")
    ends = {"cart": 0, "pole": 0, "time limit": 0}
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
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


def q_propagation(runs: list[Path]) -> str:
    config = DQNConfig.from_yaml(runs[0] / "run" / "config.yaml")
    ceiling = 1 / (1 - config.gamma)
    metrics = [read_metrics(r / "run" / "metrics.csv") for r in runs]
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
    return (
        f"median mean Q {'; '.join(parts)}; runs whose mean Q exceeded 1/(1-gamma) = "
        f"{ceiling:.0f}: {over} of {len(peaks)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args(argv)
    # Checked before TensorFlow loads: one line and exit 2, as the package's commands do.
    problems = [
        f"{s} has no results.json" for s in args.studies if not (s / "results.json").is_file()
    ]
    if args.episodes <= 0:
        problems.append(f"--episodes must be > 0, got {args.episodes}")
    if problems:
        print(f"trust_diagnostics: {problems[0]}", file=sys.stderr)
        return 2
    from dqn.errors import DQNError

    try:
        report(args.studies, args.episodes)
    except DQNError as exc:
        print(f"trust_diagnostics: {exc}", file=sys.stderr)
        return 2
    return 0


def report(studies: list[Path], episodes: int) -> None:
    from dqn.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(1)
    from dqn import DQNAgent

    total = {"cart": 0, "pole": 0, "time limit": 0}
    for study in studies:
        rows = json.loads((study / "results.json").read_text())
        for label in dict.fromkeys(r["variant"] for r in rows):
            runs = [
                study / "runs" / f"{label}-seed{r['seed']}" for r in rows if r["variant"] == label
            ]
            print(f"{study.name} / {label}: {q_propagation(runs)}")
            for r, run in zip([r for r in rows if r["variant"] == label], runs):
                if r["diverged_at_env_step"] is not None or r["final_eval_mean"] >= 475:
                    continue
                ends = episode_ends(DQNAgent.load(run / "run"), episodes)
                total = {k: total[k] + ends[k] for k in total}
                print(
                    f"    seed {r['seed']}: final eval {r['final_eval_mean']:.1f}; "
                    + ", ".join(f"{k}: {v}" for k, v in ends.items())
                )
    print(f"all final policies below 475 (not stopped by the guard), episode ends: {total}")


if __name__ == "__main__":
    sys.exit(main())
