"""Each demo's claim, asserted on its own numbers (default seed 0)."""

import numpy as np
import pytest
from scipy import integrate, stats

from dqn.backprop import demos


@pytest.fixture(scope="module")
def sigmoid():
    return demos.sigmoid_saturation()


@pytest.fixture(scope="module")
def relu():
    return demos.dead_relus()


@pytest.fixture(scope="module")
def rnn():
    return demos.rnn_gradients()


@pytest.fixture(scope="module")
def losses():
    return demos.clipped_delta_vs_huber()


# --------------------------------------------------------------------------- 1. sigmoid


def test_sigmoid_derivative_peaks_at_exactly_a_quarter_at_zero(sigmoid):
    # s(0) = 1/2 exactly, so s(0)(1 - s(0)) = 1/4 exactly in floating point.
    assert sigmoid.max_local_grad == 0.25
    assert sigmoid.argmax_x == 0.0
    assert np.all(sigmoid.local_grad[sigmoid.grid != 0] < 0.25)


def test_plus_minus_400_init_saturates_and_glorot_does_not(sigmoid):
    saturated, glorot = sigmoid.inits["saturated"], sigmoid.inits["glorot"]
    lo, hi = saturated.preact_range
    assert lo < -300 and hi > 300  # the post's regime: pre-activations of several hundred
    # Pre-activations N(0, (4 sqrt(1000))^2) = N(0, 126.5^2); sigmoid'(z) < 1e-6 where |z| >
    # 13.8155 (e^-|z| ~ 1e-6), so 2 (1 - Phi(13.8155 / 126.5)) = 91.3% of them, closed form.
    wide = 4 * np.sqrt(1000)
    below = 2 * stats.norm.sf(13.8155 / wide)
    assert saturated.frac_below_1e6 == pytest.approx(below, abs=0.02)
    assert glorot.frac_below_1e6 == 0.0
    # Glorot, Var(w) = 2 / (n_in + n_out), gives pre-activations of std sqrt(1000 * 2 / 1100)
    # = 1.348, where sigmoid' averages E[s(z)(1 - s(z))] = 0.185 (the integral below); the
    # +/-400 init kills it.
    std = np.sqrt(1000 * 2 / 1100)
    assert glorot.preact_std == pytest.approx(std, rel=0.05)

    def density(z):
        return np.exp(-0.5 * (z / std) ** 2) / (std * np.sqrt(2 * np.pi))

    expected = integrate.quad(lambda z: 0.25 / np.cosh(z / 2) ** 2 * density(z), -40, 40)[0]
    assert glorot.mean_local_grad == pytest.approx(expected, rel=0.05)
    # With so wide a normal, E[sigmoid'(z)] ~ density(0) * (the integral of sigmoid', 1) =
    # 1 / (126.5 sqrt(2 pi)) = 3.15e-3, against Glorot's 0.185.
    assert saturated.mean_local_grad == pytest.approx(1 / (wide * np.sqrt(2 * np.pi)), rel=0.25)


def test_the_saturated_fraction_counts_local_gradients_below_1e_minus_6(sigmoid):
    for init in sigmoid.inits.values():
        assert init.frac_below_1e6 == np.mean(init.local_grads < 1e-6)


def test_weight_gradient_collapses_relative_to_the_weights(sigmoid):
    rel = {k: i.weight_grad_norm / i.weight_norm for k, i in sigmoid.inits.items()}
    assert rel["saturated"] < 1e-2 * rel["glorot"]


def test_gradient_through_L_sigmoid_layers_shrinks_by_at_least_4_to_the_minus_L(sigmoid):
    # ||dx_{l-1}|| = ||(dx_l * s'(z_l)) W_l^T|| <= ||W_l||_2 max s' ||dx_l|| = ||dx_l|| / 4.
    assert np.array_equal(sigmoid.depth_bound, 0.25 ** sigmoid.depths.astype(float))
    assert np.all(sigmoid.depth_ratio <= sigmoid.depth_bound)
    assert np.all(sigmoid.depth_ratio > 0)


