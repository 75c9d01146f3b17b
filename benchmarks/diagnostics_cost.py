"""What the backprop diagnostics cost: train the same config with them on and off, side by side.

    python -m benchmarks.diagnostics_cost [--config configs/cartpole.yaml] [--seeds 2]

After one run that is not counted (the process's start-up costs), runs alternate (on, off,
off, on, on, off, ...) in this one process so that both see the same machine.
Prints the training wall time of each (evaluation excluded) and the ratio on/off.
"""

from __future__ import annotations

import statistics
import sys
import tempfile

from benchmarks.args import Parser, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = Parser(__file__, __doc__)
    parser.add_argument("--config", default="configs/cartpole.yaml")
    parser.add_argument("--seeds", type=positive_int, default=2)
    args = parser.parse_args(argv)

    from dqn.config import DQNConfig
    from dqn.runtime import import_tensorflow_quietly

    base = DQNConfig.from_yaml(args.config)
    import_tensorflow_quietly(base.num_threads)
    from dqn.loop import train

    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        # A first run, not counted, pays the process's one-time start-up costs (TensorFlow's
        # and XLA's), which would otherwise land on the first side timed.
        train(base.replace(output_dir=tmp), progress=False, log_tensorboard=False)
        for seed in range(args.seeds):
            # The order flips each seed, so that neither side is always the first of its pair.
            for on in (True, False) if seed % 2 == 0 else (False, True):
                cfg = base.replace(seed=seed, diagnostics=on, output_dir=tmp)
                result = train(cfg, progress=False, log_tensorboard=False)
                seconds[on].append(result.train_seconds)
                print(
                    f"seed {seed} diagnostics {'on ' if on else 'off'}: "
                    f"{result.train_seconds:.2f} s",
                    flush=True,
                )
    on, off = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(
        f"\nmedian train seconds: diagnostics on {on:.2f}, off {off:.2f}; "
        f"on/off = {on / off:.3f} (target <= 1.10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
