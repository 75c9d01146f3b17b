"""The Q-network: a Keras 3 model for the architecture, a flat parameter vector for speed.

Why flat: on a CPU, every Keras variable a compiled call reads or writes costs tens of
microseconds of dispatch, more than the arithmetic of a small MLP. So the learner keeps all
weights of a network in ONE float32 vector, runs the Keras model functionally on it
(``model.stateless_call``), and only writes the weights back into the Keras variables when a
user asks for the model. Acting goes through ``NumpyMLP``, a numpy view of the same vector:
one observation through a small MLP is a few numpy operations, far cheaper than any
TensorFlow call's dispatch.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from dqn.activations import ACTIVATIONS as NUMPY_ACTIVATIONS

NetworkFn = Callable[[int, int], keras.Model]


def build_mlp(
    obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str, seed: int
) -> keras.Model:
    """Dense layers ``obs_dim -> hidden... -> n_actions`` (linear head), seeded Glorot init, in
    float32 whatever Keras's global float type or dtype policy (a project's float64 made the
    learner's first update fail)."""
    inputs = keras.Input(shape=(obs_dim,), name="obs", dtype="float32")
    x = inputs
    for i, width in enumerate(hidden_sizes):
        x = keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i),
            name=f"hidden_{i}",
            dtype="float32",
        )(x)
    q = keras.layers.Dense(
        n_actions,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000),
        name="q",
        dtype="float32",
    )(x)
    return keras.Model(inputs, q, name="q_network")


def is_default_mlp(model: keras.Model, obs_dim: int, n_actions: int, config) -> bool:
    """True if ``model`` is the MLP ``build_mlp`` makes for ``config`` (a loaded checkpoint's,
    say), so that an equal one can be rebuilt elsewhere. Compared as JSON: a Keras config read
    back from a file holds lists where a fresh one holds tuples."""
    import json

    widths = [obs_dim, *config.hidden_sizes, n_actions]
    shapes = [s for a, b in zip(widths[:-1], widths[1:]) for s in ((a, b), (b,))]
    if [tuple(v.shape) for v in model.trainable_variables] != shapes:  # no MLP built to tell
        return False

    def text(m: keras.Model) -> str:
        return json.dumps(m.get_config(), sort_keys=True, default=str)

    try:
        mine = text(model)
    except (NotImplementedError, TypeError, ValueError):  # a subclassed model's, unreadable
        return False
    default = build_mlp(obs_dim, n_actions, config.hidden_sizes, config.activation, config.seed)
    # A config names a function by its __name__: a user's own `def relu(x)` reads as Keras's
    # relu there, and would have shared the default's compiled update, which computes another.
    # Keras's own activations are one function object each, a loaded model's too.
    functions = [
        [getattr(layer, "activation", None) for layer in m.layers] for m in (model, default)
    ]
    same_functions = len(functions[0]) == len(functions[1]) and all(
        a is b for a, b in zip(*functions)
    )
    return same_functions and mine == text(default)


def _keras_snake_case(name: str) -> str:
    """The name Keras gives a layer of class ``name`` by default, before its count (Keras 3's
    ``to_snake_case``: Dense -> dense, BatchNormalization -> batch_normalization)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def stable_layer_names(layers: Sequence[keras.Layer]) -> dict[int, str]:
    """Each layer's name (by id) for metrics.csv's columns. A name Keras made up counts the
    layers of its class made so far in the process ("dense_4" in a second run of one notebook,
    "dense" in a fresh process): such names are numbered again within the model, as a fresh
    process numbers them, so every run of one network_fn writes the same columns. A name the
    user gave is kept."""
    out, seen = {}, {}
    for layer in layers:
        base = _keras_snake_case(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name):
            k = seen.get(base, 0)
            seen[base] = k + 1
            out[id(layer)] = base if k == 0 else f"{base}_{k}"
        else:
            out[id(layer)] = layer.name
    return out


class FlatNetwork:
    """A Keras model seen as a pure function ``forward(flat_params, obs) -> q_values``."""

    def __init__(self, model: keras.Model):
        if not model.trainable_variables:
            raise ValueError("the Q-network has no trainable variables")
        self.model = model
        self.shapes = [tuple(v.shape) for v in model.trainable_variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(self.sizes))
        # Each variable's top-level layer, by the name the layer keeps through a .keras save
        # and load: its variable paths do not (a fresh Sequential's read "sequential/dense/
        # kernel", a loaded one's "dense/kernel"; a model nested in another alike), and a run
        # and its resume must name each metrics.csv column alike.
        names = stable_layer_names(model.layers)
        owner = {
            id(v): names[id(layer)] for layer in model.layers for v in layer.trainable_variables
        }
        self.layer_names = [
            owner.get(id(v), v.path.split("/")[0]) for v in model.trainable_variables
        ]
        # Non-trainable state (rare in a DQN head) is frozen at its build-time value.
        self._frozen = [tf.constant(v.numpy()) for v in model.non_trainable_variables]
        # stateless_call hands its keywords to call() as they are (Layer.__call__ would drop a
        # `training` that call() does not take): a subclassed model's call(self, x) has none.
        params = inspect.signature(model.call).parameters.values()
        takes_training = any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)
        self._call_kwargs = {"training": False} if takes_training else {}

    def unflatten(self, flat: tf.Tensor) -> list[tf.Tensor]:
        parts = tf.split(flat, self.sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, self.shapes)]

    def forward(self, flat: tf.Tensor, obs: tf.Tensor) -> tf.Tensor:
        weights = self.unflatten(flat)
        q, _ = self.model.stateless_call(weights, self._frozen, obs, **self._call_kwargs)
        return q

    def read(self) -> np.ndarray:
        """The model's current weights as one float32 vector."""
        return np.concatenate(
            [np.asarray(v.numpy(), np.float32).ravel() for v in self.model.trainable_variables]
        )

    def write(self, flat: np.ndarray, model: keras.Model | None = None) -> None:
        """Assign a flat vector into ``model`` (default: this network's model)."""
        model = self.model if model is None else model
        if [tuple(v.shape) for v in model.trainable_variables] != self.shapes:  # not silently
            raise ValueError(f"{model.name} does not have this network's weights to write into")
        offsets = np.cumsum([0, *self.sizes])
        for var, start, stop, shape in zip(
            model.trainable_variables, offsets[:-1], offsets[1:], self.shapes
        ):
            var.assign(np.asarray(flat[start:stop]).reshape(shape))

    def layer_slices(self) -> dict[str, slice]:
        """Slice of the flat vector that belongs to each top-level layer (by its name)."""
        out: dict[str, slice] = {}
        offset = 0
        for layer, size in zip(self.layer_names, self.sizes):
            start = out[layer].start if layer in out else offset
            out[layer] = slice(start, offset + size)
            offset += size
        return out


