"""The numpy population learner: each member is ``NumpyLearner`` with its own config, to
float32 rounding, and no member's numbers depend on another's."""

import numpy as np
import pytest

from dqn import DQNConfig
from dqn.config import LOSS_NAMES
from dqn.numpy_learner import NumpyLearner
from dqn.numpy_population import NumpyPopulationLearner
from dqn.replay import row_layout
from dqn.step_metrics import METRIC_NAMES

OBS_DIM, N_ACTIONS, HIDDEN, BATCH = 4, 2, (16, 16), 32
SHAPES = [(4, 16), (16,), (16, 16), (16,), (16, 2), (2,)]
ACTS = ["relu", "relu", "linear"]
BASE = DQNConfig(hidden_sizes=HIDDEN, batch_size=BATCH, total_env_steps=20_000)
VARIANTS = [
    {"loss": "huber"},
    {"loss": "l2", "learning_rate": 1e-3, "max_grad_norm": 0.5},  # a bound the norms reach
    {"loss": "clipped_delta", "gamma": 0.95, "target_update_every_grad_steps": 7},
    {"loss": "clipped_grad", "double_dqn": True, "target_tau": 0.1, "n_step": 3},
    {"loss": "huber", "loss_bound": 2.0, "learning_rate_end": None, "adam_epsilon": 1e-5},
]


def initial_params(members, seed=0):
    size = sum(int(np.prod(s)) for s in SHAPES)
    rng = np.random.default_rng(seed)
    return (0.3 * rng.normal(size=(members, size))).astype(np.float32)


def random_rows(members, k, seed=1):
    """CartPole-scale packed rows [M, K, B, W]; rewards of 1 and Q-scale TD errors."""
    rng = np.random.default_rng(seed)
    at = row_layout(OBS_DIM)
    rows = np.zeros((members, k, BATCH, at.width), np.float32)
    rows[..., at.obs] = rng.normal(size=(members, k, BATCH, OBS_DIM))
    rows[..., at.next_obs] = rng.normal(size=(members, k, BATCH, OBS_DIM))
    rows[..., at.action] = rng.integers(0, N_ACTIONS, (members, k, BATCH))
    rows[..., at.reward] = 3.0 * rng.random((members, k, BATCH))  # errors beyond the bound too
    rows[..., at.terminated] = rng.random((members, k, BATCH)) < 0.1
    return rows


def run_population(configs, params, rows, bursts, active=None):
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, params)
    metrics = [pop.burst(rows[:, i::bursts][:, :1], active) for i in range(bursts)]
    return pop, np.stack(metrics, axis=1)  # [M, bursts, n]


def run_single(config, params, rows, bursts):
    single = NumpyLearner(SHAPES, ACTS, config, params)
    return single, np.stack([single.burst(rows[i::bursts][:1]) for i in range(bursts)])


# Float32 rounding: both sides do the same float32 operations, but BLAS sums a stacked product
# in another order than a 2-D one, so parameters drift apart by a few ulps per update.
RTOL, ATOL = 2e-4, 2e-6


@pytest.mark.parametrize("variant", VARIANTS, ids=[v["loss"] for v in VARIANTS])
def test_a_population_of_one_is_the_single_learner_over_100_updates(variant):
    config = BASE.replace(**variant)
    params, rows = initial_params(1), random_rows(1, 100)
    pop, pop_metrics = run_population([config], params, rows, 100)
    single, single_metrics = run_single(config, params[0], rows[0], 100)
    state = pop.member_state(0)
    for name in ("online", "target", "adam_m", "adam_v"):
        np.testing.assert_allclose(getattr(state, name), getattr(single, name), RTOL, ATOL)
    assert state.grad_steps == single.grad_steps == 100
    np.testing.assert_allclose(pop_metrics[0], single_metrics, rtol=1e-4, atol=1e-5)


def test_every_member_of_a_mixed_population_is_its_own_single_learner():
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS)]
    params, rows = initial_params(len(configs)), random_rows(len(configs), 50)
    pop, pop_metrics = run_population(configs, params, rows, 50)
    for m, config in enumerate(configs):
        single, single_metrics = run_single(config, params[m], rows[m], 50)
        np.testing.assert_allclose(pop.online[m], single.online, RTOL, ATOL)
        np.testing.assert_allclose(pop.target[m], single.target, RTOL, ATOL)
        np.testing.assert_allclose(pop_metrics[m], single_metrics, rtol=1e-4, atol=1e-5)


