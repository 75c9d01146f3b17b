"""Train loss variants x seeds and compare them: ``python scripts/compare_losses.py --out DIR``."""

import sys

from dqn.cli import compare_main

if __name__ == "__main__":
    sys.exit(compare_main())
