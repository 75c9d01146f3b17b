"""The spirals dataset, SGD, dead-unit detection and global-norm clipping of dqn.backprop.mlp."""

import numpy as np
import pytest

from dqn.backprop.mlp import (
    MLPParams,
    clip_by_global_norm,
    dead_units,
    init_mlp,
    make_spirals,
    mlp_backward,
    mlp_forward,
    sgd_step,
    train_mlp,
)


def test_spirals_are_balanced_deterministic_and_inside_the_unit_disc():
    x, y = make_spirals(50, np.random.default_rng(3))
    assert x.shape == (100, 2) and y.shape == (100,)
    assert np.bincount(y).tolist() == [50, 50]
    # radius runs linearly from 0 to 1 along each arm; the noise only moves the angle
    assert np.allclose(np.hypot(x[:, 0], x[:, 1]), np.tile(np.linspace(0, 1, 50), 2))
    x2, y2 = make_spirals(50, np.random.default_rng(3))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_each_arm_turns_one_and_a_half_times_with_gaussian_angle_noise():
    n = 2000
    clean, _ = make_spirals(n, np.random.default_rng(5), noise=0.0)
    # point = r (sin theta, cos theta); arm 0 ends at r = 1, theta = 3 pi: (0, -1), and arm 1
    # is arm 0 turned by 2 pi / 2 = pi.
    assert np.allclose(clean[n - 1], [0.0, -1.0])
    assert np.allclose(clean[n:], -clean[:n])
    noisy, _ = make_spirals(n, np.random.default_rng(5), noise=0.2)
    # The angle each noisy point is turned by, from its noise-free one, is N(0, 0.2^2).
    off_centre = np.hypot(*clean.T) > 0  # each arm starts at r = 0, where no angle shows
    noisy_z, clean_z = (p[off_centre, 1] + 1j * p[off_centre, 0] for p in (noisy, clean))
    jitter = np.angle(noisy_z / clean_z)
    assert abs(jitter.mean()) < 0.02  # std error 0.2 / sqrt(3998) = 0.003
    assert jitter.std() == pytest.approx(0.2, rel=0.05)


def test_sgd_step_returns_new_arrays_and_leaves_the_old_ones():
    params = init_mlp(2, 4, 2, np.random.default_rng(0))
    grads = MLPParams(*(np.ones_like(p) for p in params))
    before = [p.copy() for p in params]
    new = sgd_step(params, grads, lr=0.5)
    for p, b, n in zip(params, before, new):
        assert np.array_equal(p, b)
        assert np.array_equal(n, b - 0.5)


def test_dead_units_are_those_with_no_positive_preactivation():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # all inputs non-negative
    params = MLPParams(
        # pre-activations per sample: unit 0 = -x0 - x1 = [-1, -1, -2] (dead),
        # unit 1 = x0 = [1, 0, 1] (alive), unit 2 = x0 + x1 - 3 = [-2, -2, -1] (dead)
        w1=np.array([[-1.0, 1.0, 1.0], [-1.0, 0.0, 1.0]]),
        b1=np.array([0.0, 0.0, -3.0]),
        w2=np.ones((3, 2)),
        b2=np.zeros(2),
    )
    assert dead_units(params, x).tolist() == [True, False, True]
    _, cache = mlp_forward(params, x, np.array([0, 1, 0]))
    g = mlp_backward(cache)
    assert np.all(g.w1[:, [0, 2]] == 0) and np.all(g.b1[[0, 2]] == 0)
    assert np.all(g.w2[[0, 2]] == 0)


def test_training_at_a_sane_rate_reduces_the_loss():
    rng = np.random.default_rng(0)
    x, y = make_spirals(30, rng)
    log = train_mlp(init_mlp(2, 20, 2, rng), x, y, lr=0.5, steps=200)
    assert log.losses.shape == (200,) and log.dead_fraction.shape == (200,)
    assert log.losses[-1] < 0.8 * log.losses[0]


def test_clip_by_global_norm_rescales_all_tensors_by_one_factor():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]  # global norm 5
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == 5.0
    # every tensor times 1/5: [0.6, 0] and [[0.8]]
    assert np.allclose(clipped[0], [0.6, 0.0], rtol=1e-15, atol=0)
    assert np.allclose(clipped[1], [[0.8]], rtol=1e-15, atol=0)
    unchanged, _ = clip_by_global_norm(grads, 10.0)
    assert unchanged[0].tolist() == [3.0, 0.0] and unchanged[1].tolist() == [[4.0]]
