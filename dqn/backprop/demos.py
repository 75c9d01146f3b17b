"""The four leaks of backprop, measured. Each demo returns a dataclass of numbers that the
tests assert and the CLI prints; the figures are drawn by ``dqn.backprop.plots``.

All randomness comes from a ``np.random.Generator`` seeded by the ``seed`` argument, so a
demo's numbers are a pure function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dqn.backprop.layers import (
    linear_backward,
    linear_forward,
    rnn_backward,
    rnn_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
)
from dqn.backprop.losses import LOSSES
from dqn.backprop.mlp import (
    MLPParams,
    accuracy,
    clip_by_global_norm,
    dead_units,
    init_mlp,
    make_spirals,
    mlp_backward,
    mlp_forward,
    sgd_step,
    train_mlp,
)

# --------------------------------------------------------------------------- 1. sigmoid


@dataclass(frozen=True)
class SigmoidResult:
    grid: np.ndarray  # x values where sigmoid' was evaluated
    local_grad: np.ndarray  # sigmoid'(grid)
    max_local_grad: float  # max over the grid: 0.25, at x = 0
    argmax_x: float
    # Per init ("saturated": W = 4 randn, pre-activations ~ +/-400; "glorot"): flat arrays of
    # the N * H local gradients, and summary numbers.
    local_grads: dict[str, np.ndarray]
    preact_std: dict[str, float]
    preact_range: dict[str, tuple[float, float]]
    frac_below_1e6: dict[str, float]
    mean_local_grad: dict[str, float]
    weight_grad_norm: dict[str, float]  # ||dL/dW||_F for the same upstream gradient
    weight_norm: dict[str, float]  # ||W||_F: SGD moves W by lr * ||dL/dW|| relative to this
    depths: np.ndarray  # L = 1..max_depth
    depth_ratio: np.ndarray  # ||dL/dx_0|| / ||dL/dx_L|| through L sigmoid layers
    depth_bound: np.ndarray  # 4^-L


def sigmoid_saturation(
    seed: int = 0, n: int = 100, d_in: int = 1000, d_out: int = 100, max_depth: int = 10
) -> SigmoidResult:
    rng = np.random.default_rng(seed)
    grid = np.arange(-2000, 2001) / 100.0  # -20 .. 20 in steps of 0.01, contains 0 exactly
    s = sigmoid(grid)
    local = s * (1.0 - s)
    x = rng.standard_normal((n, d_in))
    dout = rng.standard_normal((n, d_out))
    weights = {
        # The post's regime: unit-variance inputs, weights of std 4, so pre-activations have
        # std 4 sqrt(1000) ~ 126 and span roughly +/-400.
        "saturated": 4.0 * rng.standard_normal((d_in, d_out)),
        # Glorot: Var = 2 / (n_in + n_out), pre-activation std ~ 1.35.
        "glorot": rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / (d_in + d_out)),
    }
    out = {k: {} for k in ("grads", "std", "range", "frac", "mean", "gnorm", "wnorm")}
    for name, w in weights.items():
        z, lin = linear_forward(x, w, np.zeros(d_out))
        _, act = sigmoid_forward(z)
        local_grads = sigmoid_backward(np.ones_like(z), act)  # sigmoid'(z) per unit
        dz = sigmoid_backward(dout, act)
        out["grads"][name] = local_grads.ravel()
        out["std"][name] = float(z.std())
        out["range"][name] = (float(z.min()), float(z.max()))
        out["frac"][name] = float(np.mean(local_grads < 1e-6))
        out["mean"][name] = float(local_grads.mean())
        out["gnorm"][name] = float(np.linalg.norm(linear_backward(dz, lin).dw))
        out["wnorm"][name] = float(np.linalg.norm(w))

    # Stack L sigmoid layers with orthogonal weights (spectral norm exactly 1). Each layer
    # multiplies the gradient by diag(sigmoid') <= 1/4 and by W^T of norm 1, so the gradient
    # reaching the input is at most 4^-L times the one leaving the top.
    width = 100
    depths = np.arange(1, max_depth + 1)
    qs = [np.linalg.qr(rng.standard_normal((width, width)))[0] for _ in depths]
    a = rng.standard_normal((32, width))
    caches = []
    for q in qs:
        z, lin = linear_forward(a, q, np.zeros(width))
        a, act = sigmoid_forward(z)
        caches.append((lin, act))
    ratios = np.empty(max_depth)
    for top in depths:  # a network of depth `top`: backprop from layer `top` down to x_0
        g = dtop = rng.standard_normal((32, width))
        for lin, act in reversed(caches[:top]):
            g = linear_backward(sigmoid_backward(g, act), lin).dx
        ratios[top - 1] = np.linalg.norm(g) / np.linalg.norm(dtop)

    i = int(np.argmax(local))
    return SigmoidResult(
        grid=grid,
        local_grad=local,
        max_local_grad=float(local[i]),
        argmax_x=float(grid[i]),
        local_grads=out["grads"],
        preact_std=out["std"],
        preact_range=out["range"],
        frac_below_1e6=out["frac"],
        mean_local_grad=out["mean"],
        weight_grad_norm=out["gnorm"],
        weight_norm=out["wnorm"],
        depths=depths,
        depth_ratio=ratios,
        depth_bound=4.0 ** -depths.astype(float),
    )


# --------------------------------------------------------------------------- 2. dead ReLUs


@dataclass(frozen=True)
class DeadReluResult:
    learning_rates: tuple[float, ...]
    losses: dict[float, np.ndarray]  # per lr, loss before each SGD step
    dead_fraction_curve: dict[float, np.ndarray]  # per lr, dead fraction before each step
    dead_fraction: dict[float, float]  # per lr, after training
    accuracy: dict[float, float]
    probe_lr: float  # the run whose dead units are probed below
    n_dead_probed: int
    dead_grad_max_abs: float  # max |grad| over dead units' w1 columns, b1 and w2 rows
    live_grad_max_abs: float  # same over live units, for contrast
    extra_steps: int
    dead_weights_unchanged: bool  # bit-identical after extra_steps more SGD steps
    live_weights_changed: float  # max |change| of live units' incoming weights


def dead_relus(
    seed: int = 0,
    learning_rates: tuple[float, ...] = (1.0, 3.0, 10.0),
    probe_lr: float = 3.0,
    n_per_class: int = 100,
    hidden: int = 100,
    steps: int = 2000,
    extra_steps: int = 200,
) -> DeadReluResult:
    rng = np.random.default_rng(seed)
    x, y = make_spirals(n_per_class, rng)
    params0 = init_mlp(2, hidden, 2, rng)  # same start for every learning rate
    logs = {lr: train_mlp(params0, x, y, lr, steps) for lr in learning_rates}

    params = logs[probe_lr].params
    dead = dead_units(params, x)
    _, cache = mlp_forward(params, x, y)
    g = mlp_backward(cache)

    def unit_grads(mask: np.ndarray) -> np.ndarray:
        return np.concatenate([g.w1[:, mask].ravel(), g.b1[mask], g.w2[mask].ravel()])

    # Keep training at a sane rate: a dead unit's pre-activation depends only on x and its own
    # (unchanging) incoming weights, so it can never come back.
    later: MLPParams = params
    for _ in range(extra_steps):
        _, c = mlp_forward(later, x, y)
        later = sgd_step(later, mlp_backward(c), 1.0)
    return DeadReluResult(
        learning_rates=tuple(learning_rates),
        losses={lr: log.losses for lr, log in logs.items()},
        dead_fraction_curve={lr: log.dead_fraction for lr, log in logs.items()},
        dead_fraction={lr: float(np.mean(dead_units(log.params, x))) for lr, log in logs.items()},
        accuracy={lr: accuracy(log.params, x, y) for lr, log in logs.items()},
        probe_lr=probe_lr,
        n_dead_probed=int(dead.sum()),
        dead_grad_max_abs=float(np.max(np.abs(unit_grads(dead)), initial=0.0)),
        live_grad_max_abs=float(np.max(np.abs(unit_grads(~dead)), initial=0.0)),
        extra_steps=extra_steps,
        dead_weights_unchanged=bool(
            np.array_equal(later.w1[:, dead], params.w1[:, dead])
            and np.array_equal(later.b1[dead], params.b1[dead])
            and np.array_equal(later.w2[dead], params.w2[dead])
        ),
        live_weights_changed=float(np.max(np.abs(later.w1[:, ~dead] - params.w1[:, ~dead]))),
    )



# --------------------------------------------------------------------------- 3. RNN


@dataclass(frozen=True)
class RNNResult:
    rhos: tuple[float, ...]
    horizons: np.ndarray  # T = 1..max_T
    ratio: dict[float, np.ndarray]  # per rho, ||dL/dh0|| / ||dL/dh_T|| (zero inputs)
    max_rel_err_vs_rho_T: float  # max over rho and T of |ratio - rho^T| / rho^T
    input_scales: tuple[float, ...]
    ratio_with_inputs: dict[tuple[float, float], float]  # (rho, input scale) -> ratio at max_T
    clip_norm: float
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
) -> RNNResult:
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
    with_inputs, exploding = {}, None
    for rho in rhos:
        for s in input_scales:
            r, g = ratio_and_grads(rho, x, s * wx_unit)
            with_inputs[(rho, s)] = r
            if rho == max(rhos) and s == min(v for v in input_scales if v > 0):
                exploding = g

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


# --------------------------------------------------------------------------- 4. losses


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
    grid = np.arange(-300, 301) / 100.0
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
