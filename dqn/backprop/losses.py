"""The four TD losses in numpy, as forward/backward pairs.

Same definitions as the TensorFlow ``dqn.losses`` (element-wise on ``td_error``, 0.5
scaling, the caller takes the mean, default bound 1.0), so that inside the bound every loss
has gradient ``td_error`` and they differ only outside it:

============== ================================ ================================
loss           value                            d value / d td_error
============== ================================ ================================
l2             0.5 e^2                          e
clipped_delta  0.5 clip(e, -b, b)^2             e if |e| <= b else 0
huber          0.5 e^2 if |e| <= b              clip(e, -b, b)
               else b (|e| - 0.5 b)
clipped_grad   0.5 e^2 (forward)                clip(e, -b, b) (backward)
============== ================================ ================================

``clipped_delta`` is the 2016 bug: clipping the *value* of the error before squaring it
zeroes the gradient of every sample with |e| > b, i.e. exactly the samples that are most
wrong. ``clipped_grad`` is what its authors meant (the DeepMind Lua code clips the delta and
feeds it to backward as the output gradient); its gradient is Huber's, and it is the one
place where forward value and backward rule are deliberately not a derivative pair.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class LossCache(NamedTuple):
    td_error: np.ndarray
    bound: float


def l2_forward(td_error: np.ndarray, bound: float = 1.0) -> tuple[np.ndarray, LossCache]:
    """0.5 e^2 per element; ``bound`` is ignored (kept for the shared signature)."""
    return 0.5 * td_error**2, LossCache(td_error, bound)


def l2_backward(dout: np.ndarray, cache: LossCache) -> np.ndarray:
    """d/de = e."""
    return dout * cache.td_error


def clipped_delta_forward(td_error: np.ndarray, bound: float = 1.0) -> tuple[np.ndarray, LossCache]:
    """0.5 clip(e, -b, b)^2 per element: constant b^2 / 2 for |e| > b."""
    return 0.5 * np.clip(td_error, -bound, bound) ** 2, LossCache(td_error, bound)


def clipped_delta_backward(dout: np.ndarray, cache: LossCache) -> np.ndarray:
    """d/de = e on the closed interval |e| <= b, exactly 0 strictly outside.

    The closed interval matches tf.clip_by_value, whose gradient is 1 at x == bound, so a
    TD error of exactly +/-b still passes its gradient. Zero outside is the bug we reproduce.
    """
    e, b = cache
    return dout * np.where(np.abs(e) <= b, e, 0.0)


def huber_forward(td_error: np.ndarray, bound: float = 1.0) -> tuple[np.ndarray, LossCache]:
    """0.5 e^2 for |e| <= b, b (|e| - 0.5 b) outside: quadratic core, linear tails."""
    e, b = td_error, bound
    abs_e = np.abs(e)
    # Both pieces are computed everywhere; the tail where it is not the loss overflowed float32
    # for a bound past ~2.6e19 (a bound that large makes Huber L2), and warned of it. Where the
    # tail is the loss an overflow is its value, inf, as L2's.
    with np.errstate(over="ignore"):
        tail = b * (abs_e - 0.5 * b)
    return np.where(abs_e <= b, 0.5 * e**2, tail), LossCache(td_error, bound)


def huber_backward(dout: np.ndarray, cache: LossCache) -> np.ndarray:
    """d/de = clip(e, -b, b): never zero for a nonzero error, bounded by b."""
    e, b = cache
    return dout * np.clip(e, -b, b)


def clipped_grad_forward(td_error: np.ndarray, bound: float = 1.0) -> tuple[np.ndarray, LossCache]:
    """Reports 0.5 e^2 (the unclipped squared error) as its value."""
    return 0.5 * td_error**2, LossCache(td_error, bound)


def clipped_grad_backward(dout: np.ndarray, cache: LossCache) -> np.ndarray:
    """Passes back clip(e, -b, b): the clipped error as the output gradient, which is
    Huber's gradient, although the forward value is 0.5 e^2."""
    e, b = cache
    return dout * np.clip(e, -b, b)


class LossPair(NamedTuple):
    forward: Callable[..., tuple[np.ndarray, LossCache]]
    backward: Callable[[np.ndarray, LossCache], np.ndarray]


# A plain dict of names to pairs; the names are the keys of dqn.losses.LOSSES.
LOSSES: dict[str, LossPair] = {
    "l2": LossPair(l2_forward, l2_backward),
    "clipped_delta": LossPair(clipped_delta_forward, clipped_delta_backward),
    "huber": LossPair(huber_forward, huber_backward),
    "clipped_grad": LossPair(clipped_grad_forward, clipped_grad_backward),
}
