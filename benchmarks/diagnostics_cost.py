"""What the backprop diagnostics cost: train the same config with them on and off, side by side.

    python -m benchmarks.diagnostics_cost [--config configs/cartpole.yaml] [--seeds 2]

After two runs that are not counted, one with each setting (the process's start-up costs and
each setting's compilation), runs alternate (on, off, off, on, on, off, ...) in this one process
so that both see the same machine.
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
    from dqn.errors import DQNError
    from dqn.runtime import import_tensorflow_quietly

    try:  # before TensorFlow's import: a bad config is one line, not its start-up and a traceback
        base = DQNConfig.from_yaml(args.config)
    except DQNError as exc:
        parser.error(str(exc))
    import_tensorflow_quietly(base.num_threads)
    from dqn.loop import train

    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        # Runs not counted, one with each setting, pay the one-time costs that would otherwise
        # land on the first run timed of a side: the process's start-up (TensorFlow's, XLA's),
        # and each setting's tracing and XLA compilation, since the learner's compiled
        # functions are keyed by the whole config, diagnostics included
        # (``tf_learner.shared_key``). One warm-up with diagnostics on left the first "off"
        # run to compile (on/off 0.633 for 2 seeds of a 3,000-step config).
        for on in (True, False):
            cfg = base.replace(diagnostics=on, output_dir=tmp)
            train(cfg, progress=False, log_tensorboard=False)
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
