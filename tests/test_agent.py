"""DQNAgent: spaces, separate networks, acting, and an exact save/load round trip."""

import json
import re
import warnings
import zipfile
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import pytest

from dqn import DQNAgent, DQNConfig
from dqn.errors import CheckpointError, UnsupportedSpaceError
from dqn.replay import ReplayBuffer

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTIONS = gym.spaces.Discrete(2)
# One-step targets (the default is 10-step): the update as these tests write it out; the tests
# that are about n-step returns set n_step themselves.
SMALL = DQNConfig(
    hidden_sizes=(16, 16),
    batch_size=8,
    learning_rate=1e-2,
    max_grad_norm=5.0,
    n_step=1,
    jit_compile=False,
)

# A schedule of 300 env steps past learning_starts: 3 bursts of 2 gradient steps, a target sync
# every 2 (its learning rate's end is each test's).
SHORT_SCHEDULE = SMALL.replace(
    total_env_steps=1_300,
    learning_starts_env_steps=1_000,
    train_every_env_steps=100,
    gradient_steps_per_train=2,
    target_update_every_grad_steps=2,
)


def make_replay(n=64, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(n, 3, np.random.default_rng(seed))
    for _ in range(n):
        buf.add(
            rng.normal(size=3),
            rng.integers(2),
            rng.normal(),
            rng.normal(size=3),
            rng.random() < 0.1,
        )
    return buf


@pytest.mark.parametrize(
    "obs_space, act_space, message",
    [
        (gym.spaces.Box(0, 255, (84, 84, 3), np.uint8), ACTIONS, "1-D Box"),
        (gym.spaces.Dict({"a": OBS}), ACTIONS, "1-D Box"),
        (OBS, gym.spaces.Box(-1, 1, (1,)), "Discrete action space"),
        (OBS, gym.spaces.MultiDiscrete([2, 2]), "Discrete action space"),
        (
            OBS,
            gym.spaces.Discrete(3, start=1),
            r"must start at 0; give the env Discrete\(3\) and add 1 ",
        ),
        (gym.spaces.Box(-1, 1, (0,), np.float32), ACTIONS, "it has no dimensions"),
    ],
)
def test_unsupported_spaces_are_refused(obs_space, act_space, message):
    with pytest.raises(UnsupportedSpaceError, match=message):
        DQNAgent(obs_space, act_space, SMALL)


def test_online_and_target_share_no_variables():
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    assert agent.online is not agent.target
    assert not {id(v) for v in agent.online.weights} & {id(v) for v in agent.target.weights}
    agent.update(make_replay().sample(8, num_batches=3))  # online moves, target (sync 128) stays
    online_w, target_w = agent.online.get_weights(), agent.target.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(online_w, target_w))


@pytest.mark.parametrize("learner", ["tensorflow", "numpy", "process"])
def test_the_keras_models_are_views_of_the_weights_the_agent_acts_with(
    tmp_path, learner, monkeypatch
):
    # A model edited through Keras was saved while the agent acted with its own weights.
    from dqn import agent as agent_module
    from dqn import learner_process

    if learner == "process":  # TF ran before the agent could set its threads; bursts that pay
        monkeypatch.setattr(agent_module, "configure_tensorflow", lambda threads: False)
        monkeypatch.setattr(learner_process, "worth_a_process", lambda config, shapes: True)
    agent = DQNAgent(
        OBS, ACTIONS, SMALL.replace(learner={"process": "tensorflow"}.get(learner, learner))
    )
    assert isinstance(agent.learner, learner_process.ProcessLearner) == (learner == "process")
    try:
        agent.update(make_replay().sample(8, num_batches=3))
        _check_views(agent, tmp_path)
    finally:
        if learner == "process":
            agent.learner.close()


def _check_views(agent, tmp_path):
    state = agent.state
    obs = np.random.default_rng(1).normal(size=(32, 3)).astype(np.float32)
    for model in (agent.online, agent.target):
        model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    np.testing.assert_allclose(agent.online(obs).numpy(), agent.q_values(obs), rtol=1e-5, atol=1e-6)
    assert any(np.any(w != 0) for w in agent.target.get_weights())  # written again at the read
    agent.online.set_weights([np.zeros_like(w) for w in agent.online.get_weights()])
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    assert loaded.state.online.tobytes() == state.online.tobytes()
    assert loaded.state.target.tobytes() == state.target.tobytes()


def test_numpy_mirror_matches_the_keras_model():
    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(activation="tanh"))
    agent.update(make_replay().sample(8, num_batches=5))
    obs = np.random.default_rng(1).normal(size=(32, 3)).astype(np.float32)
    np.testing.assert_allclose(agent.q_values(obs), agent.online(obs).numpy(), rtol=1e-5, atol=1e-6)
    assert agent.q_values(obs[0]).shape == (2,)


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    obs = np.zeros(3, np.float32)
    greedy = int(np.argmax(agent.q_values(obs)))
    assert all(agent.act(obs, 0.0) == greedy for _ in range(20))
    picks = [agent.act(obs, 1.0) for _ in range(2000)]
    assert 0.45 < np.mean(picks) < 0.55
    # Greedy acting spends no exploration draw: evaluations leave training's draws as they are.
    draws = agent.rng.bit_generator.state
    agent.act(obs)
    agent.act_batch(np.zeros((4, 3), np.float32))
    assert agent.rng.bit_generator.state == draws


def test_act_batch_is_the_argmax_of_q_values_and_explores_an_epsilon_share_of_rows():
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    obs = np.random.default_rng(3).normal(size=(2000, 3)).astype(np.float32)
    greedy = agent.q_values(obs).argmax(axis=1)
    assert 0.05 < greedy.mean() < 0.95  # both actions are some rows' argmax: argmin would fail
    np.testing.assert_array_equal(agent.act_batch(obs), greedy)
    np.testing.assert_array_equal(agent.act_batch(obs[:5]), [agent.act(o) for o in obs[:5]])
    # epsilon 0.1: a tenth of the rows draw uniformly, so about 95% stay greedy (+-1.5% at
    # four standard deviations of the binomial).
    assert 0.93 < (agent.act_batch(obs, 0.1) == greedy).mean() < 0.97
    # epsilon 0.5 over 4,000 rows: a quarter leave the argmax, +-2.7% at four standard
    # deviations (0.68%); exploring at half the rate (12.5%) or at all of it (50%) is outside.
    many = np.random.default_rng(4).normal(size=(4000, 3)).astype(np.float32)
    left = (agent.act_batch(many, 0.5) != agent.q_values(many).argmax(axis=1)).mean()
    assert 0.223 < left < 0.277, left


def test_a_custom_network_that_is_not_a_chain_still_works():
    def build(obs_dim, n_actions):
        x = keras.Input((obs_dim,))
        h = keras.layers.Dense(8, activation="relu")(x)
        skip = keras.layers.Concatenate()([x, h])
        return keras.Model(x, keras.layers.Dense(n_actions)(skip))

    agent = DQNAgent(OBS, ACTIONS, SMALL, network_fn=build)
    metrics = agent.update(make_replay().sample(8, num_batches=2))
    assert np.isfinite(metrics["loss"])
    obs = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(agent.q_values(obs), agent.online(obs).numpy(), rtol=1e-5, atol=1e-6)
    assert agent.q_values(obs[0]).shape == (2,)  # one observation: one row of Q-values


