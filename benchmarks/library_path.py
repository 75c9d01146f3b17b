"""Training time of the default config from a fresh process ("cold") and from a process where
TensorFlow already ran an operation before ``dqn.train`` ("warm"), as in a notebook or a project
with TensorFlow code of its own. One run per invocation, so that each starts fresh:

    python -m benchmarks.library_path cold
    python -m benchmarks.library_path warm [--seed 4]
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.args import Parser
from benchmarks.dqn_worker import work_library_path

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"


def main(argv: list[str] | None = None) -> None:
    p = Parser(__file__, __doc__)
    p.add_argument("mode", choices=("cold", "warm"))
    p.add_argument("--seed", type=int, default=4)
    args = p.parse_args(argv)
    from dqn.config import DQNConfig
    from dqn.errors import DQNError

    # Checked here, before TensorFlow runs (warm) or the run starts: the worker's ConfigError
    # came out as a traceback.
    try:
        DQNConfig.from_yaml(CONFIG).replace(seed=args.seed)
    except DQNError as exc:
        p.error(str(exc))
    # The same job as the benchmark's regime (f), run in this fresh process.
    job = {"warm": args.mode == "warm", "config": str(CONFIG), "seed": args.seed, "overrides": []}
    print(f"{args.mode}: {work_library_path(job)['seconds']:.1f} s training")


if __name__ == "__main__":
    main()
