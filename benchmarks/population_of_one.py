"""Where a population of one and the single run of its seed part: ``python -m
benchmarks.population_of_one --learner tensorflow``.

Trains the default config (configs/cartpole.yaml, ``--steps`` env steps) for one seed twice, as
``train`` and as a population of one member (``train_population``), and prints, for each row of
the two ``metrics.csv`` files, the columns whose values differ. The tests check that the two
agree over a few hundred updates (numpy learner) and to float32 rounding update by update (both
learners); this shows what that rounding does over a run: with the TensorFlow learner, whose
stacked products round otherwise than its 2-D ones, the two follow other trajectories, as two
CPUs' runs of one seed do.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from benchmarks.args import Parser, positive_int

COLUMNS = ("episodes", "epsilon", "loss", "grad_norm", "train_return_mean", "eval_return_mean")


def rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--learner", choices=("tensorflow", "numpy"), default="tensorflow")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--steps", type=positive_int, default=5_000, help="env steps of each run")
    args = p.parse_args(argv)

    from dqn.config import DQNConfig
    from dqn.errors import DQNError

    # Checked before TensorFlow's import, whose start-up lines would come before the one line.
    try:
        base = DQNConfig.from_yaml("configs/cartpole.yaml").replace(
            total_env_steps=args.steps, learner=args.learner
        )
        base.replace(seed=args.seed)
    except DQNError as exc:
        p.error(str(exc))
    from dqn import train, train_population

    with tempfile.TemporaryDirectory() as tmp:
        single = train(base.replace(seed=args.seed), run_dir=Path(tmp) / "single", progress=False)
        [member] = train_population(
            base, [({}, args.seed)], out_dir=Path(tmp) / "population", progress=False
        )
        pairs = list(zip(rows(single.run_dir), rows(member.run_dir), strict=True))
    print(
        f"configs/cartpole.yaml, {args.steps:,} env steps, learner {args.learner}, seed "
        f"{args.seed}: single run / population of one, the columns that differ"
    )
    for a, b in pairs:
        differ = [f"{k} {a[k]} / {b[k]}" for k in COLUMNS if a[k] != b[k]]
        print(f"  env step {a['env_step']}: {'; '.join(differ) or 'none differs'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
