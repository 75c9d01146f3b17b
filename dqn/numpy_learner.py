"""The Q-learning update of ``dqn.tf_learner``, written out in numpy for a chain of Dense layers.

Why a second implementation: on a CPU, one call into TensorFlow costs a few hundred
microseconds of dispatch before any arithmetic, while a small network's whole gradient step
is a few dozen numpy operations on tiny arrays. When a DQN trains after every env step or
every few, that call is most of the time. ``learner: numpy`` in the config runs this module
instead; ``learner: tensorflow`` (the default) runs ``dqn.tf_learner`` under XLA.

It is the same algorithm, step by step: TD targets from the target network (or Double DQN),
the element-wise TD loss and its backward rule from ``dqn.backprop.losses`` (the same
definitions as ``dqn.losses``, checked against ``tf.GradientTape`` there), an explicit
backward pass through the Dense layers, global-norm clipping, Adam with Keras' arithmetic, the
learning-rate schedule, the target sync, and the same STEP_METRICS. Float32 throughout, so it
agrees with the TensorFlow learner to float32 rounding, not bit for bit (tests check both the
gradient against finite differences and a run of updates against the TensorFlow learner).

No TensorFlow import here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from dqn.activations import ACTIVATION_GRADS, ACTIVATIONS
from dqn.backprop.losses import LOSSES as LOSS_PAIRS
from dqn.config import DQNConfig, bootstrap_discount, total_grad_steps
from dqn.learner import InProcess, LearnerArrays
from dqn.replay import row_layout
from dqn.step_metrics import IS_MAX_METRIC, STEP_METRICS


@functools.lru_cache(maxsize=16)
def quantile_ranks(n: int) -> list[int]:
    """Indices of the nearest-rank 50/90/99% quantiles in a sorted batch of n, computed in
    float32 as ``dqn.tf_learner.quantile_ranks`` does, so the two cannot part (float64 gives the
    same ranks for every n up to 100,000, checked; the float32 form needs no such check)."""
    return [min(math.ceil(np.float32(p) * np.float32(n)) - 1, n - 1) for p in (0.5, 0.9, 0.99)]


class NumpyLearner(InProcess):
    """Learner state as numpy arrays, updated in place by ``burst``.

    ``shapes`` are the parameter shapes in flat order, [W0, b0, W1, b1, ...] (a Dense chain,
    as ``dqn.networks.FlatNetwork`` lays them out); ``activations`` names each layer's
    activation, the last one usually "linear".
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, ...]],
        activations: Sequence[str],
        config: DQNConfig,
        online: np.ndarray,
        dtype: type = np.float32,
    ):
        if len(shapes) != 2 * len(activations):
            raise ValueError("a Dense chain has a kernel and a bias per layer")
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(
                f"learner 'numpy' has no activation {unknown[0]!r}; it supports "
                f"{', '.join(ACTIVATIONS)}"
            )
        self.config = config
        self.dtype = dtype  # float32 to train; float64 lets tests check gradients numerically
        self.shapes = [tuple(s) for s in shapes]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(sizes))
        offsets = np.cumsum([0, *sizes]).tolist()
        self._slices = list(zip(offsets[:-1], offsets[1:]))
        self._act = [ACTIVATIONS[a] for a in activations]
        self._act_grad = [ACTIVATION_GRADS[a] for a in activations]
        self._loss = LOSS_PAIRS[config.loss]
        # The state. ``online`` keeps its identity across updates (the acting mirror views it).
        self.online = np.array(online, dtype)
        self.target = self.online.copy()
        self.adam_m = np.zeros(self.size, dtype)
        self.adam_v = np.zeros(self.size, dtype)
        self.adam_step = np.float32(0.0)
        self.grad_steps = 0
        self._grads = np.zeros(self.size, dtype)
        self._total_grad_steps = max(total_grad_steps(config), 1)
        # Views, made once: every update writes the state arrays in place.
        self._online_layers = self.layers(self.online)
        self._target_layers = self.layers(self.target)
        self._grad_layers = self.layers(self._grads)
        self._layout = row_layout(self.shapes[0][0])  # the first kernel is [obs_dim, width]

    # ------------------------------------------------------------------ views
    def layers(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) views of a flat parameter vector."""
        arrays = [flat[a:b].reshape(s) for (a, b), s in zip(self._slices, self.shapes)]
        return list(zip(arrays[0::2], arrays[1::2]))

    def forward(self, layers: list[tuple[np.ndarray, np.ndarray]], obs: np.ndarray) -> np.ndarray:
        x = obs
        for (w, b), act in zip(layers, self._act):
            x = act(x @ w + b)
        return x

    # ------------------------------------------------------------------ one step
    def loss_and_grad(self, obs, actions, rewards, next_obs, terminated):
        """(loss, grads [P], td_error, dq_sa, q, q_sa) of one batch, as ``dqn.tf_learner``.

        ``grads`` is a buffer that the next call overwrites.
        """
        c = self.config
        n = len(actions)
        rows = np.arange(n)
        next_q = self.forward(self._target_layers, next_obs)
        if c.double_dqn:
            best = self.forward(self._online_layers, next_obs).argmax(axis=1)
            next_v = next_q[rows, best]
        else:
            next_v = next_q.max(axis=1)
        target = rewards + self.dtype(bootstrap_discount(c)) * (1.0 - terminated) * next_v

        # Forward, keeping each layer's input, pre-activation and output for the backward pass.
        inputs, zs, outs = [], [], []
        x = obs
        for (w, b), act in zip(self._online_layers, self._act):
            inputs.append(x)
            z = x @ w + b
            x = act(z)
            zs.append(z)
            outs.append(x)
        q = x
        q_sa = q[rows, actions]
        td_error = target - q_sa
        per_sample, cache = self._loss.forward(td_error, c.loss_bound)
        loss = per_sample.sum(dtype=self.dtype) / self.dtype(n)

        # d loss / d q_sa = -(1/n) d loss_i / d td_error_i; only the taken action's Q moves.
        dq_sa = self._loss.backward(self.dtype(-1.0 / n), cache).astype(self.dtype, copy=False)
        dout = np.zeros_like(q)
        dout[rows, actions] = dq_sa
        for i in range(len(self._online_layers) - 1, -1, -1):
            if self._act_grad[i] is not None:
                dout = dout * self._act_grad[i](zs[i], outs[i])
            dw, db = self._grad_layers[i]
            np.matmul(inputs[i].T, dout, out=dw)
            np.add.reduce(dout, axis=0, out=db)
            if i:
                dout = dout @ self._online_layers[i][0].T
        return loss, self._grads, td_error, dq_sa, q, q_sa

    def step(self, obs, actions, rewards, next_obs, terminated) -> np.ndarray:
        """One gradient step in place; returns the STEP_METRICS vector."""
        c = self.config
        loss, grads, td_error, dq_sa, q, q_sa = self.loss_and_grad(
            obs, actions, rewards, next_obs, terminated
        )
        grad_norm = np.float32(np.sqrt(np.dot(grads, grads)))
        if c.max_grad_norm is not None:
            grads *= np.float32(c.max_grad_norm / max(grad_norm, c.max_grad_norm))
        self._adam(grads, self._learning_rate())
        self.grad_steps += 1
        if self.grad_steps % c.target_update_every_grad_steps == 0:
            if c.target_tau == 1.0:
                self.target[:] = self.online
            else:
                self.target[:] = c.target_tau * self.online + (1.0 - c.target_tau) * self.target
        return self._metrics(loss, td_error, dq_sa, q, q_sa, grad_norm)

    def _learning_rate(self) -> float:
        c = self.config
        if c.learning_rate_end is None:
            return c.learning_rate
        frac = min(1.0, self.grad_steps / self._total_grad_steps)
        return c.learning_rate + frac * (c.learning_rate_end - c.learning_rate)

    def _adam(
        self, grads: np.ndarray, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999
    ) -> None:
        """``dqn.tf_learner.adam_update`` in place (Keras' arithmetic)."""
        self.adam_step = np.float32(self.adam_step + 1.0)
        step = float(self.adam_step)
        alpha = learning_rate * np.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        m, v, dt = self.adam_m, self.adam_v, self.dtype
        m += (grads - m) * dt(1.0 - beta_1)
        v += (grads * grads - v) * dt(1.0 - beta_2)
        update = np.sqrt(v)
        update += dt(self.config.adam_epsilon)
        np.divide(m, update, out=update)
        update *= dt(alpha)
        self.online -= update

    def _metrics(self, loss, td_error, dq_sa, q, q_sa, grad_norm) -> np.ndarray:
        n = len(td_error)
        if self.config.diagnostics:
            s = np.sort(np.abs(td_error))
            p50, p90, p99 = s[quantile_ranks(n)]
            td_stats = [s.sum(dtype=np.float64) / n, p50, p90, p99, s[-1]]
            zero = np.count_nonzero(dq_sa == 0.0) / n
            over = np.count_nonzero(s > self.config.loss_bound) / n
        else:
            td_stats, zero, over = [np.nan] * 5, np.nan, np.nan
        return np.array(
            [
                loss,
                *td_stats,
                zero,
                over,
                q_sa.sum(dtype=np.float64) / n,
                np.abs(q).max(),
                grad_norm,
            ],
            np.float32,
        )

    # ------------------------------------------------------------------ the contract
    def burst(self, rows: np.ndarray) -> np.ndarray:
        """K gradient steps on packed rows [K, B, W] (``dqn.replay.row_layout``).

        Returns the per-step metrics averaged over the burst ("mean" ones) or their maximum
        ("max" ones), in STEP_METRICS order, as the TensorFlow learner does.
        """
        layout = self._layout
        sums = np.zeros(len(STEP_METRICS), np.float64)
        maxes = np.full(len(STEP_METRICS), -np.inf)
        # A diverging network overflows (float32 matmuls, Adam's moments): the divergence guard
        # reads it from the metrics and stops the run in one line, as with the TensorFlow
        # learner, which warns of nothing; numpy's warnings would come first, and once a run.
        with np.errstate(all="ignore"):
            for batch in rows:
                m = self.step(
                    batch[:, layout.obs],
                    batch[:, layout.action].astype(np.intp),
                    batch[:, layout.reward],
                    batch[:, layout.next_obs],
                    batch[:, layout.terminated],
                )
                sums += m
                np.maximum(maxes, m, out=maxes)
        return np.where(IS_MAX_METRIC, maxes, sums / len(rows)).astype(np.float32)

    def probe_gradient(self, batch) -> np.ndarray:
        """The flat loss gradient of ``batch`` (a replay Batch) at the current parameters, as
        a step would compute it, nothing updated."""
        floats = (batch.obs, batch.rewards, batch.next_obs, batch.terminated)
        obs, rewards, next_obs, terminated = (np.asarray(a, self.dtype) for a in floats)
        actions = np.asarray(batch.actions, np.intp)
        with np.errstate(all="ignore"):  # a diverging network's NaN is what the probe reports
            grads = self.loss_and_grad(obs, actions, rewards, next_obs, terminated)[1]
        return grads.copy()  # the buffer the next step overwrites

    @property
    def state(self) -> LearnerArrays:
        return LearnerArrays(
            self.online.copy(),
            self.target.copy(),
            self.adam_m.copy(),
            self.adam_v.copy(),
            np.float32(self.adam_step),
            self.grad_steps,
        )

    @state.setter
    def state(self, state: LearnerArrays) -> None:
        # Copy into the arrays in place: the acting mirror keeps viewing ``online``.
        for name in ("online", "target", "adam_m", "adam_v"):
            getattr(self, name)[:] = np.asarray(getattr(state, name), self.dtype)
        self.adam_step = np.float32(state.adam_step)
        self.grad_steps = int(state.grad_steps)