def test_perturbing_one_member_leaves_every_other_member_bit_identical():
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS)]
    params, rows = initial_params(len(configs)), random_rows(len(configs), 40)
    perturbed = params.copy()
    perturbed[2] += np.float32(0.05)
    a, metrics_a = run_population(configs, params, rows, 40)
    b, metrics_b = run_population(configs, perturbed, rows, 40)
    others = [0, 1, 3, 4]
    np.testing.assert_array_equal(metrics_a[others], metrics_b[others])
    np.testing.assert_array_equal(a.online[others], b.online[others])
    assert not np.array_equal(a.online[2], b.online[2])


def test_a_stopped_member_is_frozen_and_a_nan_member_touches_no_other():
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS[:3])]
    params, rows = initial_params(3), random_rows(3, 10)
    clean, clean_metrics = run_population(configs, params, rows, 10)
    poisoned = params.copy()
    poisoned[0] = np.nan
    active = np.array([False, True, True])
    pop, metrics = run_population(configs, poisoned, rows, 10, active)
    assert np.isnan(metrics[0]).all() and pop.grad_steps[0] == 0
    assert np.isnan(pop.online[0]).all() and (pop.adam_m[0] == 0).all()
    np.testing.assert_array_equal(metrics[1:], clean_metrics[1:])
    np.testing.assert_array_equal(pop.online[1:], clean.online[1:])


def test_members_stopped_one_after_another_leave_the_others_as_a_full_stack_runs_them():
    # The active set changes twice; each time the learner of the members left is built anew.
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS[:3])]
    params, rows = initial_params(3), random_rows(3, 9)
    clean, clean_metrics = run_population(configs, params, rows, 9)
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, params)
    masks = [[True, True, True]] * 3 + [[False, True, True]] * 3 + [[False, False, True]] * 3
    metrics = np.stack(
        [pop.burst(rows[:, i::9][:, :1], np.array(m)) for i, m in enumerate(masks)], axis=1
    )
    np.testing.assert_array_equal(metrics[2], clean_metrics[2])
    np.testing.assert_array_equal(pop.online[2], clean.online[2])
    np.testing.assert_array_equal(metrics[1, :6], clean_metrics[1, :6])
    assert np.isnan(metrics[1, 6:]).all() and np.isnan(metrics[0, 3:]).all()
    assert pop.grad_steps.tolist() == [3, 6, 9]


def test_a_member_state_round_trips():
    configs = [BASE.replace(seed=i) for i in range(3)]
    pop, _ = run_population(configs, initial_params(3), random_rows(3, 5), 5)
    state = pop.member_state(1)
    other = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(3, seed=9))
    other.set_member_state(1, state)
    for got, want in zip(other.member_state(1), state):
        np.testing.assert_array_equal(got, want)


def test_members_that_must_share_a_key_are_refused():
    from dqn.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        NumpyPopulationLearner(SHAPES, ACTS, [BASE, BASE.replace(batch_size=16)], initial_params(2))


def test_every_loss_is_covered():
    assert {v["loss"] for v in VARIANTS} == set(LOSS_NAMES)


def test_stopped_members_cost_no_arithmetic(monkeypatch):
    """With members stopped, each step runs on the active members' rows alone, and gives them
    the bits a full stack gives (the test above); a population with none active runs nothing."""
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS)]
    widths = []
    step = NumpyPopulationLearner.step

    def counted(self, obs, *args):
        widths.append(len(obs))
        return step(self, obs, *args)

    monkeypatch.setattr(NumpyPopulationLearner, "step", counted)
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(5))
    rows = random_rows(5, 3)
    pop.burst(rows, np.array([True, False, True, False, False]))
    pop.burst(rows, np.zeros(5, bool))
    pop.burst(rows)
    assert widths == [2, 2, 2, 5, 5, 5]
    assert pop.grad_steps.tolist() == [6, 3, 6, 3, 3]


@pytest.mark.parametrize("tau", [0.25, 0.75])
def test_soft_and_hard_target_syncs_are_their_closed_forms(tau):
    # Every 3rd gradient step: tau < 1 mixes target <- tau online + (1 - tau) target; tau = 1
    # copies online. Between syncs the target does not move.
    configs = [
        BASE.replace(target_tau=tau, target_update_every_grad_steps=3),
        BASE.replace(target_tau=1.0, target_update_every_grad_steps=3, seed=1),
    ]
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(2))
    rows = random_rows(2, 6)
    for j in range(6):
        before = pop.target.astype(np.float64)
        pop.burst(rows[:, j : j + 1])
        online = pop.online.astype(np.float64)
        if (j + 1) % 3:
            np.testing.assert_array_equal(pop.target, before)
        else:
            np.testing.assert_allclose(
                pop.target[0], tau * online[0] + (1 - tau) * before[0], rtol=1e-6, atol=1e-7
            )
            np.testing.assert_array_equal(pop.target[1], pop.online[1])
            assert not np.allclose(pop.target[0], online[0])  # a mix, not a copy


