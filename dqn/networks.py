"""The Q-network (a Keras 3 MLP) and its numpy mirror for fast acting.

Calling a Keras model, or even a ``tf.function``, for one observation costs ~100-200 us on a
CPU, twenty times a CartPole step. A numpy forward pass of a small MLP costs a few us, so the
agent acts through ``NumpyMLP``, whose weights are refreshed after every update burst.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np

NetworkFn = Callable[[int, int], keras.Model]


def build_mlp(
    obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str, seed: int
) -> keras.Model:
    """Dense layers ``obs_dim -> hidden... -> n_actions`` (linear head), seeded initialisation."""
    inputs = keras.Input(shape=(obs_dim,), name="obs")
    x = inputs
    for i, width in enumerate(hidden_sizes):
        x = keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
            name=f"hidden_{i}",
        )(x)
    q = keras.layers.Dense(
        n_actions, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000), name="q"
    )(x)
    return keras.Model(inputs, q, name="q_network")


_NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # overflow-free logistic
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


class NumpyMLP:
    """A numpy copy of a Sequential-shaped stack of Dense layers, for acting without TF calls."""

    def __init__(self, model: keras.Model):
        self._layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        self._activations = [
            _NUMPY_ACTIVATIONS[keras.activations.serialize(layer.activation)]
            for layer in self._layers
        ]
        self.params: list[tuple[np.ndarray, np.ndarray]] = []
        self.refresh()

    @classmethod
    def mirror(cls, model: keras.Model) -> "NumpyMLP | None":
        """A mirror of ``model`` if it is a plain chain of Dense layers we can mirror, else None."""
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        if not layers or not all(isinstance(layer, keras.layers.Dense) for layer in layers):
            return None
        names = [keras.activations.serialize(layer.activation) for layer in layers]
        if any(not isinstance(n, str) or n not in _NUMPY_ACTIVATIONS for n in names):
            return None
        if any(not layer.use_bias for layer in layers):
            return None
        # Dense layers could be wired as something other than a chain (skips, concatenations):
        # accept the mirror only if it reproduces the model on a probe batch.
        mirror = cls(model)
        probe = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype(np.float32)
        try:
            same = np.allclose(mirror(probe), np.asarray(model(probe)), rtol=1e-4, atol=1e-5)
        except ValueError:  # layer shapes that do not chain
            same = False
        if not same:
            return None
        return mirror

    def refresh(self) -> None:
        """Copy the current weights out of the Keras variables."""
        self.params = [
            (np.asarray(layer.kernel.numpy()), np.asarray(layer.bias.numpy()))
            for layer in self._layers
        ]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float32)
        for (w, b), act in zip(self.params, self._activations):
            x = act(x @ w + b)
        return x
