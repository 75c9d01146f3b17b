"""Each TF loss against its closed form, value and tf.GradientTape gradient (float64)."""

import numpy as np
import pytest
import tensorflow as tf

from dqn import losses
from dqn.config import LOSS_NAMES

GRID = np.array([-3, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 3], np.float64)
BOUND = 1.0


def value_and_grad(fn, e, bound=BOUND):
    x = tf.constant(e)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x, bound)
    return y.numpy(), tape.gradient(y, x).numpy()


def test_l2_is_half_square_with_gradient_td_error():
    value, grad = value_and_grad(losses.l2, GRID)
    np.testing.assert_array_equal(value, 0.5 * GRID**2)
    np.testing.assert_array_equal(grad, GRID)


def test_clipped_delta_gradient_is_zero_strictly_outside_the_bound():
    value, grad = value_and_grad(losses.clipped_delta, GRID)
    np.testing.assert_array_equal(value, 0.5 * np.clip(GRID, -1, 1) ** 2)
    # d/de 0.5 clip(e)^2 = clip(e) * clip'(e). tf.clip_by_value passes the gradient on the CLOSED
    # interval, so at exactly e = +/-1 the gradient is still +/-1; beyond it, exactly 0.
    expected = np.array([0, 0, -1, -0.5, 0, 0.5, 1, 0, 0], np.float64)
    np.testing.assert_array_equal(grad, expected)


def test_huber_value_and_gradient_is_the_clipped_error():
    value, grad = value_and_grad(losses.huber, GRID)
    # 0.5 e^2 inside, |e| - 0.5 outside: e = 3 -> 2.5, e = 1.5 -> 1.0, e = 1 -> 0.5 (both pieces).
    expected_value = np.array([2.5, 1.0, 0.5, 0.125, 0, 0.125, 0.5, 1.0, 2.5])
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(grad, np.clip(GRID, -1, 1))


def test_clipped_grad_is_l2_forward_and_huber_backward():
    value, grad = value_and_grad(losses.clipped_grad, GRID)
    np.testing.assert_array_equal(value, 0.5 * GRID**2)
    np.testing.assert_array_equal(grad, np.clip(GRID, -1, 1))


@pytest.mark.parametrize("bound", [0.5, 1.0, 2.0])
def test_clipped_grad_equals_huber_in_gradient_on_random_inputs(bound):
    e = np.random.default_rng(0).standard_t(df=2, size=1000) * 2.0
    _, g_huber = value_and_grad(losses.huber, e, bound)
    _, g_clip = value_and_grad(losses.clipped_grad, e, bound)
    np.testing.assert_array_equal(g_clip, g_huber)
    np.testing.assert_array_equal(g_huber, np.clip(e, -bound, bound))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_has_gradient_td_error_inside_the_bound(name):
    e = np.linspace(-0.99, 0.99, 37)
    _, grad = value_and_grad(losses.get(name), e)
    np.testing.assert_allclose(grad, e, rtol=0, atol=1e-15)


def test_worked_example_from_the_2016_bug():
    # td_error = target - Q = [-3, -1, 0.5, 2], mean over a batch of 4; dL/dQ = -dL/dtd / 4.
    td = np.array([-3.0, -1.0, 0.5, 2.0])
    dl_dq = {}
    for name in ("l2", "clipped_delta", "huber", "clipped_grad"):
        q = tf.Variable(np.zeros(4))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(losses.get(name)(tf.constant(td) - q, 1.0))
        dl_dq[name] = tape.gradient(loss, q).numpy()
        if name == "huber":
            assert loss.numpy() == 1.15625
    np.testing.assert_array_equal(dl_dq["huber"], [0.25, 0.25, -0.125, -0.25])
    # What the buggy code meant: the L2 forward with its gradient clipped, Huber's gradient.
    np.testing.assert_array_equal(dl_dq["clipped_grad"], [0.25, 0.25, -0.125, -0.25])
    # The package's 0.5 scaling halves the unscaled mean(clip(d)^2) and mean(d^2) numbers.
    np.testing.assert_array_equal(2 * dl_dq["clipped_delta"], [0, 0.5, -0.25, 0])
    np.testing.assert_array_equal(2 * dl_dq["l2"], [1.5, 0.5, -0.25, -1.0])


def test_loss_table_matches_the_config_names():
    assert tuple(losses.LOSSES) == LOSS_NAMES


def test_unknown_loss_name_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown loss 'mse'.*l2, clipped_delta, huber, clipped_grad"
    ):
        losses.get("mse")


def test_a_loss_name_that_is_not_a_string_is_refused_as_an_unknown_loss():
    with pytest.raises(ValueError, match=r"unknown loss \['huber'\]; valid losses: l2"):
        losses.get(["huber"])
