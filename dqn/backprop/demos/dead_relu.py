"""Demo 2, dead ReLUs: units that output 0 on every sample get exactly zero gradient and
never recover."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dqn.backprop.mlp import (
    MLPParams,
    accuracy,
    dead_units,
    init_mlp,
    make_spirals,
    mlp_backward,
    mlp_forward,
    sgd_step,
    train_mlp,
)


@dataclass(frozen=True)
class DeadReluResult:
    learning_rates: tuple[float, ...]
    losses: dict[float, np.ndarray]  # per lr, loss before each SGD step
    dead_fraction_curve: dict[float, np.ndarray]  # per lr, dead fraction before each step
    dead_fraction: dict[float, float]  # per lr, after training
    final_loss: dict[float, float]  # per lr, after training (losses[lr][-1] is the step before)
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
        final_loss={lr: float(mlp_forward(log.params, x, y)[0]) for lr, log in logs.items()},
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
        live_weights_changed=float(
            np.max(np.abs(later.w1[:, ~dead] - params.w1[:, ~dead]), initial=0.0)
        ),
    )
