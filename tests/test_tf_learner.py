"""The pure update functions on hand-computed batches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dqn import losses
from dqn.config import DQNConfig
from dqn.tf_learner import (
    METRIC_NAMES,
    LearnerState,
    adam_update,
    learning_rate_at,
    loss_and_grad,
    make_burst,
    nan_max,
    sync_target,
    td_targets,
    train_step,
)


def test_td_targets_bootstrap_unless_terminated():
    # Three transitions, gamma 0.9. next_q_target rows: max is 2, 5, 1.
    rewards = tf.constant([1.0, 1.0, 0.5])
    # Transition 0 terminated (no bootstrap). Transition 1 was cut by the time limit: stored as
    # NOT terminated, so it bootstraps like any other. Transition 2 is an ordinary step.
    terminated = tf.constant([1.0, 0.0, 0.0])
    next_q = tf.constant([[2.0, 0.0], [5.0, 3.0], [-1.0, 1.0]])
    y = td_targets(rewards, terminated, 0.9, next_q).numpy()
    np.testing.assert_allclose(y, [1.0, 1.0 + 0.9 * 5.0, 0.5 + 0.9 * 1.0])


def test_double_dqn_evaluates_the_online_argmax_with_the_target_net():
    rewards = tf.constant([0.0, 1.0])
    terminated = tf.constant([0.0, 0.0])
    next_q_target = tf.constant([[10.0, 1.0], [2.0, 7.0]])
    next_q_online = tf.constant([[0.0, 3.0], [4.0, 1.0]])  # argmax: action 1, then action 0
    y = td_targets(rewards, terminated, 0.5, next_q_target, next_q_online).numpy()
    # Row 0: Q_target(s', 1) = 1 -> 0 + 0.5 * 1; row 1: Q_target(s', 0) = 2 -> 1 + 0.5 * 2.
    np.testing.assert_allclose(y, [0.5, 2.0])
    # Plain DQN would take the max of the target row instead: 5 and 4.5.
    np.testing.assert_allclose(
        td_targets(rewards, terminated, 0.5, next_q_target).numpy(), [5.0, 4.5]
    )


def test_adam_update_matches_keras_adam():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=7).astype(np.float32)
    var = keras.Variable(w0)
    opt = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-7)
    params, m, v, step = tf.constant(w0), tf.zeros(7), tf.zeros(7), tf.constant(0.0)
    for _ in range(5):
        g = rng.normal(size=7).astype(np.float32)
        opt.apply([tf.constant(g)], [var])
        params, m, v, step = adam_update(params, tf.constant(g), m, v, step, 0.01, epsilon=1e-7)
    np.testing.assert_allclose(params.numpy(), var.numpy(), rtol=1e-6, atol=1e-7)


def test_sync_target_hard_and_soft():
    online, target = tf.constant([1.0, 2.0]), tf.constant([3.0, 6.0])
    np.testing.assert_array_equal(sync_target(target, online, 1.0).numpy(), [1.0, 2.0])
    np.testing.assert_allclose(sync_target(target, online, 0.25).numpy(), [2.5, 5.0])


def test_a_soft_sync_of_one_half_lands_halfway_between_the_nets():
    # Only tau == 1 is a copy: 0.5 * [1, 2] + 0.5 * [3, 6].
    online, target = tf.constant([1.0, 2.0]), tf.constant([3.0, 6.0])
    np.testing.assert_array_equal(sync_target(target, online, 0.5).numpy(), [2.0, 4.0])


def test_a_soft_sync_nearer_one_still_mixes():
    # Only tau == 1 is a copy: 0.75 * [1, 2] + 0.25 * [3, 6] = [1.5, 3], and 0.999 moves the
    # target almost, not exactly, onto the online net.
    online, target = tf.constant([1.0, 2.0]), tf.constant([3.0, 6.0])
    np.testing.assert_array_equal(sync_target(target, online, 0.75).numpy(), [1.5, 3.0])
    nearly = sync_target(target, online, 0.999).numpy()
    np.testing.assert_allclose(nearly, [1.002, 2.004], rtol=1e-6)


def test_the_tf_learning_rate_holds_its_end_value_once_its_schedule_is_over():
    # As the numpy learner's (test_numpy_learner): past the run's planned gradient steps the
    # rate stays at learning_rate_end rather than decaying on towards zero and below.
    from dqn.config import total_grad_steps

    config = DQNConfig(learning_rate=1e-3, learning_rate_end=1e-4)
    total = total_grad_steps(config)
    halfway = float(learning_rate_at(tf.constant(total // 2, tf.int64), config))
    assert halfway == pytest.approx(1e-3 + (total // 2) / total * (1e-4 - 1e-3), rel=1e-5)
    for steps in (total, 2 * total, 5 * total):
        lr = float(learning_rate_at(tf.constant(steps, tf.int64), config))
        assert lr == pytest.approx(1e-4, rel=1e-5), steps


def test_nan_max_keeps_a_nan_on_either_side():
    # As np.maximum: a burst's max of a metric that was NaN at any step is NaN.
    a = tf.constant([float("nan"), 1.0, 3.0, float("-inf")])
    b = tf.constant([2.0, float("nan"), 1.0, float("nan")])
    np.testing.assert_array_equal(nan_max(a, b).numpy(), np.maximum(a.numpy(), b.numpy()))
    np.testing.assert_array_equal(nan_max(a, b).numpy(), [np.nan, np.nan, 3.0, np.nan])


def linear_forward(flat, obs):
    """Q(s, a) = s . W[:, a], W = flat reshaped [2, 2]: a tiny net with hand-checkable math."""
    return tf.matmul(obs, tf.reshape(flat, [2, 2]))


def state_for(flat):
    flat = tf.constant(flat, tf.float32)
    z = tf.zeros_like(flat)
    return LearnerState(flat, flat, z, z, tf.constant(0.0), tf.constant(0, tf.int64))


def test_zero_grad_fraction_is_exact_for_known_td_errors():
    # W = 0 so Q = 0 and td_error = reward (terminated: no bootstrap): rewards -3, -1, 1e-4, 2.
    # A gradient of 1e-4 is small, not zero: the fraction counts exact zeros only.
    batch = (
        tf.constant([[1.0, 0.0]] * 4),
        tf.constant([0, 1, 0, 1]),
        tf.constant([-3.0, -1.0, 1e-4, 2.0]),
        tf.constant([[0.0, 0.0]] * 4),
        tf.ones(4),
    )
    for loss, zero_fraction in (("clipped_delta", 0.5), ("huber", 0.0), ("l2", 0.0)):
        cfg = DQNConfig(loss=loss)
        _, metrics = train_step(
            state_for(np.zeros(4)), batch, linear_forward, losses.get(loss), cfg
        )
        m = dict(zip(METRIC_NAMES, metrics.numpy()))
        assert m["zero_grad_fraction"] == zero_fraction, loss
        assert m["over_bound_fraction"] == 0.5  # |-3| and |2| exceed the bound, whatever the loss
        assert m["td_error_abs_max"] == 3.0


@pytest.mark.parametrize("loss", ["l2", "clipped_delta", "huber", "clipped_grad"])
def test_the_loss_and_its_gradient_per_sample_are_the_closed_forms_at_the_bound(loss):
    # W = 0 so Q = 0 and td_error = reward (terminated): errors inside and outside a bound of
    # 2, and between 1 and 2, where a learner that ignored the bound (took 1) goes wrong.
    from tests.test_numpy_learner import closed_form

    rewards = np.array([-3.0, -1.5, 0.5, 2.5], np.float32)
    batch = (
        tf.constant([[1.0, 0.0]] * 4),
        tf.constant([0, 1, 0, 1]),
        tf.constant(rewards),
        tf.constant([[0.0, 0.0]] * 4),
        tf.ones(4),
    )
    config = DQNConfig(loss=loss, loss_bound=2.0)
    out = loss_and_grad(state_for(np.zeros(4)), batch, linear_forward, losses.get(loss), config)
    f, df = closed_form(loss, rewards.astype(np.float64), 2.0)
    assert float(out.loss) == pytest.approx(f.mean(), rel=1e-6)
    np.testing.assert_allclose(out.dq_sa.numpy(), -df / 4, rtol=1e-6)


def test_a_fused_burst_equals_k_single_steps_on_the_same_batches():
    rng = np.random.default_rng(0)
    k, b = 6, 5
    batches = (
        rng.normal(size=(k, b, 2)).astype(np.float32),
        rng.integers(0, 2, (k, b)).astype(np.int32),
        rng.normal(size=(k, b)).astype(np.float32),
        rng.normal(size=(k, b, 2)).astype(np.float32),
        (rng.random((k, b)) < 0.2).astype(np.float32),
    )
    cfg = DQNConfig(
        loss="huber", target_update_every_grad_steps=4, double_dqn=True, max_grad_norm=0.5
    )
    loss_fn = losses.get(cfg.loss)
    start = state_for(rng.normal(size=4))
    fused, sums, maxes = tf.function(make_burst(linear_forward, loss_fn, cfg))(start, *batches)
    state, per_step, online_after = start, [], []
    for i in range(k):
        state, metrics = train_step(
            state, tuple(tf.constant(x[i]) for x in batches), linear_forward, loss_fn, cfg
        )
        per_step.append(metrics.numpy())
        online_after.append(state.online.numpy())
    for a, b_ in zip(fused, state):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sums.numpy(), np.sum(per_step, axis=0), rtol=1e-5)
    np.testing.assert_allclose(maxes.numpy(), np.max(per_step, axis=0), rtol=1e-6)
    assert int(fused.grad_steps) == k
    # The target was synced at grad step 4 and not after: it equals the online params of step 4.
    assert not np.allclose(fused.target.numpy(), fused.online.numpy())
    np.testing.assert_allclose(fused.target.numpy(), online_after[3], rtol=1e-6, atol=1e-7)


def test_hard_target_sync_happens_every_n_grad_steps():
    rng = np.random.default_rng(1)
    cfg = DQNConfig(target_update_every_grad_steps=3)
    state = state_for(rng.normal(size=4))
    batch = (
        tf.constant(rng.normal(size=(4, 2)), tf.float32),
        tf.constant([0, 1, 1, 0]),
        tf.ones(4),
        tf.constant(rng.normal(size=(4, 2)), tf.float32),
        tf.zeros(4),
    )
    targets = []
    for _ in range(6):
        state, _ = train_step(state, batch, linear_forward, losses.huber, cfg)
        targets.append((state.target.numpy().copy(), state.online.numpy().copy()))
    for step, (target, online) in enumerate(targets, start=1):
        if step % 3 == 0:
            np.testing.assert_array_equal(target, online)
        else:
            assert not np.array_equal(target, online)


def test_diagnostics_off_learns_the_same_and_reports_only_cheap_metrics():
    rng = np.random.default_rng(3)
    batch = (
        tf.constant(rng.normal(size=(8, 2)), tf.float32),
        tf.constant(rng.integers(0, 2, 8), tf.int32),
        tf.constant(rng.normal(size=8), tf.float32),
        tf.constant(rng.normal(size=(8, 2)), tf.float32),
        tf.zeros(8),
    )
    start = state_for(rng.normal(size=4))
    on, m_on = train_step(start, batch, linear_forward, losses.huber, DQNConfig())
    off, m_off = train_step(
        start, batch, linear_forward, losses.huber, DQNConfig(diagnostics=False)
    )
    np.testing.assert_array_equal(on.online.numpy(), off.online.numpy())
    on_d, off_d = dict(zip(METRIC_NAMES, m_on.numpy())), dict(zip(METRIC_NAMES, m_off.numpy()))
    for name in METRIC_NAMES:
        if name in ("loss", "q_mean", "q_abs_max", "grad_norm"):
            assert off_d[name] == on_d[name], name
        else:
            assert np.isnan(off_d[name]), name


def test_the_packed_burst_computes_exactly_what_the_plain_burst_does():
    from dqn.replay import Batch, pack_batch
    from dqn.tf_learner import make_packed_burst, pack_state, unpack_state

    rng = np.random.default_rng(5)
    k, b = 3, 4
    batch = Batch(
        rng.normal(size=(k, b, 2)).astype(np.float32),
        rng.integers(0, 2, (k, b)).astype(np.int32),
        rng.normal(size=(k, b)).astype(np.float32),
        rng.normal(size=(k, b, 2)).astype(np.float32),
        (rng.random((k, b)) < 0.3).astype(np.float32),
    )
    cfg = DQNConfig(target_update_every_grad_steps=2)
    start = state_for(rng.normal(size=4))
    plain, sums, maxes = make_burst(linear_forward, losses.huber, cfg)(start, *batch)
    *packed, metrics = make_packed_burst(linear_forward, losses.huber, cfg, obs_dim=2)(
        *pack_state(start), tf.constant(pack_batch(batch))
    )
    for a, b_ in zip(unpack_state(*packed), plain):
        np.testing.assert_array_equal(a.numpy(), b_.numpy())
    np.testing.assert_array_equal(metrics.numpy(), np.concatenate([sums.numpy(), maxes.numpy()]))


@pytest.mark.parametrize(
    "change",
    [
        {"gamma": 0.9},
        {"n_step": 3},
        {"double_dqn": True},
        {"loss": "l2"},
        {"loss_bound": 2.0},
        {"max_grad_norm": 10.0},
        {"learning_rate": 1e-3},
        {"learning_rate_end": None},
        {"adam_epsilon": 1e-5},
        {"target_tau": 0.5},
        {"target_update_every_grad_steps": 7},
        {"total_env_steps": 9_000},  # the length of the learning-rate schedule
        {"diagnostics": False},
        {"jit_compile": False},
    ],
)
def test_a_setting_that_reaches_the_update_keys_a_compiled_burst_of_its_own(change):
    # Learners share compiled functions by shared_key: two configs that update differently
    # must never share one, while the seeds and the output folder cannot change an update.
    from dqn.tf_learner import shared_key

    shapes = [(4, 8), (8,), (8, 2), (2,)]
    base = DQNConfig()
    assert shared_key(base.replace(**change), shapes) != shared_key(base, shapes)
    same = base.replace(seed=5, eval_seed=7, output_dir="elsewhere")
    assert shared_key(same, shapes) == shared_key(base, shapes)
