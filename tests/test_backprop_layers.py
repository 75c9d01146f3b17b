"""Every hand-written backward pass against centred finite differences (float64, h = 1e-5).

Tolerance: rel_error <= 1e-7 (see dqn.backprop.gradcheck for why that separates right from
wrong). Inputs are drawn away from kinks: ReLU inputs keep |x| >= 0.1.
"""

import numpy as np
import pytest

from dqn.backprop.gradcheck import numerical_gradient, numerical_gradient_array, rel_error
from dqn.backprop.layers import (
    linear_backward,
    linear_forward,
    relu_backward,
    relu_forward,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from dqn.backprop.mlp import (
    init_mlp,
    make_spirals,
    mlp_backward,
    mlp_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

TOL = 1e-7


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def away_from_zero(x: np.ndarray, margin: float = 0.1) -> np.ndarray:
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x) + 0.0


def test_linear_gradients(rng):
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((4, 3))
    _, cache = linear_forward(x, w, b)
    g = linear_backward(dout, cache)
    for name, arr in (("dx", x), ("dw", w), ("db", b)):
        num = numerical_gradient_array(lambda _: linear_forward(x, w, b)[0], arr, dout)
        assert rel_error(getattr(g, name), num) <= TOL, name


@pytest.mark.parametrize(
    "forward, backward, make_x",
    [
        (sigmoid_forward, sigmoid_backward, lambda r: r.standard_normal((4, 6))),
        (tanh_forward, tanh_backward, lambda r: r.standard_normal((4, 6))),
        (relu_forward, relu_backward, lambda r: away_from_zero(r.standard_normal((4, 6)))),
    ],
    ids=["sigmoid", "tanh", "relu"],
)
def test_activation_gradients(rng, forward, backward, make_x):
    x = make_x(rng)
    dout = rng.standard_normal(x.shape)
    _, cache = forward(x)
    num = numerical_gradient_array(lambda v: forward(v)[0], x, dout)
    assert rel_error(backward(dout, cache), num) <= TOL


def test_relu_gradient_at_exactly_zero_is_zero_like_tf_nn_relu():
    _, cache = relu_forward(np.array([-1.0, 0.0, 1.0]))
    assert relu_backward(np.ones(3), cache).tolist() == [0.0, 0.0, 1.0]


def test_sigmoid_is_overflow_free_and_saturates_to_an_exact_zero_gradient():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    # Underflow of exp(-1000) to 0 is the right answer; overflow or 0/0 would be a bug.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, cache = sigmoid_forward(x)
        dx = sigmoid_backward(np.ones_like(x), cache)
    assert y.tolist()[2:] == [0.5, 1.0, 1.0]
    # sigmoid(40) = 1 - 4e-18 rounds to 1 in float64, so y(1 - y) is exactly 0 there, while
    # on the left tail y(1 - y) ~ y = e^-40 is tiny but not zero.
    assert dx[3] == 0.0 and dx[4] == 0.0
    assert dx[1] == pytest.approx(np.exp(-40.0), rel=1e-12)


def test_rnn_step_gradients(rng):
    n, d, h = 3, 4, 5
    x, h_prev = rng.standard_normal((n, d)), rng.standard_normal((n, h))
    wx, wh, b = (
        rng.standard_normal((d, h)) * 0.5,
        rng.standard_normal((h, h)) * 0.5,
        rng.standard_normal(h),
    )
    dout = rng.standard_normal((n, h))
    _, cache = rnn_step_forward(x, h_prev, wx, wh, b)
    g = rnn_step_backward(dout, cache)
    arrays = {"dx": x, "dh_prev": h_prev, "dwx": wx, "dwh": wh, "db": b}
    for name, arr in arrays.items():
        num = numerical_gradient_array(
            lambda _: rnn_step_forward(x, h_prev, wx, wh, b)[0], arr, dout
        )
        assert rel_error(getattr(g, name), num) <= TOL, name


def test_rnn_sequence_backprop_through_time(rng):
    n, t, d, h = 2, 6, 3, 4
    x, h0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h))
    wx, wh, b = (
        rng.standard_normal((d, h)) * 0.5,
        rng.standard_normal((h, h)) * 0.5,
        rng.standard_normal(h),
    )
    dh = rng.standard_normal((n, t, h))  # the loss sees every state, not just the last
    hs, cache = rnn_forward(x, h0, wx, wh, b)
    assert hs.shape == (n, t, h)
    g = rnn_backward(dh, cache)
    arrays = {"dx": x, "dh0": h0, "dwx": wx, "dwh": wh, "db": b}
    for name, arr in arrays.items():
        num = numerical_gradient_array(lambda _: rnn_forward(x, h0, wx, wh, b)[0], arr, dh)
        assert rel_error(getattr(g, name), num) <= TOL, name


def test_bptt_gradients_come_in_the_weights_dtype_whatever_dh_is(rng):
    # A float32 dh gave float32 weight gradients, and an integer dh a casting error, where one
    # step's backward (rnn_step_backward) promotes both to the float64 of its weights.
    n, t, d, h = 2, 3, 3, 4
    x, h0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h))
    wx, wh, b = rng.standard_normal((d, h)), rng.standard_normal((h, h)) * 0.5, np.zeros(h)
    _, cache = rnn_forward(x, h0, wx, wh, b)
    dh = rng.standard_normal((n, t, h))
    exact = rnn_backward(dh, cache)
    for upstream in (dh.astype(np.float32), np.ones((n, t, h), np.int64)):
        g = rnn_backward(upstream, cache)
        assert {a.dtype for a in g} == {np.dtype(np.float64)}
    num = numerical_gradient_array(lambda _: rnn_forward(x, h0, wx, wh, b)[0], wh, dh)
    assert rel_error(exact.dwh, num) <= TOL


