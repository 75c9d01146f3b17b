"""Greedy evaluation of a run or checkpoint folder: ``python scripts/evaluate.py RUN_DIR``."""

import sys

from dqn.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
