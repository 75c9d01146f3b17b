"""The numpy learner: its gradient against finite differences, its update against the
TensorFlow learner, and the agent, save/load and training with ``learner: numpy``."""

import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig
from dqn.config import LOSS_NAMES
from dqn.numpy_learner import NumpyLearner
from tests.test_agent import ACTIONS, OBS, SMALL, make_replay

SHAPES = [(3, 5), (5,), (5, 4), (4,), (4, 2), (2,)]


def float64_learner(config, seed=0):
    rng = np.random.default_rng(seed)
    size = sum(int(np.prod(s)) for s in SHAPES)
    flat = rng.normal(scale=0.7, size=size)
    learner = NumpyLearner(
        SHAPES, [config.activation, config.activation, "linear"], config, flat, dtype=np.float64
    )
    learner.target[:] = flat + rng.normal(scale=0.1, size=size)  # a target that differs
    return learner


def batch(seed=1, n=16, td_scale=1.0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, 3)),
        rng.integers(0, 2, n),
        td_scale * rng.normal(size=n),
        rng.normal(size=(n, 3)),
        (rng.random(n) < 0.2).astype(np.float64),
    )


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "elu"])
@pytest.mark.parametrize("double_dqn", [False, True])
def test_the_gradient_matches_central_differences(loss, activation, double_dqn):
    config = DQNConfig(loss=loss, activation=activation, double_dqn=double_dqn, loss_bound=1.0)
    learner = float64_learner(config)
    data = batch(td_scale=3.0)  # rewards spread TD errors on both sides of the bound
    _, grads, td_error, *_ = learner.loss_and_grad(*data)
    grads = grads.copy()
    # clipped_grad's backward rule is Huber's derivative by design, not its value's.
    value_of = "huber" if loss == "clipped_grad" else loss
    check = float64_learner(config.replace(loss=value_of))

    def loss_at(flat):
        check.online[:] = flat
        return check.loss_and_grad(*data)[0]

    flat, eps = check.online.copy(), 1e-6
    numeric = np.array(
        [(loss_at(flat + eps * e) - loss_at(flat - eps * e)) / (2 * eps) for e in np.eye(len(flat))]
    )
    np.testing.assert_allclose(grads, numeric, rtol=1e-6, atol=1e-8)
    if loss == "clipped_delta":  # the bug: samples beyond the bound give exactly zero gradient
        assert (np.abs(td_error) > 1.0).any()


def closed_form(loss, e, b):
    """(value, d value / d e) of each element-wise loss at bound b, written out."""
    inside = np.abs(e) <= b
    if loss == "l2":
        return 0.5 * e**2, e
    if loss == "clipped_delta":  # the 2016 bug: clip, then square; zero gradient outside
        return 0.5 * np.clip(e, -b, b) ** 2, np.where(inside, e, 0.0)
    if loss == "huber":
        return np.where(inside, 0.5 * e**2, b * (np.abs(e) - 0.5 * b)), np.clip(e, -b, b)
    assert loss == "clipped_grad"  # l2's value, Huber's gradient
    return 0.5 * e**2, np.clip(e, -b, b)


@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("bound", [0.5, 2.0])
def test_the_loss_and_its_gradient_per_sample_are_the_closed_forms_at_the_bound(loss, bound):
    # loss = mean over the batch of f(e), e = target - Q(s, a); d loss / d Q(s, a) = -f'(e) / n.
    # (Every other test of this learner held the bound at 1, where ignoring it changes nothing.)
    learner = float64_learner(DQNConfig(loss=loss, loss_bound=bound))
    value, _, td_error, dq_sa, *_ = learner.loss_and_grad(*batch(td_scale=3.0))
    size = np.abs(td_error)  # some between the bound and 1, where taking 1 for it goes wrong
    assert ((size > min(bound, 1)) & (size < max(bound, 1))).any() and (size > bound).any()
    f, df = closed_form(loss, td_error, bound)
    assert value == pytest.approx(f.mean(), rel=1e-12)
    np.testing.assert_allclose(dq_sa, -df / len(td_error), rtol=1e-12, atol=1e-15)


