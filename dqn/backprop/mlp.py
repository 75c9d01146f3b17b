"""A small ReLU MLP built from the layer pairs, a spirals dataset, and plain SGD.

The dead-ReLU demo needs real training, not made-up activations: this module generates a
two-class spiral dataset, trains ``linear -> relu -> linear -> softmax cross-entropy`` with
full-batch SGD, and exposes the hidden activations so dead units can be counted.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dqn.backprop.layers import (
    ActivationCache,
    LinearCache,
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
)

# --------------------------------------------------------------------------- data


def make_spirals(
    n_per_class: int, rng: np.random.Generator, n_classes: int = 2, noise: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class, radius 0..1 and 1.5 turns each.

    Returns x: (n_classes * n_per_class, 2) float64 and y: (same,) int64 class labels.
    ``noise`` is the standard deviation of the angle jitter, in radians.
    """
    radius = np.linspace(0.0, 1.0, n_per_class)
    xs, ys = [], []
    for k in range(n_classes):
        angle = (
            np.linspace(0.0, 3.0 * np.pi, n_per_class)
            + 2.0 * np.pi * k / n_classes
            + noise * rng.standard_normal(n_per_class)
        )
        xs.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        ys.append(np.full(n_per_class, k, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


# --------------------------------------------------------------------------- loss


class SoftmaxCache(NamedTuple):
    probs: np.ndarray
    labels: np.ndarray


def softmax_cross_entropy_forward(
    logits: np.ndarray, labels: np.ndarray
) -> tuple[float, SoftmaxCache]:
    """Mean cross-entropy of softmax(logits) against integer labels.

    logits: (N, C), labels: (N,) ints -> scalar loss. A batch of no example has no mean
    (ValueError: it was NaN, with numpy's "Mean of empty slice").
    """
    if logits.shape[0] == 0:
        raise ValueError("softmax_cross_entropy_forward takes the mean over N >= 1 examples, got 0")
    labels = np.asarray(labels)
    classes = logits.shape[1]
    if labels.shape != (logits.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"softmax_cross_entropy_forward takes one integer label per row of logits "
            f"(shape ({logits.shape[0]},)), got {labels.dtype} labels of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        # numpy would read -1 as the last class: a wrong loss, not an error.
        raise ValueError(
            f"softmax_cross_entropy_forward takes labels in 0..{classes - 1} (C = {classes}), "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    shifted = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    loss = -log_probs[np.arange(n), labels].mean()
    return float(loss), SoftmaxCache(np.exp(log_probs), labels)


def softmax_cross_entropy_backward(dout: float, cache: SoftmaxCache) -> np.ndarray:
    """dlogits (N, C) = dout * (probs - one_hot(labels)) / N."""
    probs, labels = cache
    n = probs.shape[0]
    dlogits = probs.copy()
    dlogits[np.arange(n), labels] -= 1.0
    return dout * dlogits / n


# --------------------------------------------------------------------------- model


class MLPParams(NamedTuple):
    w1: np.ndarray  # (D, H)
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H, C)
    b2: np.ndarray  # (C,)


class MLPCache(NamedTuple):
    fc1: LinearCache
    relu: ActivationCache
    fc2: LinearCache
    loss: SoftmaxCache


def init_mlp(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> MLPParams:
    """He init for the ReLU layer (Var = 2 / n_in), zero biases."""
    return MLPParams(
        w1=rng.standard_normal((n_in, n_hidden)) * np.sqrt(2.0 / n_in),
        b1=np.zeros(n_hidden),
        w2=rng.standard_normal((n_hidden, n_out)) * np.sqrt(2.0 / n_hidden),
        b2=np.zeros(n_out),
    )


def mlp_forward(params: MLPParams, x: np.ndarray, labels: np.ndarray) -> tuple[float, MLPCache]:
    """x: (N, D), labels: (N,) -> mean cross-entropy; the cache holds the hidden layer."""
    pre, fc1 = linear_forward(x, params.w1, params.b1)
    hidden, relu = relu_forward(pre)
    logits, fc2 = linear_forward(hidden, params.w2, params.b2)
    loss, loss_cache = softmax_cross_entropy_forward(logits, labels)
    return loss, MLPCache(fc1, relu, fc2, loss_cache)


def mlp_backward(cache: MLPCache) -> MLPParams:
    """Gradients of the loss with respect to every parameter, unwinding the caches in reverse."""
    dlogits = softmax_cross_entropy_backward(1.0, cache.loss)
    g2 = linear_backward(dlogits, cache.fc2)
    dpre = relu_backward(g2.dx, cache.relu)
    g1 = linear_backward(dpre, cache.fc1)
    return MLPParams(w1=g1.dw, b1=g1.db, w2=g2.dw, b2=g2.db)


def hidden_activations(params: MLPParams, x: np.ndarray) -> np.ndarray:
    """ReLU outputs (N, H) of the hidden layer."""
    return np.maximum(x @ params.w1 + params.b1, 0.0)


def dead_units(params: MLPParams, x: np.ndarray) -> np.ndarray:
    """Boolean mask (H,): units whose ReLU output is 0 for every sample of x."""
    return ~np.any(hidden_activations(params, x) > 0, axis=0)


def accuracy(params: MLPParams, x: np.ndarray, labels: np.ndarray) -> float:
    logits = hidden_activations(params, x) @ params.w2 + params.b2
    return float(np.mean(logits.argmax(axis=1) == labels))


# --------------------------------------------------------------------------- optimisation


def sgd_step(params: MLPParams, grads: MLPParams, lr: float) -> MLPParams:
    """Plain SGD, p - lr * g, returning new arrays (the old params stay untouched)."""
    return MLPParams(*(p - lr * g for p, g in zip(params, grads)))


def clip_by_global_norm(grads: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """Scale every gradient by max_norm / max(global_norm, max_norm) (Pascanu et al. 2013).

    One common factor for all tensors, so the update keeps its direction and its norm is at
    most ``max_norm``; same rule as tf.clip_by_global_norm. Returns (clipped, global_norm).
    """
    global_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads)))
    scale = max_norm / max(global_norm, max_norm)
    return [g * scale for g in grads], global_norm


class TrainLog(NamedTuple):
    params: MLPParams
    losses: np.ndarray  # (steps,) loss before each step
    dead_fraction: np.ndarray  # (steps,) fraction of dead hidden units before each step


def train_mlp(
    params: MLPParams, x: np.ndarray, labels: np.ndarray, lr: float, steps: int
) -> TrainLog:
    """Full-batch SGD for ``steps`` steps, logging loss and dead fraction before each step."""
    losses = np.empty(steps)
    dead = np.empty(steps)
    for step in range(steps):
        loss, cache = mlp_forward(params, x, labels)
        # The forward pass already holds the hidden pre-activations: a unit is dead when
        # none of them is positive, the same mask relu_backward multiplies by.
        dead[step] = np.mean(~np.any(cache.relu.value > 0, axis=0))
        losses[step] = loss
        params = sgd_step(params, mlp_backward(cache), lr)
    return TrainLog(params, losses, dead)
