"""Demo 4, clipped delta vs Huber: where the 2016 loss has zero gradient, how often that
happens, and the worked example in both scalings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dqn.backprop.losses import LOSSES


@dataclass(frozen=True)
class LossesResult:
    bound: float
    grid: np.ndarray  # TD errors -3 .. 3 in steps of 0.01 (contains +/-1 exactly)
    value: dict[str, np.ndarray]  # per loss, value on the grid
    grad: dict[str, np.ndarray]  # per loss, d value / d td_error on the grid
    zero_grad_min_abs: float  # smallest |e| != 0 on the grid where clipped_delta's grad is 0
    zero_grad_matches_outside: bool  # grad == 0 exactly where |e| > bound, and nowhere else
    heavy_tail_df: float
    heavy_tail_n: int
    heavy_tail_zero_frac: float  # fraction of Student-t samples with zero clipped_delta grad
    heavy_tail_expected: float  # P(|T| > 1) for df = 2: 1 - 1/sqrt(3)
    gaussian_zero_frac: float  # same for N(0, 1) samples, for contrast
    example_td_error: np.ndarray  # target - Q
    example_value: dict[str, float]  # mean over the batch, package (0.5-scaled) convention
    example_dq: dict[str, np.ndarray]  # dL/dQ, package convention
    # The same without the 0.5: mean(clip(d)^2) as in the 2016 code, and MSE mean(d^2).
    example_value_2016: dict[str, float]
    example_dq_2016: dict[str, np.ndarray]


def clipped_delta_vs_huber(
    seed: int = 0, bound: float = 1.0, heavy_tail_n: int = 100_000
) -> LossesResult:
    rng = np.random.default_rng(seed)
    # Steps of 0.01 over +/-3, or to 1 past the bound: a bound of 3 or more left no point of
    # zero gradient on +/-3, and the minimum of none raised.
    reach = max(300, math.ceil(100 * bound) + 100)
    grid = np.arange(-reach, reach + 1) / 100.0
    value, grad = {}, {}
    for name, (forward, backward) in LOSSES.items():
        value[name], cache = forward(grid, bound)
        grad[name] = backward(np.ones_like(grid), cache)
    zero = (grad["clipped_delta"] == 0) & (grid != 0)

    # Student-t with 2 degrees of freedom: finite mean, infinite variance, like the TD errors
    # of a network early in training. Its CDF is 1/2 + t / (2 sqrt(2 + t^2)).
    def zero_frac(e: np.ndarray) -> float:
        _, cache = LOSSES["clipped_delta"].forward(e, bound)
        return float(np.mean(LOSSES["clipped_delta"].backward(np.ones_like(e), cache) == 0))

    t_df = 2.0
    heavy = rng.standard_t(t_df, heavy_tail_n)
    t_tail = 1.0 - bound / np.sqrt(t_df + bound**2)

    # The worked example: L = mean_i loss(target_i - Q_i) over B = 4, so dL/dQ = -loss'(e) / B.
    e = np.array([-3.0, -1.0, 0.5, 2.0])
    batch = e.size
    ex_value, ex_dq = {}, {}
    for name, (forward, backward) in LOSSES.items():
        per_sample, cache = forward(e, bound)
        ex_value[name] = float(per_sample.mean())
        # dL/dQ = -dL/de, written 0 - x so that zero gradients print as 0 rather than -0.
        ex_dq[name] = 0.0 - backward(np.full(batch, 1.0 / batch), cache)
    # The 2016 code wrote reduce_mean(square(clipped_delta)) with no 0.5, and plain MSE is
    # mean(d^2): their gradients are exactly twice the 0.5-scaled ones (a power-of-two factor,
    # so the doubling is exact in floating point).
    ex_2016 = {name: 2.0 * ex_dq[name] for name in ("clipped_delta", "l2")}
    ex_value_2016 = {name: 2.0 * ex_value[name] for name in ("clipped_delta", "l2")}
    return LossesResult(
        bound=bound,
        grid=grid,
        value=value,
        grad=grad,
        zero_grad_min_abs=float(np.min(np.abs(grid[zero]))),
        zero_grad_matches_outside=bool(np.array_equal(zero, np.abs(grid) > bound)),
        heavy_tail_df=t_df,
        heavy_tail_n=heavy_tail_n,
        heavy_tail_zero_frac=zero_frac(heavy),
        heavy_tail_expected=float(t_tail),
        gaussian_zero_frac=zero_frac(rng.standard_normal(heavy_tail_n)),
        example_td_error=e,
        example_value=ex_value,
        example_dq=ex_dq,
        example_value_2016=ex_value_2016,
        example_dq_2016=ex_2016,
    )
