"""M members' Q-learning updates as one compiled TensorFlow program (``dqn.learner``).

Why one program: on a CPU each TensorFlow call costs hundreds of microseconds of dispatch, and
M single learners pay it M times per burst for networks whose arithmetic is smaller still. Here
member m's parameters are row m of an [M, P] tensor and a Dense layer is one batched matmul over
the member axis ([M, B, in] x [M, in, out]), so K gradient steps of all M members are one call.
The gain is that dispatch: with long bursts of large networks there is little left to save, and
M members' state outgrows the caches one member's fits in, so a step can then cost more per
member than a single learner's.

Per member, the arithmetic is that of ``dqn.tf_learner.train_step`` with the member's config:
the same loss functions (``dqn.losses``), the same Adam, clipping, schedule and target sync, in
float32 with the same constants. The settings that may differ (``dqn.members.MemberSettings``)
are [M] constants of the compiled function. Where a member's choice changes the computation
(loss, gradient clipping, soft target sync), each variant present in the population is computed
for all members and ``tf.where`` picks each member's: ``tf.where`` masks the other branches'
gradients rather than scaling them, so a member's gradient is exactly its own loss's. Double
DQN's extra forward pass, a network's worth of arithmetic, runs for the members that use it only.

Nothing couples members. Every op works row by row on the member axis, except the sum of the
members' losses that the tape differentiates, and d(sum)/d(loss_m) is 1 whatever the other
losses are: a member with NaN parameters leaves the others bit-identical (tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from dqn import losses
from dqn.config import LOSS_NAMES, DQNConfig
from dqn.fastcall import call_compiled
from dqn.learner import LearnerArrays
from dqn.members import GROUP_BYTES, check_members, group_size, member_settings
from dqn.step_metrics import IS_MAX_METRIC, STEP_METRICS
from dqn.tf_learner import (
    LearnerState,
    adam_update,
    nan_max,
    nan_reduce_max,
    quantile_ranks,
    shared_key,
    sort_nan_last,
    unpack_rows,
)

# The TensorFlow ops the Keras activations of a Dense layer run (Keras 3, TensorFlow backend).
ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": lambda z: z,
    "relu": tf.nn.relu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "elu": tf.nn.elu,
}


# Output widths up to this take ``narrow_matmul``'s backward pass (a Q-head has one column
# per action).
NARROW = 8


@tf.custom_gradient
def narrow_matmul(x: tf.Tensor, w: tf.Tensor):
    """``tf.matmul(x [M, B, in], w [M, in, out])`` for a small ``out``, with the same gradient
    computed column by column.

    Why: XLA on CPU runs the two backward products of such a layer, dy W^T (an inner
    dimension of ``out``) and x^T dy (``out`` columns), as dots that cost several times their
    arithmetic; as ``out`` broadcast multiply-adds they cost less than half of that
    (``python -m benchmarks.learner_anatomy`` times both). Same sums in another order, so
    float32 rounding may differ from the dots'.
    """
    y = tf.matmul(x, w)

    def grad(dy: tf.Tensor):
        cols = range(w.shape[-1])
        dx = tf.add_n([dy[:, :, j, None] * w[:, None, :, j] for j in cols])
        dw = tf.stack([tf.reduce_sum(x * dy[:, :, j, None], axis=1) for j in cols], axis=2)
        return dx, dw

    return y, grad


def dense_chain(shapes: Sequence[tuple[int, ...]], activations: Sequence[str]):
    """``forward(params [M, P], x [M, B, in]) -> [M, B, out]`` for a chain of Dense layers whose
    parameters lie in each row as [W0, b0, W1, b1, ...] (``dqn.networks.FlatNetwork``)."""
    sizes = [math.prod(s) for s in shapes]
    acts = [ACTIVATIONS[a] for a in activations]

    def forward(params: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        parts = tf.split(params, sizes, axis=1)
        for w, b, shape, act in zip(parts[0::2], parts[1::2], shapes[0::2], acts):
            w = tf.reshape(w, [-1, *shape])
            # Keras' Dense: matmul, add the bias, then the activation.
            y = narrow_matmul(x, w) if shape[1] <= NARROW else tf.matmul(x, w)
            x = act(y + b[:, None, :])
        return x

    return forward


def make_step(
    shapes: Sequence[tuple[int, ...]], activations: Sequence[str], configs: Sequence[DQNConfig]
):
    """``step(state, rows [M, B, W]) -> (state, metrics [M, n])``: one gradient step of the
    members ``configs``, their state stacked on the leading axis."""
    forward = dense_chain(shapes, activations)
    obs_dim = shapes[0][0]
    s = member_settings(configs)
    # The per-member numbers, rounded to float32 where the single learner rounds them: Python
    # floats (float64) meet float32 tensors there, so 1 - tau and end - start are float64 first.
    f32 = {
        "bound": s.loss_bound,
        "lr_start": s.learning_rate,
        "lr_delta": s.learning_rate_end - s.learning_rate,
        "lr_steps": s.total_grad_steps,
        "discount": s.discount,
        "max_norm": s.max_grad_norm,
        "tau": s.target_tau,
        "one_minus_tau": np.array([1.0 - c.target_tau for c in configs]),
        "epsilon": s.adam_epsilon,
    }
    f32 = {k: np.asarray(v, np.float32) for k, v in f32.items()}
    loss_ids = sorted(set(s.loss_id.tolist()))
    clip, soft = np.isfinite(s.max_grad_norm), s.target_tau != 1.0
    diagnostics = configs[0].diagnostics

    def const(name: str) -> tf.Tensor:  # [M]
        return tf.constant(f32[name])

    def column(name: str) -> tf.Tensor:  # [M, 1], to broadcast over a row
        return tf.constant(f32[name][:, None])

    def pick(where: np.ndarray, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """a for members where ``where`` holds, else b; no select when all agree."""
        return a if where.all() else b if not where.any() else tf.where(where[:, None], a, b)

    def elementwise_loss(td_error: tf.Tensor) -> tf.Tensor:
        out = None
        for i in loss_ids:
            value = losses.LOSSES[LOSS_NAMES[i]](td_error, column("bound"))
            out = value if out is None else pick(s.loss_id == i, value, out)
        return out

    def step(state: LearnerState, rows: tf.Tensor) -> tuple[LearnerState, tf.Tensor]:
        obs, actions, rewards, next_obs, terminated = unpack_rows(rows, obs_dim)
        next_q = forward(state.target, next_obs)
        next_v = nan_reduce_max(next_q, axis=2)
        if s.double_dqn.all():
            best = tf.argmax(forward(state.online, next_obs), axis=2, output_type=tf.int32)
            next_v = tf.gather(next_q, best, batch_dims=2)
        elif s.double_dqn.any():  # the extra forward pass for the Double DQN members only
            rows_of = np.flatnonzero(s.double_dqn)[:, None]
            q_online = forward(tf.gather_nd(state.online, rows_of), tf.gather_nd(next_obs, rows_of))
            best = tf.argmax(q_online, axis=2, output_type=tf.int32)
            chosen = tf.gather(tf.gather_nd(next_q, rows_of), best, batch_dims=2)
            next_v = tf.tensor_scatter_nd_update(next_v, rows_of, chosen)
        target = tf.stop_gradient(rewards + column("discount") * (1.0 - terminated) * next_v)
        params = state.online
        with tf.GradientTape() as tape:
            tape.watch(params)
            q = forward(params, obs)
            q_sa = tf.gather(q, actions, batch_dims=2)
            td_error = target - q_sa
            loss = tf.reduce_mean(elementwise_loss(td_error), axis=1)
            total = tf.reduce_sum(loss)  # d total / d loss_m = 1: each member's own gradient
        if diagnostics:
            grads, dq_sa = tape.gradient(total, [params, q_sa])
        else:
            grads, dq_sa = tape.gradient(total, params), None
        grad_norm = tf.norm(grads, axis=1)
        if clip.any():
            max_norm = column("max_norm")
            scaled = grads * (max_norm / tf.maximum(grad_norm[:, None], max_norm))
            grads = pick(clip, scaled, grads)
        # learning_rate_at's arithmetic; a constant rate has lr_delta 0, so lr is exactly start.
        frac = tf.minimum(1.0, tf.cast(state.grad_steps, tf.float32) / const("lr_steps"))
        lr = const("lr_start") + frac * const("lr_delta")
        online, m, v, adam_step = adam_update(
            params,
            grads,
            state.adam_m,
            state.adam_v,
            state.adam_step[:, None],
            lr[:, None],
            epsilon=column("epsilon"),
        )
        grad_steps = state.grad_steps + 1
        due = tf.equal(grad_steps % tf.constant(s.target_every), 0)
        synced = online
        if soft.any():
            mixed = column("tau") * online + column("one_minus_tau") * state.target
            synced = pick(soft, mixed, online)
        new_target = tf.where(due[:, None], synced, state.target)
        new = LearnerState(online, new_target, m, v, adam_step[:, 0], grad_steps)
        return new, metrics(loss, td_error, dq_sa, q, q_sa, grad_norm)

    def metrics(loss, td_error, dq_sa, q, q_sa, grad_norm) -> tf.Tensor:
        """``dqn.tf_learner._step_metrics`` per member: [M, n]."""
        abs_td = tf.abs(td_error)
        if diagnostics:
            ordered = sort_nan_last(abs_td, axis=1)
            quantiles = tf.gather(ordered, quantile_ranks(tf.shape(abs_td)[1]), axis=1)
            zero = tf.reduce_mean(tf.cast(tf.equal(dq_sa, 0.0), tf.float32), axis=1)
            over = tf.reduce_mean(tf.cast(abs_td > column("bound"), tf.float32), axis=1)
            diag = [tf.reduce_mean(abs_td, axis=1)[:, None], quantiles, ordered[:, -1:]]
            diag += [zero[:, None], over[:, None]]
        else:
            diag = [tf.fill([tf.shape(loss)[0], 7], float("nan"))]
        q_stats = [tf.reduce_mean(q_sa, axis=1), nan_reduce_max(tf.abs(q), axis=[1, 2])]
        return tf.concat([loss[:, None], *diag, tf.stack([*q_stats, grad_norm], axis=1)], 1)

    return step


def make_population_burst(
    shapes: Sequence[tuple[int, ...]],
    activations: Sequence[str],
    configs: Sequence[DQNConfig],
    group: int | None = None,
):
    """(online, target, adam_m, adam_v [M, P], adam_step [M], grad_steps [M], rows [M, K, B, W],
    active [M]) -> (online, target, adam_m, adam_v, adam_step, grad_steps, sums | maxes [M, 2 n]),
    n = len(STEP_METRICS).

    The state goes in and out as its six tensors, not packed into fewer as ``dqn.tf_learner``'s
    single learner packs its own: M members' state is M times larger, and packing it (slices
    in, a concatenation out) cost more per call than the extra tensors' dispatch (130-210 us
    of a one-step call of 16 [64, 64] members in XLA's records; docs/populations.md).
    Inactive members come out exactly as they went in, with NaN metrics. Members are stepped in
    groups of ``group`` (default: ``group_size(shapes)``); a group whose members are all inactive
    runs no step (a conditional around its loop; every other member's computation, and
    rounding, is the same).
    """
    n = len(STEP_METRICS)
    group = group_size(shapes) if group is None else group
    cuts = [*range(0, len(configs), group), len(configs)]
    spans = list(zip(cuts[:-1], cuts[1:]))
    steps = [make_step(shapes, activations, configs[a:b]) for a, b in spans]

    def burst(online, target, adam_m, adam_v, adam_step, grad_steps, rows, active):
        start = LearnerState(online, target, adam_m, adam_v, adam_step, grad_steps)
        k = tf.shape(rows)[1]
        ends, sums, maxes = [], [], []
        # Group after group, each through all K steps: members are independent, so the order
        # changes nothing but which state is in the caches.
        for step, (a, b) in zip(steps, spans):
            state = LearnerState(*(t[a:b] for t in start))
            group_rows = rows[a:b]

            def body(i, state, sums, maxes, step=step, group_rows=group_rows):
                state, m = step(state, group_rows[:, i])
                return i + 1, state, sums + m, nan_max(maxes, m)

            zeros, lows = tf.zeros([b - a, n]), tf.fill([b - a, n], float("-inf"))
            first = (state, zeros, lows)

            def steps_of(body=body, first=first):
                return tf.while_loop(lambda i, *_: i < k, body, (tf.constant(0), *first))[1:]

            # A group whose members have all stopped runs no step. A conditional, not a trip
            # count of 0: a loop bound read from the mask made every one-step call block once (a
            # voluntary context switch per call, tests/test_runtime.py).
            end, total, top = tf.cond(
                tf.reduce_any(active[a:b]), steps_of, lambda first=first: first
            )
            ends.append(end)
            sums.append(total)
            maxes.append(top)
        end = LearnerState(*(tf.concat([e[j] for e in ends], axis=0) for j in range(6)))
        keep = [
            tf.where(tf.reshape(active, [-1] + [1] * (a.shape.rank - 1)), a, b)
            for a, b in zip(end, start)
        ]
        metrics = tf.concat([tf.concat(sums, 0), tf.concat(maxes, 0)], 1)
        out = tf.where(active[:, None], metrics, float("nan"))
        return (*keep, out)

    return burst


# The compiled bursts of populations of the same members' settings (seeds, output folders
# aside) and the same network, shared as ``dqn.tf_learner`` shares a single learner's: XLA never
# frees a compiled program, so train_population in a loop grew by each call's programs and paid
# their compilation again (python -m benchmarks.train_loop --members: README).
_SHARED: dict[tuple, Callable] = {}


def population_key(
    shapes: Sequence[tuple[int, ...]], activations: Sequence[str], configs: Sequence[DQNConfig]
) -> tuple:
    """What a population's compiled burst depends on: the network (its shapes once) and each
    member's settings, in member order (``dqn.tf_learner.shared_key``)."""
    settings = tuple(shared_key(c, shapes)[1] for c in configs)
    return tuple(tuple(s) for s in shapes), tuple(activations), settings