def test_zero_gradients_and_over_bound_fractions_count_the_bound_as_inside():
    # All parameters 0: Q = 0, and with every transition terminal td_error = reward exactly.
    # Two of the six rewards lie beyond the bound 1 and two exactly on it, where the clipped
    # delta still passes the gradient; over_bound_fraction counts |td_error| > bound only.
    configs = [BASE.replace(loss=loss) for loss in LOSS_NAMES]
    online = np.zeros_like(initial_params(len(configs)))
    at = row_layout(OBS_DIM)
    rows = np.zeros((len(configs), 1, 6, at.width), np.float32)
    rows[..., at.reward] = [-3.0, -1.0, -0.5, 0.5, 1.0, 2.0]
    rows[..., at.terminated] = 1.0
    metrics = NumpyPopulationLearner(SHAPES, ACTS, configs, online).burst(rows)
    zero = metrics[:, METRIC_NAMES.index("zero_grad_fraction")]
    np.testing.assert_allclose(
        zero, [0.0 if loss != "clipped_delta" else 2 / 6 for loss in LOSS_NAMES]
    )
    np.testing.assert_allclose(metrics[:, METRIC_NAMES.index("over_bound_fraction")], 2 / 6)


def burst_of(kind: str):
    """A fresh learner of ``kind`` (one member, or two) and its burst on [M, K, B, W] rows,
    giving [M, n] metrics: the single learner's rows and metrics carry a member axis of 1."""
    if kind == "single":
        learner = NumpyLearner(SHAPES, ACTS, BASE, initial_params(1)[0])
        return learner, lambda rows: learner.burst(rows[0])[None]
    configs = [BASE.replace(seed=i) for i in range(2)]
    learner = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(2))
    return learner, learner.burst


@pytest.mark.parametrize("kind", ["single", "population"])
def test_a_burst_reports_the_mean_of_its_steps_and_the_max_of_the_max_metrics(kind):
    # The same learner stepped once per burst gives each step's metrics: a burst of K must
    # report their mean, and for the "max" metrics their maximum.
    rows = random_rows(1 if kind == "single" else 2, 6)  # [M, K, B, W]
    (whole, burst_whole), (steps, burst_step) = burst_of(kind), burst_of(kind)
    burst = burst_whole(rows)
    each = np.stack([burst_step(rows[:, i : i + 1]) for i in range(6)], axis=1)  # [M, K, n]
    for name in ("loss", "q_mean", "grad_norm", "td_error_abs_mean"):
        j = METRIC_NAMES.index(name)
        np.testing.assert_allclose(burst[:, j], each[:, :, j].mean(axis=1), rtol=1e-5)
    for name in ("q_abs_max", "td_error_abs_max"):  # the divergence guard reads q_abs_max
        j = METRIC_NAMES.index(name)
        assert (each[:, :, j].max(axis=1) > each[:, :, j].mean(axis=1)).all()  # a mean differs
        np.testing.assert_allclose(burst[:, j], each[:, :, j].max(axis=1), rtol=1e-6)
    if kind == "population":
        np.testing.assert_array_equal(whole.online, steps.online)


def test_past_the_end_of_its_schedule_a_members_learning_rate_stays_at_its_end():
    # A 4-step schedule from 1e-3 to 0: the rate is 1e-3 (1 - g/4) before step g, and exactly 0
    # from the 4th step on, where Adam moves no parameter (a rate past the end would be
    # negative and move them back).
    from dqn.members import learning_rates, member_settings

    short = BASE.replace(
        total_env_steps=104,
        learning_starts_env_steps=100,
        train_every_env_steps=1,
        gradient_steps_per_train=1,
        learning_rate=1e-3,
        learning_rate_end=0.0,
        target_update_every_grad_steps=2,  # <= the 4 gradient steps of the run
    )
    settings = member_settings([short])
    for g, want in [(0, 1e-3), (1, 7.5e-4), (2, 5e-4), (4, 0.0), (5, 0.0), (40, 0.0)]:
        np.testing.assert_allclose(learning_rates(settings, np.array([g])), [want], atol=1e-18)
    # The schedule's length is shared (total_env_steps is); a constant rate keeps member 1 moving.
    configs = [short, short.replace(learning_rate_end=None, seed=1)]
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(2))
    rows = random_rows(2, 9)
    for j in range(4):
        pop.burst(rows[:, j : j + 1])
    frozen, moving = pop.online[0].copy(), pop.online[1].copy()
    for j in range(4, 9):
        pop.burst(rows[:, j : j + 1])
    np.testing.assert_array_equal(pop.online[0], frozen)
    assert not np.array_equal(pop.online[1], moving)


