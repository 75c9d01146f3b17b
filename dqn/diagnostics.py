"""What backprop is doing inside the Q-network, on a fixed probe batch (numpy only).

The per-update numbers (zero-gradient fraction, TD-error quantiles, Q statistics, global
gradient norm) come out of the compiled update itself (``dqn.step_metrics.STEP_METRICS``). The ones
here need a whole batch of states at once and run only when a metrics row is written: dead or
saturated hidden units and the gradient norm of each layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PROBE_SIZE = 1024  # states of the fixed probe batch for dead-unit and per-layer diagnostics

# A tanh/sigmoid unit counts as saturated on a state where its local derivative is below 2% of
# its maximum: |tanh| > 0.99 (1 - y^2 < 0.02) or a sigmoid output outside [0.005, 0.995].
_SATURATED = {
    "tanh": lambda y: np.abs(y) > 0.99,
    "sigmoid": lambda y: (y < 0.005) | (y > 0.995),
}


def dead_unit_fraction(hidden: np.ndarray) -> float:
    """Fraction of units (columns) whose output is exactly 0 for every probe state (rows).

    A dead ReLU unit gets an exactly-zero gradient for its incoming weights on these states,
    so gradient descent cannot revive it.
    """
    return float(np.mean(np.all(hidden == 0.0, axis=0)))


def saturated_unit_fraction(hidden: np.ndarray, activation: str) -> float:
    """Fraction of tanh/sigmoid units saturated on every probe state (gradient ~0 everywhere)."""
    return float(np.mean(np.all(_SATURATED[activation](hidden), axis=0)))


def layer_grad_norms(flat_grad: np.ndarray, slices: Mapping[str, slice]) -> dict[str, float]:
    """L2 norm of the gradient of each layer's parameters (kernel and bias together)."""
    return {name: float(np.linalg.norm(flat_grad[s])) for name, s in slices.items()}


def unit_columns(activation_names: list[str]) -> list[tuple[int, str]]:
    """(hidden layer index, 'dead' or 'saturated') for the layers these diagnostics cover."""
    out = []
    for i, act in enumerate(activation_names[:-1]):  # the last layer is the linear Q head
        if act == "relu":
            out.append((i, "dead"))
        elif act in _SATURATED:
            out.append((i, "saturated"))
    return out


def unit_column(i: int, kind: str) -> str:
    """The metrics.csv column of hidden layer i's 'dead' or 'saturated' fraction."""
    return f"{kind}_fraction/hidden_{i}"


def diagnostic_names(layer_names, activation_names: list[str] | None) -> list[str]:
    """The diagnostics' metrics.csv columns, in order: each layer's gradient norm, then the
    unit fractions of ``unit_columns`` (none for a network whose activations are not known)."""
    units = unit_columns(activation_names) if activation_names is not None else []
    return [f"grad_norm/{k}" for k in layer_names] + [unit_column(i, kind) for i, kind in units]


def hidden_unit_stats(hidden: list[np.ndarray], activation_names: list[str]) -> dict[str, float]:
    """``dead_fraction/hidden_i`` (ReLU) or ``saturated_fraction/hidden_i`` (tanh, sigmoid)."""
    stats = {}
    for i, kind in unit_columns(activation_names):
        if kind == "dead":
            stats[unit_column(i, kind)] = dead_unit_fraction(hidden[i])
        else:
            stats[unit_column(i, kind)] = saturated_unit_fraction(hidden[i], activation_names[i])
    return stats
