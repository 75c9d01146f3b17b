"""The population learner: each member follows its own single TensorFlow learner, and members
never touch each other's numbers (bit for bit)."""

import functools

import numpy as np
import pytest

from dqn import losses
from dqn.config import LOSS_NAMES, DQNConfig
from dqn.errors import ConfigError
from dqn.networks import FlatNetwork, build_mlp
from dqn.replay import row_layout
from dqn.step_metrics import METRIC_NAMES
from dqn.tf_learner import TFLearner
from dqn.tf_population import TFPopulationLearner

OBS_DIM, N_ACTIONS, HIDDEN, BATCH = 4, 2, (16, 16), 32
# A 100-step schedule, so that learning_rate_end is reached within a test.
BASE = DQNConfig(
    hidden_sizes=HIDDEN,
    batch_size=BATCH,
    learning_rate=1e-3,
    learning_rate_end=None,
    target_update_every_grad_steps=10,
    # 100 gradient steps; learning starts at 2 so that members with n_step=3 may join (a run
    # stores its first 3-step transition at env step 3).
    total_env_steps=102,
    learning_starts_env_steps=2,
    n_step=1,  # the default is 10, which would need learning_starts_env_steps >= 9
    train_every_env_steps=1,
    gradient_steps_per_train=1,
    jit_compile=False,
)
# Float32 rounding, not bit equality: the batched layers sum a bias's gradient over the batch in
# another order than Keras' Dense layers do (last-bit differences), and Adam's normalised steps
# carry such differences on through 100 updates.
TOL = dict(rtol=1e-5, atol=1e-6)


def network(config, seed):
    model = build_mlp(OBS_DIM, N_ACTIONS, config.hidden_sizes, config.activation, seed)
    return FlatNetwork(model)


def shapes_and_activations(config):
    net = network(config, 0)
    return net.shapes, [config.activation] * len(config.hidden_sizes) + ["linear"]


def initial_params(config, members):
    return _initial_params(config.hidden_sizes, config.activation, members).copy()


@functools.lru_cache
def _initial_params(hidden_sizes, activation, members):
    config = BASE.replace(hidden_sizes=hidden_sizes, activation=activation)
    return np.stack([network(config, seed).read() for seed in range(members)])


def cartpole_rows(rng, *lead):
    """Packed rows [*lead, B, W] on CartPole's scale: reward 1, a few terminations."""
    shape, at = (*lead, BATCH), row_layout(OBS_DIM)
    rows = np.empty((*shape, at.width), np.float32)
    obs = rng.normal(size=(*shape, OBS_DIM)) * [0.5, 0.8, 0.08, 0.8]
    rows[..., at.obs] = obs
    rows[..., at.next_obs] = obs + rng.normal(size=obs.shape) * [0.02, 0.2, 0.004, 0.3]
    rows[..., at.action] = rng.integers(0, N_ACTIONS, shape)
    rows[..., at.reward] = 1.0
    rows[..., at.terminated] = rng.random(shape) < 0.05
    return rows


def single(config, flat):
    net = network(config, 0)
    return TFLearner(net.forward, losses.get(config.loss), config, OBS_DIM, flat)


def population(configs, online):
    shapes, acts = shapes_and_activations(configs[0])
    return TFPopulationLearner(shapes, acts, configs, online)


def assert_member_equals(pop, m, learner, **tol):
    want, got = learner.state, pop.member_state(m)
    for name in ("online", "target", "adam_m", "adam_v"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), **tol, err_msg=name)
    assert got.adam_step == want.adam_step and got.grad_steps == want.grad_steps


def run_against_singles(configs, bursts, k, seed=0):
    """A population and one single learner per member on the same rows; compares every burst."""
    online = initial_params(configs[0], len(configs)) * np.float32(1.5)  # larger TD errors
    pop = population(configs, online)
    singles = [single(c, online[m]) for m, c in enumerate(configs)]
    rng = np.random.default_rng(seed)
    active = np.ones(len(configs), bool)
    for _ in range(bursts):
        rows = cartpole_rows(rng, len(configs), k)
        got = pop.burst(rows, active)
        for m, learner in enumerate(singles):
            np.testing.assert_allclose(got[m], learner.burst(rows[m]), **TOL, err_msg=f"m{m}")
    for m, learner in enumerate(singles):
        assert_member_equals(pop, m, learner, **TOL)
    return pop, got


