"""One numerical gradient checker: centred finite differences, and ``rel_error``.

Both return values and never print. Use float64: with h = 1e-5 the centred difference has
truncation error O(h^2) ~ 1e-10 and rounding error ~ eps / h ~ 1e-11, so a correct backward pass
agrees to rel_error < 1e-7 where no true gradient entry is tiny (a saturated unit's gradient of
~1e-6 leaves the difference's error, not the backward pass, in its rel_error), while a wrong one
is usually off by more than 1e-2. In float32 (eps ~ 1e-7) the rounding error alone is ~1e-2, so
the check cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """d f / d x for a scalar-valued f, by (f(x + h e_i) - f(x - h e_i)) / 2h per element.

    ``x`` is perturbed in place (so f may close over it, e.g. a weight matrix inside a
    network) and every element is restored to its exact original value before returning. It
    must be a floating-point array (TypeError otherwise): an integer one would hold x + h
    rounded to an integer, and the quotient would be garbage ([49999, 150000, 249999] for the
    gradient [2, 4, 6] of sum(x^2) at [1, 2, 3]).
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(
            f"numerical_gradient perturbs a float array in place (float64 to certify a "
            f"gradient), got {got}"
        )
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):  # (np.nditer refuses an array of no elements)
        old = x[i].copy()
        try:
            x[i] = old + h
            f_plus = float(f(x))
            x[i] = old - h
            f_minus = float(f(x))
        finally:
            x[i] = old
        grad[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Gradient of sum(f(x) * dout) with respect to x, for an array-valued f.

    This is what a backward pass returns when handed ``dout`` as the upstream gradient.
    ``x`` is perturbed in place and restored exactly, as in ``numerical_gradient``.
    """
    # Copy f's output: f may return a view of x or of a buffer it reuses.
    return numerical_gradient(lambda _: np.sum(np.array(f(x), copy=True) * dout), x, h)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1e-8, |a| + |b|), element-wise; the floor keeps exact zeros quiet.

    The shapes must be equal: broadcast, a bias gradient of shape (1, H) against the (H,) of
    its parameter would compare equal, and the update it feeds would change the bias's shape.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error compares arrays of one shape, got {a.shape} and {b.shape}")
    # (initial=0: two arrays of no elements, a batch of 0, agree.)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))