def test_relu_passes_no_gradient_at_exactly_zero_like_tensorflows_relu_grad():
    from dqn.activations import ACTIVATION_GRADS, ACTIVATIONS

    z = np.array([-1.0, 0.0, 1.0])
    assert (1.0 * ACTIVATION_GRADS["relu"](z, ACTIVATIONS["relu"](z))).tolist() == [0.0, 0.0, 1.0]


def test_an_n_step_target_bootstraps_with_gamma_to_the_n():
    # Stored rewards are already n-step sums (dqn.nstep): the only change in the target is the
    # discount of the bootstrapped term, gamma^n. So n = 3 with gamma 0.9 must give exactly the
    # TD errors of n = 1 with gamma 0.729.
    data = batch()
    three = float64_learner(DQNConfig(n_step=3, gamma=0.9)).loss_and_grad(*data)[2]
    one = float64_learner(DQNConfig(n_step=1, gamma=0.9**3)).loss_and_grad(*data)[2]
    np.testing.assert_array_equal(three, one)
    plain = float64_learner(DQNConfig(n_step=1, gamma=0.9)).loss_and_grad(*data)[2]
    assert not np.array_equal(three, plain)


def test_zero_gradient_samples_are_exactly_those_beyond_the_bound_for_clipped_delta():
    learner = float64_learner(DQNConfig(loss="clipped_delta", activation="tanh"))
    _, _, td_error, dq_sa, *_ = learner.loss_and_grad(*batch(td_scale=3.0))
    np.testing.assert_array_equal(dq_sa == 0.0, np.abs(td_error) > 1.0)


def _pair(config, replay, steps=12, k=3):
    tf_agent = DQNAgent(OBS, ACTIONS, config)
    np_agent = DQNAgent(OBS, ACTIONS, config.replace(learner="numpy"))
    for _ in range(steps):
        rows = replay.sample_rows(config.batch_size, k)
        tf_metrics, np_metrics = tf_agent.update_rows(rows), np_agent.update_rows(rows)
    return tf_agent, np_agent, tf_metrics, np_metrics


@pytest.mark.parametrize(
    "changes",
    [
        {"loss": "huber"},
        {"loss": "clipped_delta"},
        {"loss": "l2", "max_grad_norm": 0.5},
        {
            "loss": "clipped_grad",
            "double_dqn": True,
            "target_tau": 0.25,
            "target_update_every_grad_steps": 5,
        },
        {"activation": "tanh", "learning_rate_end": None},
        {"diagnostics": False},
        {"n_step": 3, "gamma": 0.9},
        {"adam_epsilon": 0.1},  # large enough to change each step: either learner must use it
    ],
)
def test_the_numpy_learner_follows_the_tensorflow_learner(changes):
    config = SMALL.replace(total_env_steps=2_000, **changes)
    tf_agent, np_agent, tf_metrics, np_metrics = _pair(config, make_replay(256))
    assert np_agent.grad_steps == tf_agent.grad_steps == 36
    for name in ("online", "target", "adam_m", "adam_v"):
        a, b = getattr(tf_agent.state, name), getattr(np_agent.state, name)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np_metrics, tf_metrics, rtol=1e-4, atol=1e-6)
    obs = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    np.testing.assert_allclose(np_agent.q_values(obs), tf_agent.q_values(obs), rtol=1e-4, atol=1e-6)


def test_a_diverging_numpy_learner_warns_of_nothing_and_its_metrics_say_it():
    # The divergence guard reads non-finite metrics and stops the run in one line, as with the
    # TensorFlow learner; numpy's overflow warnings came first ("overflow encountered in matmul").
    config = SMALL.replace(learner="numpy", learning_rate=1e30, learning_rate_end=None)
    agent = DQNAgent(OBS, ACTIONS, config)
    replay = make_replay()
    with np.errstate(all="raise"):
        metrics = [agent.update_rows(replay.sample_rows(SMALL.batch_size, 4)) for _ in range(5)]
    assert not np.isfinite(metrics[-1]).all()