def test_with_diagnostics_off_the_td_statistics_are_nan_and_the_rest_unchanged():
    # Diagnostics off skips the TD-error statistics: their columns are NaN for every step, and
    # so for the burst too (the max of NaNs is NaN, not the -inf a max starts from), while
    # loss, Q statistics, gradient norm and the update itself are those of diagnostics on.
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS)]
    params, rows = initial_params(len(configs)), random_rows(len(configs), 3)
    on, metrics_on = run_population(configs, params, rows, 1)
    off_configs = [c.replace(diagnostics=False) for c in configs]
    off, metrics_off = run_population(off_configs, params, rows, 1)
    skipped = [j for j, name in enumerate(METRIC_NAMES) if name.startswith("td_error")]
    skipped += [METRIC_NAMES.index(n) for n in ("zero_grad_fraction", "over_bound_fraction")]
    kept = [j for j in range(len(METRIC_NAMES)) if j not in skipped]
    assert np.isnan(metrics_off[..., skipped]).all()
    assert np.isfinite(metrics_on[..., skipped]).all()
    np.testing.assert_array_equal(metrics_off[..., kept], metrics_on[..., kept])
    np.testing.assert_array_equal(off.online, on.online)


def test_a_member_with_nan_parameters_reports_a_nan_burst_maximum():
    # The divergence guard reads the burst's q_abs_max and td_error_abs_max: a member whose Q
    # is NaN at every step must report NaN for both, not the -inf their maximum starts from.
    configs = [BASE.replace(**v, seed=i) for i, v in enumerate(VARIANTS[:2])]
    params = initial_params(2)
    params[0] = np.nan
    metrics = NumpyPopulationLearner(SHAPES, ACTS, configs, params).burst(random_rows(2, 3))
    for name in ("q_abs_max", "td_error_abs_max"):
        j = METRIC_NAMES.index(name)
        assert np.isnan(metrics[0, j]) and np.isfinite(metrics[1, j])


def test_hidden_outputs_are_those_of_each_members_online_network():
    # hidden() feeds the dead/saturated-unit diagnostics: each member's hidden layers of its
    # online network (not its target), written out here in float64.
    configs = [BASE.replace(seed=i, target_update_every_grad_steps=1000) for i in range(2)]
    pop = NumpyPopulationLearner(SHAPES, ACTS, configs, initial_params(2))
    pop.burst(random_rows(2, 3))
    assert not np.array_equal(pop.online, pop.target)
    obs = np.random.default_rng(5).normal(size=(2, 7, OBS_DIM)).astype(np.float32)
    hidden = pop.hidden(obs)
    assert len(hidden) == 2
    offsets = np.cumsum([0, *(int(np.prod(s)) for s in SHAPES)])
    for m in range(2):
        flat = pop.online[m].astype(np.float64)
        params = [flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], SHAPES)]
        x = obs[m].astype(np.float64)
        for i in range(2):  # the relu layers; the linear Q head is not a hidden layer
            x = np.maximum(x @ params[2 * i] + params[2 * i + 1], 0.0)
            np.testing.assert_allclose(hidden[i][m], x, rtol=1e-5, atol=1e-6)


def test_a_member_state_is_a_snapshot_that_later_bursts_leave_alone():
    # member_state() is what a checkpoint writes: views that later bursts move would not do.
    pop = NumpyPopulationLearner(SHAPES, ACTS, [BASE, BASE.replace(seed=1)], initial_params(2))
    pop.burst(random_rows(2, 3))
    state = pop.member_state(0)
    saved = [np.array(a, copy=True) for a in state]
    pop.burst(random_rows(2, 2, seed=3))
    for got, want in zip(state, saved):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(pop.online[0], saved[0])


def test_a_burst_refuses_rows_or_a_mask_that_are_not_one_per_member():
    # [False] for two members trained no one, [True] trained both: a mask is one per member.
    pop = NumpyPopulationLearner(SHAPES, ACTS, [BASE, BASE.replace(seed=1)], initial_params(2))
    rows = random_rows(2, 1)
    for mask in ([False], [True], [True, True, True]):
        with pytest.raises(ValueError, match="must be per member"):
            pop.burst(rows, np.array(mask))
    with pytest.raises(ValueError, match="must be per member"):
        pop.burst(rows[:1], np.ones(2, bool))
    assert pop.grad_steps.tolist() == [0, 0]  # nothing trained