@pytest.mark.parametrize(
    "changes",
    [
        *({"loss": loss, "loss_bound": 0.5} for loss in LOSS_NAMES),
        {"double_dqn": True, "jit_compile": True},
        {"max_grad_norm": 0.05, "learning_rate_end": 1e-4, "jit_compile": True},
        {"max_grad_norm": 10.0, "jit_compile": True},  # a bound never reached: no rescaling
        {"target_tau": 0.25, "activation": "tanh", "diagnostics": False, "jit_compile": True},
    ],
)
def test_a_population_of_one_is_the_single_learner(changes):
    config = BASE.replace(**changes)
    pop, metrics = run_against_singles([config], bursts=25, k=4)
    assert pop.grad_steps.tolist() == [100]
    if config.diagnostics:  # TD errors fell on both sides of the bound
        over = metrics[0][METRIC_NAMES.index("over_bound_fraction")]
        assert 0.0 < over < 1.0
    if config.max_grad_norm is not None:  # the clip was active (0.05), or never (10)
        norm = metrics[0][METRIC_NAMES.index("grad_norm")]
        assert (norm > config.max_grad_norm) == (config.max_grad_norm < 1), norm
    if not config.diagnostics:  # off, they are NaN, also the maxima over a burst (not -inf)
        cheap = ("loss", "q_mean", "q_abs_max", "grad_norm")
        off = {n: v for n, v in zip(METRIC_NAMES, metrics[0]) if n not in cheap}
        assert "td_error_abs_max" in off and np.isnan(list(off.values())).all(), off


MIXED = [
    BASE.replace(jit_compile=True),
    BASE.replace(
        jit_compile=True,
        loss="clipped_delta",
        loss_bound=0.5,
        learning_rate=3e-3,
        gamma=0.9,
        target_update_every_grad_steps=7,
    ),
    BASE.replace(jit_compile=True, loss="l2", double_dqn=True, max_grad_norm=0.5, n_step=3),
    BASE.replace(
        jit_compile=True,
        loss="clipped_grad",
        target_tau=0.25,
        target_update_every_grad_steps=5,
        adam_epsilon=1e-5,
    ),
    BASE.replace(
        jit_compile=True, double_dqn=True, learning_rate_end=2e-4, max_grad_norm=0.3, gamma=0.95
    ),
]


def test_each_member_of_a_mixed_population_is_its_own_single_learner():
    pop, _ = run_against_singles(MIXED, bursts=10, k=5, seed=1)
    assert pop.grad_steps.tolist() == [50] * 5


def run(configs, online, bursts=4, k=3, active=None, seed=2):
    pop = population(configs, online)
    rng = np.random.default_rng(seed)
    active = np.ones(len(configs), bool) if active is None else active
    metrics = [pop.burst(cartpole_rows(rng, len(configs), k), active) for _ in range(bursts)]
    return pop, np.stack(metrics)


@pytest.fixture(scope="module")
def mixed_run():
    """The unperturbed run the isolation tests compare against (read it, do not burst it)."""
    online = initial_params(BASE, len(MIXED))
    return (online, *run(MIXED, online))


def assert_members_identical(a, b, members):
    for m in members:
        for x, y in zip(a.member_state(m), b.member_state(m)):
            np.testing.assert_array_equal(x, y)


def test_perturbing_one_member_changes_no_other_member(mixed_run):
    online, base, base_metrics = mixed_run
    perturbed = online.copy()
    perturbed[2] += np.random.default_rng(9).normal(scale=0.1, size=perturbed.shape[1])
    changed, changed_metrics = run(MIXED, perturbed)
    others = [0, 1, 3, 4]
    assert_members_identical(base, changed, others)
    np.testing.assert_array_equal(changed_metrics[:, others], base_metrics[:, others])
    assert not np.array_equal(changed.member_state(2).online, base.member_state(2).online)


