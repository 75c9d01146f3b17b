"""Train a DQN agent: ``python scripts/train.py --config configs/cartpole.yaml [--loss NAME]``."""

import sys

from dqn.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
