"""Training time of the default config from a fresh process ("cold") and from a process where
TensorFlow already ran an operation before ``dqn.train`` ("warm"), as in a notebook or a project
with TensorFlow code of its own. One run per invocation, so that each starts fresh:

    python -m benchmarks.library_path cold
    python -m benchmarks.library_path warm [--seed 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "cartpole.yaml"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("cold", "warm"))
    p.add_argument("--seed", type=int, default=4)
    args = p.parse_args(argv)
    if args.mode == "warm":
        import tensorflow as tf

        (tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()
    from dqn import DQNConfig, train

    config = DQNConfig.from_yaml(CONFIG, [f"seed={args.seed}"])
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, run_dir=Path(tmp) / "run", progress=False, log_tensorboard=False)
    print(
        f"{args.mode}: {result.train_seconds:.1f} s training, final eval {result.final_eval_mean}"
    )


if __name__ == "__main__":
    main()
