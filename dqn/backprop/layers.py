"""Hand-written layers as pure forward/backward pairs (numpy only).

Every operation is a pair::

    out, cache = op_forward(...)
    grads = op_backward(dout, cache)

``cache`` is a small ``NamedTuple`` holding exactly what the backward pass needs. Neither
function modifies ``dout`` or its inputs in place, so a forward pass can be replayed and a
finite-difference check can perturb an input without the cache going stale behind its back.

Shapes use ``N`` for the batch, ``D`` for input features, ``H`` for hidden units and ``T``
for time steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# --------------------------------------------------------------------------- affine


class LinearCache(NamedTuple):
    x: np.ndarray
    w: np.ndarray


class LinearGrads(NamedTuple):
    dx: np.ndarray
    dw: np.ndarray
    db: np.ndarray


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, LinearCache]:
    """out = x @ w + b.  x: (N, D), w: (D, H), b: (H,) -> out: (N, H)."""
    return x @ w + b, LinearCache(x, w)


def linear_backward(dout: np.ndarray, cache: LinearCache) -> LinearGrads:
    """dout: (N, H) -> dx (N, D) = dout w^T, dw (D, H) = x^T dout, db (H,) = sum_n dout."""
    x, w = cache
    return LinearGrads(dx=dout @ w.T, dw=x.T @ dout, db=dout.sum(axis=0))


# --------------------------------------------------------------------------- activations


class ActivationCache(NamedTuple):
    """Sigmoid and tanh keep their output y (their derivative is a function of y);
    ReLU keeps its input x (its derivative is the mask x > 0)."""

    value: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow: exp is only ever taken of -|x|."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, ActivationCache]:
    """y = 1 / (1 + exp(-x)), any shape."""
    y = sigmoid(x)
    return y, ActivationCache(y)


def sigmoid_backward(dout: np.ndarray, cache: ActivationCache) -> np.ndarray:
    """dx = dout * y (1 - y).  Computed from y, as TensorFlow does, so once y rounds to 1
    (x > ~36.7 in float64, with numpy's exp) the local gradient is exactly 0: saturation, not a
    bug."""
    y = cache.value
    return dout * y * (1.0 - y)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, ActivationCache]:
    """y = tanh(x), any shape."""
    y = np.tanh(x)
    return y, ActivationCache(y)


def tanh_backward(dout: np.ndarray, cache: ActivationCache) -> np.ndarray:
    """dx = dout * (1 - y^2)."""
    y = cache.value
    return dout * (1.0 - y * y)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, ActivationCache]:
    """y = max(x, 0), any shape."""
    return np.maximum(x, 0.0), ActivationCache(x)


def relu_backward(dout: np.ndarray, cache: ActivationCache) -> np.ndarray:
    """dx = dout * (x > 0).  Strict '>' matches tf.nn.relu: the gradient at exactly 0 is 0
    (tf.maximum(x, 0.) would give 1 there; ties go to its first argument)."""
    return dout * (cache.value > 0)


# --------------------------------------------------------------------------- vanilla RNN


class RNNStepCache(NamedTuple):
    x: np.ndarray
    h_prev: np.ndarray
    wx: np.ndarray
    wh: np.ndarray
    h_next: np.ndarray


class RNNStepGrads(NamedTuple):
    dx: np.ndarray
    dh_prev: np.ndarray
    dwx: np.ndarray
    dwh: np.ndarray
    db: np.ndarray


def rnn_step_forward(
    x: np.ndarray, h_prev: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, RNNStepCache]:
    """h_next = tanh(x wx + h_prev wh + b).

    x: (N, D), h_prev: (N, H), wx: (D, H), wh: (H, H), b: (H,) -> h_next: (N, H).
    """
    h_next = np.tanh(x @ wx + h_prev @ wh + b)
    return h_next, RNNStepCache(x, h_prev, wx, wh, h_next)


def rnn_step_backward(dh_next: np.ndarray, cache: RNNStepCache) -> RNNStepGrads:
    """dh_next: (N, H) -> grads with the shapes of (x, h_prev, wx, wh, b)."""
    dpre = dh_next * (1.0 - cache.h_next**2)  # through tanh
    return RNNStepGrads(
        dx=dpre @ cache.wx.T,
        dh_prev=dpre @ cache.wh.T,
        dwx=cache.x.T @ dpre,
        dwh=cache.h_prev.T @ dpre,
        db=dpre.sum(axis=0),
    )


class RNNCache(NamedTuple):
    steps: tuple[RNNStepCache, ...]


class RNNGrads(NamedTuple):
    dx: np.ndarray
    dh0: np.ndarray
    dwx: np.ndarray
    dwh: np.ndarray
    db: np.ndarray


def rnn_forward(
    x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, RNNCache]:
    """Run rnn_step over a whole sequence.

    x: (N, T, D), h0: (N, H) -> h: (N, T, H), where h[:, t] is the state after step t
    (so h[:, -1] is h_T). A sequence of no step is refused (ValueError): it has no h_T.
    """
    if x.ndim != 3 or x.shape[1] == 0:
        raise ValueError(f"rnn_forward runs a sequence x of shape (N, T >= 1, D), got {x.shape}")
    steps = []
    h_prev = h0
    for t in range(x.shape[1]):
        h_prev, step = rnn_step_forward(x[:, t], h_prev, wx, wh, b)
        steps.append(step)
    h = np.stack([s.h_next for s in steps], axis=1)
    return h, RNNCache(tuple(steps))


def rnn_backward(dh: np.ndarray, cache: RNNCache) -> RNNGrads:
    """Backpropagation through time.

    dh: (N, T, H), the upstream gradient of the loss with respect to every h[:, t]. The
    loop runs t = T-1 .. 0; at each step the gradient arriving from the future (through
    h_t -> h_{t+1}) is added to the loss's own gradient on h_t. Weights are shared across
    time, so their gradients are sums over steps.
    Returns dx (N, T, D), dh0 (N, H), dwx (D, H), dwh (H, H), db (H,).
    """
    first = cache.steps[0]
    want = (first.x.shape[0], len(cache.steps), first.wh.shape[1])
    if dh.shape != want:
        # A longer dh was read only as far as the forward pass ran: its extra steps' gradient
        # was dropped without a word, and dx came back with the wrong number of steps.
        raise ValueError(f"rnn_backward needs dh of shape (N, T, H) = {want}, got {dh.shape}")
    # The dtype each step's gradients come in (float64 weights and a float32 or integer dh:
    # float64), as rnn_step_backward's and linear_backward's do; the states carry b's dtype.
    dt = np.result_type(dh, first.x, first.wx, first.wh, first.h_prev, first.h_next)
    dx = np.zeros(dh.shape[:2] + (first.x.shape[1],), dtype=dt)
    dwx = np.zeros_like(first.wx, dtype=dt)
    dwh = np.zeros_like(first.wh, dtype=dt)
    db = np.zeros(first.wh.shape[1], dtype=dt)
    dh_future = np.zeros_like(dh[:, 0])
    for t in reversed(range(len(cache.steps))):
        g = rnn_step_backward(dh[:, t] + dh_future, cache.steps[t])
        dx[:, t] = g.dx
        dwx += g.dwx
        dwh += g.dwh
        db += g.db
        dh_future = g.dh_prev
    return RNNGrads(dx=dx, dh0=dh_future, dwx=dwx, dwh=dwh, db=db)
