"""Demo 3, RNN gradients: rho^T exactly in the linear regime, vanishing through tanh
saturation even for rho > 1, and clipping by global norm vs element-wise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dqn.backprop.layers import rnn_backward, rnn_forward
from dqn.backprop.mlp import clip_by_global_norm


@dataclass(frozen=True)
class RNNResult:
    rhos: tuple[float, ...]
    horizons: np.ndarray  # T = 1..max_T
    ratio: dict[float, np.ndarray]  # per rho, ||dL/dh0|| / ||dL/dh_T|| (zero inputs)
    max_rel_err_vs_rho_T: float  # max over rho and T of |ratio - rho^T| / rho^T
    input_scales: tuple[float, ...]
    ratio_with_inputs: dict[tuple[float, float], float]  # (rho, input scale) -> ratio at max_T
    clip_norm: float
    exploding_case: tuple[float, float]  # (rho, input scale) of the gradient clipped below
    raw_grad_norm: float  # global norm of an exploding (dWx, dWh, db)
    global_clip_norm: float  # norm after clip_by_global_norm
    global_clip_cosine: float  # cosine with the raw gradient
    elementwise_clip_norm: float  # norm after np.clip(g, -c, c)
    elementwise_clip_cosine: float
    example: np.ndarray  # [3, 40, -0.5]
    example_global: np.ndarray
    example_elementwise: np.ndarray
    example_elementwise_cosine: float


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rnn_gradients(
    seed: int = 0,
    rhos: tuple[float, ...] = (0.9, 1.0, 1.1, 1.5),
    max_t: int = 50,
    hidden: int = 32,
    d_in: int = 8,
    n: int = 16,
    input_scales: tuple[float, ...] = (0.0, 0.1, 1.0, 2.0),
    clip_norm: float = 5.0,
    exploding_case: tuple[float, float] = (1.5, 0.1),
) -> RNNResult:
    """``exploding_case`` is the (rho, input scale) whose gradient the clipping part uses;
    it must be one of the grid points (rhos x input_scales)."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((hidden, hidden)))[0]
    zeros_b, h0 = np.zeros(hidden), np.zeros((n, hidden))
    horizons = np.arange(1, max_t + 1)

    def ratio_and_grads(rho: float, x: np.ndarray, wx: np.ndarray):
        _, cache = rnn_forward(x, h0, wx, rho * q, zeros_b)
        dh = np.zeros((n, x.shape[1], hidden))
        dh[:, -1] = rng.standard_normal((n, hidden))  # the loss only sees h_T
        g = rnn_backward(dh, cache)
        return float(np.linalg.norm(g.dh0) / np.linalg.norm(dh[:, -1])), g

    # Zero inputs, bias and h0 keep every state at 0 where tanh' = 1, so backprop is the
    # linear map dh_{t-1} = dh_t W^T and, W = rho Q being rho times an isometry,
    # ||dh0|| = rho^T ||dh_T|| exactly.
    zero_wx = np.zeros((d_in, hidden))
    ratio = {
        rho: np.array([ratio_and_grads(rho, np.zeros((n, t, d_in)), zero_wx)[0] for t in horizons])
        for rho in rhos
    }
    rel = max(float(np.max(np.abs(ratio[r] - r**horizons) / r**horizons)) for r in rhos)

    # Real inputs push states away from 0 where tanh' < 1: enough saturation makes even
    # rho > 1 vanish. Exploding needs rho > 1 *and* states that stay in tanh's linear part.
    x = rng.standard_normal((n, max_t, d_in))
    wx_unit = rng.standard_normal((d_in, hidden)) / np.sqrt(d_in)
    with_inputs, grads = {}, {}
    for rho in rhos:
        for s in input_scales:
            with_inputs[(rho, s)], grads[(rho, s)] = ratio_and_grads(rho, x, s * wx_unit)
    exploding = grads[exploding_case]

    # Clipping an exploding gradient: by global norm (direction kept) vs element-wise.
    raw = [exploding.dwx, exploding.dwh, exploding.db]
    flat = np.concatenate([t.ravel() for t in raw])
    by_norm = np.concatenate([t.ravel() for t in clip_by_global_norm(raw, clip_norm)[0]])
    by_elem = np.clip(flat, -clip_norm, clip_norm)
    example = np.array([3.0, 40.0, -0.5])  # min-char-rnn clips each entry to [-5, 5]
    example_elem = np.clip(example, -clip_norm, clip_norm)
    return RNNResult(
        rhos=tuple(rhos),
        horizons=horizons,
        ratio=ratio,
        max_rel_err_vs_rho_T=rel,
        input_scales=tuple(input_scales),
        ratio_with_inputs=with_inputs,
        clip_norm=clip_norm,
        exploding_case=exploding_case,
        raw_grad_norm=float(np.linalg.norm(flat)),
        global_clip_norm=float(np.linalg.norm(by_norm)),
        global_clip_cosine=_cosine(by_norm, flat),
        elementwise_clip_norm=float(np.linalg.norm(by_elem)),
        elementwise_clip_cosine=_cosine(by_elem, flat),
        example=example,
        example_global=clip_by_global_norm([example], clip_norm)[0][0],
        example_elementwise=example_elem,
        example_elementwise_cosine=_cosine(example_elem, example),
    )