def test_save_load_round_trip_gives_identical_q_values_and_next_update(tmp_path):
    replay = make_replay()
    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(target_update_every_grad_steps=3))
    agent.update(replay.sample(8, num_batches=4))
    for _ in range(7):  # draws before the save: a load that restarted the stream would differ
        agent.act(np.zeros(3, np.float32), 0.5)
    agent.save(tmp_path / "ckpt")
    loaded = DQNAgent.load(tmp_path / "ckpt")
    obs = np.random.default_rng(2).normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    np.testing.assert_array_equal(loaded.target.get_weights()[0], agent.target.get_weights()[0])
    assert loaded.grad_steps == agent.grad_steps == 4
    batch = replay.sample(8, num_batches=2)
    assert loaded.update(batch) == agent.update(batch)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    # Exploration continues the same random stream.
    assert loaded.rng.bit_generator.state == agent.rng.bit_generator.state
    assert [loaded.act(obs[0], 0.5) for _ in range(20)] == [
        agent.act(obs[0], 0.5) for _ in range(20)
    ]


def test_save_and_load_raise_no_warning_for_a_user_who_makes_warnings_errors(tmp_path):
    # Keras 3 converts each variable with np.array(x), which numpy 2 answers with a
    # DeprecationWarning (TensorFlow's __array__ takes no copy argument): a user's -W error or
    # pytest filterwarnings = error failed every save on it.
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.save(tmp_path / "ckpt")
        loaded = DQNAgent.load(tmp_path / "ckpt")
    assert loaded.grad_steps == agent.grad_steps


def test_loading_a_missing_or_incomplete_checkpoint_names_the_problem(tmp_path):
    with pytest.raises(CheckpointError, match="no run, checkpoint or agent folder"):
        DQNAgent.load(tmp_path / "nope")
    DQNAgent(OBS, ACTIONS, SMALL).save(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "optimizer.npz").unlink()
    with pytest.raises(CheckpointError, match="missing optimizer.npz"):
        DQNAgent.load(tmp_path / "ckpt")