class TFPopulationLearner:
    """The population learner contract (``dqn.learner.PopulationLearner``) on TensorFlow.

    ``shapes`` are one member's parameter shapes in flat order ([W0, b0, W1, b1, ...], a chain
    of Dense layers), ``activations`` each layer's activation, ``configs`` the M members (they
    must share ``dqn.members.SHARED_KEYS``), ``online`` [M, P] their initial parameters. The
    state lives in its six tensors between calls (``make_population_burst`` says why six).

    ``share``: a ``population_key``, to share the compiled burst with every learner built with
    that key. Only ``dqn.population`` passes one: a learner built directly (a test or benchmark
    that patches a function of this module to check or time a variant) traces its own.
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, ...]],
        activations: Sequence[str],
        configs: Sequence[DQNConfig],
        online: np.ndarray,
        share: tuple | None = None,
    ) -> None:
        shapes, online = check_members(configs, shapes, activations, ACTIVATIONS, online)
        if share is None or share not in _SHARED:
            burst = tf.function(  # no AutoGraph: see TFLearner
                make_population_burst(shapes, activations, configs),
                jit_compile=configs[0].jit_compile,
                reduce_retracing=True,
                autograph=False,
            )
            if share is not None:
                _SHARED[share] = burst
        self._burst = _SHARED[share] if share is not None else burst
        self._compiled: dict[tuple, Callable] = {}
        flat, zeros, members = tf.constant(online), tf.zeros_like(online), len(configs)
        steps = tf.zeros([members], tf.int64)
        self._state = LearnerState(flat, flat, zeros, zeros, tf.zeros([members]), steps)
        self._active: tuple[bytes, tf.Tensor] = (b"", tf.constant(True))
        self.online = online

    def burst(self, rows: np.ndarray, active: np.ndarray) -> np.ndarray:
        """K gradient steps of every active member on rows [M, K, B, W]; [M, n] metrics."""
        active = np.asarray(active, bool)
        if active.shape != (self.online.shape[0],) or rows.shape[0] != active.shape[0]:
            raise ValueError(f"rows {rows.shape} and active {active.shape} must be per member")
        if self._active[0] != active.tobytes():  # the mask rarely changes: reuse its tensor
            self._active = (active.tobytes(), tf.constant(active))
        args = (*self._state, tf.constant(rows, tf.float32), self._active[1])
        *state, metrics = call_compiled(self._compiled, self._burst, args, rows.shape)
        self._state = LearnerState(*state)
        self.online = self._state.online.numpy()
        metrics, n = metrics.numpy(), len(STEP_METRICS)
        return np.where(IS_MAX_METRIC, metrics[:, n:], metrics[:, :n] / rows.shape[1])

    def member_state(self, m: int) -> LearnerArrays:
        s = self._state
        vectors = (t[m].numpy().copy() for t in (s.online, s.target, s.adam_m, s.adam_v))
        return LearnerArrays(*vectors, np.float32(s.adam_step[m]), int(s.grad_steps[m]))

    def set_member_state(self, m: int, state: LearnerArrays) -> None:
        arrays = {name: np.array(t) for name, t in self._state._asdict().items()}
        for name, array in arrays.items():  # LearnerArrays names the same fields
            array[m] = getattr(state, name)
        self._state = LearnerState(**{name: tf.constant(a) for name, a in arrays.items()})
        self.online = self._state.online.numpy()

    @property
    def grad_steps(self) -> np.ndarray:
        return self._state.grad_steps.numpy().copy()


__all__ = [
    "ACTIVATIONS",
    "GROUP_BYTES",
    "TFPopulationLearner",
    "group_size",
    "dense_chain",
    "make_population_burst",
    "population_key",
]