class NumpyMLP:
    """A numpy forward pass over views of a flat parameter vector (a chain of Dense layers)."""

    def __init__(self, network: FlatNetwork, activation_names: list[str]):
        """Use ``NumpyMLP.mirror``, which checks that the model is a chain it can reproduce."""
        self.activation_names = activation_names
        self._activations = [NUMPY_ACTIVATIONS[name] for name in activation_names]
        self.params: list[tuple[np.ndarray, np.ndarray]] = []
        offsets = np.cumsum([0, *network.sizes]).tolist()
        self._slices = list(zip(offsets[:-1], offsets[1:], network.shapes))

    @classmethod
    def mirror(cls, network: FlatNetwork, flat: np.ndarray, obs_dim: int) -> NumpyMLP | None:
        """A mirror if the model is a plain chain of Dense layers we can reproduce, else None."""
        layers = [
            lyr for lyr in network.model.layers if not isinstance(lyr, keras.layers.InputLayer)
        ]
        if not layers or not all(isinstance(lyr, keras.layers.Dense) for lyr in layers):
            return None
        names = [keras.activations.serialize(lyr.activation) for lyr in layers]
        if any(not isinstance(n, str) or n not in NUMPY_ACTIVATIONS for n in names):
            return None
        if any(not lyr.use_bias for lyr in layers) or len(network.shapes) != 2 * len(layers):
            return None
        mirror = cls(network, names)
        mirror.load(flat)
        # Dense layers could be wired as something other than a chain (skips, concatenations):
        # accept the mirror only if it reproduces the model on a probe batch. (The probe's width
        # is the agent's obs_dim: a subclassed keras.Model has no input_shape to read it from.)
        probe = np.random.default_rng(0).normal(size=(8, obs_dim)).astype(np.float32)
        try:
            expected = np.asarray(network.forward(tf.constant(flat), tf.constant(probe)))
            same = np.allclose(mirror(probe), expected, rtol=1e-4, atol=1e-5)
        except (ValueError, tf.errors.InvalidArgumentError):
            same = False
        return mirror if same else None

    def load(self, flat: np.ndarray) -> None:
        """Point the layers at a new flat vector (views, no copy)."""
        arrays = [flat[a:b].reshape(s) for a, b, s in self._slices]
        self.params = list(zip(arrays[0::2], arrays[1::2]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Q-values of one observation [obs_dim] -> [n_actions], or of a batch [n, obs_dim].

        One observation goes through matrix-vector products, half the cost of a [1, obs_dim]
        batch (BLAS gemv instead of gemm; the same float32 sums as a batch of one, which a
        test checks, so no action changes).
        """
        x = np.asarray(obs, np.float32)
        for (w, b), act in zip(self.params, self._activations):
            x = act(x @ w + b)
        return x

    def hidden_activations(self, obs: np.ndarray) -> list[np.ndarray]:
        """Outputs of every hidden layer for a batch (for dead/saturated-unit diagnostics)."""
        x = np.asarray(obs, np.float32)
        out = []
        for (w, b), act in zip(self.params[:-1], self._activations[:-1]):
            x = act(x @ w + b)
            out.append(x)
        return out
