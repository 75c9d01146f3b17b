"""Element-wise losses of the TD error, ``loss(td_error, bound) -> per-sample loss``.

All use the 0.5 scaling, so inside ``[-bound, bound]`` every one has gradient ``td_error``
(with respect to td_error); they differ only outside it. The caller takes the mean.

``td_error = td_target - q(s, a)``, so dL/dq = -dL/dtd_error.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

LossFn = Callable[[tf.Tensor, float], tf.Tensor]


def l2(td_error: tf.Tensor, bound: float = 1.0) -> tf.Tensor:
    """0.5 * td_error**2. Gradient: td_error, unbounded (``bound`` is ignored)."""
    del bound
    return 0.5 * tf.square(td_error)


def clipped_delta(td_error: tf.Tensor, bound: float = 1.0) -> tf.Tensor:
    """0.5 * clip(td_error, -bound, bound)**2: the 2016 bug, kept on purpose to measure it.

    Gradient: td_error where |td_error| <= bound, and exactly 0 where |td_error| > bound.
    ``tf.clip_by_value`` has zero gradient outside its range, so the transitions the network is
    most wrong about teach it nothing. (At exactly +/-bound the clip still passes the gradient.)
    """
    return 0.5 * tf.square(tf.clip_by_value(td_error, -bound, bound))


def huber(td_error: tf.Tensor, bound: float = 1.0) -> tf.Tensor:
    """Huber loss with delta = bound: 0.5 e^2 for |e| <= bound, bound * (|e| - 0.5 bound) beyond.

    Gradient: clip(td_error, -bound, bound), the clipped error DQN (Mnih et al. 2015) intended.
    ``tf.where`` differentiates both branches and masks them, so the gradient is exactly the
    clipped error (a sum of pieces such as ``min(|e|, b)`` would add rounding); ``<=`` at the
    boundary as in ``keras.losses.Huber``.
    """
    abs_error = tf.abs(td_error)
    return tf.where(
        abs_error <= bound, 0.5 * tf.square(td_error), bound * (abs_error - 0.5 * bound)
    )


def clipped_grad(td_error: tf.Tensor, bound: float = 1.0) -> tf.Tensor:
    """0.5 * td_error**2 forward, gradient clipped to [-bound, bound] backward.

    Gradient: clip(td_error, -bound, bound), equal to Huber's; only the reported loss value
    differs (it keeps growing quadratically). This is what the 2016 code meant to write.
    """

    @tf.custom_gradient
    def _loss(e: tf.Tensor):
        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return upstream * tf.clip_by_value(e, -bound, bound)

        return 0.5 * tf.square(e), grad

    return _loss(td_error)


LOSSES: dict[str, LossFn] = {
    "l2": l2,
    "clipped_delta": clipped_delta,
    "huber": huber,
    "clipped_grad": clipped_grad,
}


def get(name: str) -> LossFn:
    """The loss called ``name``; an unknown name is a ValueError listing the valid ones."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}") from None
