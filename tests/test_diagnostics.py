"""Dead and saturated units, per-layer gradient norms."""

import gymnasium as gym
import numpy as np

from dqn import DQNAgent, DQNConfig
from dqn.diagnostics import (
    dead_unit_fraction,
    hidden_unit_stats,
    layer_grad_norms,
    saturated_unit_fraction,
    unit_columns,
)
from dqn.replay import ReplayBuffer


def test_dead_unit_fraction_counts_units_zero_on_every_state():
    hidden = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    assert dead_unit_fraction(hidden) == 0.5  # units 0 and 3


def test_saturated_fraction_for_tanh_and_sigmoid():
    tanh_out = np.array([[0.999, 0.5, -0.995], [0.995, 0.999, -0.999]])
    assert saturated_unit_fraction(tanh_out, "tanh") == 2 / 3
    sig_out = np.array([[0.001, 0.5], [0.999, 0.5]])
    assert saturated_unit_fraction(sig_out, "sigmoid") == 0.5
    stats = hidden_unit_stats([tanh_out], ["tanh", "linear"])
    assert stats == {"saturated_fraction/hidden_0": 2 / 3}
    # Near the bounds but inside them: |tanh| <= 0.99, a sigmoid in [0.005, 0.995].
    assert saturated_unit_fraction(np.full((2, 3), 0.95), "tanh") == 0.0
    assert saturated_unit_fraction(np.full((2, 3), 0.02), "sigmoid") == 0.0
    # Each layer by its own activation's rule; the Q head (not a hidden layer) has no column.
    mixed = hidden_unit_stats([tanh_out, sig_out], ["tanh", "sigmoid", "linear"])
    assert mixed == {"saturated_fraction/hidden_0": 2 / 3, "saturated_fraction/hidden_1": 0.5}
    assert unit_columns(["relu", "relu"]) == [(0, "dead")]


def test_a_unit_is_saturated_where_its_derivative_is_below_2_percent_of_its_maximum():
    # tanh' = 1 - y^2 (maximum 1), sigmoid' = y (1 - y) (maximum 1/4): the rule's 0.99 and
    # 0.005 / 0.995 are those roots rounded; values either side of each, on both tails.
    def saturated(y, activation):
        return saturated_unit_fraction(np.full((1, 1), y), activation) == 1.0

    for y in (-0.995, -0.985, 0.0, 0.5, 0.985, 0.995):
        assert saturated(y, "tanh") == (1 - y * y < 0.02 * 1.0), y
    for y in (0.004, 0.006, 0.3, 0.5, 0.994, 0.996):
        assert saturated(y, "sigmoid") == (y * (1 - y) < 0.02 * 0.25), y


def test_layer_grad_norms():
    norms = layer_grad_norms(np.array([3.0, 4.0, 0.0, 12.0]), {"a": slice(0, 2), "b": slice(2, 4)})
    assert norms == {"a": 5.0, "b": 12.0}