def test_a_truncated_weights_file_is_reported_as_corrupt(tmp_path):
    DQNAgent(OBS, ACTIONS, SMALL).save(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "online.keras"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt saved agent in"):
        DQNAgent.load(tmp_path / "ckpt")


# ---------------------------------------------------------------------- bad arguments
def test_acting_refuses_observations_of_another_shape_and_epsilon_outside_0_1():
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    cases = [
        (lambda: agent.act(np.zeros((2, 3))), "act takes one observation of shape \\[3\\]"),
        (lambda: agent.act(np.zeros(4)), "act takes one observation"),
        (lambda: agent.act("hello"), "shape \\[3\\], got 'hello' \\(a str\\)"),
        (lambda: agent.act(None), "shape \\[3\\], got None \\(a NoneType\\)"),
        (lambda: agent.act(np.zeros(3), epsilon=1.5), "epsilon must be in \\[0, 1\\]"),
        (lambda: agent.act(np.zeros(3), epsilon=float("nan")), "epsilon must be in"),
        (lambda: agent.act_batch(np.zeros(3)), "act_batch takes observations of shape"),
        (lambda: agent.act_batch(np.zeros((2, 4))), "\\[n, 3\\], got \\[2, 4\\]"),
        (lambda: agent.act_batch(np.zeros((2, 3)), -0.1), "epsilon must be in"),
        (lambda: agent.q_values(np.zeros((2, 2, 3))), "shape \\[3\\] or \\[n, 3\\]"),
        (lambda: agent.q_values(np.zeros(6)), "got \\[6\\]"),
        # What env.reset() returns, and a ragged list: numpy's ValueError came from inside.
        (lambda: agent.act((np.zeros(3), {})), "env.reset\\(\\) returns \\(obs, info\\), give obs"),
        (lambda: agent.act_batch((np.zeros(3), {})), "\\[n, 3\\], got \\(array"),
        (lambda: agent.act_batch([[0, 0, 0], [0]]), "\\[n, 3\\], got \\[\\[0, 0, 0\\], \\[0\\]\\]"),
        (lambda: agent.act(np.zeros(3), epsilon=None), "epsilon must be in \\[0, 1\\], got None"),
        (lambda: agent.act(np.zeros(3), epsilon="0.5"), "epsilon must be in \\[0, 1\\], got '0.5'"),
        (lambda: agent.act(np.zeros(3), epsilon=np.array([0.2, 0.3])), "epsilon must be in"),
        # A bool is no rate, numpy's (from a mask) as Python's: np.True_ was taken as 1.0.
        (lambda: agent.act(np.zeros(3), epsilon=True), "epsilon must be in \\[0, 1\\], got True"),
        (lambda: agent.act_batch(np.zeros((2, 3)), np.True_), "got np.True_|got True"),
        (lambda: agent.act(np.zeros(3), epsilon=np.array(False)), "epsilon must be in"),
        # A number in full (repr's 17 digits), a long value cut at 60 characters.
        (lambda: agent.act(np.zeros(3), -1.2345678901234568e-05), "got -1.2345678901234568e-05$"),
        (lambda: agent.act(np.zeros(3), "x" * 100), f"got '{'x' * 59}$"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
    assert agent.act_batch(np.zeros((2, 3)), 1.0).shape == (2,)  # the edges are allowed
    assert agent.act(np.zeros(3), 0.0) in (0, 1)


@pytest.mark.parametrize("learner", ["tensorflow", "numpy"])
def test_a_state_of_another_size_is_refused_and_the_agent_keeps_learning(learner):
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner=learner))
    before = agent.state
    with pytest.raises(InputError, match=r"state.online must have shape \[\d+\] \(this agent"):
        agent.state = before._replace(online=np.zeros(3, np.float32))
    np.testing.assert_array_equal(agent.state.online, before.online)
    agent.update(make_replay().sample(8))  # a TF learner was left unable to update
    assert agent.grad_steps == 1


def test_diagnose_takes_a_batch_of_float64_tensors_as_update_does():
    import tensorflow as tf

    from dqn.replay import Batch

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    batch = make_replay().sample(8)
    as_tensors = Batch(*(tf.constant(np.asarray(x, np.float64)) for x in batch))
    assert agent.diagnose(as_tensors) == agent.diagnose(batch)


def test_acting_refuses_nan_and_inf_observations_before_any_exploration_draw():
    # Q-values of a NaN observation are NaN, and argmax of NaNs is 0: a silent wrong action.
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    nan, rows = np.array([0.0, np.nan, 0.0]), np.zeros((4, 3))
    rows[2, 0] = rows[3, 1] = np.inf
    draws = agent.rng.bit_generator.state
    cases = [
        (lambda: agent.act(nan), r"act got an observation with NaN or inf: \[0.0, nan, 0.0\]"),
        (lambda: agent.act(nan, epsilon=1.0), "act got an observation with NaN or inf"),
        (
            lambda: agent.act_batch(rows, 1.0),
            r"NaN or inf in 2 of 4 observations; the first, row 2",
        ),
        # One row is named as act_batch's, though it is acted on as act's one observation.
        (lambda: agent.act_batch(nan[None]), "act_batch got NaN or inf in 1 of 1 observations"),
        (lambda: agent.q_values(nan), "q_values got an observation with NaN or inf"),
        (lambda: agent.q_values(rows), "q_values got NaN or inf in 2 of 4"),
        (lambda: agent.act(["a", "b", "c"]), "act takes real numbers, got \\['a', 'b', 'c'\\]"),
        (lambda: agent.q_values(None), "q_values takes real numbers, got None"),  # was "NaN"
        # A complex array cast to float32 loses its imaginary part with a warning only.
        (lambda: agent.act(np.array([0.5j, 0, 0])), "act takes real numbers, got array\\(\\[0"),
        (lambda: agent.q_values(np.ones((2, 3), np.complex64)), "q_values takes real numbers"),
        (lambda: agent.act([np.complex64(1), 0, 0]), "act takes real numbers"),
        # Numbers written as text were cast, and a masked array's mask dropped, in silence.
        (lambda: agent.act(np.array(["1", "2", "3"])), "act takes real numbers, got array"),
        (lambda: agent.act(["1", "2", "3"]), "act takes real numbers, got \\['1'"),
        (lambda: agent.q_values(np.ma.masked_array(np.zeros(3), [1, 0, 0])), "q_values takes"),
        # Finite in float64, inf once cast to the network's float32: named as given.
        (
            lambda: agent.act(np.array([0.0, 1e39, 0.0])),
            r"act got an observation with values beyond float32's range: \[0.0, 1e\+39, 0.0\]",
        ),
        (
            lambda: agent.q_values(np.r_[rows[:2], [[0.0, -1e39, 0.0]]]),
            r"q_values got values beyond float32's range in 1 of 3 observations; the first, "
            r"row 2: \[0.0, -1e\+39, 0.0\]",
        ),
        (
            lambda: agent.act_batch(np.r_[[[0.0, 1e39, 0.0]], rows]),
            r"act_batch got NaN, inf or values beyond float32's range in 3 of 5 observations; "
            r"the first, row 0: \[0.0, 1e\+39, 0.0\]",
        ),
        (lambda: agent.act([10**400, 0, 0]), "act takes real numbers, got \\[1000"),
        # Rows of text: numpy writes the array over two lines, and the error was two lines.
        (
            lambda: agent.q_values(np.full((2, 3), "0")),
            r"^q_values takes real numbers, got array\(\[\['0', '0', '0'\], \['0', '0', '0'\]\]",
        ),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as refused:
            call()
        assert "\n" not in str(refused.value)
    assert agent.rng.bit_generator.state == draws  # refused before exploring: no draw spent
    assert agent.act(np.full(3, 1e6)) in (0, 1)  # large is not infinite
    assert agent.act(np.full(3, 3e38)) in (0, 1)  # nor is float32's largest


def test_an_empty_batch_of_observations_gets_empty_answers():
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    draws = agent.rng.bit_generator.state
    assert agent.q_values(np.zeros((0, 3))).shape == (0, 2)
    actions = agent.act_batch(np.zeros((0, 3)), epsilon=0.5)
    assert actions.shape == (0,) and actions.dtype.kind == "i"
    assert agent.rng.bit_generator.state == draws


def test_update_refuses_a_batch_the_learner_cannot_take():
    from dqn.errors import InputError
    from dqn.replay import Batch

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    good = make_replay().sample(8)
    before = agent.state.online.copy()
    cases = {
        "action 2 of 2": (good._replace(actions=np.full(8, 2)), "integers in \\[0, 2\\)"),
        "action 0.5": (good._replace(actions=np.full(8, 0.5)), "integers in"),
        "obs width": (good._replace(obs=np.zeros((8, 4))), "batch.obs must have shape"),
        "next_obs rows": (good._replace(next_obs=np.zeros((7, 3))), "batch.next_obs must"),
        "reward NaN": (good._replace(rewards=np.full(8, np.nan)), "batch.rewards holds NaN"),
        # Finite in float64, inf once packed as float32: the weights would be NaN for good.
        "obs 1e39": (
            good._replace(obs=np.r_[good.obs[:7], [[0.0, 1e39, 0.0]]]),
            "batch.obs holds float32-overflowing values",
        ),
        "text": (good._replace(terminated=np.array(["no"] * 8)), "must hold real numbers"),
        "complex": (good._replace(rewards=good.rewards + 1j), "rewards must hold real numbers"),
        # A fraction would scale the bootstrap term: no transition is half terminal.
        "terminated 0.5": (good._replace(terminated=np.full(8, 0.5)), "0/1 or booleans, got 0.5"),
        "a tuple": (tuple(good), "expected a dqn.replay.Batch, got tuple"),
    }
    for name, (batch, message) in cases.items():
        for call in (agent.update, agent.diagnose):  # diagnose ran numpy's error into the user
            with pytest.raises(InputError, match=message) as err:
                call(batch)
            assert "\n" not in str(err.value), name
    stacked = Batch(*(np.stack([np.asarray(x)] * 2) for x in good))  # [k, batch]: update's only
    with pytest.raises(InputError, match=r"diagnose takes one batch, obs \[batch, 3\], got"):
        agent.diagnose(stacked)
    np.testing.assert_array_equal(agent.state.online, before)  # no step was taken
    assert agent.grad_steps == 0
    assert isinstance(good, Batch) and np.isfinite(agent.update(good)["loss"])


def test_a_network_fn_is_checked_when_the_agent_is_built():
    from dqn.errors import ConfigError

    def mlp(obs_dim, outputs):
        return keras.Sequential([keras.Input((obs_dim,)), keras.layers.Dense(outputs)])

    def wider(obs_dim, outputs):
        dense = keras.layers.Dense
        return keras.Sequential([keras.Input((obs_dim,)), dense(4), dense(outputs)])

    def frozen(obs_dim, outputs):
        model = mlp(obs_dim, outputs)
        model.trainable = False
        return model

    def in_float64(obs_dim, outputs):  # failed at the first update, mid-run
        return keras.Sequential(
            [keras.Input((obs_dim,), dtype="float64"), keras.layers.Dense(outputs, dtype="float64")]
        )

    def bfloat16_out(obs_dim, outputs):  # acted on other Q-values than it learned
        dense = keras.layers.Dense(outputs, dtype="mixed_bfloat16")
        return keras.Sequential([keras.Input((obs_dim,)), dense])

    calls = iter([1, 0])  # the online model, then a target of another shape
    shared = mlp(3, 2)
    cases = [
        (frozen, "has no trainable weights"),
        (in_float64, "computes or keeps weights in float64; dqn's learners work in float32"),
        (bfloat16_out, "computes or keeps weights in bfloat16"),
        (lambda o, n: mlp(o, n + 1), "to shape \\[2, 3\\]; DQN needs Q-values \\[2, 2\\]"),
        (lambda o, n: mlp(o + 1, n), "cannot take observations of shape \\[n, 3\\]"),
        (lambda o, n: "a model", "must return a keras.Model, got str"),
        (lambda o, n: shared, "a new model on each call"),
        (lambda o, n: mlp(o, n) if next(calls) else wider(o, n), "the same network on each"),
    ]
    for network_fn, message in cases:
        with pytest.raises(ConfigError, match=message) as err:
            DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="network_fn must be a function .* got int"):
        DQNAgent(OBS, ACTIONS, SMALL, network_fn=5)


def through(*layers, head_initializer="glorot_uniform"):
    """A network_fn: Dense(8, relu), then ``layers`` (factories), then the Q-head."""

    def network_fn(obs_dim, n_actions):
        x = keras.Input((obs_dim,))
        h = keras.layers.Dense(8, activation="relu")(x)
        for layer in layers:
            h = layer()(h)
        head = keras.layers.Dense(n_actions, kernel_initializer=head_initializer)
        return keras.Model(x, head(h))

    return network_fn


class AddsALoss(keras.layers.Layer):
    def call(self, x):
        self.add_loss(keras.ops.sum(x**2))
        return x


def compiled(obs_dim, n_actions):  # as Keras DQN tutorials build it: optimizer and loss unused
    model = through()(obs_dim, n_actions)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=1e-2), loss="mse")
    return model


class NoisyOnEachCall(keras.layers.Layer):  # NoisyNet-like: new noise on every call
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed = keras.random.SeedGenerator(0)

    def call(self, x):
        return x + keras.random.normal(keras.ops.shape(x), seed=self.seed)


class WiderInTraining(keras.Model):  # an auxiliary output in training mode only
    def __init__(self, n_actions=2):
        super().__init__()
        self.hidden, self.q = keras.layers.Dense(8), keras.layers.Dense(n_actions)
        self.aux = keras.layers.Dense(3)

    def call(self, x, training=False):
        h = self.hidden(x)
        q, aux = self.q(h), self.aux(h)
        return keras.ops.concatenate([q, aux], 1) if training else q