def test_each_member_corrects_adam_s_bias_with_its_own_step_count():
    """Members stepped apart (one restored from a later checkpoint, one stopped for a while)
    hold other Adam step counts t: each bias correction, 1 - beta^t, is its own member's. A
    member's update is the same whatever step count its neighbour holds, and the later member's
    is the one it takes beside a neighbour of its own count."""
    online = initial_params(BASE, 2)

    def stepped(counts):
        pop = population([BASE, BASE.replace(seed=1)], online)
        for m, count in enumerate(counts):
            pop.set_member_state(m, pop.member_state(m)._replace(adam_step=np.float32(count)))
        pop.burst(cartpole_rows(np.random.default_rng(4), 2, 1), np.ones(2, bool))
        return pop

    apart, early, late = stepped([0, 50]), stepped([0, 0]), stepped([50, 50])
    assert_members_identical(apart, early, [0])
    for x, y in zip(apart.member_state(1), late.member_state(1)):
        np.testing.assert_array_equal(x, y)
    # and the count matters: one step from m = v = 0 moves by lr (1 - b1) g / (1 - b1^(t+1))
    # over sqrt((1 - b2) g^2 / (1 - b2^(t+1))): t = 50 moves less than t = 0.
    moved = [np.abs(p.member_state(1).online - online[1]).max() for p in (early, late)]
    assert moved[1] < moved[0]


def test_an_inactive_member_is_left_alone_and_changes_no_other(mixed_run):
    online, base, base_metrics = mixed_run
    start = population(MIXED, online).member_state(1)
    paused, metrics = run(MIXED, online, active=np.array([True, False, True, True, True]))
    for x, y in zip(paused.member_state(1), start):
        np.testing.assert_array_equal(x, y)
    assert np.isnan(metrics[:, 1]).all()
    others = [0, 2, 3, 4]
    assert_members_identical(base, paused, others)
    np.testing.assert_array_equal(metrics[:, others], base_metrics[:, others])


def test_nan_and_inf_parameters_of_a_member_change_no_other(mixed_run):
    online, base, base_metrics = mixed_run
    broken = online.copy()
    broken[0, :5] = np.nan  # first-kernel entries: every Q of member 0 is NaN
    broken[3, -1] = np.inf  # a bias of the Q head: member 3's TD errors are inf - inf
    bad, bad_metrics = run(MIXED, broken)
    assert np.isnan(bad_metrics[:, 0, 0]).all() and not np.isfinite(bad_metrics[:, 3, 0]).any()
    assert_members_identical(base, bad, [1, 2, 4])
    np.testing.assert_array_equal(bad_metrics[:, [1, 2, 4]], base_metrics[:, [1, 2, 4]])


@pytest.mark.parametrize("jit", [False, True])
def test_a_nan_q_value_of_an_action_no_transition_took_is_a_nan_metric(jit):
    # XLA's max skips NaNs: a network NaN for an action no sampled transition took showed a
    # finite q_abs_max and bootstrapped from the other actions (a finite loss), and the
    # divergence guard let it through, where the numpy learners and TensorFlow without XLA
    # stop the run.
    config = BASE.replace(jit_compile=jit)
    flat = initial_params(config, 1)[0]
    flat[-1] = np.nan  # the Q head's bias of action 1, online and target: every Q(s, 1)
    rows = cartpole_rows(np.random.default_rng(0), 1, 3)
    rows[..., row_layout(OBS_DIM).action] = 0  # no transition took action 1
    for got in (
        single(config, flat).burst(rows[0]),
        population([config], flat[None]).burst(rows, np.ones(1, bool))[0],
    ):
        metrics = dict(zip(METRIC_NAMES, got))
        assert np.isnan(metrics["q_abs_max"]) and np.isnan(metrics["loss"]), metrics