def test_the_depth_ratios_gradient_is_the_stacks_input_gradient_by_central_differences():
    # Three layers of different, non-orthogonal weights: taken in the wrong order, the same
    # shapes would go through and give another gradient.
    from dqn.backprop.demos.sigmoid import sigmoid_stack_backward, sigmoid_stack_forward
    from dqn.backprop.gradcheck import numerical_gradient, rel_error

    rng = np.random.default_rng(3)
    weights = [rng.standard_normal((5, 5)) * s for s in (0.5, 1.0, 2.0)]
    x, dtop = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    _, caches = sigmoid_stack_forward(x, weights)
    num = numerical_gradient(lambda v: np.sum(dtop * sigmoid_stack_forward(v, weights)[0]), x)
    assert rel_error(sigmoid_stack_backward(dtop, caches), num) <= 1e-8


# --------------------------------------------------------------------------- 2. dead ReLUs


def test_dead_fraction_zero_at_sane_lr_and_large_at_aggressive_lr(relu):
    # Calibrated on seed 0: 0.00 at lr 1, 0.15 at lr 3, 1.00 at lr 10.
    assert relu.dead_fraction[1.0] == 0.0
    assert 0.0 < relu.dead_fraction[3.0] < 0.5
    assert relu.dead_fraction[10.0] >= 0.9
    assert relu.accuracy[1.0] >= 0.95  # the sane run really trained


def test_dead_unit_gets_exactly_zero_gradient(relu):
    assert relu.n_dead_probed > 0
    assert relu.dead_grad_max_abs == 0.0
    assert relu.live_grad_max_abs > 1e-4


def test_the_probed_dead_units_are_the_probe_runs_dead_fraction_of_its_100(relu):
    assert relu.n_dead_probed == round(100 * relu.dead_fraction[relu.probe_lr])


def test_the_final_dead_fraction_is_counted_after_the_last_step():
    # The curve is taken before each step; on seed 0 one step at lr 10 already kills a unit.
    r = demos.dead_relus(learning_rates=(10.0,), probe_lr=10.0, steps=1, extra_steps=1)
    assert r.dead_fraction_curve[10.0].tolist() == [0.0]
    assert r.dead_fraction[10.0] > 0.0


def test_the_final_loss_is_the_loss_after_the_last_step_not_before_it(relu):
    # losses[lr] is logged before each step; at the sane rate the last step still lowers it.
    assert relu.final_loss[1.0] < relu.losses[1.0][-1]
    for lr, losses in relu.losses.items():
        assert relu.final_loss[lr] != losses[-1], lr


def test_dead_unit_weights_stay_bit_identical_while_live_ones_move(relu):
    assert relu.dead_weights_unchanged is True
    assert relu.live_weights_changed > 1e-3


def test_a_probe_rate_that_kills_every_unit_reports_no_live_unit_moving():
    # At lr 10 all 100 units die: the max over no live unit is 0, not a numpy error.
    r = demos.dead_relus(probe_lr=10.0)
    assert r.n_dead_probed == 100 and r.live_weights_changed == 0.0
    assert r.dead_weights_unchanged is True


def test_dead_fraction_never_decreases_once_units_die(relu):
    # A dead unit's incoming weights get no gradient, so nothing can revive it.
    for lr, curve in relu.dead_fraction_curve.items():
        assert np.all(np.diff(curve) >= 0)
        assert curve[-1] <= relu.dead_fraction[lr]  # the last step only adds to it
    # At lr 10 every unit is dead from step 5 on (seed 0): a curve logged as 0 stays "never
    # decreasing", so the value itself is asserted.
    assert relu.dead_fraction_curve[10.0][5:].tolist() == [1.0] * (len(relu.losses[10.0]) - 5)


def test_the_dead_fraction_curve_is_the_dead_units_of_the_weights_before_each_step():
    from dqn.backprop.mlp import dead_units, init_mlp, make_spirals, train_mlp

    x, y = make_spirals(50, np.random.default_rng(0))
    params = init_mlp(x.shape[1], 20, 2, np.random.default_rng(1))
    log = train_mlp(params, x, y, lr=5.0, steps=6)
    # Replayed one step at a time: the curve's k-th value is the mask of the k-th weights.
    expected = []
    for _ in range(6):
        expected.append(float(np.mean(dead_units(params, x))))
        params = train_mlp(params, x, y, lr=5.0, steps=1).params
    assert log.dead_fraction.tolist() == expected
    assert max(expected) > 0  # the rate kills units: the curve is not all zeros