def test_the_keras_views_and_acting_see_the_numpy_learners_weights():
    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner="numpy"))
    replay = make_replay()
    before = agent.q_values(np.zeros(3, np.float32)).copy()
    agent.update_rows(replay.sample_rows(SMALL.batch_size, 4))
    after = agent.q_values(np.zeros(3, np.float32))
    assert not np.array_equal(before, after)  # acting follows the in-place update
    keras_q = np.asarray(agent.online(np.zeros((1, 3), np.float32)))[0]
    np.testing.assert_allclose(keras_q, after, rtol=1e-5, atol=1e-6)


def test_save_and_load_continue_a_numpy_learner_exactly(tmp_path):
    config = SMALL.replace(learner="numpy")
    agent = DQNAgent(OBS, ACTIONS, config)
    replay = make_replay()
    for _ in range(3):
        agent.update_rows(replay.sample_rows(config.batch_size, 2))
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    assert loaded.grad_steps == agent.grad_steps == 6
    rows = replay.sample_rows(config.batch_size, 2)
    np.testing.assert_array_equal(loaded.update_rows(rows), agent.update_rows(rows))
    for a, b in zip(loaded.state, agent.state):
        np.testing.assert_array_equal(a, b)


def test_a_network_that_is_not_a_dense_chain_is_refused_with_the_alternative():
    import keras

    def two_inputs_net(obs_dim, n_actions):
        x = keras.Input((obs_dim,))
        h = keras.layers.Dense(8, activation="relu")(x)
        q = keras.layers.Dense(n_actions)(keras.layers.Concatenate()([x, h]))
        return keras.Model(x, q)

    with pytest.raises(ValueError, match="learner 'tensorflow'"):
        DQNAgent(OBS, ACTIONS, SMALL.replace(learner="numpy"), two_inputs_net)


def test_a_numpy_learner_run_resumes_from_a_checkpoint_to_the_same_metrics(tmp_path):
    import shutil

    from dqn.loop import resume, train
    from tests.conftest import TINY_RUN

    config = DQNConfig(**TINY_RUN).replace(learner="numpy")
    full = tmp_path / "full"
    train(config, run_dir=full, progress=False, log_tensorboard=False)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "config.yaml", run)
    shutil.copytree(full / "checkpoints" / "step-000000200", run / "checkpoints" / "step-000000200")
    result = resume(run, progress=False, log_tensorboard=False)
    assert result.agent.grad_steps > 0
    assert (run / "metrics.csv").read_bytes() == (full / "metrics.csv").read_bytes()


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("jit", [None, False, True])  # eager, graph, XLA
def test_sort_nan_last_sorts_as_numpy_does(axis, jit):
    import tensorflow as tf

    from dqn.tf_learner import sort_nan_last

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 0], x[1, 1], x[4] = np.inf, -np.inf, np.nan  # infinities, and a row of NaN only
    fn = sort_nan_last if jit is None else tf.function(sort_nan_last, jit_compile=jit)
    got = fn(tf.constant(x), axis=axis).numpy()
    np.testing.assert_array_equal(got, np.sort(x, axis=axis))  # NaNs equal NaNs here