def test_member_states_round_trip_and_continue_identically():
    online = initial_params(BASE, len(MIXED))
    pop, _ = run(MIXED, online, bursts=2)
    saved = [pop.member_state(m) for m in range(len(MIXED))]
    steps = pop.grad_steps
    rows = cartpole_rows(np.random.default_rng(3), len(MIXED), 3)
    active = np.ones(len(MIXED), bool)
    first = pop.burst(rows, active)
    after = [pop.member_state(m) for m in range(len(MIXED))]
    for m, state in enumerate(saved):  # back to the saved states, every array of them
        pop.set_member_state(m, state)
    np.testing.assert_array_equal(pop.grad_steps, steps)
    np.testing.assert_array_equal(pop.online, np.stack([s.online for s in saved]))
    np.testing.assert_array_equal(pop.burst(rows, active), first)
    for m, state in enumerate(after):
        for x, y in zip(pop.member_state(m), state):
            np.testing.assert_array_equal(x, y)
    assert pop.grad_steps.tolist() == [9] * len(MIXED)
    assert isinstance(pop.member_state(0).grad_steps, int)


def test_zero_gradients_are_exactly_the_clipped_delta_samples_beyond_the_bound():
    # All parameters 0: Q = 0, and with every transition terminal td_error = reward exactly.
    # Two of the six rewards lie beyond the bound 1 and two exactly on it, where the clip still
    # passes the gradient (tf.clip_by_value).
    configs = [BASE.replace(loss=loss) for loss in LOSS_NAMES]
    online = np.zeros_like(initial_params(BASE, len(configs)))
    at = row_layout(OBS_DIM)
    rows = np.zeros((len(configs), 1, 6, at.width), np.float32)
    rows[..., at.reward] = [-3.0, -1.0, -0.5, 0.5, 1.0, 2.0]
    rows[..., at.terminated] = 1.0
    metrics = population(configs, online).burst(rows, np.ones(len(configs), bool))
    zero = metrics[:, METRIC_NAMES.index("zero_grad_fraction")]
    np.testing.assert_allclose(
        zero, [0.0 if loss != "clipped_delta" else 2 / 6 for loss in LOSS_NAMES]
    )
    np.testing.assert_allclose(metrics[:, METRIC_NAMES.index("over_bound_fraction")], 2 / 6)


def test_members_that_cannot_share_a_program_or_wrong_shapes_are_refused():
    shapes, acts = shapes_and_activations(BASE)
    online = initial_params(BASE, 2)
    with pytest.raises(ConfigError, match="batch_size"):
        TFPopulationLearner(shapes, acts, [BASE, BASE.replace(batch_size=64)], online)
    with pytest.raises(ValueError, match="online must be"):
        TFPopulationLearner(shapes, acts, [BASE], online)
    with pytest.raises(ValueError, match="activation"):
        TFPopulationLearner(shapes, ["relu", "swish", "linear"], [BASE, BASE], online)