# --------------------------------------------------------------------------- 3. RNN


def test_zero_input_rnn_gradient_ratio_is_rho_to_the_T(rnn):
    for rho in rnn.rhos:
        expected = rho ** rnn.horizons.astype(float)
        assert np.max(np.abs(rnn.ratio[rho] - expected) / expected) <= 1e-9, rho
    assert rnn.max_rel_err_vs_rho_T <= 1e-9
    t50 = {rho: rnn.ratio[rho][49] for rho in rnn.rhos}
    assert t50[0.9] == pytest.approx(5.154e-3, rel=1e-3)
    assert t50[1.1] == pytest.approx(117.39, rel=1e-4)
    assert t50[1.5] == pytest.approx(6.376e8, rel=1e-3)


def test_the_reported_error_is_the_largest_over_every_rho(rnn):
    errors = [np.max(np.abs(rnn.ratio[r] - r**rnn.horizons) / r**rnn.horizons) for r in rnn.rhos]
    # abs=0: approx's default 1e-12 would pass any value of an error itself about 1e-15.
    assert rnn.max_rel_err_vs_rho_T == pytest.approx(max(errors), rel=1e-12, abs=0)


def test_with_real_inputs_tanh_saturation_makes_rho_above_one_vanish(rnn):
    assert rnn.ratio_with_inputs[(1.5, 0.0)] > 1e8  # linear regime: explodes
    assert rnn.ratio_with_inputs[(1.5, 0.1)] > 1.0  # small inputs: still explodes
    assert rnn.ratio_with_inputs[(1.5, 2.0)] < 1e-3  # saturating inputs: vanishes
    assert rnn.ratio_with_inputs[(1.1, 1.0)] < 1e-3


def test_global_norm_clipping_bounds_the_update_and_keeps_its_direction(rnn):
    assert rnn.raw_grad_norm > 100 * rnn.clip_norm
    assert rnn.global_clip_norm == pytest.approx(rnn.clip_norm, rel=1e-12)
    assert rnn.global_clip_cosine == pytest.approx(1.0, abs=1e-12)
    # Element-wise clipping neither bounds the norm nor keeps the direction.
    assert rnn.elementwise_clip_norm > rnn.clip_norm
    assert rnn.elementwise_clip_cosine < 0.9


def test_the_clipped_gradient_is_the_exploding_case_asked_for():
    # Zero inputs at rho 1.5: the linear regime, ||dh0|| = 1.5^50 ||dh_T||, against small
    # inputs (the default case), where tanh' < 1 keeps the gradient near 1e4.
    linear = demos.rnn_gradients(exploding_case=(1.5, 0.0))
    assert linear.raw_grad_norm > 1e6 * demos.rnn_gradients().raw_grad_norm


def test_element_wise_clipping_bounds_every_entry_on_both_sides():
    # Every entry in [-c, c]: the norm is at most c sqrt(P), P = 8*32 + 32*32 + 32 parameters.
    c = 1e-6
    assert demos.rnn_gradients(clip_norm=c).elementwise_clip_norm <= c * np.sqrt(1312) * (1 + 1e-12)


def test_clipping_the_min_char_rnn_example(rnn):
    # [3, 40, -0.5] has norm 40.115; scaled to norm 5: [0.374, 4.986, -0.062].
    assert rnn.example_global == pytest.approx([0.374, 4.986, -0.062], abs=5e-4)
    assert rnn.example_elementwise.tolist() == [3.0, 5.0, -0.5]
    # cosine = (9 + 200 + 0.25) / (40.115 * 5.852) = 0.891
    assert rnn.example_elementwise_cosine == pytest.approx(0.891, abs=5e-4)


# --------------------------------------------------------------------------- 4. losses


