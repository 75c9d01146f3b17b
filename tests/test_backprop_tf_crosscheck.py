"""numpy backward passes against tf.GradientTape on the TF ops the agent uses, in float64.

The numpy module never imports TensorFlow; this test does, so that the hand-written
gradients and the ones the agent actually trains with are checked against each other.
Agreement is required to float64 precision (rel_error <= 1e-12; 1e-10 for the RNN's BPTT,
which sums in another order; sigmoid's and tanh's saturated tails to a few ulp of 1, where
the two round their outputs to 1 at different points), and exactly where the two are defined
by the same comparison (clip and ReLU masks, the bound itself).
"""

import numpy as np
import pytest
import tensorflow as tf  # a hard dependency of the package: missing TF is a failure, not a skip

import dqn.losses as tf_losses
from dqn.backprop import layers
from dqn.backprop.gradcheck import rel_error
from dqn.backprop.losses import LOSSES
from dqn.backprop.mlp import clip_by_global_norm

F64 = 1e-12


def tape_grads(fn, inputs, dout):
    """Vector-Jacobian product of fn at inputs with upstream dout, via tf.GradientTape."""
    tensors = [tf.constant(a, dtype=tf.float64) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        out = fn(*tensors)
    grads = tape.gradient(out, tensors, output_gradients=tf.constant(dout, dtype=tf.float64))
    return out.numpy(), [g.numpy() for g in grads]


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def test_linear_matches_tf_matmul(rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((5, 3))
    out, (dx, dw, db) = tape_grads(lambda x, w, b: tf.matmul(x, w) + b, [x, w, b], dout)
    ours, cache = layers.linear_forward(x, w, b)
    g = layers.linear_backward(dout, cache)
    assert rel_error(ours, out) <= F64
    for mine, theirs in ((g.dx, dx), (g.dw, dw), (g.db, db)):
        assert rel_error(mine, theirs) <= F64


@pytest.mark.parametrize(
    "tf_op, forward, backward",
    [
        (tf.sigmoid, layers.sigmoid_forward, layers.sigmoid_backward),
        (tf.tanh, layers.tanh_forward, layers.tanh_backward),
        (tf.nn.relu, layers.relu_forward, layers.relu_backward),
    ],
    ids=["sigmoid", "tanh", "relu"],
)
def test_activations_match_tf(rng, tf_op, forward, backward):
    # Where the derivative is not small (|x| <= 3, and exact 0, ReLU's tie): to 1e-12 relative
    # (the worst over 100 seeds of this draw was 4e-14, tanh, on the fifth machine).
    x = np.concatenate([rng.uniform(-3.0, 3.0, 200), [0.0]])
    dout = rng.standard_normal(x.shape)
    out, (dx,) = tape_grads(tf_op, [x], dout)
    ours, cache = forward(x)
    assert rel_error(ours, out) <= F64
    assert rel_error(backward(dout, cache), dx) <= F64
    assert np.array_equal(backward(dout, cache) == 0, dx == 0)


@pytest.mark.parametrize(
    "tf_op, forward, backward",
    [
        (tf.sigmoid, layers.sigmoid_forward, layers.sigmoid_backward),
        (tf.tanh, layers.tanh_forward, layers.tanh_backward),
    ],
    ids=["sigmoid", "tanh"],
)
def test_saturated_tails_match_tf_to_the_rounding_of_the_output(tf_op, forward, backward):
    """Past |x| ~ 4 both compute the derivative from an output within an ulp or so of 1, which
    the two round alike only mostly: TensorFlow's vectorized tanh is 1 from |x| 17.7 on this
    machine, numpy's from 19.0, so their exactly-zero sets differ there. What holds: the
    gradients agree to a few ulp of 1 (absolute, times the upstream gradient; 8 was the worst
    on the fifth machine), and far enough out (x >= 60) both are exactly 0."""
    x = np.concatenate([np.linspace(-45.0, -3.0, 4201), np.linspace(3.0, 45.0, 4201)])
    dout = np.random.default_rng(7).standard_normal(x.shape)
    _, (dx,) = tape_grads(tf_op, [x], dout)
    ours = backward(dout, forward(x)[1])
    assert np.all(np.abs(ours - dx) <= 32 * np.finfo(np.float64).eps * np.abs(dout))
    far = np.array([60.0, 700.0])  # (sigmoid's left tail is tiny, never 0: y itself is)
    _, (dx_far,) = tape_grads(tf_op, [far], np.ones(2))
    assert dx_far.tolist() == backward(np.ones(2), forward(far)[1]).tolist() == [0.0] * 2


def test_relu_tie_at_zero_is_zero_in_both():
    _, (dx,) = tape_grads(tf.nn.relu, [np.array([0.0])], np.array([1.0]))
    _, cache = layers.relu_forward(np.array([0.0]))
    assert dx.tolist() == layers.relu_backward(np.array([1.0]), cache).tolist() == [0.0]


def test_clip_by_value_gradient_is_one_on_the_closed_interval():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    _, (dx,) = tape_grads(lambda v: tf.clip_by_value(v, -1.0, 1.0), [x], np.ones_like(x))
    assert dx.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    # numpy clipped_delta backward = e * (that mask), exactly.
    _, cache = LOSSES["clipped_delta"].forward(x, 1.0)
    assert LOSSES["clipped_delta"].backward(np.ones_like(x), cache).tolist() == (x * dx).tolist()


@pytest.mark.parametrize("bound", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_match_dqn_losses(rng, name, bound):
    # Random TD errors plus exactly +/-bound, 0, and points just either side of the bound.
    near = [np.nextafter(bound, 0.0), np.nextafter(bound, 10.0)]
    e = np.concatenate(
        [4 * bound * rng.standard_normal(40), [0.0, bound, -bound], near, [-v for v in near]]
    )
    dout = rng.standard_normal(e.shape)
    tf_fn = tf_losses.LOSSES[name]
    out, (de,) = tape_grads(lambda v: tf_fn(v, bound), [e], dout)
    ours, cache = LOSSES[name].forward(e, bound)
    grad = LOSSES[name].backward(dout, cache)
    assert rel_error(ours, out) <= F64
    assert rel_error(grad, de) <= F64
    assert np.array_equal(grad == 0, de == 0)  # same zero-gradient set, bound included


def test_worked_example_through_tf_formulations():
    """The 2016 loss, MSE, the tf.where Huber and keras Huber, differentiated w.r.t. Q."""
    target = np.array([0.0, 0.0, 0.0, 0.0])
    q = np.array([3.0, 1.0, -0.5, -2.0])  # td_error = target - q = [-3, -1, 0.5, 2]
    formulations = {
        "2016": lambda t, q: tf.reduce_mean(tf.square(tf.clip_by_value(t - q, -1.0, 1.0))),
        "mse": lambda t, q: tf.reduce_mean(tf.square(t - q)),
        "where_huber": lambda t, q: tf.reduce_mean(
            tf.where(tf.abs(t - q) < 1.0, 0.5 * tf.square(t - q), tf.abs(t - q) - 0.5)
        ),
        "keras_huber": lambda t, q: tf.keras.losses.Huber(delta=1.0, dtype="float64")(
            t[None], q[None]
        ),
    }
    got = {k: tape_grads(f, [target, q], np.float64(1.0)) for k, f in formulations.items()}
    assert got["2016"][1][1].tolist() == [0.0, 0.5, -0.25, 0.0]
    assert got["mse"][1][1].tolist() == [1.5, 0.5, -0.25, -1.0]
    for k in ("where_huber", "keras_huber"):
        assert got[k][1][1].tolist() == [0.25, 0.25, -0.125, -0.25], k
        assert float(got[k][0]) == 1.15625, k

    from dqn.backprop.demos import clipped_delta_vs_huber

    demo = clipped_delta_vs_huber()
    assert demo.example_dq_2016["clipped_delta"].tolist() == got["2016"][1][1].tolist()
    assert demo.example_dq_2016["l2"].tolist() == got["mse"][1][1].tolist()
    assert demo.example_dq["huber"].tolist() == got["where_huber"][1][1].tolist()


def test_rnn_bptt_matches_tf(rng):
    n, t, d, h = 3, 7, 4, 5
    x, h0 = rng.standard_normal((n, t, d)), rng.standard_normal((n, h))
    wx, wh = rng.standard_normal((d, h)), rng.standard_normal((h, h)) * 0.6
    b = rng.standard_normal(h)
    dh = rng.standard_normal((n, t, h))

    def tf_rnn(x, h0, wx, wh, b):
        states, state = [], h0
        for step in range(t):
            state = tf.tanh(tf.matmul(x[:, step], wx) + tf.matmul(state, wh) + b)
            states.append(state)
        return tf.stack(states, axis=1)

    out, grads = tape_grads(tf_rnn, [x, h0, wx, wh, b], dh)
    ours, cache = layers.rnn_forward(x, h0, wx, wh, b)
    g = layers.rnn_backward(dh, cache)
    assert rel_error(ours, out) <= F64
    for mine, theirs in zip((g.dx, g.dh0, g.dwx, g.dwh, g.db), grads):
        # BPTT sums over time steps in another order than the tape: 1 in 60 seeds of this
        # draw went past 1e-12 (5.2e-12), so the bound is 1e-10; a wrong term is off by far more.
        assert rel_error(mine, theirs) <= 1e-10


def test_clip_by_global_norm_matches_tf(rng):
    grads = [50 * rng.standard_normal((3, 4)), 50 * rng.standard_normal(4)]
    ours, norm = clip_by_global_norm(grads, 5.0)
    theirs, tf_norm = tf.clip_by_global_norm([tf.constant(g) for g in grads], 5.0)
    assert norm == pytest.approx(float(tf_norm), rel=F64)
    for mine, t in zip(ours, theirs):
        assert rel_error(mine, t.numpy()) <= F64
    # Below the threshold nothing changes.
    small, _ = clip_by_global_norm([g / 1e4 for g in grads], 5.0)
    assert all(np.array_equal(s, g / 1e4) for s, g in zip(small, grads))