def test_members_stepped_in_groups_give_the_numbers_of_one_group(monkeypatch):
    # Big networks run their members in groups, each through all K steps before the next
    # (tf_population.group_size): only the order of independent work changes, so each member's
    # numbers must stay those of the one-group program, to float32 rounding at most.
    import dqn.tf_population as tp

    online = initial_params(BASE, len(MIXED))
    one_group, one_metrics = run(MIXED, online)
    monkeypatch.setattr(tp, "group_size", lambda shapes: 2)  # groups of 2, 2 and 1
    grouped, grouped_metrics = run(MIXED, online)
    np.testing.assert_allclose(grouped_metrics, one_metrics, rtol=1e-5, atol=1e-6)
    for m in range(len(MIXED)):
        for x, y in zip(grouped.member_state(m), one_group.member_state(m)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_a_group_of_stopped_members_runs_no_step_and_changes_no_other(monkeypatch):
    """Groups of 2, 2 and 1, the first all stopped: its loop runs no step (a counter in the
    step counts the member-steps run: 3 members' worth of the 5), and the other members keep
    the bits of the run with every member active."""
    import tensorflow as tf

    import dqn.tf_population as tp

    trips = tf.Variable(0)
    make_step = tp.make_step

    def counted_step(*args):
        step = make_step(*args)

        def counted(state, rows):
            trips.assign_add(tf.shape(rows)[0])  # one per member the step runs
            return step(state, rows)

        return counted

    monkeypatch.setattr(tp, "group_size", lambda shapes: 2)
    monkeypatch.setattr(tp, "make_step", counted_step)
    online = initial_params(BASE, len(MIXED))
    everyone, everyone_metrics = run(MIXED, online)
    all_trips = int(trips.numpy())
    trips.assign(0)
    paused, metrics = run(MIXED, online, active=np.array([False, False, True, True, True]))
    assert all_trips > 0 and int(trips.numpy()) * 5 == all_trips * 3
    assert np.isnan(metrics[:, :2]).all()
    assert_members_identical(everyone, paused, [2, 3, 4])
    np.testing.assert_array_equal(metrics[:, 2:], everyone_metrics[:, 2:])


def test_the_group_size_keeps_one_groups_state_within_the_budget():
    big = [(4, 256), (256,), (256, 256), (256,), (256, 2), (2,)]  # 67,586 parameters
    small = [(4, 64), (64,), (64, 64), (64,), (64, 2), (2,)]  # 4,546
    from dqn.tf_population import GROUP_BYTES, group_size

    assert group_size(big) == 4 and 4 * 16 * 67_586 <= GROUP_BYTES < 5 * 16 * 67_586
    assert group_size(small) == 61
    assert group_size([(4, 4096), (4096,), (4096, 4096), (4096,)]) == 1


@pytest.mark.parametrize("jit", [False, True])
def test_a_narrow_layers_gradient_is_the_matmuls_closed_form(jit):
    """y = x W per member: dL/dx = dy W^T and dL/dW = x^T dy (float64 reference), through the
    column-by-column backward pass that Q-heads of <= NARROW actions take."""
    import tensorflow as tf

    from dqn.tf_population import NARROW, narrow_matmul

    rng = np.random.default_rng(0)
    for out in (1, 2, NARROW):
        x = rng.normal(size=(3, 5, 7)).astype(np.float32)
        w = rng.normal(size=(3, 7, out)).astype(np.float32)
        dy = rng.normal(size=(3, 5, out)).astype(np.float32)

        @tf.function(jit_compile=jit)
        def grads(x, w, dy):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = narrow_matmul(x, w)
                loss = tf.reduce_sum(y * dy)
            return (y, *tape.gradient(loss, [x, w]))

        y, dx, dw = (t.numpy() for t in grads(tf.constant(x), tf.constant(w), tf.constant(dy)))
        x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
        np.testing.assert_allclose(y, x64 @ w64, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, dy64 @ w64.transpose(0, 2, 1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dw, x64.transpose(0, 2, 1) @ dy64, rtol=1e-5, atol=1e-5)


def test_past_the_end_of_its_schedule_a_members_learning_rate_stays_at_its_end():
    # A 4-step schedule from 1e-3 to 0 (learning_rate_at's min(1, g / total)): from the 4th
    # step on the rate is exactly 0 and Adam moves no parameter; a rate past the end would be
    # negative and move them back. The second member's constant rate keeps it moving.
    # 6 - 2 = 4 gradient steps; a target sync within them (the config requires one).
    short = BASE.replace(total_env_steps=6, learning_rate_end=0.0, target_update_every_grad_steps=2)
    configs = [short, short.replace(learning_rate_end=None)]  # a constant rate keeps moving
    pop = population(configs, initial_params(BASE, 2))
    rng, active = np.random.default_rng(0), np.ones(2, bool)
    pop.burst(cartpole_rows(rng, 2, 4), active)
    frozen, moving = pop.online[0].copy(), pop.online[1].copy()
    pop.burst(cartpole_rows(rng, 2, 5), active)
    assert pop.grad_steps.tolist() == [9, 9]
    np.testing.assert_array_equal(pop.online[0], frozen)
    assert not np.array_equal(pop.online[1], moving)


def test_a_member_stopped_and_restarted_between_bursts_of_one_learner():
    # The active mask of each call counts, not the first one the learner saw: stopped, member 0
    # keeps its state bit for bit and reports NaN; active again, it takes its steps again.
    online = initial_params(BASE, 2)
    pop = population([BASE, BASE.replace(seed=1)], online)
    rng = np.random.default_rng(0)
    pop.burst(cartpole_rows(rng, 2, 1), np.ones(2, bool))
    before = pop.member_state(0)
    metrics = pop.burst(cartpole_rows(rng, 2, 2), np.array([False, True]))
    assert np.isnan(metrics[0]).all() and np.isfinite(metrics[1]).all()
    for got, want in zip(pop.member_state(0), before):
        np.testing.assert_array_equal(got, want)
    assert pop.grad_steps.tolist() == [1, 3]
    metrics = pop.burst(cartpole_rows(rng, 2, 1), np.ones(2, bool))
    assert np.isfinite(metrics).all() and pop.grad_steps.tolist() == [2, 4]


def test_a_soft_sync_with_tau_above_one_half_mixes_the_target():
    # target <- tau online + (1 - tau) target for tau = 0.75 (soft, though above one half);
    # the member with tau = 1 copies.
    configs = [
        BASE.replace(target_tau=0.75, target_update_every_grad_steps=1),
        BASE.replace(target_tau=1.0, target_update_every_grad_steps=1, seed=1),
    ]
    online = initial_params(BASE, 2)
    pop = population(configs, online)
    pop.burst(cartpole_rows(np.random.default_rng(0), 2, 1), np.ones(2, bool))
    soft, hard = pop.member_state(0), pop.member_state(1)
    mixed = 0.75 * soft.online.astype(np.float64) + 0.25 * online[0].astype(np.float64)
    np.testing.assert_allclose(soft.target, mixed, rtol=1e-6, atol=1e-7)
    assert not np.allclose(soft.target, soft.online, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(hard.target, hard.online)


def test_a_burst_refuses_rows_or_a_mask_that_are_not_one_per_member():
    pop = population([BASE, BASE.replace(seed=1)], initial_params(BASE, 2))
    rows = cartpole_rows(np.random.default_rng(0), 2, 1)
    with pytest.raises(ValueError, match="must be per member"):
        pop.burst(rows[:1], np.ones(2, bool))
    with pytest.raises(ValueError, match="must be per member"):
        pop.burst(rows, np.ones(3, bool))


def test_a_nan_td_error_ranks_last_in_a_members_quantiles_without_xla():
    # TensorFlow's own sort (no XLA) leaves a NaN where it lands: one NaN reward must still be
    # the largest |TD error| (the max and the 99% quantile of 32), and the median and 90%
    # quantile those of the sorted others, written out here in float64 from the parameters.
    from dqn.numpy_learner import quantile_ranks

    config = BASE.replace(jit_compile=False)
    online = initial_params(config, 1)
    rows = cartpole_rows(np.random.default_rng(0), 1, 1)
    at = row_layout(OBS_DIM)
    rows[0, 0, 5, at.reward] = np.nan
    shapes, _ = shapes_and_activations(config)
    offsets = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])
    flat = online[0].astype(np.float64)
    params = [flat[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]

    def q_of(x):
        for i in range(0, len(params), 2):
            x = x @ params[i] + params[i + 1]
            x = np.maximum(x, 0.0) if i < len(params) - 2 else x
        return x

    batch = rows[0, 0].astype(np.float64)
    actions = batch[:, at.action].astype(int)
    next_v = q_of(batch[:, at.next_obs]).max(axis=1)  # the target network is the online one
    target = batch[:, at.reward] + config.gamma * (1 - batch[:, at.terminated]) * next_v
    td = target - q_of(batch[:, at.obs])[np.arange(BATCH), actions]
    p50, p90, p99 = np.sort(np.abs(td))[quantile_ranks(BATCH)]  # NaN last
    metrics = dict(zip(METRIC_NAMES, population([config], online).burst(rows, np.ones(1, bool))[0]))
    assert np.isnan(p99) and np.isnan(metrics["td_error_abs_p99"])
    assert np.isnan(metrics["td_error_abs_max"])
    np.testing.assert_allclose(metrics["td_error_abs_p50"], p50, rtol=1e-5)
    np.testing.assert_allclose(metrics["td_error_abs_p90"], p90, rtol=1e-5)