def test_clipped_delta_gradient_is_zero_exactly_outside_the_bound(losses):
    assert losses.zero_grad_matches_outside is True
    assert losses.zero_grad_min_abs == 1.01  # grid step 0.01; at |e| = 1 the gradient is e
    assert np.all(losses.grad["huber"][losses.grid != 0] != 0)


def test_a_loss_with_zero_gradient_inside_the_bound_too_is_reported_as_not_matching(
    monkeypatch,
):
    # The claim's check, not a constant: a clipped_delta whose gradient also vanished near 0.
    from dqn.backprop.demos import td_losses
    from dqn.backprop.losses import LOSSES, LossPair

    forward, backward = LOSSES["clipped_delta"]

    def also_zero_near_0(dout, cache):
        return np.where(np.abs(cache.td_error) < 0.5, 0.0, backward(dout, cache))

    monkeypatch.setitem(td_losses.LOSSES, "clipped_delta", LossPair(forward, also_zero_near_0))
    r = demos.clipped_delta_vs_huber(heavy_tail_n=100)
    assert r.zero_grad_matches_outside is False
    assert r.zero_grad_min_abs == 0.01


def test_heavy_tailed_td_errors_lose_their_gradient_at_the_closed_form_rate(losses):
    # Student-t(2): P(|T| > 1) = 1 - 1/sqrt(3) = 0.4226; binomial std with n = 1e5 is 0.0016.
    assert losses.heavy_tail_expected == pytest.approx(1 - 1 / np.sqrt(3), rel=1e-15)
    assert losses.heavy_tail_zero_frac == pytest.approx(losses.heavy_tail_expected, abs=0.007)
    # N(0, 1): P(|Z| > 1) = 0.3173.
    assert losses.gaussian_zero_frac == pytest.approx(0.3173, abs=0.007)


def test_another_bound_moves_the_zero_gradient_region_and_its_closed_form_rate():
    r = demos.clipped_delta_vs_huber(bound=2.0, heavy_tail_n=10_000)
    assert r.zero_grad_matches_outside is True
    assert r.zero_grad_min_abs == 2.01
    # Student-t(2): P(|T| > b) = 1 - b / sqrt(2 + b^2); for b = 2, 1 - 2 / sqrt(6) = 0.1835.
    assert r.heavy_tail_expected == pytest.approx(1 - 2 / np.sqrt(6), rel=1e-12)


@pytest.mark.parametrize("bound", [3.0, 4.5])
def test_a_bound_past_the_grid_s_3_still_has_its_zero_gradient_region(bound):
    # The grid was +/-3 whatever the bound: at 3 or more no point had zero gradient, and the
    # minimum over none raised.
    r = demos.clipped_delta_vs_huber(bound=bound, heavy_tail_n=1_000)
    assert r.zero_grad_matches_outside is True
    assert r.zero_grad_min_abs == pytest.approx(bound + 0.01, abs=1e-9)


def test_worked_example_as_stated_in_the_2016_terms(losses):
    assert losses.example_td_error.tolist() == [-3.0, -1.0, 0.5, 2.0]
    # mean(clip(d)^2) and mean(d^2), without the 0.5: dL/dQ = -2 clip(d) 1[|d|<=1] / 4, -2 d / 4
    assert losses.example_dq_2016["clipped_delta"].tolist() == [0.0, 0.5, -0.25, 0.0]
    assert losses.example_dq_2016["l2"].tolist() == [1.5, 0.5, -0.25, -1.0]
    # Huber_1 is the same function in both conventions: dL/dQ = -clip(d, -1, 1) / 4.
    assert losses.example_dq["huber"].tolist() == [0.25, 0.25, -0.125, -0.25]
    # (2.5 + 0.5 + 0.125 + 1.5) / 4
    assert losses.example_value["huber"] == 1.15625


