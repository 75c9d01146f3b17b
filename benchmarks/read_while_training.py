"""Loading the agent of a run that is still training, as fast as it can, while the run writes a
checkpoint every ``--every`` env steps and keeps only the newest (``keep_checkpoints: 1``, the
setting that deletes the checkpoint a reader is on): how many loads failed, and with what.

    python -m benchmarks.read_while_training                 # 80,000 env steps, every 500

The run is a small CartPole run of a [32, 32] net in a process of its own (``dqn-train``); the
loads are ``DQNAgent.load(run_dir)`` in this process, from its first checkpoint to its end.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.args import Parser, positive_int

SETTINGS = [
    "total_env_steps=80000",
    "buffer_size=5000",
    "batch_size=32",
    "hidden_sizes=[32,32]",
    "train_every_env_steps=64",
    "gradient_steps_per_train=16",
    "target_update_every_grad_steps=32",
    "learning_starts_env_steps=200",
    "eval_every_env_steps=1000",
    "eval_episodes=3",
    "keep_checkpoints=1",
]
# The training run: dqn-train in a process of its own.
TRAIN = "import sys; from dqn.cli import train_main; sys.exit(train_main(sys.argv[1:]))"


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--every", type=positive_int, default=500, help="checkpoint_every_env_steps")
    args = p.parse_args(argv)
    from dqn.agent import DQNAgent
    from dqn.agent_files import list_checkpoints

    with tempfile.TemporaryDirectory() as tmp:
        run, log = Path(tmp) / "run", Path(tmp) / "train.err"
        settings = [*SETTINGS, f"checkpoint_every_env_steps={args.every}"]
        cmd = [sys.executable, "-c", TRAIN, "--no-progress", "--run-dir", str(run), "--set"]
        # Its stderr to a file, not a pipe: unread, a pipe could fill and stall the run.
        with open(log, "wb") as err:
            train = subprocess.Popen([*cmd, *settings], stdout=subprocess.DEVNULL, stderr=err)
        while not list_checkpoints(run) and train.poll() is None:
            time.sleep(0.05)
        loads, failures = 0, collections.Counter()
        start = time.perf_counter()
        while train.poll() is None:
            loads += 1
            try:
                DQNAgent.load(run)
            except Exception as exc:  # what a reader saw: the kind, without step numbers
                message = re.sub(r"step-\d+", "step-N", str(exc))
                failures[f"{type(exc).__name__}: {message}"] += 1
        seconds = time.perf_counter() - start
        if train.returncode != 0:  # the loads of a run that failed count nothing
            lines = log.read_text(errors="replace").splitlines()
            said = next((x for x in reversed(lines) if x.strip()), "no message")
            print(
                f"{p.prog}: the training run failed (exit {train.returncode}): {said}",
                file=sys.stderr,
            )
            return train.returncode if train.returncode > 0 else 128 - train.returncode
    failed = sum(failures.values())
    print(f"{loads} loads in {seconds:.1f} s while the run trained; {failed} failed")
    for message, count in failures.most_common():
        print(f"  {count} x {message[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
