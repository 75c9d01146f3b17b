"""Command-line entry points: ``dqn-train`` and ``dqn-evaluate``.

Bad input (a config key, value or file, a loss or env name, a checkpoint) is reported as one
line on stderr with exit code 2, before TensorFlow is even imported where possible.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from dqn.errors import DQNError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the problem and where to look), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(prog: str, exc: BaseException) -> int:
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _quiet_tensorflow(num_threads: int = 1) -> None:
    from dqn.runtime import import_tensorflow_quietly

    import_tensorflow_quietly(num_threads)


# ---------------------------------------------------------------------- dqn-train
def train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dqn-train",
        description="Train a DQN agent on a Gymnasium env (vector observations, discrete actions).",
    )
    p.add_argument("--config", type=Path, help="YAML run config (e.g. configs/cartpole.yaml)")
    p.add_argument("--loss", help="TD loss: l2, clipped_delta, huber or clipped_grad")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument(
        "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override config keys, values as YAML (e.g. --set double_dqn=true 'hidden_sizes=[64,64]')",
    )
    p.add_argument("--run-dir", type=Path, help="write the run here instead of output_dir/<name>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    prog = "dqn-train"
    try:
        from dqn.config import DQNConfig

        overrides = list(args.set)
        if args.loss is not None:
            overrides.append(f"loss={args.loss}")
        if args.seed is not None:
            overrides.append(f"seed={args.seed}")
        config = DQNConfig.from_yaml(args.config, overrides)
        from dqn.envs import check_env

        check_env(config.env_id)  # an unknown id or space fails here, before TF is imported
        if args.run_dir is not None and args.run_dir.exists() and any(args.run_dir.iterdir()):
            raise DQNError(f"run folder {args.run_dir} already exists and is not empty")
        _quiet_tensorflow(config.num_threads)
        from dqn.train import train

        result = train(config, run_dir=args.run_dir, progress=not args.no_progress)
    except DQNError as exc:
        return _fail(prog, exc)
    except OSError as exc:
        return _fail(prog, f"cannot write the run: {exc.strerror}: {exc.filename}")
    _print_summary(result)
    return EXIT_INTERRUPTED if result.interrupted else 0


def _print_summary(result) -> None:
    s = result.summary
    solved = s["first_solve_env_step"]
    threshold = s["solve_return"]
    lines = [
        "",
        f"{s['env_id']} / {s['loss']} / seed {s['seed']}: {s['env_steps']} env steps"
        + (" (interrupted; checkpoint saved)" if s["interrupted"] else ""),
        f"  final greedy evaluation: {s['final_eval_mean']:.1f} +/- {s['final_eval_std']:.1f}",
    ]
    if threshold is not None:
        lines.append(
            f"  first evaluation >= {threshold:g}: "
            + (f"at env step {solved}" if solved is not None else "not reached")
        )
    lines += [
        f"  wall time: {s['train_seconds']:.1f} s training + {s['eval_seconds']:.1f} s evaluation",
        f"  run folder: {result.run_dir}  (metrics.csv, tb/, checkpoint/)",
    ]
    print("\n".join(lines))


# ---------------------------------------------------------------------- dqn-evaluate
def evaluate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dqn-evaluate", description="Greedy evaluation of a saved agent.")
    p.add_argument("path", type=Path, help="a run folder or a checkpoint folder")
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    p.add_argument(
        "--seed", type=int, default=10_000, help="episode i is reset with seed + i (default 10000)"
    )
    return p


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    args = evaluate_parser().parse_args(argv)
    prog = "dqn-evaluate"
    if args.episodes <= 0:
        return _fail(prog, f"--episodes must be > 0, got {args.episodes}")
    try:
        from dqn.errors import CheckpointError

        path = args.path
        if (path / "checkpoint").is_dir():
            path = path / "checkpoint"
        if not path.is_dir():
            raise CheckpointError(f"no run or checkpoint folder at {args.path}")
        _quiet_tensorflow()
        from dqn.agent import DQNAgent
        from dqn.envs import make_env
        from dqn.train import evaluate

        agent = DQNAgent.load(path)
        env = make_env(agent.config.env_id)
        mean, std, returns = evaluate(agent, env, args.episodes, args.seed)
    except DQNError as exc:
        return _fail(prog, exc)
    print(
        f"{agent.config.env_id}: greedy return {mean:.1f} +/- {std:.1f} over {args.episodes} "
        f"episodes (min {min(returns):g}, max {max(returns):g})"
    )
    return 0


# ---------------------------------------------------------------------- dqn-compare
def compare_parser() -> argparse.ArgumentParser:
    from dqn.compare import DEFAULT_VARIANTS

    p = _Parser(
        prog="dqn-compare",
        description="Train loss variants x seeds with one config, in parallel, resumably.",
    )
    p.add_argument("--config", type=Path, help="YAML run config shared by every variant")
    p.add_argument(
        "--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="VARIANT",
        help="a loss name, or LABEL:key=value,key=value (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override config keys for every variant",
    )
    p.add_argument("--out", type=Path, default=Path("results/compare"), help="output folder")
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1,
        help="parallel training processes, one TF thread each (default: number of cores)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def compare_main(argv: Sequence[str] | None = None) -> int:
    args = compare_parser().parse_args(argv)
    prog = "dqn-compare"
    if args.seeds <= 0 or args.workers <= 0 or args.first_seed < 0:
        return _fail(prog, "--seeds and --workers must be > 0 and --first-seed >= 0")
    try:
        from dqn.compare import Variant, run_comparison, seed_table
        from dqn.config import DQNConfig
        from dqn.envs import check_env

        base = DQNConfig.from_yaml(args.config, list(args.set))
        check_env(base.env_id)
        variants = [Variant.parse(v) for v in args.variants]
        labels = [v.label for v in variants]
        if len(set(labels)) != len(labels):
            raise DQNError(f"variant labels must be unique, got {', '.join(labels)}")
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        rows = run_comparison(
            base, variants, seeds, args.out, workers=args.workers, progress=not args.no_progress
        )
    except DQNError as exc:
        return _fail(prog, exc)
    except OSError as exc:
        return _fail(prog, f"cannot write to {args.out}: {exc.strerror}")
    print(seed_table(rows))
    print()
    print((args.out / "summary.md").read_text())
    print(f"results, summary and figures: {args.out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