class DropsInItsCall(keras.Model):  # call() takes no `training`: Keras hands it down anyway
    def __init__(self, n_actions=2):
        super().__init__()
        self.hidden, self.drop = keras.layers.Dense(8), keras.layers.Dropout(0.5, name="drop")
        self.head = keras.layers.Dense(n_actions)

    def call(self, x):
        return self.head(self.drop(self.hidden(x)))


@pytest.mark.parametrize(
    "network_fn, message",
    [
        (through(lambda: keras.layers.Dense(8, kernel_regularizer="l2")), "kernel a regularizer"),
        (through(lambda: keras.layers.Dense(8, bias_constraint="non_neg")), "bias a constraint"),
        (through(lambda: keras.layers.Dense(8, activity_regularizer="l1")), "adds 1 loss"),
        (through(AddsALoss), "adds 1 loss"),
        (through(lambda: keras.layers.Dropout(0.2, name="drop")), r"mode \('drop' \(Dropout\)\)"),
        (through(lambda: keras.layers.GaussianNoise(0.1, name="noise")), r"'noise' \(Gaussian"),
        (through(lambda: keras.layers.BatchNormalization(name="bn")), r"'bn' \(BatchNorm"),
        (lambda obs_dim, n_actions: DropsInItsCall(n_actions), r"'drop' \(Dropout\)"),
        (compiled, "is compiled .* return it uncompiled"),
        (  # Q is 0 in both modes at first: the probe stirs the weights
            through(lambda: keras.layers.Dropout(0.5, name="drop"), head_initializer="zeros"),
            r"mode \('drop' ",
        ),
        (
            through(lambda: keras.layers.SpectralNormalization(keras.layers.Dense(8), name="sn")),
            r"rewrites its weights sn/.*kernel when called in training mode \('sn' \(Spectral",
        ),
        (through(NoisyOnEachCall), "on each call with the same .* without the layer that draws it"),
        (lambda obs_dim, n_actions: WiderInTraining(n_actions), "in training mode than in"),
        (
            through(
                lambda: keras.layers.Lambda(lambda t: t - keras.ops.mean(t, 1, keepdims=True)),
                lambda: keras.layers.GaussianNoise(0.1, name="noise"),
                lambda: keras.layers.Dropout(0.0, name="no_drop"),
            ),
            r"mode \('noise' \(GaussianNoise\)\), which",  # the only layer named
        ),
    ],
    ids=[
        *("regularizer", "constraint", "activity", "add_loss", "dropout", "noise", "bn"),
        *("nested", "compiled", "zero_head", "spectral", "each_call", "wider", "named"),
    ],
)
def test_a_network_fn_with_what_dqn_s_learners_leave_out_is_refused(tmp_path, network_fn, message):
    # The learners minimise the TD loss alone with their own Adam, and run the model with
    # training=False: each of these was accepted, then never applied.
    from dqn import train
    from dqn.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn)
    assert "\n" not in str(err.value) and "which dqn would leave out" in str(err.value)
    with pytest.raises(ConfigError, match=message):  # CartPole, 1,300 env steps
        train(SHORT_SCHEDULE, network_fn=network_fn, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


class CountsTrainingCalls(keras.layers.Layer):
    """The identity, which counts its calls in training mode in a non-trainable variable."""

    def build(self, shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, x, training=False):
        if training:
            self.calls.assign_add(1.0)
        return x


def test_layers_that_act_alike_in_training_mode_are_accepted_and_left_as_they_were():
    frozen = lambda: keras.layers.Dense(8, trainable=False)  # noqa: E731
    network_fn = through(
        keras.layers.LayerNormalization,
        lambda: keras.layers.Dropout(0.0),
        frozen,
        CountsTrainingCalls,
    )
    agent = DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn)
    counter = [v for v in agent.online.non_trainable_variables if v.path.endswith("calls")]
    assert [float(v.numpy()) for v in counter] == [0.0]  # the check's own calls undone
    before = agent.state.online.copy()
    agent.update(make_replay().sample(8))
    assert not np.array_equal(agent.state.online, before)


def test_a_saved_agent_whose_network_has_dropout_still_loads(tmp_path, monkeypatch):
    # Saved before the check existed: its weights are what it learned in inference mode, as it
    # acts now, so it loads (and resumes) as it did.
    import dqn.agent

    network_fn = through(lambda: keras.layers.Dropout(0.5))
    with monkeypatch.context() as patch:
        patch.setattr(dqn.agent, "_check_nothing_left_out", lambda model, obs_dim: None)
        agent = DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn)
        agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))


@pytest.mark.parametrize("learner", ["tensorflow", "numpy"])
def test_the_default_network_is_float32_in_a_project_that_sets_keras_to_float64(learner):
    # keras.config.set_floatx("float64") in the user's process made the default MLP float64,
    # and the TensorFlow learner's first update mixed it with float32 rewards: a TypeError.
    # (Keras keeps the dtype policy of its first layer in the process: set both, as a project
    # that sets float64 before it builds anything has them.)
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner=learner))
        weights = {v.dtype for v in agent.online.weights}
        before = agent.state.online.copy()
        metrics = agent.update(make_replay().sample(8))
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
    assert weights == {"float32"}
    assert np.isfinite(metrics["loss"]) and not np.array_equal(agent.state.online, before)


def with_lambda(obs_dim, n_actions):
    x = keras.Input((obs_dim,))
    h = keras.layers.Lambda(lambda t: t * 2.0)(x)
    return keras.Model(x, keras.layers.Dense(n_actions)(h))


class Doubling(keras.layers.Layer):  # not registered: Keras cannot find it by name
    def call(self, x):
        return x * 2.0


def with_own_layer(obs_dim, n_actions):
    x = keras.Input((obs_dim,))
    return keras.Model(x, keras.layers.Dense(n_actions)(Doubling()(x)))


def doubled(x):  # not registered: saved by its name alone
    return 2.0 * x


def with_own_activation(obs_dim, n_actions):
    dense = keras.layers.Dense
    return keras.Sequential([keras.Input((obs_dim,)), dense(8, doubled), dense(n_actions)])


UNREADABLE = [  # what is said on saving (by its name) and on loading (import it)
    (with_lambda, "has a Lambda layer, which Keras does not load in safe mode"),
    (with_own_layer, "uses a layer class Keras cannot find( by its name)?: Doubling"),
    (with_own_activation, "uses a function Keras cannot find( by its name)?: doubled"),
]


@pytest.mark.parametrize("network_fn, message", UNREADABLE, ids=["lambda", "own", "function"])
def test_a_network_keras_saves_but_cannot_read_back_is_refused_before_anything_is_written(
    tmp_path, network_fn, message
):
    # Each trained a whole run whose every checkpoint then failed to load: no resume, no
    # dqn-evaluate, no dqn-export.
    from dqn import train
    from dqn.errors import ConfigError

    agent = DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn)  # it trains in memory
    with pytest.raises(ConfigError, match=f"Keras cannot read back, .*: .*{message}") as err:
        agent.save(tmp_path / "agent")
    assert "\n" not in str(err.value) and not (tmp_path / "agent").exists()
    # Its classes are imported: what it needs is registering, not --import.
    assert "register_keras_serializable" in str(err.value) and "--import" not in str(err.value)
    with pytest.raises(ConfigError, match=message):
        train(SHORT_SCHEDULE, network_fn=network_fn, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("network_fn, message", UNREADABLE, ids=["lambda", "own", "function"])
def test_a_network_keras_cannot_load_safely_is_named_as_such_not_as_corrupt(
    tmp_path, monkeypatch, network_fn, message
):
    # Such an agent's files as a dqn that did not check wrote them.
    monkeypatch.setattr("dqn.agent.check_loads_again", lambda model: None)
    DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn).save(tmp_path / "agent")
    with pytest.raises(CheckpointError, match=message) as err:
        DQNAgent.load(tmp_path / "agent")
    assert "corrupt" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "version, named",
    [
        ("99.1.0", "online.keras: saved by Keras 99.1.0, which this Keras {} fails to read; "),
        (keras.__version__, "corrupt saved agent in"),  # the same file of this Keras's: corrupt
    ],
    ids=["newer", "this"],
)
def test_a_network_a_newer_keras_saved_is_named_as_such_not_as_corrupt(tmp_path, version, named):
    # An agent saved under keras 3.15 failed to load under 3.12 (its Dense configs hold keys
    # 3.12 does not take), and was called corrupt, so a study's rerun said to delete it.
    def change(files):
        first_dense_edited(lambda layer: layer["config"].update(key_of_a_later_keras=None))(files)
        files["metadata.json"] = json.dumps({"keras_version": version}).encode()

    with pytest.raises(CheckpointError, match=re.escape(named.format(keras.__version__))):
        DQNAgent.load(saved_agent_with(tmp_path, "online.keras", change))


