"""Finite in float32: the one test every check of NaN and inf uses (env outputs, observations
given to the agent, hand-made batches). The networks and the replay rings compute and store in
float32, so a value beyond its range (|x| > 3.4e38, finite in float64) is inf to them."""

from __future__ import annotations

import math

import numpy as np

from dqn.errors import InputError, shown

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32


def in_float32_range(values) -> np.ndarray:
    """Elementwise: finite in float32 (False for NaN, inf and |x| > 3.4e38)."""
    return np.abs(np.asarray(values).astype(np.float64, copy=False)) <= F32_MAX


def all_finite(values) -> bool:
    """True when no value is NaN, inf or beyond float32's range; costs well under a microsecond
    for one env's step."""
    values = np.asarray(values)
    narrow = values.itemsize <= 4  # float32 and narrower: beyond float32's range is inf already
    if 0 < values.size <= 64:
        # A NaN or inf carries through a sum, and a Python sum of a few floats is several times
        # cheaper than a ufunc call; wider values beyond float32's range can cancel in it, so
        # their min and max are held to that range too. Otherwise the exact test below decides.
        flat = values.ravel().tolist()
        if math.isfinite(sum(flat)) and (narrow or -F32_MAX <= min(flat) <= max(flat) <= F32_MAX):
            return True
    return bool((np.isfinite(values) if narrow else in_float32_range(values)).all())


def as_float32(values) -> np.ndarray:
    """``values`` in float32 without numpy's overflow warning: a value beyond float32's range
    becomes inf, and the checks of the values as given (``dqn.envs.non_finite_rows``) have
    named it already."""
    values = np.asarray(values)
    if values.dtype == np.float32:
        return values
    with np.errstate(over="ignore"):
        return values.astype(np.float32)


def check_epsilon(epsilon) -> float:
    """``epsilon`` as a float if it is a probability, else an InputError: NaN, None, a string,
    a bool (True is no rate) and an array, of several numbers or one, are refused with the
    others (NaN too)."""
    try:
        # A bool of numpy's too (np.True_, an array of one): it is not a Python bool.
        is_bool = isinstance(epsilon, bool) or getattr(epsilon, "dtype", None) == np.bool_
        # An array of one compares as its number, and float() of it then raised numpy's error.
        ok = not is_bool and getattr(epsilon, "ndim", 0) == 0 and bool(0.0 <= epsilon <= 1.0)
    except (TypeError, ValueError):  # None, a string, an array of several
        ok = False
    if not ok:
        raise InputError(f"epsilon must be in [0, 1], got {shown(epsilon, 60)}")
    return float(epsilon)