@pytest.mark.parametrize(
    "learner, jit", [("tensorflow", False), ("tensorflow", True), ("numpy", False)]
)
def test_a_nan_td_error_ranks_last_in_every_learners_quantiles(learner, jit):
    """One NaN reward makes one TD error NaN: it is the batch's max and its 99% quantile (rank
    64 of 64), and the median and 90% quantile are those of the other TD errors with the NaN
    ranked last, whichever learner or compiler computes them."""
    from dqn.numpy_learner import quantile_ranks
    from dqn.replay import row_layout
    from dqn.step_metrics import METRIC_NAMES

    config = SMALL.replace(learner=learner, jit_compile=jit)  # one-step targets, no double DQN
    agent = DQNAgent(OBS, ACTIONS, config)
    at, n = row_layout(3), 64
    rows = make_replay(n).sample_rows(n, 1).copy()[0]  # [64, W]
    rows[5, at.reward] = np.nan
    # The TD errors before the step, the target network being the online one at the start.
    q = agent.q_values(rows[:, at.obs]).astype(np.float64)
    next_q = agent.q_values(rows[:, at.next_obs]).max(axis=1)
    actions = rows[:, at.action].astype(int)
    target = rows[:, at.reward] + config.gamma * (1 - rows[:, at.terminated]) * next_q
    expected = np.sort(np.abs(target - q[np.arange(n), actions]))  # NaN last
    metrics = dict(zip(METRIC_NAMES, agent.learner.burst(rows[None])))
    p50, p90, p99 = expected[quantile_ranks(n)]
    assert np.isnan(p99) and np.isnan(metrics["td_error_abs_p99"])
    assert np.isnan(metrics["td_error_abs_max"])
    np.testing.assert_allclose(metrics["td_error_abs_p50"], p50, rtol=1e-5)
    np.testing.assert_allclose(metrics["td_error_abs_p90"], p90, rtol=1e-5)


def test_both_learners_count_the_same_samples_over_the_bound_and_without_gradient():
    # |TD error| exactly at the bound (1 and -1) is not over it; 2 and -3 are. The gradients
    # are clipped_delta's: exactly 0 over the bound.
    from types import SimpleNamespace

    import tensorflow as tf

    from dqn.step_metrics import METRIC_NAMES
    from dqn.tf_learner import LossGrad, _step_metrics

    config = DQNConfig(loss_bound=1.0)
    td = np.array([-1.0, 1.0, 0.5, 2.0, -3.0], np.float32)
    dq_sa = np.array([0.2, -0.2, -0.1, 0.0, 0.0], np.float32)
    q = np.array([[1.0, -4.0]] * 5, np.float32)
    q_sa = np.ones(5, np.float32)
    ours = NumpyLearner._metrics(SimpleNamespace(config=config), 0.5, td, dq_sa, q, q_sa, 2.0)
    out = LossGrad(*(tf.constant(a) for a in (0.5, [0.0], td, dq_sa, q, q_sa)))
    theirs = _step_metrics(out, tf.constant(2.0), config).numpy()
    for row in (ours, theirs):
        metric = dict(zip(METRIC_NAMES, row.tolist()))
        assert metric["over_bound_fraction"] == pytest.approx(2 / 5)
        assert metric["zero_grad_fraction"] == pytest.approx(2 / 5)
        assert metric["td_error_abs_max"] == 3.0 and metric["q_abs_max"] == 4.0
    np.testing.assert_array_equal(ours, theirs)


def test_the_learning_rate_holds_its_end_value_once_its_schedule_is_over():
    # An agent updated past the run's planned gradient steps (agent.update, a longer run from
    # it) keeps learning_rate_end: the decay carried on would turn the rate negative.
    from dqn.config import total_grad_steps

    config = DQNConfig(learning_rate=1e-3, learning_rate_end=1e-4)
    at_end, beyond = float64_learner(config), float64_learner(config)
    at_end.grad_steps, beyond.grad_steps = total_grad_steps(config), 5 * total_grad_steps(config)
    at_end.step(*batch())
    beyond.step(*batch())
    np.testing.assert_array_equal(beyond.online, at_end.online)