def saved_agent_with(tmp_path, name: str, change, compression=zipfile.ZIP_STORED) -> Path:
    """A saved agent whose archive ``name`` has its members' bytes changed by ``change`` (a
    dict of member name -> bytes, edited in place), re-zipped: a crafted file."""
    DQNAgent(OBS, ACTIONS, SMALL).save(tmp_path / "agent")
    path = tmp_path / "agent" / name
    with zipfile.ZipFile(path) as archive:
        files = {member: archive.read(member) for member in archive.namelist()}
    change(files)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return tmp_path / "agent"


def first_dense_edited(edit):
    """A ``change`` for online.keras: ``edit`` applied to its first Dense layer's record."""

    def change(files):
        config = json.loads(files["config.json"])
        edit(next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"))
        files["config.json"] = json.dumps(config).encode()

    return change


def test_a_network_that_would_load_an_external_saved_model_is_refused(tmp_path):
    """Keras's TFSMLayer loads a SavedModel from a path its config gives, and that graph runs
    with the network: a checkpoint's .keras that holds one is refused before Keras reads it
    (Keras's safe_mode let it through in 3.12.0 and 3.13.0-3.13.1)."""
    saved = {"filepath": str(tmp_path / "elsewhere"), "call_endpoint": "serve", "name": "q"}
    tfsm = {"module": "keras.layers", "class_name": "TFSMLayer", "config": saved}
    agent = saved_agent_with(tmp_path, "online.keras", first_dense_edited(lambda d: d.update(tfsm)))
    with pytest.raises(CheckpointError, match="holds a TFSMLayer, an external TensorFlow Saved"):
        DQNAgent.load(agent)


def test_a_network_file_whose_config_json_nests_too_deep_is_a_corrupt_file_not_a_traceback(
    tmp_path,
):
    # Read by dqn's checks before Keras: their RecursionError escaped as a traceback.
    def nested(files):
        files["config.json"] = b"[" * 100_000 + b"]" * 100_000

    agent = saved_agent_with(tmp_path, "online.keras", nested)
    with pytest.raises(CheckpointError, match="corrupt saved agent") as refused:
        DQNAgent.load(agent)
    assert "\n" not in str(refused.value)


def test_a_network_file_that_declares_more_units_than_its_weights_hold_is_refused(tmp_path):
    """Keras builds a layer's weights before it reads them: a Dense layer's units raised to
    50,000,000 in a 2 KB config.json took 23 GB before the process was killed."""
    more_units = first_dense_edited(lambda dense: dense["config"].update(units=50_000_000))
    agent = saved_agent_with(tmp_path, "online.keras", more_units)
    with pytest.raises(CheckpointError, match=r"online.keras: its Dense layers declare 50,0"):
        DQNAgent.load(agent)


def test_an_npz_whose_header_claims_more_than_the_file_holds_is_refused_before_allocating(
    tmp_path,
):
    """A deflated entry of a few KB can claim gigabytes of zeros, and np.load allocates the
    array its header claims before it reads a byte: a 1 MB optimizer.npz took 1 GB."""
    import io
    import tracemalloc

    def claim(files):
        data = io.BytesIO()
        header = {"descr": "<f4", "fortran_order": False, "shape": (50_000_000,)}  # 200 MB
        np.lib.format.write_array_header_1_0(data, header)
        files["adam_m.npy"] = data.getvalue() + bytes(4096)

    agent = saved_agent_with(tmp_path, "optimizer.npz", claim, zipfile.ZIP_DEFLATED)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"adam_m.npy claims 200,000,000 bytes of data"):
            DQNAgent.load(agent)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000


def glorot(seed):
    return keras.initializers.GlorotUniform(seed)


@keras.saving.register_keras_serializable(package="test_agent")
class Subclassed(keras.Model):
    """A Q-network written as Keras's guide writes a model: call(self, x), no `training`, no
    declared input; get_config and the registration let Keras write and rebuild it."""

    def __init__(self, n_actions, **kwargs):
        super().__init__(**kwargs)
        self.n_actions = n_actions
        self.hidden = keras.layers.Dense(8, "tanh", kernel_initializer=glorot(1))
        self.head = keras.layers.Dense(n_actions, kernel_initializer=glorot(2))

    def call(self, x):
        return self.head(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "n_actions": self.n_actions}


def subclassed(obs_dim, n_actions):
    model = Subclassed(n_actions)
    model(np.zeros((1, obs_dim), np.float32))  # builds its weights
    return model


def unbuilt_subclassed(obs_dim, n_actions):
    return Subclassed(n_actions)  # Keras makes its weights at its first call


def sequential_without_input(obs_dim, n_actions):
    dense = keras.layers.Dense
    return keras.Sequential([dense(8, "tanh", kernel_initializer=glorot(1)), dense(n_actions)])


@pytest.mark.parametrize("learner", ["tensorflow", "numpy"])
@pytest.mark.parametrize("network_fn", [subclassed, unbuilt_subclassed, sequential_without_input])
def test_a_subclassed_keras_model_learns_and_saves_and_loads(learner, network_fn, tmp_path):
    """Also a model Keras builds only at its first call: the agent builds both of its models,
    where it built the online one only, and saved an empty target network (the loaded agent's
    target was a fresh random one, and its next update another)."""
    config = SMALL.replace(learner=learner, target_update_every_grad_steps=1)  # target moves
    agent = DQNAgent(OBS, ACTIONS, config, network_fn=network_fn)
    replay = make_replay()
    assert np.isfinite(agent.update(replay.sample(8, num_batches=2))["loss"])
    obs = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(agent.q_values(obs), agent.online(obs).numpy(), rtol=1e-5, atol=1e-6)
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    assert type(loaded.online).__name__ == type(agent.online).__name__  # Subclassed, Sequential
    np.testing.assert_array_equal(loaded.state.target, agent.state.target)
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    batch = replay.sample(8, num_batches=2)
    assert loaded.update(batch) == agent.update(batch)