def test_worked_example_in_the_package_convention(losses):
    # With 0.5 scaling, l2 and clipped_delta are half the unscaled forms above.
    assert losses.example_dq["clipped_delta"].tolist() == [0.0, 0.25, -0.125, 0.0]
    assert losses.example_dq["l2"].tolist() == [0.75, 0.25, -0.125, -0.5]
    assert losses.example_dq["clipped_grad"].tolist() == losses.example_dq["huber"].tolist()
    # values: mean(0.5 clip^2) = (0.5 + 0.5 + 0.125 + 0.5) / 4; mean(0.5 d^2) = 7.125 / 4
    assert losses.example_value["clipped_delta"] == 0.40625
    assert losses.example_value["l2"] == losses.example_value["clipped_grad"] == 1.78125
    assert losses.example_value_2016 == {"clipped_delta": 0.8125, "l2": 3.5625}


def test_the_extra_steps_run_at_a_rate_of_1_not_at_the_probe_rate():
    from dqn.backprop.mlp import (
        dead_units,
        init_mlp,
        make_spirals,
        mlp_backward,
        mlp_forward,
        train_mlp,
    )

    r = demos.dead_relus(
        learning_rates=(3.0,), probe_lr=3.0, n_per_class=20, hidden=10, steps=20, extra_steps=1
    )
    # The probe run's weights, rebuilt; one SGD step at lr 1 moves w1 by exactly its gradient.
    rng = np.random.default_rng(0)
    x, y = make_spirals(20, rng)
    params = train_mlp(init_mlp(2, 10, 2, rng), x, y, 3.0, 20).params
    live = ~dead_units(params, x)
    grad_w1 = mlp_backward(mlp_forward(params, x, y)[1]).w1
    assert live.any() and r.n_dead_probed == int((~live).sum())
    assert r.live_weights_changed == pytest.approx(np.max(np.abs(grad_w1[:, live])), rel=1e-12)


def test_element_wise_clipping_sends_every_entry_past_the_bound_to_plus_or_minus_c():
    # With c far below every entry, each clipped entry is +c or -c: the norm is c sqrt(P) exactly,
    # P = 8*32 + 32*32 + 32; a clip to [0, c] would zero the negative half.
    c = 1e-9
    r = demos.rnn_gradients(clip_norm=c)
    assert r.elementwise_clip_norm == pytest.approx(c * np.sqrt(1312), rel=1e-12)


def test_the_input_weights_are_scaled_by_one_over_sqrt_d_in():
    # One step from h0 = 0 at rho 1: h_1 = tanh(s x W), dh_0 = (dh_1 * (1 - h_1^2)) Q^T and Q is
    # orthogonal, so the ratio is ||dh_1 * (1 - h_1^2)|| / ||dh_1||, with W = randn / sqrt(d_in)
    # drawn from the demo's generator in its order (Q, the zero-input dh, x, W, this dh).
    n, hidden, d_in, s = 4, 6, 16, 1.0
    r = demos.rnn_gradients(
        rhos=(1.0,),
        max_t=1,
        hidden=hidden,
        d_in=d_in,
        n=n,
        input_scales=(s,),
        exploding_case=(1.0, s),
    )
    rng = np.random.default_rng(0)
    rng.standard_normal((hidden, hidden))
    rng.standard_normal((n, hidden))
    x = rng.standard_normal((n, d_in))
    w = rng.standard_normal((d_in, hidden)) / np.sqrt(d_in)
    dh1 = rng.standard_normal((n, hidden))
    h1 = np.tanh(s * x @ w)
    expected = np.linalg.norm(dh1 * (1 - h1**2)) / np.linalg.norm(dh1)
    assert r.ratio_with_inputs[(1.0, s)] == pytest.approx(expected, rel=1e-12)


def test_the_weight_norm_is_the_frobenius_norm_of_the_weights_drawn(sigmoid):
    # ||W||_F^2 is a sum of d_in * d_out = 1e5 squares: 16 * 1e5 for the std-4 weights and
    # 1e5 * 2 / 1100 for Glorot's, each within a fraction of a percent.
    assert sigmoid.inits["saturated"].weight_norm == pytest.approx(4 * np.sqrt(1e5), rel=1e-2)
    assert sigmoid.inits["glorot"].weight_norm == pytest.approx(np.sqrt(2e5 / 1100), rel=1e-2)