def test_softmax_cross_entropy_gradient(rng):
    logits, labels = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    # Closed form at equal logits: every probability is 1/C, so the loss is log C.
    assert softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]))[0] == (
        pytest.approx(np.log(3.0), rel=1e-15)
    )
    num = numerical_gradient(lambda v: softmax_cross_entropy_forward(v, labels)[0], logits)
    assert rel_error(softmax_cross_entropy_backward(1.0, cache), num) <= TOL


def test_mlp_gradients_on_spirals(rng):
    x, y = make_spirals(10, rng)
    # Random biases: the spiral's centre point is x = 0, where zero biases sit on the kink.
    params = init_mlp(2, 8, 2, rng)._replace(b1=0.5 * rng.standard_normal(8))
    _, cache = mlp_forward(params, x, y)
    # The check is only valid away from ReLU kinks: no pre-activation within h of 0.
    assert np.min(np.abs(cache.relu.value)) > 1e-4
    grads = mlp_backward(cache)
    for name in params._fields:
        num = numerical_gradient(lambda _: mlp_forward(params, x, y)[0], getattr(params, name))
        assert rel_error(getattr(grads, name), num) <= TOL, name


def test_no_pair_modifies_dout_or_its_inputs(rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 4)), rng.standard_normal(4)
    h0 = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    seq = rng.standard_normal((3, 2, 4))
    dseq = rng.standard_normal((3, 2, 4))
    originals = [a.copy() for a in (x, w, b, h0, dout, seq, dseq)]
    for forward, backward in (
        (sigmoid_forward, sigmoid_backward),
        (tanh_forward, tanh_backward),
        (relu_forward, relu_backward),
    ):
        backward(dout, forward(x)[1])
    linear_backward(dout, linear_forward(x, w, b)[1])
    rnn_step_backward(dout, rnn_step_forward(x, h0, w, w, b)[1])
    rnn_backward(dseq, rnn_forward(seq, h0, w, w, b)[1])
    for before, after in zip(originals, (x, w, b, h0, dout, seq, dseq)):
        assert np.array_equal(before, after)


def test_a_sequence_of_no_step_and_a_batch_of_no_example_are_refused_by_name():
    # T = 0 died in np.stack ("need at least one array to stack"); N = 0 gave a NaN loss.
    with pytest.raises(ValueError, match=r"rnn_forward runs a sequence x of shape \(N, T >= 1"):
        rnn_forward(
            np.zeros((2, 0, 3)), np.zeros((2, 4)), np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(4)
        )
    with pytest.raises(ValueError, match="over N >= 1 examples, got 0"):
        softmax_cross_entropy_forward(np.zeros((0, 2)), np.zeros(0, int))


def test_bptt_gradients_follow_the_weights_dtype_not_the_inputs(rng):
    # float32 x and dh with float64 weights: float64, as one step's backward gives; all float32
    # stays float32.
    n, t, d, h = 2, 3, 3, 4
    x, h0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h))
    wx, wh, b = rng.standard_normal((d, h)), rng.standard_normal((h, h)) * 0.5, np.zeros(h)
    dh = rng.standard_normal((n, t, h))
    f32 = np.float32
    _, cache = rnn_forward(x.astype(f32), h0, wx, wh, b)
    g = rnn_backward(dh.astype(f32), cache)
    assert {a.dtype for a in g} == {np.dtype(np.float64)}
    _, cache = rnn_forward(*(a.astype(f32) for a in (x, h0, wx, wh, b)))
    g = rnn_backward(dh.astype(f32), cache)
    assert {a.dtype for a in g} == {np.dtype(f32)}
    # float32 everywhere but b: the states are float64, and so is every step's gradient.
    _, cache = rnn_forward(*(a.astype(f32) for a in (x, h0, wx, wh)), b)
    g = rnn_backward(dh.astype(f32), cache)
    step = rnn_step_backward(dh[:, -1].astype(f32), cache.steps[-1])
    assert step.dwh.dtype == np.float64
    assert {a.dtype for a in g} == {np.dtype(np.float64)}


@pytest.mark.parametrize("steps", [2, 4])
def test_bptt_refuses_an_upstream_gradient_of_another_length(steps, rng):
    # Four steps' dh on a three-step pass: the fourth step's gradient was dropped without a word
    # and dx came back with four steps (two: an IndexError).
    x, h0 = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 4))
    _, cache = rnn_forward(x, h0, rng.standard_normal((3, 4)), np.eye(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"dh of shape \(N, T, H\) = \(2, 3, 4\), got \(2, "):
        rnn_backward(rng.standard_normal((2, steps, 4)), cache)


@pytest.mark.parametrize(
    "labels, fragment",
    [([-1, 0], r"labels in 0\.\.2 \(C = 3\), got -1\.\.0"), ([0, 3], r"got 0\.\.3")],
)
def test_a_label_outside_the_classes_is_refused(labels, fragment):
    # -1 read as the last class by numpy's indexing: the loss of label 2, with no error.
    with pytest.raises(ValueError, match=fragment):
        softmax_cross_entropy_forward(np.zeros((2, 3)), np.array(labels))