def test_a_subclassed_model_keras_cannot_save_is_refused_before_anything_is_written(tmp_path):
    from dqn import train
    from dqn.errors import ConfigError

    class NoConfig(keras.Model):  # __init__ takes an argument, and no get_config says it
        def __init__(self, n_actions):
            super().__init__()
            self.head = keras.layers.Dense(n_actions)

        def call(self, x):
            return self.head(x)

    def no_config(obs_dim, n_actions):
        model = NoConfig(n_actions)
        model(np.zeros((1, obs_dim), np.float32))
        return model

    message = "model NoConfig cannot be saved .* must override get_config()"
    agent = DQNAgent(OBS, ACTIONS, SMALL, network_fn=no_config)  # it acts and learns
    with pytest.raises(ConfigError, match=message) as err:
        agent.save(tmp_path / "agent")
    assert "\n" not in str(err.value) and not (tmp_path / "agent").exists()
    config = DQNConfig(total_env_steps=300, learning_starts_env_steps=50)
    with pytest.raises(ConfigError, match=message):
        train(config, network_fn=no_config, run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_saved_config_says_when_a_network_fn_built_the_network(tmp_path):
    # config.yaml keeps hidden_sizes and activation, which a network_fn's network ignores: a
    # comment heads the file then, naming the network, and the file reads back as the config.
    from dqn.config import read_saved_config
    from dqn.networks import build_mlp

    def tanh_chain(obs_dim, n_actions):
        return keras.Sequential(
            [keras.Input((obs_dim,)), keras.layers.Dense(8, "tanh"), keras.layers.Dense(n_actions)]
        )

    def with_skip(obs_dim, n_actions):
        x = keras.Input((obs_dim,))
        skip = keras.layers.Concatenate()([x, keras.layers.Dense(8, activation="relu")(x)])
        return keras.Model(x, keras.layers.Dense(n_actions)(skip))

    def as_the_config_says(obs_dim, n_actions):
        return build_mlp(obs_dim, n_actions, SMALL.hidden_sizes, SMALL.activation, seed=5)

    note = "# The Q-network was built by a network_fn ("

    def chain(sizes, activation, head=None):
        def build(obs_dim, n_actions):
            layers = [keras.layers.Dense(width, activation) for width in sizes]
            head_layer = keras.layers.Dense(n_actions, head)
            return keras.Sequential([keras.Input((obs_dim,)), *layers, head_layer])

        return build

    assert SMALL.hidden_sizes == (16, 16) and SMALL.activation == "relu"
    for name, network_fn, first_line in [
        ("default", None, None),
        ("same", as_the_config_says, None),
        ("same chain", chain([16, 16], "relu"), None),
        ("tanh", tanh_chain, note + "hidden_sizes [8], activation tanh): hidden_sizes and"),
        ("sizes", chain([8], "relu"), note + "hidden_sizes [8], activation relu): hidden_sizes"),
        ("act", chain([16, 16], "tanh"), note + "hidden_sizes [16, 16], activation tanh):"),
        (
            "head",
            chain([16, 16], "relu", head="tanh"),
            note + "hidden_sizes [16, 16], activation relu, output activation tanh):",
        ),
        ("skip", with_skip, note + "layers Dense(relu), Concatenate, Dense(linear); weight"),
    ]:
        DQNAgent(OBS, ACTIONS, SMALL, network_fn=network_fn).save(tmp_path / name)
        lines = (tmp_path / name / "config.yaml").read_text().splitlines()
        comment = " ".join(line for line in lines if line.startswith("# "))
        assert comment.replace(" # ", " ").startswith(first_line or ""), comment
        assert bool(comment) == (first_line is not None), name
        assert read_saved_config(tmp_path / name / "config.yaml") == SMALL
        assert DQNAgent.load(tmp_path / name).network_note() == (
            None if first_line is None else DQNAgent(OBS, ACTIONS, SMALL, network_fn).network_note()
        )


def test_each_layers_slice_of_the_flat_vector_holds_its_kernel_and_its_bias():
    # Per-layer gradient norms (diagnostics) are taken over these slices.
    from dqn.networks import FlatNetwork, build_mlp

    net = FlatNetwork(build_mlp(3, 2, [4], "relu", 0))  # 3 * 4 + 4 = 16, then 4 * 2 + 2 = 10
    assert net.layer_slices() == {"hidden_0": slice(0, 16), "q": slice(16, 26)}


def test_dense_layers_wired_other_than_a_chain_get_no_numpy_mirror():
    # One Dense layer applied twice: a chain of its layers would compute another function.
    from dqn.networks import FlatNetwork, NumpyMLP

    inputs = keras.Input(shape=(3,))
    shared = keras.layers.Dense(3, "tanh", kernel_initializer=keras.initializers.GlorotUniform(0))
    net = FlatNetwork(keras.Model(inputs, keras.layers.Dense(2)(shared(shared(inputs)))))
    assert NumpyMLP.mirror(net, net.read(), 3) is None


def test_a_network_fns_columns_are_the_same_in_every_run_of_a_process():
    """Keras names a layer by how many of its class the process has made ("dense_4" in a
    notebook's second run): such names are numbered within the model, as a fresh process would
    number them, so two runs write the same metrics.csv columns. Names the user gave stay."""

    def net(obs_dim, n_actions):
        dense = keras.layers.Dense
        return keras.Sequential([dense(8), dense(8, name="wide"), dense(n_actions)])

    keras.layers.Dense(1)  # the process has made Dense layers before
    first, second = (DQNAgent(OBS, ACTIONS, SMALL, network_fn=net) for _ in range(2))
    names = [n for n in first.diagnostic_names() if n.startswith("grad_norm/")]
    assert names == ["grad_norm/dense", "grad_norm/wide", "grad_norm/dense_1"]
    assert second.diagnostic_names() == first.diagnostic_names()


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.Dense(1),
        keras.layers.BatchNormalization,
        keras.layers.ReLU,
        keras.layers.PReLU,
        keras.layers.LayerNormalization,
    ],
)
def test_the_names_keras_makes_up_are_recognised(layer):
    import re

    from dqn.networks import stable_layer_names

    layer()  # so that the next one is counted: "dense_1", "re_lu_2", ...
    made = layer()
    assert re.fullmatch(r".+_\d+", made.name)
    assert stable_layer_names([made]) == {id(made): re.sub(r"_\d+$", "", made.name)}


