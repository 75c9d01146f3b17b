"""dqn.backprop: hand-written backprop in numpy, and the four ways it leaks, measured.

numpy only: nothing here imports TensorFlow (tests check ``sys.modules``), and matplotlib is
imported only when a figure is drawn.
"""

from dqn.backprop.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from dqn.backprop.layers import (
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from dqn.backprop.losses import LOSSES

__all__ = [
    "LOSSES",
    "linear_backward",
    "linear_forward",
    "numerical_gradient",
    "numerical_gradient_array",
    "rel_error",
    "relu_backward",
    "relu_forward",
    "rnn_backward",
    "rnn_forward",
    "rnn_step_backward",
    "rnn_step_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "tanh_backward",
    "tanh_forward",
]
