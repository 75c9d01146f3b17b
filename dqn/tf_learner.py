"""The Q-learning update as pure TensorFlow functions of (state, batch) -> (state, metrics).

A burst of K gradient steps is one compiled call: a ``tf.while_loop`` over K batches sampled
up front. The replay buffer does not change during a burst, so this is exactly K sequential
updates (a test checks it), but it costs one call's dispatch instead of K.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from dqn.config import DQNConfig, bootstrap_discount, total_grad_steps
from dqn.fastcall import call_compiled
from dqn.learner import InProcess, LearnerArrays
from dqn.replay import row_layout
from dqn.step_metrics import IS_MAX_METRIC, METRIC_NAMES, STEP_METRICS  # noqa: F401 (re-exported)

Forward = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
LossFn = Callable[[tf.Tensor, float], tf.Tensor]


class LearnerState(NamedTuple):
    """Everything an update reads and writes, as tensors (flat parameter vectors)."""

    online: tf.Tensor  # [P] online network parameters
    target: tf.Tensor  # [P] target network parameters
    adam_m: tf.Tensor  # [P] Adam first moment
    adam_v: tf.Tensor  # [P] Adam second moment
    adam_step: tf.Tensor  # [] float32, Adam's step count (bias correction)
    grad_steps: tf.Tensor  # [] int64, gradient steps taken (target sync schedule)


def td_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    gamma: float,
    next_q_target: tf.Tensor,
    next_q_online: tf.Tensor | None = None,
) -> tf.Tensor:
    """r_t + gamma * (1 - terminated_t) * v(s_t), shape [batch].

    v(s_t) = max_a Q_target(s_t, a), or with Double DQN Q_target(s_t, argmax_a Q_online(s_t, a)).
    Only true termination stops the bootstrap; a time-limit truncation is stored as not terminated.
    """
    if next_q_online is None:
        next_v = nan_reduce_max(next_q_target, axis=1)
    else:
        best = tf.argmax(next_q_online, axis=1, output_type=tf.int32)
        next_v = tf.gather(next_q_target, best, batch_dims=1)
    return rewards + gamma * (1.0 - terminated) * next_v


def adam_update(
    params: tf.Tensor,
    grads: tf.Tensor,
    m: tf.Tensor,
    v: tf.Tensor,
    step: tf.Tensor,
    learning_rate: float,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One Adam step, the same arithmetic as ``keras.optimizers.Adam`` (a test checks it)."""
    step = step + 1.0
    alpha = learning_rate * tf.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    m = m + (grads - m) * (1.0 - beta_1)
    v = v + (tf.square(grads) - v) * (1.0 - beta_2)
    params = params - alpha * m / (tf.sqrt(v) + epsilon)
    return params, m, v, step


def sync_target(target: tf.Tensor, online: tf.Tensor, tau: float) -> tf.Tensor:
    """tau * online + (1 - tau) * target; tau == 1 is an exact copy."""
    return online if tau == 1.0 else tau * online + (1.0 - tau) * target


def learning_rate_at(grad_steps: tf.Tensor, config: DQNConfig) -> tf.Tensor:
    """Constant, or linear from learning_rate to learning_rate_end over the run's grad steps."""
    if config.learning_rate_end is None:
        return tf.constant(config.learning_rate)
    frac = tf.minimum(1.0, tf.cast(grad_steps, tf.float32) / max(total_grad_steps(config), 1))
    return config.learning_rate + frac * (config.learning_rate_end - config.learning_rate)


