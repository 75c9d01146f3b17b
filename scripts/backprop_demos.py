"""Run the four backprop demos; same as the ``dqn-backprop`` console command."""

import sys

from dqn.backprop.cli import main

sys.exit(main())
