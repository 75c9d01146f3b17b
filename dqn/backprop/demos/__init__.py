"""The four leaks of backprop, measured. Each demo returns a frozen dataclass of numbers that
the tests assert and the CLI prints; the figures are drawn by ``dqn.backprop.plots``.

All randomness comes from a ``np.random.Generator`` seeded by the ``seed`` argument, so a
demo's numbers are a pure function of its arguments.
"""

from dqn.backprop.demos.dead_relu import DeadReluResult, dead_relus
from dqn.backprop.demos.rnn import RNNResult, rnn_gradients
from dqn.backprop.demos.sigmoid import InitStats, SigmoidResult, sigmoid_saturation
from dqn.backprop.demos.td_losses import LossesResult, clipped_delta_vs_huber

__all__ = [
    "DeadReluResult",
    "InitStats",
    "LossesResult",
    "RNNResult",
    "SigmoidResult",
    "clipped_delta_vs_huber",
    "dead_relus",
    "rnn_gradients",
    "sigmoid_saturation",
]