def test_updates_past_the_learning_rate_schedule_say_once_that_they_change_nothing():
    import warnings

    from dqn.config import total_grad_steps

    config = SHORT_SCHEDULE.replace(learning_rate_end=0.0)
    end = total_grad_steps(config)
    batch = make_replay().sample(8, num_batches=end)
    agent = DQNAgent(OBS, ACTIONS, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none while the schedule runs
        agent.update(batch)
    before = agent.state.online.copy()
    one = make_replay().sample(8)
    with pytest.warns(UserWarning, match=f"learning rate is 0 from gradient step {end} on") as w:
        agent.update(one)
    # It names the caller's line, not one inside dqn (update's was agent.py's own).
    assert [r.filename for r in w] == [__file__]
    np.testing.assert_array_equal(agent.state.online, before)  # what it says
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per agent
        agent.update(one)
        constant = DQNAgent(OBS, ACTIONS, config.replace(learning_rate_end=None))
        constant.update(batch)
        constant.update(one)  # a constant rate never ends


def test_agents_of_one_network_and_update_share_its_compiled_functions_and_learn_alike(
    monkeypatch,
):
    # train() in a loop over seeds compiled the same update again for every agent (about 2 s
    # of a short run) and XLA never freed the programs (about 7 MB a run).
    from dqn import tf_learner

    jit = SMALL.replace(jit_compile=True)
    a, b = DQNAgent(OBS, ACTIONS, jit.replace(seed=0)), DQNAgent(OBS, ACTIONS, jit.replace(seed=1))
    assert a.learner._burst is b.learner._burst and a.learner._grad_fn is b.learner._grad_fn
    # Anything that can reach the update compiles its own: a setting, a network of its own.
    for other in (
        DQNAgent(OBS, ACTIONS, jit.replace(gamma=0.5)),
        DQNAgent(OBS, ACTIONS, jit.replace(hidden_sizes=(16, 8))),
        DQNAgent(
            OBS,
            ACTIONS,
            jit,
            network_fn=lambda o, n: keras.Sequential([keras.Input((o,)), keras.layers.Dense(n)]),
        ),
    ):
        assert other.learner._burst is not a.learner._burst
    # The shared function learns what a function of its own would, to the bit.
    monkeypatch.setattr(tf_learner, "_SHARED", {})
    alone = DQNAgent(OBS, ACTIONS, jit.replace(seed=1))
    assert alone.learner._burst is not b.learner._burst
    batches = make_replay().sample(8, num_batches=3)
    assert b.update(batches) == alone.update(batches)
    np.testing.assert_array_equal(b.learner.state.online, alone.learner.state.online)


def test_a_loaded_agent_of_the_default_network_shares_the_compiled_functions(tmp_path):
    """A resume loads its agent from the checkpoint: its network, read from online.keras, was
    taken for a network_fn of the user's, and each resume in one process traced and compiled the
    update again (6.5 MB more a resume, never freed, and 1.25 s against 0.2 s)."""
    import keras

    jit = SMALL.replace(jit_compile=True)
    fresh = DQNAgent(OBS, ACTIONS, jit)
    fresh.save(tmp_path / "agent")
    loaded = [DQNAgent.load(tmp_path / "agent") for _ in range(2)]
    assert all(a.learner._burst is fresh.learner._burst for a in loaded)
    # A network of the user's compiles its own, a subclassed one of the default's shapes whose
    # get_config Keras cannot give too (asked for it, is_default_mlp raised).

    class Chain(keras.Model):
        def __init__(self, hidden, n_actions):
            super().__init__()
            self.chain = [keras.layers.Dense(h, activation="relu") for h in hidden]
            self.chain.append(keras.layers.Dense(n_actions))

        def call(self, x):
            for layer in self.chain:
                x = layer(x)
            return x

    def chain(obs_dim, n_actions):
        model = Chain(jit.hidden_sizes, n_actions)
        model(np.zeros((1, obs_dim), np.float32))
        return model

    own = DQNAgent(OBS, ACTIONS, jit, network_fn=chain)
    assert own.learner._burst is not fresh.learner._burst
    # The default MLP's layers with a function of the user's that Keras's config names "relu"
    # (by its __name__): it learned with Keras's relu, through the shared update, and acted
    # with its own.
    from dqn.networks import build_mlp

    def relu(x):
        return keras.ops.leaky_relu(x, 0.3)

    def leaky(obs_dim, n_actions):
        return build_mlp(obs_dim, n_actions, jit.hidden_sizes, relu, jit.seed)

    assert keras.activations.serialize(relu) == "relu"
    mine = DQNAgent(OBS, ACTIONS, jit, network_fn=leaky)
    assert mine.learner._burst is not fresh.learner._burst


def test_a_saved_adam_step_past_float16s_range_of_whole_numbers_reads_back_exactly(tmp_path):
    # Adam's bias correction reads the step: a run of 100k gradient steps must resume with
    # step 100001 exactly, not the nearest number a narrower float holds.
    agent = DQNAgent(OBS, ACTIONS, SMALL)
    agent.state = agent.state._replace(adam_step=np.float32(100_001), grad_steps=100_001)
    agent.save(tmp_path / "ckpt")
    loaded = DQNAgent.load(tmp_path / "ckpt")
    assert float(loaded.state.adam_step) == 100_001.0
    assert loaded.state.adam_step.dtype == np.float32
    assert loaded.grad_steps == 100_001


def test_hidden_layers_of_one_shape_start_from_different_weights():
    # Each layer its own seeded initializer: two equal kernels would start as copies.
    from dqn.networks import build_mlp

    model = build_mlp(3, 2, [8, 8, 8], "relu", 0)
    kernels = [layer.get_weights()[0] for layer in model.layers[1:]]
    assert not np.array_equal(kernels[1], kernels[2])
    again = build_mlp(3, 2, [8, 8, 8], "relu", 0)  # and the same for the same seed
    for layer, kernel in zip(again.layers[1:], kernels):
        np.testing.assert_array_equal(layer.get_weights()[0], kernel)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "elu"])
def test_the_default_network_computes_the_configured_activation(activation):
    # By hand from the Keras weights: W1 f(W0 x + b0) + b1, f the config's activation.
    from dqn.activations import ACTIVATIONS

    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(hidden_sizes=(8,), activation=activation))
    w0, b0, w1, b1 = agent.online.get_weights()
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32) * 3
    expected = ACTIVATIONS[activation](obs @ w0 + b0) @ w1 + b1
    np.testing.assert_allclose(np.asarray(agent.online(obs)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(agent.q_values(obs), expected, rtol=1e-5, atol=1e-5)


def test_a_save_after_a_target_sync_writes_the_synced_target(tmp_path):
    # The target view is cached per update: a cache kept across one saved the old target.keras.
    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(target_update_every_grad_steps=1))
    before = agent.target.get_weights()[0].copy()  # a read before the sync fills the cache
    agent.update(make_replay().sample(8))
    # tau 1 and a sync every step: the target is a hard copy of the online weights after it.
    np.testing.assert_array_equal(agent.state.target, agent.state.online)
    assert not np.array_equal(agent.target.get_weights()[0], before)
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    np.testing.assert_array_equal(loaded.state.target, agent.state.online)
    np.testing.assert_array_equal(loaded.target.get_weights()[0], agent.online.get_weights()[0])


def test_a_loaded_agent_past_the_learning_rate_schedule_says_so_at_its_first_update(tmp_path):
    # The steps a saved agent took count towards the schedule's end once it is loaded.
    from dqn.config import total_grad_steps

    config = SHORT_SCHEDULE.replace(learning_rate_end=0.0)
    end = total_grad_steps(config)
    agent = DQNAgent(OBS, ACTIONS, config)
    agent.update(make_replay().sample(8, num_batches=end))
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    with pytest.warns(UserWarning, match=f"learning rate is 0 from gradient step {end} on"):
        loaded.update(make_replay().sample(8))


@pytest.mark.parametrize("n", [1, 2])
def test_act_batch_names_itself_for_rows_of_another_width(n):
    # Its own check, not q_values' ("observations must have shape ...") or act's for one row.
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    with pytest.raises(
        InputError, match=rf"^act_batch takes observations of shape \[n, 3\], got \[{n}, 4\]$"
    ):
        agent.act_batch(np.zeros((n, 4)), 0.5)


def test_a_network_fn_whose_hidden_weights_are_float64_is_refused_though_it_outputs_float32():
    # The learners keep every weight in one float32 vector: the weights' dtypes count, not
    # only the output's.
    from dqn.errors import ConfigError

    def mixed(obs_dim, outputs):
        return keras.Sequential(
            [
                keras.Input((obs_dim,)),
                keras.layers.Dense(4, dtype="float64"),
                keras.layers.Dense(outputs, dtype="float32"),
            ]
        )

    assert mixed(3, 2)(np.zeros((1, 3), np.float32)).dtype == "float32"  # the case it is
    with pytest.raises(ConfigError, match="computes or keeps weights in float64"):
        DQNAgent(OBS, ACTIONS, SMALL, network_fn=mixed)


@pytest.mark.parametrize("hidden", [("tanh", "relu"), ()])
def test_start_from_gives_no_dqn_train_setting_for_a_chain_no_one_activation_describes(hidden):
    # activation= names one activation for every hidden layer: a chain of two, or of none, has
    # no such setting, so the refusal only says what to match.
    from dqn.errors import ConfigError

    def chain(obs_dim, n_actions):
        layers = [keras.layers.Dense(8, activation) for activation in hidden]
        return keras.Sequential([keras.Input((obs_dim,)), *layers, keras.layers.Dense(n_actions)])

    source = DQNAgent(OBS, ACTIONS, SMALL, network_fn=chain)
    assert source._mirror is not None  # a chain of Dense layers, as the default network is
    with pytest.raises(ConfigError) as refused:
        DQNAgent(OBS, ACTIONS, SMALL).start_from(source)
    assert str(refused.value).endswith("give the run the same hidden_sizes and activation")


def test_start_from_a_loaded_agent_that_does_not_fit_names_its_folder(tmp_path):
    # The folder is what a user gave init_from: the refusal says which one, not an agent's repr.
    from dqn.errors import ConfigError

    DQNAgent(OBS, ACTIONS, SMALL.replace(hidden_sizes=(8,))).save(tmp_path / "agent")
    source = DQNAgent.load(tmp_path / "agent")
    folder = re.escape(str(tmp_path / "agent"))
    with pytest.raises(ConfigError, match=rf"^init_from {folder}: its Q-network"):
        DQNAgent(OBS, ACTIONS, SMALL).start_from(source)


def test_a_keras_model_given_as_network_fn_is_refused_with_how_to_wrap_it():
    # A model is callable too: called with (obs_dim, n_actions) Keras failed deep inside.
    from dqn.errors import ConfigError

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ConfigError, match=r"network_fn must be a function .* got Sequential: wrap"):
        DQNAgent(OBS, ACTIONS, SMALL, network_fn=model)