def test_a_probed_gradient_and_a_read_state_stay_as_they_were_after_more_updates():
    # probe_gradient returns the gradient at the parameters of the call, and state the arrays
    # of that moment (a checkpoint writes them): neither may be a view that later steps move.
    import copy

    from dqn.replay import Batch

    learner = float64_learner(DQNConfig(target_update_every_grad_steps=1))
    data = batch()
    expected = learner.loss_and_grad(*data)[1].copy()
    probe = learner.probe_gradient(Batch(*data))
    state = learner.state
    saved = copy.deepcopy(state)
    for seed in (2, 3):
        learner.step(*batch(seed=seed))
    np.testing.assert_array_equal(probe, expected)
    assert not np.array_equal(learner.loss_and_grad(*data)[1], expected)  # the parameters moved
    for name in ("online", "target", "adam_m", "adam_v"):
        np.testing.assert_array_equal(getattr(state, name), getattr(saved, name), err_msg=name)
        assert not np.array_equal(getattr(learner, name), getattr(saved, name)), name
    assert (state.adam_step, state.grad_steps) == (0, 0) and learner.grad_steps == 2


@pytest.mark.parametrize("bound", [0.5, 2.0])
def test_both_learners_count_samples_over_the_configured_bound(bound):
    # over_bound_fraction = mean(|td_error| > loss_bound): at bound 0.5 five of these eight
    # samples (0.5 is on the bound), at bound 2 two (|2| is on the bound, not over it).
    from types import SimpleNamespace

    import tensorflow as tf

    from dqn.step_metrics import METRIC_NAMES
    from dqn.tf_learner import LossGrad, _step_metrics

    config = DQNConfig(loss_bound=bound)
    td = np.array([-3.0, -2.0, -1.0, -0.5, 0.25, 0.5, 1.5, 2.5], np.float32)
    expected = {0.5: 5 / 8, 2.0: 2 / 8}[bound]
    assert np.mean(np.abs(td) > bound) == expected
    dq_sa, q_sa = np.full(8, 0.1, np.float32), np.ones(8, np.float32)
    q = np.ones((8, 2), np.float32)
    ours = NumpyLearner._metrics(SimpleNamespace(config=config), 0.5, td, dq_sa, q, q_sa, 1.0)
    out = LossGrad(*(tf.constant(a) for a in (0.5, [0.0], td, dq_sa, q, q_sa)))
    theirs = _step_metrics(out, tf.constant(1.0), config).numpy()
    j = METRIC_NAMES.index("over_bound_fraction")
    assert ours[j] == theirs[j] == np.float32(expected)


def test_a_soft_sync_with_tau_near_one_mixes_the_target():
    # target <- tau online + (1 - tau) target at every sync; only tau == 1 copies.
    learner = float64_learner(DQNConfig(target_tau=0.75, target_update_every_grad_steps=1))
    before = learner.target.copy()
    learner.step(*batch())
    np.testing.assert_allclose(learner.target, 0.75 * learner.online + 0.25 * before, rtol=1e-12)
    assert not np.allclose(learner.target, learner.online)


@pytest.mark.parametrize("double_dqn", [False, True])
def test_both_learners_probe_the_same_gradient_of_a_batch_with_terminal_transitions(double_dqn):
    # The per-layer gradient-norm diagnostics read probe_gradient: each learner's must be the
    # gradient of the loss it steps with, terminal transitions not bootstrapped.
    from dqn.replay import Batch

    config = SMALL.replace(double_dqn=double_dqn, target_update_every_grad_steps=1)
    tf_agent, np_agent, *_ = _pair(config, make_replay(64), steps=2, k=1)
    rng = np.random.default_rng(3)
    n = 16
    data = Batch(
        rng.normal(size=(n, 3)).astype(np.float32),
        rng.integers(0, 2, n),
        rng.normal(size=n).astype(np.float32),
        rng.normal(size=(n, 3)).astype(np.float32),
        (np.arange(n) % 2).astype(np.float32),  # every other transition terminal
    )
    want = np_agent.learner.probe_gradient(data)
    np.testing.assert_allclose(tf_agent.learner.probe_gradient(data), want, rtol=1e-4, atol=1e-6)
    # Not bootstrapping any of them would be another gradient.
    open_ended = np_agent.learner.probe_gradient(data._replace(terminated=np.zeros(n, np.float32)))
    assert not np.allclose(open_ended, want, rtol=1e-3, atol=1e-5)