def test_a_unit_forced_dead_is_reported_by_the_agent():
    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    cfg = DQNConfig(hidden_sizes=(4,), jit_compile=False)
    agent = DQNAgent(obs_space, gym.spaces.Discrete(2), cfg)
    model = agent.online
    kernel, bias, *rest = model.get_weights()
    kernel[:, 1] = 0.0
    bias[1] = -1.0  # unit 1: pre-activation -1 on every state -> ReLU output 0 -> dead
    kernel[:, [0, 2, 3]] = np.abs(kernel[:, [0, 2, 3]]) + 0.1
    bias[[0, 2, 3]] = 5.0  # other units positive on every state in [-1, 1]^3
    model.set_weights([kernel, bias, *rest])
    agent = _agent_around(model, agent.target, cfg)
    replay = ReplayBuffer(64, 3, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(64):
        replay.add(rng.uniform(-1, 1, 3), rng.integers(2), 1.0, rng.uniform(-1, 1, 3), False)
    diag = agent.diagnose(replay.sample(64))
    assert diag["dead_fraction/hidden_0"] == 0.25
    assert set(diag) == set(agent.diagnostic_names())
    assert diag["grad_norm/hidden_0"] > 0 and diag["grad_norm/q"] > 0


def _agent_around(model, target, config):
    """An agent built around edited Keras models (weights set outside training): an agent's
    ``online`` is a view of its own weights, which its next read writes over an edit."""
    target.set_weights(model.get_weights())
    built = iter([model, target])
    return DQNAgent(
        gym.spaces.Box(-1, 1, (3,), np.float32),
        gym.spaces.Discrete(2),
        config,
        network_fn=lambda o, n: next(built),
    )


def _agents_and_replay(learners):
    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    cfg = DQNConfig(hidden_sizes=(8, 8), jit_compile=False, batch_size=16)
    agents = [
        DQNAgent(obs_space, gym.spaces.Discrete(2), cfg.replace(learner=name)) for name in learners
    ]
    replay = ReplayBuffer(256, 3, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(256):
        replay.add(
            rng.uniform(-1, 1, 3), rng.integers(2), rng.normal(), rng.uniform(-1, 1, 3), False
        )
    return agents, replay


def test_each_learner_probes_the_gradient_it_steps_with_and_probing_changes_nothing():
    """The TF and numpy learners start from the same parameters (same seed): their probe
    gradients agree to float32 rounding, before and after a step. A probe between two steps
    leaves the training exactly as without it (the numpy learner's gradient buffer is the
    one its steps use)."""
    (tf_agent, np_agent, np_twin), replay = _agents_and_replay(["tensorflow", "numpy", "numpy"])
    probe, rng = replay.sample(64, rng=np.random.default_rng(2)), np.random.default_rng(3)
    batches = [replay.sample(16, rng=rng) for _ in range(2)]
    for step in range(2):
        g_tf, g_np = tf_agent.learner.probe_gradient(probe), np_agent.learner.probe_gradient(probe)
        assert g_tf.shape == g_np.shape == tf_agent.state.online.shape
        np.testing.assert_allclose(g_np, g_tf, rtol=1e-4, atol=1e-6)
        assert np.abs(g_np).max() > 0
        for agent in (tf_agent, np_agent, np_twin):
            agent.update(batches[step])
    for a, b in zip(np_agent.state, np_twin.state):  # np_twin was never probed
        np.testing.assert_array_equal(a, b)


def test_agent_after_agent_probes_without_a_retracing_warning():
    """train() in a loop over learning rates builds an agent after another, each with compiled
    functions of its own (agents that differ only in their seed share them: tf_learner.shared_key)
    and each probed once or twice: tf.function counted their probes as one function's calls (a
    lambda's code object is shared) and warned of "retracing" from the sixth agent on."""
    import logging

    obs_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    cfg = DQNConfig(hidden_sizes=(4,), jit_compile=False)
    replay = ReplayBuffer(64, 3, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(64):
        replay.add(rng.uniform(-1, 1, 3), rng.integers(2), 1.0, rng.uniform(-1, 1, 3), False)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for seed in range(8):
            settings = cfg.replace(seed=seed, learning_rate=1e-3 * (seed + 1))
            agent = DQNAgent(obs_space, gym.spaces.Discrete(2), settings)
            agent.diagnose(replay.sample(64))
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records if "retracing" in r.getMessage()] == []


def test_the_diagnostics_columns_are_the_gradient_norms_then_the_unit_fractions():
    # metrics.csv's header order: every layer's gradient norm, then each hidden layer's units.
    from dqn.diagnostics import diagnostic_names

    names = diagnostic_names(["dense_0", "dense_1", "q"], ["relu", "tanh", "linear"])
    assert names == [
        "grad_norm/dense_0",
        "grad_norm/dense_1",
        "grad_norm/q",
        "dead_fraction/hidden_0",
        "saturated_fraction/hidden_1",
    ]
    assert diagnostic_names(["q"], None) == ["grad_norm/q"]  # activations not known: no units