def test_a_schedule_that_ends_above_zero_never_says_its_updates_change_nothing():
    # Only learning_rate_end=0 stops learning: past a schedule to 1e-4 the updates still move.
    from dqn.config import total_grad_steps

    config = SHORT_SCHEDULE.replace(learning_rate_end=1e-4)
    agent = DQNAgent(OBS, ACTIONS, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.update(make_replay().sample(8, num_batches=total_grad_steps(config)))
        before = agent.state.online.copy()
        agent.update(make_replay().sample(8))
    assert not np.array_equal(agent.state.online, before)


def test_a_loaded_agent_of_a_constant_learning_rate_never_says_its_updates_change_nothing(
    tmp_path,
):
    # learning_rate_end=None: no schedule ends, however many steps the saved agent took.
    from dqn.config import total_grad_steps

    config = SHORT_SCHEDULE.replace(learning_rate_end=None)
    agent = DQNAgent(OBS, ACTIONS, config)
    agent.update(make_replay().sample(8, num_batches=total_grad_steps(config)))
    agent.save(tmp_path / "agent")
    loaded = DQNAgent.load(tmp_path / "agent")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.update(make_replay().sample(8, num_batches=2))


@pytest.mark.parametrize("name", ["target", "adam_m", "adam_v"])
def test_a_state_whose_target_or_adam_moments_are_of_another_size_is_refused(name):
    # Each of the four vectors is checked, not only the online weights: the learner keeps all.
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner="tensorflow"))
    before = agent.state
    size = before.online.size  # 3*16 + 16 + 16*16 + 16 + 16*2 + 2 = 370 for SMALL
    assert size == 370
    with pytest.raises(InputError, match=rf"^state.{name} must have shape \[370\] .* got \[3\]$"):
        agent.state = before._replace(**{name: np.zeros(3, np.float32)})
    agent.update(make_replay().sample(8))
    assert agent.grad_steps == 1


@pytest.mark.parametrize("name", ["online", "target", "adam_m", "adam_v"])
def test_a_state_of_nan_or_inf_weights_is_refused(name):
    # NaN online weights were taken, and act then answered a silent 0 (argmax of NaN Q-values).
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner="numpy"))
    before = agent.state
    bad = getattr(before, name).copy()
    bad[7] = np.nan if name != "adam_v" else np.inf
    with pytest.raises(InputError, match=rf"^state.{name} holds NaN or inf: no agent computes"):
        agent.state = before._replace(**{name: bad})
    assert agent.state.online.tobytes() == before.online.tobytes()


def test_a_network_fns_tensorflow_update_uses_its_own_network_after_a_default_one_of_its_shapes():
    # Compiled updates are shared by default networks of one shape; a network_fn's (tanh here,
    # relu by default) must not reuse theirs. The numpy learner computes the same update apart.
    def tanh_chain(obs_dim, n_actions):
        dense = keras.layers.Dense
        return keras.Sequential(
            [
                keras.Input((obs_dim,)),
                dense(16, "tanh", kernel_initializer=glorot(1)),
                dense(16, "tanh", kernel_initializer=glorot(2)),
                dense(n_actions, kernel_initializer=glorot(3)),
            ]
        )

    batch = make_replay().sample(8)
    DQNAgent(OBS, ACTIONS, SMALL.replace(learner="tensorflow")).update(batch)  # the same shapes
    tf_agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner="tensorflow"), tanh_chain)
    np_agent = DQNAgent(OBS, ACTIONS, SMALL.replace(learner="numpy"), tanh_chain)
    np.testing.assert_array_equal(tf_agent.state.online, np_agent.state.online)
    tf_loss, np_loss = tf_agent.update(batch)["loss"], np_agent.update(batch)["loss"]
    np.testing.assert_allclose(tf_loss, np_loss, rtol=1e-4)
    np.testing.assert_allclose(tf_agent.state.online, np_agent.state.online, rtol=1e-4, atol=1e-6)


def test_only_a_pair_of_obs_and_info_is_called_what_env_reset_returns():
    # The hint names reset's (obs, info); a longer tuple is shown as a tuple, no more.
    from dqn.errors import InputError

    agent = DQNAgent(OBS, ACTIONS, SMALL)
    with pytest.raises(InputError, match=r", 0\) \(a tuple\) \(act_batch takes"):
        agent.act((np.zeros(3), {}, 0))


def test_writing_a_flat_vector_into_a_model_of_other_weights_is_refused():
    from dqn.networks import FlatNetwork, build_mlp

    net = FlatNetwork(build_mlp(3, 2, [4], "relu", 0))
    other = build_mlp(3, 2, [5], "relu", 0)
    before = [w.copy() for w in other.get_weights()]
    with pytest.raises(ValueError, match="does not have this network's weights"):
        net.write(net.read(), other)
    for got, want in zip(other.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_only_the_configs_own_mlp_counts_as_the_default_network(tmp_path):
    # A default network may be rebuilt from its config elsewhere (a learner process): a model of
    # the same shapes with another activation, or a user's own, must not count as one.
    from dqn.networks import build_mlp, is_default_mlp

    config = DQNConfig(hidden_sizes=(8,), activation="tanh", seed=3)
    default = build_mlp(3, 2, (8,), "tanh", 3)
    assert is_default_mlp(default, 3, 2, config)
    default.save(tmp_path / "q.keras")  # read back, its config holds lists for tuples
    assert is_default_mlp(keras.models.load_model(tmp_path / "q.keras"), 3, 2, config)
    assert not is_default_mlp(build_mlp(3, 2, (8,), "relu", 3), 3, 2, config)
    own = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(2)]
    )
    assert not is_default_mlp(own, 3, 2, config)


@pytest.mark.parametrize("learner", ["tensorflow", "numpy"])
def test_an_agent_given_another_agents_state_acts_with_its_weights(learner):
    # Assigning state (a resume, a user's own restore) must reach acting and the Keras view,
    # not only the learner's next update.
    config = SMALL.replace(learner=learner)
    agent, other = DQNAgent(OBS, ACTIONS, config), DQNAgent(OBS, ACTIONS, config.replace(seed=1))
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert not np.allclose(agent.q_values(obs), other.q_values(obs))
    agent.state = other.state
    np.testing.assert_array_equal(agent.q_values(obs), other.q_values(obs))
    np.testing.assert_array_equal(agent.act(obs[0], 0.0), other.act(obs[0], 0.0))
    np.testing.assert_allclose(np.asarray(agent.online(obs)), other.q_values(obs), rtol=1e-6)
