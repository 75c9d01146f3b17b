"""Demo 1, sigmoid saturation: sigmoid' <= 1/4, a +/-400 init kills it, depth shrinks it
by 4^-L."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dqn.backprop.layers import linear_backward, linear_forward, sigmoid_backward, sigmoid_forward


@dataclass(frozen=True)
class InitStats:
    """One weight init in the single sigmoid layer: pre-activations z and sigmoid'(z)."""

    local_grads: np.ndarray  # flat, the N * H values of sigmoid'(z)
    preact_std: float
    preact_range: tuple[float, float]
    frac_below_1e6: float  # fraction of local gradients below 1e-6
    mean_local_grad: float
    weight_grad_norm: float  # ||dL/dW||_F for the same upstream gradient
    weight_norm: float  # ||W||_F: SGD moves W by lr * ||dL/dW|| relative to this


def sigmoid_stack_forward(x: np.ndarray, weights: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """x_l = sigmoid(x_{l-1} W_l) for each W_l in turn (no biases): the top x_L and the layers'
    caches, bottom first."""
    caches = []
    for w in weights:
        z, lin = linear_forward(x, w, np.zeros(w.shape[1]))
        x, act = sigmoid_forward(z)
        caches.append((lin, act))
    return x, caches


def sigmoid_stack_backward(dtop: np.ndarray, caches: list) -> np.ndarray:
    """dL/dx_0 from dL/dx_L = ``dtop``, through the layers of ``caches`` from the top down."""
    g = dtop
    for lin, act in reversed(caches):
        g = linear_backward(sigmoid_backward(g, act), lin).dx
    return g


@dataclass(frozen=True)
class SigmoidResult:
    grid: np.ndarray  # x values where sigmoid' was evaluated
    local_grad: np.ndarray  # sigmoid'(grid)
    max_local_grad: float  # max over the grid: 0.25, at x = 0
    argmax_x: float
    inits: dict[str, InitStats]  # "saturated" (W = 4 randn) and "glorot"
    depths: np.ndarray  # L = 1..max_depth
    depth_ratio: np.ndarray  # ||dL/dx_0|| / ||dL/dx_L|| through L sigmoid layers
    depth_bound: np.ndarray  # 4^-L


def sigmoid_saturation(
    seed: int = 0, n: int = 100, d_in: int = 1000, d_out: int = 100, max_depth: int = 10
) -> SigmoidResult:
    rng = np.random.default_rng(seed)
    grid = np.arange(-2000, 2001) / 100.0  # -20 .. 20 in steps of 0.01, contains 0 exactly
    local = sigmoid_backward(np.ones_like(grid), sigmoid_forward(grid)[1])
    x = rng.standard_normal((n, d_in))
    dout = rng.standard_normal((n, d_out))
    weights = {
        # The post's regime: unit-variance inputs and weights of std 4, so pre-activations
        # have std 4 sqrt(1000) ~ 126 and reach several hundred (the post's +/-400).
        "saturated": 4.0 * rng.standard_normal((d_in, d_out)),
        # Glorot: Var = 2 / (n_in + n_out), pre-activation std ~ 1.35.
        "glorot": rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / (d_in + d_out)),
    }
    inits = {}
    for name, w in weights.items():
        z, lin = linear_forward(x, w, np.zeros(d_out))
        _, act = sigmoid_forward(z)
        local_grads = sigmoid_backward(np.ones_like(z), act)  # sigmoid'(z) per unit
        inits[name] = InitStats(
            local_grads=local_grads.ravel(),
            preact_std=float(z.std()),
            preact_range=(float(z.min()), float(z.max())),
            frac_below_1e6=float(np.mean(local_grads < 1e-6)),
            mean_local_grad=float(local_grads.mean()),
            weight_grad_norm=float(
                np.linalg.norm(linear_backward(sigmoid_backward(dout, act), lin).dw)
            ),
            weight_norm=float(np.linalg.norm(w)),
        )

    # Stack L sigmoid layers with orthogonal weights (spectral norm exactly 1). Each layer
    # multiplies the gradient by diag(sigmoid') <= 1/4 and by W^T of norm 1, so the gradient
    # reaching the input is at most 4^-L times the one leaving the top.
    width = 100
    depths = np.arange(1, max_depth + 1)
    qs = [np.linalg.qr(rng.standard_normal((width, width)))[0] for _ in depths]
    _, caches = sigmoid_stack_forward(rng.standard_normal((32, width)), qs)
    ratios = np.empty(max_depth)
    for top in depths:  # a network of depth `top`: backprop from layer `top` down to x_0
        dtop = rng.standard_normal((32, width))
        g = sigmoid_stack_backward(dtop, caches[:top])
        ratios[top - 1] = np.linalg.norm(g) / np.linalg.norm(dtop)

    i = int(np.argmax(local))
    return SigmoidResult(
        grid=grid,
        local_grad=local,
        max_local_grad=float(local[i]),
        argmax_x=float(grid[i]),
        inits=inits,
        depths=depths,
        depth_ratio=ratios,
        depth_bound=4.0 ** -depths.astype(float),
    )