def sort_nan_last(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
    """``x`` sorted ascending along ``axis`` with NaNs last, as numpy's sort puts them.

    Why: XLA's sort puts NaN last, but TensorFlow's own (``jit_compile: false``) leaves a NaN
    where it lands and misorders the finite values around it ([3, nan, 1, inf, 2] came out
    [1, 3, nan, 2, inf]), so a diverging batch's quantiles would depend on the compiler.
    """
    nan = tf.math.is_nan(x)
    ordered = tf.sort(tf.where(nan, tf.constant(float("inf"), x.dtype), x), axis=axis)
    n = tf.shape(x)[axis]
    nans = tf.reduce_sum(tf.cast(nan, tf.int32), axis=axis, keepdims=True)
    rank_shape = [1] * len(x.shape)
    rank_shape[axis] = -1
    rank = tf.reshape(tf.range(n), rank_shape)  # broadcast along every other axis
    return tf.where(rank >= n - nans, tf.constant(float("nan"), x.dtype), ordered)


def quantile_ranks(n: tf.Tensor) -> tf.Tensor:
    """Nearest-rank indices of the 50/90/99% quantiles in a sorted batch of n, computed in
    float32 (the numpy learners' ``dqn.numpy_learner.quantile_ranks`` rounds as this does)."""
    nf = tf.cast(n, tf.float32)
    ranks = [tf.cast(tf.math.ceil(q * nf), tf.int32) - 1 for q in (0.5, 0.9, 0.99)]
    return tf.minimum(tf.stack(ranks), n - 1)


def _abs_quantiles(x: tf.Tensor) -> list[tf.Tensor]:
    """Median, 90% and 99% (nearest rank) and max of |x| over a batch (NaNs count as largest)."""
    s = sort_nan_last(tf.abs(x))
    return [*tf.unstack(tf.gather(s, quantile_ranks(tf.shape(s)[0]))), s[-1]]


class LossGrad(NamedTuple):
    """One batch's loss, its gradient, and what the diagnostics need from the same pass."""

    loss: tf.Tensor  # []
    grads: tf.Tensor  # [P] d loss / d online params
    td_error: tf.Tensor  # [batch] target - Q(s, a)
    dq_sa: tf.Tensor  # [batch] d loss / d Q(s, a): exactly 0 where a sample teaches nothing
    q: tf.Tensor  # [batch, n_actions]
    q_sa: tf.Tensor  # [batch]


def loss_and_grad(
    state: LearnerState,
    batch: tuple[tf.Tensor, ...],
    forward: Forward,
    loss_fn: LossFn,
    config: DQNConfig,
) -> LossGrad:
    """The TD loss of a batch (mean of the element-wise loss) and its gradient."""
    obs, actions, rewards, next_obs, terminated = batch
    next_q_online = forward(state.online, next_obs) if config.double_dqn else None
    target = tf.stop_gradient(
        td_targets(
            rewards,
            terminated,
            bootstrap_discount(config),
            forward(state.target, next_obs),
            next_q_online,
        )
    )
    params = state.online
    with tf.GradientTape() as tape:
        tape.watch(params)
        q = forward(params, obs)
        q_sa = tf.gather(q, actions, batch_dims=1)
        td_error = target - q_sa
        loss = tf.reduce_mean(loss_fn(td_error, config.loss_bound))
    if config.diagnostics:
        # dloss/dq_sa comes out of the same backward pass: a sample whose entry is exactly 0
        # teaches the network nothing (the clipped_delta bug, wherever |td_error| > bound).
        grads, dq_sa = tape.gradient(loss, [params, q_sa])
    else:
        grads, dq_sa = tape.gradient(loss, params), tf.fill(tf.shape(q_sa), float("nan"))
    return LossGrad(loss, grads, td_error, dq_sa, q, q_sa)


def batch_tensors(batch) -> tuple[tf.Tensor, ...]:
    """A replay Batch as the tensors ``loss_and_grad`` takes. Each field goes through numpy
    first: ``tf.constant`` converts a float64 array to float32 but refuses a float64 tensor,
    which a user's own batch may hold (``update`` takes one, through numpy too)."""
    obs, actions, rewards, next_obs, terminated = (np.asarray(x) for x in batch)
    return (
        tf.constant(obs, tf.float32),
        tf.constant(actions, tf.int32),
        tf.constant(rewards, tf.float32),
        tf.constant(next_obs, tf.float32),
        tf.constant(terminated, tf.float32),
    )


def train_step(
    state: LearnerState,
    batch: tuple[tf.Tensor, ...],
    forward: Forward,
    loss_fn: LossFn,
    config: DQNConfig,
) -> tuple[LearnerState, tf.Tensor]:
    """One gradient step on one batch; returns the new state and the STEP_METRICS vector."""
    out = loss_and_grad(state, batch, forward, loss_fn, config)
    grads = out.grads
    grad_norm = tf.norm(grads)
    if config.max_grad_norm is not None:
        # Global-norm clipping (Pascanu et al. 2013): scales, so the direction is kept.
        grads = grads * (config.max_grad_norm / tf.maximum(grad_norm, config.max_grad_norm))
    online, m, v, adam_step = adam_update(
        state.online,
        grads,
        state.adam_m,
        state.adam_v,
        state.adam_step,
        learning_rate_at(state.grad_steps, config),
        epsilon=config.adam_epsilon,
    )
    grad_steps = state.grad_steps + 1
    due = tf.equal(grad_steps % config.target_update_every_grad_steps, 0)
    new_target = tf.where(due, sync_target(state.target, online, config.target_tau), state.target)
    return LearnerState(online, new_target, m, v, adam_step, grad_steps), _step_metrics(
        out, grad_norm, config
    )


def _step_metrics(out: LossGrad, grad_norm: tf.Tensor, config: DQNConfig) -> tf.Tensor:
    """The STEP_METRICS vector; with diagnostics off only loss, Q and gradient norm (rest NaN)."""
    nan = tf.constant(float("nan"))
    abs_td = tf.abs(out.td_error)
    if config.diagnostics:
        td_stats = [tf.reduce_mean(abs_td), *_abs_quantiles(out.td_error)]
        zero = tf.reduce_mean(tf.cast(tf.equal(out.dq_sa, 0.0), tf.float32))
        over = tf.reduce_mean(tf.cast(abs_td > config.loss_bound, tf.float32))
    else:
        td_stats, zero, over = [nan] * 5, nan, nan
    q_stats = [tf.reduce_mean(out.q_sa), nan_reduce_max(tf.abs(out.q))]
    return tf.stack([out.loss, *td_stats, zero, over, *q_stats, grad_norm])


def nan_reduce_max(x: tf.Tensor, axis=None) -> tf.Tensor:
    """``tf.reduce_max`` that is NaN where a value it reduces is NaN, as numpy's max is: XLA's
    skips NaNs, so a network NaN for an action no sampled transition took showed a finite
    q_abs_max and a finite target, and the divergence guard let it through."""
    found = tf.reduce_any(tf.math.is_nan(x), axis=axis)
    return tf.where(found, tf.constant(float("nan"), x.dtype), tf.reduce_max(x, axis=axis))


def nan_max(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Elementwise max that keeps a NaN, as numpy's ``np.maximum`` (the numpy learners' max)
    does: XLA's max on this CPU returned the other operand, so a burst's max of a metric that
    is NaN at every step (the TD-error max with diagnostics off) came out -inf."""
    return tf.where(tf.math.is_nan(a) | (a >= b), a, b)  # a >= NaN is False: b, the NaN


def make_burst(forward: Forward, loss_fn: LossFn, config: DQNConfig):
    """A function (state, obs, actions, rewards, next_obs, terminated) -> (state, sums, maxes).

    Batch tensors have a leading [K] axis: K gradient steps run in one ``tf.while_loop``.
    ``sums`` and ``maxes`` accumulate STEP_METRICS over the K steps.
    """
    n = len(STEP_METRICS)

    def burst(state: LearnerState, obs, actions, rewards, next_obs, terminated):
        k = tf.shape(actions)[0]

        def body(i, state, sums, maxes):
            batch = (obs[i], actions[i], rewards[i], next_obs[i], terminated[i])
            state, metrics = train_step(state, batch, forward, loss_fn, config)
            return i + 1, state, sums + metrics, nan_max(maxes, metrics)

        _, state, sums, maxes = tf.while_loop(
            lambda i, *_: i < k,
            body,
            (tf.constant(0), state, tf.zeros([n]), tf.fill([n], float("-inf"))),
        )
        return state, sums, maxes

    return burst


def pack_state(state: LearnerState) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(online [P], rest [3P + 1] = target | adam_m | adam_v | adam_step, grad_steps)."""
    rest = tf.concat([state.target, state.adam_m, state.adam_v, [state.adam_step]], axis=0)
    return state.online, rest, state.grad_steps


def unpack_state(online: tf.Tensor, rest: tf.Tensor, grad_steps: tf.Tensor) -> LearnerState:
    p = tf.shape(online)[0]
    return LearnerState(
        online, rest[:p], rest[p : 2 * p], rest[2 * p : 3 * p], rest[3 * p], grad_steps
    )


def unpack_rows(rows: tf.Tensor, obs_dim: int) -> tuple[tf.Tensor, ...]:
    """Packed replay rows (``dqn.replay.row_layout``) -> (obs, actions, rewards, next_obs,
    terminated)."""
    at = row_layout(obs_dim)
    actions = tf.cast(rows[..., at.action], tf.int32)
    return (
        rows[..., at.obs],
        actions,
        rows[..., at.reward],
        rows[..., at.next_obs],
        rows[..., at.terminated],
    )


def make_packed_burst(forward: Forward, loss_fn: LossFn, config: DQNConfig, obs_dim: int):
    """``make_burst`` with 4 tensors in and 4 out instead of 11 and 8.

    Same arithmetic; on a CPU each tensor crossing the Python/TF boundary costs dispatch time,
    which dominates when the burst is a single gradient step (train every env step).
    (online, rest, grad_steps, rows [K, B, 2 obs_dim + 3]) -> (online, rest, grad_steps,
    sums | maxes [2 len(STEP_METRICS)]).
    """
    burst = make_burst(forward, loss_fn, config)

    def packed(online, rest, grad_steps, rows):
        state = unpack_state(online, rest, grad_steps)
        state, sums, maxes = burst(state, *unpack_rows(rows, obs_dim))
        online, rest, grad_steps = pack_state(state)
        return online, rest, grad_steps, tf.concat([sums, maxes], axis=0)

    return packed


# The compiled functions of the learners of one default network and one learner config, shared
# by every agent that has them: train() in a loop over seeds traced and XLA-compiled its burst
# again for each agent, and XLA never frees a compiled program, so a notebook's sweep grew
# without end (python -m benchmarks.train_loop: 3.11 against 1.83 s a call of 3,000 env steps,
# 12 MB of memory a call against none; README). Keyed by the network's shapes and
# every config key but those that cannot reach the update: anything else compiles its own.
_SHARED: dict[tuple, tuple[Callable, Callable]] = {}
_NOT_IN_THE_UPDATE = ("seed", "eval_seed", "output_dir")


def shared_key(config: DQNConfig, shapes: Sequence[tuple[int, ...]]) -> tuple:
    """What the learner's compiled functions depend on, for a network of ``shapes`` built from
    ``config`` (the default MLP: a network_fn's model is the user's own, and is not shared)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_THE_UPDATE}
    return tuple(tuple(s) for s in shapes), repr(sorted(settings.items()))


class TFLearner(InProcess):
    """The learner contract (``dqn.learner``) on TensorFlow: the burst above, compiled with XLA
    and called through ``dqn.fastcall``; the state lives in three tensors between calls.

    ``share``: a ``shared_key``, for a network whose forward pass is the same function of its
    weights as every other learner's with that key: their compiled functions are shared."""

    def __init__(
        self,
        forward: Forward,
        loss_fn: LossFn,
        config: DQNConfig,
        obs_dim: int,
        online: np.ndarray,
        share: tuple | None = None,
    ) -> None:
        if share is None or share not in _SHARED:
            functions = self._functions(forward, loss_fn, config, obs_dim)
            if share is not None:
                _SHARED[share] = functions
        self._burst, self._grad_fn = _SHARED[share] if share is not None else functions
        self._compiled: dict[tuple, Callable] = {}
        flat = tf.constant(online)
        zeros = tf.zeros_like(flat)
        self._packed = pack_state(
            LearnerState(flat, flat, zeros, zeros, tf.constant(0.0), tf.constant(0, tf.int64))
        )
        self.online = np.array(online, np.float32)

    @staticmethod
    def _functions(
        forward: Forward, loss_fn: LossFn, config: DQNConfig, obs_dim: int
    ) -> tuple[Callable, Callable]:
        burst = make_packed_burst(forward, loss_fn, config, obs_dim)
        # No AutoGraph: the burst's loop is an explicit tf.while_loop and nothing in it branches
        # on a tensor in Python (a network_fn's model is reached through Keras, which AutoGraph
        # never converts), yet converting its source cost ~1.5 s of CPU in a learner's first
        # call (python -m benchmarks.autograph_trace).
        compiled = tf.function(
            burst, jit_compile=config.jit_compile, reduce_retracing=True, autograph=False
        )
        # A partial, not a lambda: tf.function counts traces per code object, so the lambdas of
        # one agent after another (train() in a loop over seeds) were one function that
        # "triggered tf.function retracing", warned about from the sixth agent on.
        grad_fn = tf.function(
            functools.partial(loss_and_grad, forward=forward, loss_fn=loss_fn, config=config),
            autograph=False,
        )
        return compiled, grad_fn

    def burst(self, rows: np.ndarray) -> np.ndarray:
        args = (*self._packed, tf.constant(rows, tf.float32))
        # One compiled function per batch shape, called with flat tensors (``dqn.fastcall``):
        # tf.function's own argument handling costs more than a small network's update.
        *packed, metrics = call_compiled(self._compiled, self._burst, args, rows.shape)
        self._packed = tuple(packed)
        self.online = self._packed[0].numpy()
        metrics = metrics.numpy()
        n = len(METRIC_NAMES)
        return np.where(IS_MAX_METRIC, metrics[n:], metrics[:n] / rows.shape[0])

    @property
    def state(self) -> LearnerArrays:
        s = unpack_state(*self._packed)
        vectors = (t.numpy() for t in (s.online, s.target, s.adam_m, s.adam_v))
        return LearnerArrays(*vectors, np.float32(s.adam_step.numpy()), int(s.grad_steps))

    @state.setter
    def state(self, state: LearnerArrays) -> None:
        floats = (tf.constant(a, tf.float32) for a in state[:5])  # vectors and adam_step
        self._packed = pack_state(LearnerState(*floats, tf.constant(state.grad_steps, tf.int64)))
        self.online = np.array(state.online, np.float32)

    @property
    def grad_steps(self) -> int:
        return int(self._packed[2])

    def probe_gradient(self, batch) -> np.ndarray:
        # From the state tensors as they are: no round trip through numpy arrays.
        state = unpack_state(*self._packed)
        return self._grad_fn(state, batch_tensors(batch)).grads.numpy()
