"""The numpy learner for M members at once: ``dqn.numpy_learner``'s update on stacked arrays.

Why: a small Q-network leaves a CPU idle. One member's gradient step is a few [64, 256] x
[256, 256] products, too small for BLAS to reach its rate, and each numpy call costs a few
microseconds of Python. Stacking M members on a leading axis turns every product into one
``np.matmul`` over [M, B, in] x [M, in, out] (BLAS per member, no Python per member) and
every elementwise step into one call for all members, so the fixed costs are paid once per
step instead of once per member.

Member m's numbers are those of ``NumpyLearner`` with member m's config, to float32 rounding
(tests hold them equal), and depend only on member m's own state and rows: every operation
either acts on one member's slice or reduces within it, never across members.

No TensorFlow import here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dqn.activations import ACTIVATION_GRADS, ACTIVATIONS
from dqn.backprop.losses import LOSSES as LOSS_PAIRS
from dqn.config import LOSS_NAMES, DQNConfig
from dqn.learner import LearnerArrays
from dqn.members import check_members, learning_rates, member_settings
from dqn.numpy_learner import quantile_ranks
from dqn.replay import row_layout
from dqn.step_metrics import IS_MAX_METRIC, STEP_METRICS

BETA_1, BETA_2 = 0.9, 0.999  # Adam, as keras.optimizers.Adam


class NumpyPopulationLearner:
    """M members' learner states as stacked numpy arrays [M, P], updated in place by ``burst``.

    ``shapes`` and ``activations`` describe one member's Dense chain as ``NumpyLearner`` takes
    them; ``configs`` are the members (they share ``dqn.members.SHARED_KEYS``); ``online`` is
    [M, P], the members' initial parameters.
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, ...]],
        activations: Sequence[str],
        configs: Sequence[DQNConfig],
        online: np.ndarray,
    ):
        shapes, online = check_members(configs, shapes, activations, ACTIVATIONS, online)
        self.configs = list(configs)
        self.settings = member_settings(configs)
        self.diagnostics = configs[0].diagnostics
        self.shapes = [tuple(s) for s in shapes]
        sizes = [int(np.prod(s)) for s in self.shapes]
        offsets = np.cumsum([0, *sizes]).tolist()
        self._slices = list(zip(offsets[:-1], offsets[1:]))
        self._activations = list(activations)
        self._act = [ACTIVATIONS[a] for a in activations]
        self._act_grad = [ACTIVATION_GRADS[a] for a in activations]
        self._layout = row_layout(self.shapes[0][0])
        m, p = online.shape
        self.online = online  # check_members made it a fresh float32 array
        self.target = online.copy()
        self.adam_m = np.zeros((m, p), np.float32)
        self.adam_v = np.zeros((m, p), np.float32)
        self.adam_step = np.zeros(m, np.float32)
        self.grad_steps = np.zeros(m, np.int64)
        self._grads = np.zeros((m, p), np.float32)
        self._scratch = np.zeros((m, p), np.float32)
        self._online_layers = self.layers(self.online)
        self._target_layers = self.layers(self.target)
        self._grad_layers = self.layers(self._grads)
        # Members grouped by loss: one vectorized call per loss present, on its rows only.
        self._loss_groups = [
            (LOSS_PAIRS[name], np.flatnonzero(self.settings.loss_id == i))
            for i, name in enumerate(LOSS_NAMES)
            if (self.settings.loss_id == i).any()
        ]
        self._double = self.settings.double_dqn.any()
        self._clip = np.isfinite(self.settings.max_grad_norm)
        self._subset: tuple[bytes, NumpyPopulationLearner] | None = None  # active members' own

    @property
    def members(self) -> int:
        return len(self.online)

    def layers(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W [M, in, out], b [M, out]) views of stacked flat vectors [M, P]."""
        m = len(flat)
        arrays = [flat[:, a:b].reshape(m, *s) for (a, b), s in zip(self._slices, self.shapes)]
        return list(zip(arrays[0::2], arrays[1::2]))

    def forward(self, layers, obs: np.ndarray) -> np.ndarray:
        """Q-values [M, N, n_actions] of observations [M, N, obs_dim], member by member."""
        x = obs
        for (w, b), act in zip(layers, self._act):
            x = act(np.matmul(x, w) + b[:, None, :])
        return x

    def hidden(self, obs: np.ndarray) -> list[np.ndarray]:
        """Every hidden layer's output [M, N, width] for observations [M, N, obs_dim]."""
        out, x = [], obs
        for (w, b), act in zip(self._online_layers[:-1], self._act[:-1]):
            x = act(np.matmul(x, w) + b[:, None, :])
            out.append(x)
        return out

    # ------------------------------------------------------------------ one step
    def loss_and_grad(self, obs, actions, rewards, next_obs, terminated):
        """Per member: (loss [M], grads [M, P], td_error, dq_sa, q, q_sa [M, B(, A)]).

        ``grads`` is a buffer that the next call overwrites.
        """
        s = self.settings
        m, n = actions.shape
        rows, cols = np.arange(m)[:, None], np.arange(n)[None, :]
        next_q = self.forward(self._target_layers, next_obs)
        next_v = next_q.max(axis=2)
        if self._double:
            best = self.forward(self._online_layers, next_obs).argmax(axis=2)
            double_v = next_q[rows, cols, best]
            next_v = np.where(s.double_dqn[:, None], double_v, next_v)
        discount = s.discount.astype(np.float32)[:, None]
        target = rewards + discount * (1.0 - terminated) * next_v

        inputs, zs, outs = [], [], []
        x = obs
        for (w, b), act in zip(self._online_layers, self._act):
            inputs.append(x)
            z = np.matmul(x, w) + b[:, None, :]
            x = act(z)
            zs.append(z)
            outs.append(x)
        q = x
        q_sa = q[rows, cols, actions]
        td_error = target - q_sa
        loss = np.empty(m, np.float32)
        dq_sa = np.empty_like(td_error)
        scale = np.float32(-1.0 / n)
        for pair, idx in self._loss_groups:
            bound = s.loss_bound[idx, None]
            per_sample, cache = pair.forward(td_error[idx], bound)
            loss[idx] = per_sample.sum(axis=1, dtype=np.float32) / np.float32(n)
            dq_sa[idx] = pair.backward(scale, cache)

        dout = np.zeros_like(q)
        dout[rows, cols, actions] = dq_sa
        for i in range(len(self._online_layers) - 1, -1, -1):
            if self._act_grad[i] is not None:
                dout = dout * self._act_grad[i](zs[i], outs[i])
            dw, db = self._grad_layers[i]
            np.matmul(inputs[i].transpose(0, 2, 1), dout, out=dw)
            np.add.reduce(dout, axis=1, out=db)
            if i:
                dout = np.matmul(dout, self._online_layers[i][0].transpose(0, 2, 1))
        return loss, self._grads, td_error, dq_sa, q, q_sa

    def step(self, obs, actions, rewards, next_obs, terminated) -> np.ndarray:
        """One gradient step for every member, in place; returns STEP_METRICS [M, n]."""
        s = self.settings
        loss, grads, td_error, dq_sa, q, q_sa = self.loss_and_grad(
            obs, actions, rewards, next_obs, terminated
        )
        grad_norm = np.sqrt(np.einsum("mp,mp->m", grads, grads))
        if self._clip.any():
            # Global-norm clipping per member (Pascanu et al. 2013), as the single learners.
            limit = s.max_grad_norm
            factor = np.where(self._clip, limit / np.maximum(grad_norm, limit), 1.0)
            grads *= factor.astype(np.float32)[:, None]
        self._adam(grads, learning_rates(s, self.grad_steps))
        self.grad_steps += 1
        due = self.grad_steps % s.target_every == 0
        if due.any():
            tau = s.target_tau[due, None]
            hard = tau == 1.0
            self.target[due] = np.where(
                hard, self.online[due], tau * self.online[due] + (1.0 - tau) * self.target[due]
            )
        return self._metrics(loss, td_error, dq_sa, q, q_sa, grad_norm)

    def _adam(self, grads: np.ndarray, learning_rate: np.ndarray) -> None:
        """``NumpyLearner._adam`` per member, in place (Keras' arithmetic, in the same order).

        Written with one preallocated scratch array: temporaries of [M, P] would cost a page
        fault per page on every step, more than the arithmetic."""
        self.adam_step += np.float32(1.0)
        step = self.adam_step.astype(np.float64)
        alpha = learning_rate * np.sqrt(1.0 - BETA_2**step) / (1.0 - BETA_1**step)
        m, v, tmp = self.adam_m, self.adam_v, self._scratch
        np.subtract(grads, m, out=tmp)
        tmp *= np.float32(1.0 - BETA_1)
        m += tmp
        np.multiply(grads, grads, out=tmp)
        tmp -= v
        tmp *= np.float32(1.0 - BETA_2)
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.settings.adam_epsilon[:, None]
        np.divide(m, tmp, out=tmp)
        tmp *= alpha.astype(np.float32)[:, None]
        self.online -= tmp

    def _metrics(self, loss, td_error, dq_sa, q, q_sa, grad_norm) -> np.ndarray:
        m, n = td_error.shape
        out = np.full((m, len(STEP_METRICS)), np.nan, np.float32)
        out[:, 0] = loss
        if self.diagnostics:
            s = np.sort(np.abs(td_error), axis=1)
            out[:, 1] = s.sum(axis=1, dtype=np.float64) / n
            out[:, 2:5] = s[:, quantile_ranks(n)]
            out[:, 5] = s[:, -1]
            out[:, 6] = np.count_nonzero(dq_sa == 0.0, axis=1) / n
            out[:, 7] = np.count_nonzero(s > self.settings.loss_bound[:, None], axis=1) / n
        out[:, 8] = q_sa.sum(axis=1, dtype=np.float64) / n
        out[:, 9] = np.abs(q).max(axis=(1, 2))
        out[:, 10] = grad_norm
        return out

    # ------------------------------------------------------------------ the contract
    def burst(self, rows: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """K gradient steps for every active member on packed rows [M, K, B, W].

        Inactive members (stopped by the guard or by on_eval) cost nothing: with some of them,
        the active members' states are run by a learner of their own, then written back. A
        member's numbers do not depend on how many share the stack (numpy's stacked matmul is
        one BLAS product per member), so they are the bits a full stack gives."""
        m, k = rows.shape[:2]
        active = np.ones(m, bool) if active is None else np.asarray(active, bool)
        if active.shape != (self.members,) or m != self.members:  # as the TF learner refuses
            raise ValueError(f"rows {rows.shape} and active {active.shape} must be per member")
        if not active.all():
            return self._burst_of(np.flatnonzero(active), rows)
        layout = self._layout
        sums = np.zeros((m, len(STEP_METRICS)), np.float64)
        maxes = np.full((m, len(STEP_METRICS)), -np.inf)
        with np.errstate(all="ignore"):  # a diverging member may overflow: the guard reads it
            for j in range(k):
                batch = rows[:, j]
                values = self.step(
                    batch[..., layout.obs],
                    batch[..., layout.action].astype(np.intp),
                    batch[..., layout.reward],
                    batch[..., layout.next_obs],
                    batch[..., layout.terminated],
                )
                sums += values
                np.maximum(maxes, values, out=maxes)
        return np.where(IS_MAX_METRIC, maxes, sums / k).astype(np.float32)

    def _burst_of(self, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``burst`` for members ``idx`` alone; NaN metrics for the others."""
        metrics = np.full((len(rows), len(STEP_METRICS)), np.nan, np.float32)
        if not len(idx):
            return metrics
        key = idx.tobytes()
        if self._subset is None or self._subset[0] != key:  # the set changes only at stops
            # One at a time: the active members' arrays are held twice while members are
            # stopped (counted in dqn.members' memory estimate: SUBSET_COPIES).
            self._subset = None
            configs = [self.configs[i] for i in idx]
            sub = NumpyPopulationLearner(self.shapes, self._activations, configs, self.online[idx])
            self._subset = (key, sub)
        sub = self._subset[1]
        arrays = ("online", "target", "adam_m", "adam_v", "adam_step", "grad_steps")
        for name in arrays:  # in place: the sub-learner's layer views stay on its arrays
            getattr(sub, name)[...] = getattr(self, name)[idx]
        metrics[idx] = sub.burst(rows[idx])
        for name in arrays:
            getattr(self, name)[idx] = getattr(sub, name)
        return metrics

    def member_state(self, m: int) -> LearnerArrays:
        return LearnerArrays(
            self.online[m].copy(),
            self.target[m].copy(),
            self.adam_m[m].copy(),
            self.adam_v[m].copy(),
            np.float32(self.adam_step[m]),
            int(self.grad_steps[m]),
        )

    def set_member_state(self, m: int, state: LearnerArrays) -> None:
        for name in ("online", "target", "adam_m", "adam_v"):
            getattr(self, name)[m] = np.asarray(getattr(state, name), np.float32)
        self.adam_step[m] = np.float32(state.adam_step)
        self.grad_steps[m] = int(state.grad_steps)


__all__ = ["NumpyPopulationLearner"]
