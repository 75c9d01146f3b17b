"""The gradient checker itself: right answers, exact restoration, and that it can fail."""

import numpy as np
import pytest

from dqn.backprop.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from dqn.backprop.layers import rnn_backward, rnn_forward


def test_scalar_function_gradient_matches_closed_form():
    x = np.array([[0.5, -1.2], [2.0, 0.3]])
    # f = sum(x^3)  =>  df/dx = 3 x^2
    assert rel_error(numerical_gradient(lambda v: np.sum(v**3), x), 3 * x**2) <= 1e-9


def test_array_function_gradient_is_the_vector_jacobian_product():
    x = np.array([0.1, -0.7, 1.5])
    dout = np.array([2.0, -1.0, 0.5])
    # f = sin(x) element-wise  =>  d sum(f * dout) / dx = cos(x) * dout
    num = numerical_gradient_array(np.sin, x, dout)
    assert rel_error(num, np.cos(x) * dout) <= 1e-9


def test_the_difference_is_centred_with_the_step_h_asked_for():
    # For x^3 the centred difference is exactly 3x^2 + h^2 (a one-sided one: 3x^2 + 3xh + h^2).
    x, dout, h = np.array([0.5, -1.2, 2.0]), np.array([1.0, -2.0, 0.5]), 0.1
    num = numerical_gradient(lambda v: np.sum(v**3), x, h=h)
    assert num == pytest.approx(3 * x**2 + h**2, rel=1e-10)
    num = numerical_gradient_array(lambda v: v**3, x, dout, h=h)
    assert num == pytest.approx((3 * x**2 + h**2) * dout, rel=1e-10)


def test_perturbed_array_is_restored_bit_for_bit_even_if_f_raises():
    x = np.random.default_rng(0).standard_normal((3, 3)) / 3.0
    before = x.copy()
    numerical_gradient(lambda v: np.sum(np.tanh(v)), x)
    assert np.array_equal(x, before)

    calls = []

    def fails_on_second_call(v):  # raises while x[0, 0] is perturbed by -h
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return float(v.sum())

    with pytest.raises(RuntimeError):
        numerical_gradient(fails_on_second_call, x)
    assert np.array_equal(x, before)


def test_an_array_of_no_elements_has_a_gradient_of_no_elements():
    # np.nditer refused it: "Iteration of zero-sized operands is not enabled".
    empty = np.zeros((0, 3))
    assert numerical_gradient(lambda v: float(np.sum(v)), empty).shape == (0, 3)


def test_rel_error_definition():
    assert rel_error(1.0, 1.0) == 0.0
    assert rel_error(0.0, 0.0) == 0.0  # the 1e-8 floor: no 0/0
    assert rel_error(1.0, 3.0) == 0.5  # |1 - 3| / (1 + 3)
    assert rel_error(np.array([1.0, 1.0]), np.array([1.0, 3.0])) == 0.5  # the max
    # The floor only keeps 0/0 away: gradients of 1e-9 that differ by 2x still count as wrong.
    assert rel_error(1e-9, 3e-9) == pytest.approx(0.2)  # 2e-9 / (4e-9 + 1e-8)
    assert rel_error(0.0, 1e-6) == pytest.approx(1.0, rel=1e-2)  # 1e-6 / (1e-6 + 1e-8)


def test_the_checker_refuses_an_array_it_cannot_perturb_by_h():
    # An int array held x + h rounded: [49999, 150000, 249999] for the gradient [2, 4, 6].
    for x in (np.array([1, 2, 3]), np.array([True, False]), [1.0, 2.0]):
        with pytest.raises(TypeError, match="perturbs a float array in place"):
            numerical_gradient(lambda v: float(np.sum(np.asarray(v, float) ** 2)), x)


def test_rel_error_of_two_empty_arrays_is_zero():
    # A check of a batch of 0 (the layers take one) died in np.max's reduction.
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_checker_flags_a_wrong_gradient():
    x = np.array([0.3, -0.8, 1.1])
    # f = sum(tanh(x^2)): the truth is 2x (1 - tanh(x^2)^2); forgetting the tanh' factor
    # (a typical backward-pass slip) gives 2x.
    wrong = 2 * x
    num = numerical_gradient(lambda v: np.sum(np.tanh(v**2)), x)
    assert rel_error(num, 2 * x * (1 - np.tanh(x**2) ** 2)) <= 1e-9
    assert rel_error(num, wrong) > 1e-2


def test_float32_cannot_certify_a_correct_rnn_gradient():
    rng = np.random.default_rng(0)
    n, t, d, h = 2, 5, 3, 4
    x, h0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h))
    wx, wh, b = rng.standard_normal((d, h)), rng.standard_normal((h, h)) * 0.5, np.zeros(h)
    dh = rng.standard_normal((n, t, h))

    def check(dtype) -> float:
        args = [a.astype(dtype) for a in (x, h0, wx, wh, b)]
        num = numerical_gradient_array(lambda _: rnn_forward(*args)[0], args[3], dh.astype(dtype))
        exact = rnn_backward(dh, rnn_forward(x, h0, wx, wh, b)[1]).dwh
        return rel_error(num, exact)

    assert check(np.float64) <= 1e-7
    # eps(float32) / h ~ 1e-2: rounding swamps the difference quotient.
    assert check(np.float32) > 1e-3


def test_checker_never_prints(capsys):
    numerical_gradient(lambda v: np.sum(v**2), np.ones(3))
    numerical_gradient_array(np.square, np.ones(3), np.ones(3))
    rel_error(np.ones(3), np.ones(3))
    assert capsys.readouterr() == ("", "")


def test_rel_error_refuses_arrays_of_two_shapes():
    # Broadcast, a keepdims bias gradient (1, 3) would pass against the (3,) it should equal.
    with pytest.raises(ValueError, match=r"one shape, got \(1, 3\) and \(3,\)"):
        rel_error(np.ones((1, 3)), np.ones(3))


def test_rel_error_refuses_arrays_of_one_ndim_but_two_shapes():
    # (3, 1) against (1, 3) broadcasts to a (3, 3) comparison of different things.
    with pytest.raises(ValueError, match=r"one shape, got \(3, 1\) and \(1, 3\)"):
        rel_error(np.ones((3, 1)), np.ones((1, 3)))
