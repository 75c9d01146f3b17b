"""Does an agent stopped at its first solved evaluation stay solved? ``python -m
benchmarks.stop_at_solve --learner numpy --seeds 30 --out results/stop-at-solve-numpy.csv``.

The usual early stop (``train``'s ``on_eval`` returning False once an evaluation reaches the
env's bar; Stable-Baselines3's ``StopTrainingOnRewardThreshold``) trusts an evaluation of
``eval_episodes`` (10 in the default config). This trains each seed of the default config until
that evaluation, then gives the stopped agent the final evaluation an unstopped run gets
(``final_eval_episodes``, 100, from ``eval_seed``), and counts how many still reach the bar.
Each seed's row is printed as it ends; ``--out`` is written whole at the end (Ctrl-C leaves no
file), with the summary.

``--confirm N`` stops only when, after such an evaluation, N more greedy episodes of other
reset seeds (``CONFIRM_SEED`` on, not the final evaluation's) also average >= the bar.

``--population`` trains the seeds as one population (``train_population``'s ``on_eval`` stops
each member on its own); a stopped member's agent is loaded from the checkpoint of its stop.
The rows are written when the population ends.
"""

from __future__ import annotations

import csv
import io
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.args import Parser, out_problem, positive_int

# The confirmation's episodes are reset from here on: not the final evaluation's (eval_seed on).
CONFIRM_SEED = 20_000


HEADER = ["learner", "seed", "stop_env_step", "stop_eval", "final_eval_100", "stopped"]


def main(argv: list[str] | None = None) -> int:
    parser = Parser(__file__, __doc__)
    parser.add_argument("--learner", choices=["tensorflow", "numpy"], default="tensorflow")
    parser.add_argument("--seeds", type=positive_int, default=30)
    parser.add_argument("--out", type=Path, required=True, help="a CSV of one row per seed")
    parser.add_argument(
        "--confirm",
        type=positive_int,
        metavar="N",
        help="stop only if N more greedy episodes (other reset seeds) also reach the bar",
    )
    parser.add_argument(
        "--population", action="store_true", help="train the seeds as one population"
    )
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys"
    )
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists: give another --out")
    # What the script sets itself, an override would not change: refused, not ignored.
    owned = {"seed": "--seeds", "learner": "--learner", "output_dir": "a temporary folder"}
    if taken := [kv for kv in args.set if kv.partition("=")[0].strip() in owned]:
        key = taken[0].partition("=")[0].strip()
        parser.error(f"--set {key} is set by {owned[key]}")

    from dqn.config import DQNConfig
    from dqn.errors import DQNError

    # Checked before TensorFlow's import, whose start-up lines would come before the one line.
    try:
        base = DQNConfig.from_yaml(None, [f"learner={args.learner}", *args.set])  # the default
    except DQNError as exc:
        parser.error(str(exc))
    if problem := out_problem(args.out):  # before the seeds train, not after
        parser.error(problem)

    from dqn import DQNAgent, train, train_population
    from dqn.envs import make_env, solve_return
    from dqn.evaluation import evaluate
    from dqn.stats import median_ci, proportion_ci

    bar = solve_return(base, make_env(base.env_id))
    confirm_env = make_env(base.env_id)

    def go_on(row, agent) -> bool:
        if row["eval_return_mean"] < bar:
            return True
        if args.confirm is None:
            return False
        mean, _, _ = evaluate(agent, confirm_env, args.confirm, CONFIRM_SEED)
        return mean < bar

    def final_eval(agent, stopped: bool, final_mean: float) -> float:
        """A stopped agent gets the final evaluation an unstopped run ends on; an agent that
        never reached the bar had its own."""
        if not stopped:
            return final_mean
        env = make_env(base.env_id)
        return evaluate(agent, env, base.final_eval_episodes, base.eval_seed)[0]

    rows, start = [], time.perf_counter()

    def record(seed: int, history: list[dict], mean: float, stopped: bool) -> None:
        stop = history[-1]
        row = [args.learner, seed, stop["env_step"], stop["eval_return_mean"], mean, stopped]
        rows.append(row)
        print(f"seed {seed}: stopped at {row[2]} (eval {row[3]:.1f}), final {mean:.1f}")

    try:
        with tempfile.TemporaryDirectory() as runs:
            if args.population:
                results = train_population(
                    base.replace(output_dir=runs),
                    [({}, seed) for seed in range(args.seeds)],
                    out_dir=Path(runs) / "population",
                    progress=False,
                    log_tensorboard=False,
                    on_eval=go_on,
                )
                for seed, result in enumerate(results):
                    stopped = result.summary["stopped_by_on_eval"]
                    # A stopped member's agent: from the checkpoint of its stop.
                    agent = DQNAgent.load(result.run_dir) if stopped else None
                    record(
                        seed,
                        result.history,
                        final_eval(agent, stopped, result.final_eval_mean),
                        stopped,
                    )
            else:
                for seed in range(args.seeds):
                    config = base.replace(seed=seed, output_dir=runs)
                    result = train(config, progress=False, log_tensorboard=False, on_eval=go_on)
                    mean = final_eval(result.agent, result.interrupted, result.final_eval_mean)
                    record(seed, result.history, mean, result.interrupted)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as dqn's loop takes it
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{parser.prog}: interrupted; no rows written", file=sys.stderr)
        return 128 + signum
    # Written whole at the end: a file of some seeds' rows would pass for a finished run, and
    # its name would stop the rerun (--out must not exist).
    from dqn.io import atomic_write_text

    text = io.StringIO()
    csv.writer(text).writerows([HEADER, *rows])
    try:
        atomic_write_text(args.out, text.getvalue())
    except OSError as exc:  # the folder changed during the run: the rows are printed above
        print(f"{parser.prog}: cannot write --out {args.out}: {exc.strerror}", file=sys.stderr)
        return 2

    stopped = [r for r in rows if r[5]]
    held = sum(r[4] >= bar for r in stopped)
    low, high = proportion_ci(held, len(stopped)) if stopped else (float("nan"),) * 2
    steps = median_ci([r[2] for r in stopped]) if stopped else (float("nan"),) * 3
    print(
        f"\n{args.learner}: {len(stopped)} of {len(rows)} seeds stopped at an evaluation "
        f">= {bar:g}{f' confirmed over {args.confirm} episodes' if args.confirm else ''} "
        f"(median step {steps[0]:,.0f} [{steps[1]:,.0f}, {steps[2]:,.0f}]); "
        f"{held} of them >= {bar:g} over {base.final_eval_episodes} episodes "
        f"[95% CI {low:.2f}, {high:.2f}]; their median there "
        f"{statistics.median(r[4] for r in stopped) if stopped else float('nan'):.1f}; "
        f"{time.perf_counter() - start:.0f} s{' as one population' if args.population else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
