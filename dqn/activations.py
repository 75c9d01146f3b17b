"""The hidden activations the numpy paths (the numpy learner, the acting mirror) compute, with
their derivatives written as TensorFlow's gradients compute them. No TensorFlow import here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Derivative of each activation, from its input z and output a (as TensorFlow's gradients).
ACTIVATION_GRADS = {
    "linear": None,
    "relu": lambda z, a: z > 0,  # ReluGrad: 0 at z == 0
    "tanh": lambda z, a: 1.0 - a * a,
    "sigmoid": lambda z, a: a * (1.0 - a),
    "elu": lambda z, a: np.where(z > 0, 1.0, a + 1.0),
}
# The numpy forms of the Keras activations a Dense chain may use (also the acting mirror's).
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),  # overflow-free logistic
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
}
