"""dqn against Stable-Baselines3, side by side on this machine: ``python -m benchmarks.bench``.

Runs each regime with both libraries one after the other (each run in its own process) and
prints one markdown table with both numbers and their ratio:

  (a) rl-baselines3-zoo CartPole-v1 settings: wall seconds for 50k env steps, and the compute floor
  (b) one gradient step per env step, [64, 64] net: env steps/s
  (c) one gradient step per 4 env steps: env steps/s
  (d) configs/cartpole.yaml (or --config) over N seeds (SB3 on its zoo settings): time to first
      solve, final eval
  (e) CleanRL's dqn.py settings (SB3 with its Huber loss): env steps/s of the whole run
  (f) the library path: dqn's default config from a fresh process and after TensorFlow ran
  (p1) populations of 32 members at (b) and (c)'s settings: aggregate env steps/s against SB3
  (p2) the default loss study (5 variants x 10 seeds): populations, one process per run, and
       the study's compute floor
  (p3) the 30-seed check of the default config with populations: wall time

(a), (b), (c) and (e) also run dqn with ``learner: numpy``; (e) also with 8 vectorized envs
(against the same one-env SB3 run). CleanRL itself is not run (its dqn.py is a script, not a
package); its figure from another machine is a reference in (e)'s note, not a divisor.
Run from the repository root:

    python -m benchmarks.bench               # every regime, (a)-(f), (p1)-(p3): 34 min (README)
    python -m benchmarks.bench --quick       # small step counts: checks that it all runs
    python -m benchmarks.bench --regimes a,d --seeds 3 --out results/bench.md

Needs the "bench" extra (``pip install -c constraints.txt -e ".[bench]"`` or ``make bench``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import populations, regimes
from benchmarks.args import Parser, out_problem, positive_int
from benchmarks.regimes import REGIMES
from benchmarks.sb3_worker import missing_extra
from benchmarks.settings import EVERY_4_STEPS, EVERY_STEP
from benchmarks.table import table

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "cartpole.yaml"
BENCH_ENV, BENCH_BAR = "CartPole-v1", 475.0  # SB3's side (settings.ZOO, CLEANRL) and its bar


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(__file__, __doc__)
    p.add_argument("--quick", action="store_true", help="tiny step counts, to check it runs")
    p.add_argument(
        "--regimes", default=",".join(REGIMES), help="comma-separated, of " + ",".join(REGIMES)
    )
    p.add_argument("--seeds", type=positive_int, help="seeds of (d) (default 5; 2 with --quick)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="dqn config of (d)")
    p.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = p.parse_args(argv)
    args.regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    bad = [r for r in args.regimes if r not in REGIMES]
    if bad:
        p.error(f"unknown regime {bad[0]!r}; choose from {','.join(REGIMES)}")
    if not args.regimes:
        p.error(f"--regimes names none; choose from {','.join(REGIMES)}")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 5
    # Checked before a run that may take half an hour, not when its table is written.
    from dqn.config import DQNConfig
    from dqn.errors import ConfigError

    try:
        config = DQNConfig.from_yaml(args.config)
    except ConfigError as exc:
        p.error(str(exc))
    # SB3 runs CartPole-v1 in every regime (the zoo's and CleanRL's settings), and (d), (p2)
    # and (p3) train the config as it is: one of another env would train dqn on that env
    # against SB3 on CartPole, under a table that names CartPole's bar of 475.
    if config.env_id != BENCH_ENV:
        p.error(
            f"--config {args.config} trains {config.env_id}; the bench compares dqn with SB3 "
            f"on {BENCH_ENV} only: give a config of env_id {BENCH_ENV}"
        )
    if config.solve_return not in (None, BENCH_BAR):
        p.error(
            f"--config {args.config} sets solve_return {config.solve_return:g}; (d) judges "
            f"both libraries by {BENCH_ENV}'s own bar: leave it unset or {BENCH_BAR:g}"
        )
    if args.out is not None and (problem := out_problem(args.out)):
        p.error(problem)
    return args


def shown(config: Path) -> str:
    """``config`` as the table names it: from the repository root if it is in the repository
    (the default: configs/cartpole.yaml), else as given."""
    try:
        return config.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return str(config)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hint = missing_extra()
    if hint:
        print(hint, file=sys.stderr)
        return 2
    results = {}
    for key in args.regimes:
        print(f"({key})", file=sys.stderr)
        if key == "a":
            results[key] = regimes.regime_a(args.quick, args.config)
        elif key in ("b", "c"):
            s = EVERY_STEP if key == "b" else EVERY_4_STEPS
            results[key] = regimes.regime_rate(s, args.quick, args.config)
        elif key == "d":
            results[key] = regimes.regime_d(args.quick, args.config, args.seeds)
        elif key == "e":
            results[key] = regimes.regime_e(args.quick, args.config)
        elif key == "f":
            results[key] = regimes.regime_f(args.quick, args.config)
        else:
            regime = getattr(populations, f"regime_{key}")
            results[key] = regime(args.quick, args.config)
    text = table(results, args.quick, shown(args.config))
    print(text)
    if args.out:
        from dqn.io import atomic_write_text

        try:
            atomic_write_text(args.out, text)
        except OSError as exc:  # the folder changed during the run: the table is printed above
            print(
                f"python -m benchmarks.bench: cannot write --out {args.out}: {exc.strerror}; "
                "the table is printed above",
                file=sys.stderr,
            )
            return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: one line, as the commands say it (the workers stop too)
        print("python -m benchmarks.bench: interrupted; no table written", file=sys.stderr)
        sys.exit(130)
