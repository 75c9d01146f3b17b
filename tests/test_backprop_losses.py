"""The four numpy TD losses: closed forms, finite differences, and the behaviour at the bound.

Definitions (element-wise on e = td_error, bound b, 0.5 scaling):
    l2            0.5 e^2                                 grad e
    clipped_delta 0.5 clip(e, -b, b)^2                    grad e if |e| <= b else 0
    huber         0.5 e^2 if |e| <= b else b(|e| - b/2)   grad clip(e, -b, b)
    clipped_grad  forward 0.5 e^2                         backward clip(e, -b, b)
"""

import numpy as np
import pytest

from dqn.backprop.gradcheck import numerical_gradient_array, rel_error
from dqn.backprop.losses import LOSSES

TOL = 1e-7


def td_errors_away_from_bound(rng, bound: float, n: int = 40) -> np.ndarray:
    """Spread over +/-3b, at least 0.01 b away from the kinks at +/-b."""
    e = rng.uniform(-3 * bound, 3 * bound, n)
    return e[np.abs(np.abs(e) - bound) > 0.01 * bound]


def test_the_four_names_match_dqn_losses():
    assert list(LOSSES) == ["l2", "clipped_delta", "huber", "clipped_grad"]


@pytest.mark.parametrize("bound", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("name", ["l2", "clipped_delta", "huber"])
def test_backward_is_the_derivative_of_forward(name, bound):
    rng = np.random.default_rng(7)
    e = td_errors_away_from_bound(rng, bound)
    dout = rng.standard_normal(e.shape)
    forward, backward = LOSSES[name]
    _, cache = forward(e, bound)
    num = numerical_gradient_array(lambda v: forward(v, bound)[0], e, dout)
    assert rel_error(backward(dout, cache), num) <= TOL


@pytest.mark.parametrize("bound", [0.5, 1.0, 2.0])
def test_clipped_grad_has_l2_value_and_huber_gradient(bound):
    rng = np.random.default_rng(8)
    e = td_errors_away_from_bound(rng, bound)
    dout = rng.standard_normal(e.shape)
    value, cache = LOSSES["clipped_grad"].forward(e, bound)
    grad = LOSSES["clipped_grad"].backward(dout, cache)
    assert np.array_equal(value, 0.5 * e**2)
    # Its backward is not the derivative of its forward outside the bound (on purpose): it is
    # the finite-difference derivative of Huber there, and of 0.5 e^2 inside.
    huber_num = numerical_gradient_array(lambda v: LOSSES["huber"].forward(v, bound)[0], e, dout)
    assert rel_error(grad, huber_num) <= TOL
    inside = np.abs(e) < bound
    l2_num = numerical_gradient_array(lambda v: 0.5 * v**2, e, dout)
    assert rel_error(grad[inside], l2_num[inside]) <= TOL
    assert rel_error(grad[~inside], l2_num[~inside]) > 1e-2


def test_closed_form_values_and_gradients():
    e = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0])
    ones = np.ones_like(e)
    expected = {
        # value                                 gradient
        "l2": ([4.5, 0.5, 0.0, 0.125, 0.5, 2.0], [-3.0, -1.0, 0.0, 0.5, 1.0, 2.0]),
        # clip -> [-1, -1, 0, .5, 1, 1]; gradient kept on the closed interval, 0 outside
        "clipped_delta": ([0.5, 0.5, 0.0, 0.125, 0.5, 0.5], [0.0, -1.0, 0.0, 0.5, 1.0, 0.0]),
        # |e| - 0.5 beyond the bound: 3 - .5 = 2.5, 2 - .5 = 1.5
        "huber": ([2.5, 0.5, 0.0, 0.125, 0.5, 1.5], [-1.0, -1.0, 0.0, 0.5, 1.0, 1.0]),
        "clipped_grad": ([4.5, 0.5, 0.0, 0.125, 0.5, 2.0], [-1.0, -1.0, 0.0, 0.5, 1.0, 1.0]),
    }
    for name, (value, grad) in expected.items():
        out, cache = LOSSES[name].forward(e)  # default bound 1.0
        assert out.tolist() == value, name
        assert LOSSES[name].backward(ones, cache).tolist() == grad, name


def test_at_exactly_the_bound_clipped_delta_still_passes_its_gradient():
    # tf.clip_by_value's gradient is 1 on the closed interval, so e = +/-b keeps gradient e.
    b = 0.75
    e = np.array([-b, b, -np.nextafter(b, 1.0), np.nextafter(b, 1.0)])
    _, cache = LOSSES["clipped_delta"].forward(e, b)
    assert LOSSES["clipped_delta"].backward(np.ones(4), cache).tolist() == [-b, b, 0.0, 0.0]


def test_huber_is_continuous_with_continuous_slope_at_the_bound():
    b = 1.5
    e = np.array([b - 1e-9, b, b + 1e-9])
    value, cache = LOSSES["huber"].forward(e, b)
    assert value[1] == 0.5 * b**2
    # One-sided difference quotients both approach b: no jump in value or in slope.
    assert np.diff(value) / 1e-9 == pytest.approx([b, b], rel=1e-5)
    assert LOSSES["huber"].backward(np.ones(3), cache).tolist() == pytest.approx([b, b, b])


def test_huber_with_a_bound_past_every_error_is_l2_in_float32_without_overflow():
    # The linear tail b (|e| - b/2) is not computed where it is not the loss: at b = 1e30 it
    # is past float32's range, and np.where of both pieces warned of an overflow.
    e = np.array([-3.0, 0.25, 7.5], np.float32)
    with np.errstate(all="raise"):
        value = LOSSES["huber"].forward(e, np.float32(1e30))[0]
    assert np.array_equal(value, 0.5 * e**2)


def test_huber_is_the_two_pieces_of_its_definition_to_the_bit():
    # Errors whose square is subnormal too (float32 |e| < 1.1e-19), where 0.5 e^2 rounds twice.
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        scale = rng.choice([3.0, 1e-20, 1e-160 if dtype is np.float64 else 1e-22], 3_000)
        e, b = (rng.normal(0.0, 1.0, 3_000) * scale).astype(dtype), dtype(1.3)
        pieces = np.where(np.abs(e) <= b, 0.5 * e**2, b * (np.abs(e) - 0.5 * b))
        assert np.array_equal(LOSSES["huber"].forward(e, b)[0], pieces)


def test_l2_ignores_the_bound():
    e = np.array([-5.0, 0.3, 9.0])
    assert np.array_equal(LOSSES["l2"].forward(e, 0.1)[0], LOSSES["l2"].forward(e, 10.0)[0])


def test_losses_do_not_modify_their_inputs():
    e, dout = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -1.0, 0.5])
    for forward, backward in LOSSES.values():
        backward(dout, forward(e)[1])
    assert e.tolist() == [-2.0, 0.5, 3.0] and dout.tolist() == [1.0, -1.0, 0.5]
