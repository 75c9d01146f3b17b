"""The direct call of a compiled function returns exactly what the public call returns."""

import numpy as np
import tensorflow as tf

from dqn import DQNAgent, fastcall
from dqn.fastcall import flat_caller, is_fast, public_caller
from tests.test_agent import ACTIONS, OBS, SMALL, make_replay


def _concrete():
    @tf.function(jit_compile=True)
    def f(x, y):
        return x * 2.0 + tf.reduce_sum(y), tf.shape(y)[0] + 1

    args = (tf.constant([1.0, 2.0, 3.0]), tf.constant([[0.5, 0.25]]))
    return f.get_concrete_function(*args), args


def test_the_direct_call_is_taken_and_returns_the_public_calls_bytes():
    concrete, args = _concrete()
    fast = flat_caller(concrete, probe_args=args)
    assert is_fast(fast)  # this TensorFlow has the runtime entry point
    got, want = fast(*args), public_caller(concrete)(*args)
    assert [g.numpy().tobytes() for g in got] == [w.numpy().tobytes() for w in want]
    np.testing.assert_array_equal(got[0].numpy(), [2.75, 4.75, 6.75])
    assert int(got[1]) == 2


def test_without_the_runtime_entry_point_the_public_call_is_used(monkeypatch):
    concrete, args = _concrete()
    monkeypatch.setattr(fastcall, "_runtime_caller", lambda c: None)
    caller = flat_caller(concrete, probe_args=args)
    assert not is_fast(caller)
    np.testing.assert_array_equal(caller(*args)[0].numpy(), [2.75, 4.75, 6.75])


def test_a_fast_path_that_disagrees_with_the_public_call_is_rejected(monkeypatch):
    concrete, args = _concrete()
    wrong = lambda *tensors: [tf.zeros([3]), tf.constant(0)]  # noqa: E731
    monkeypatch.setattr(fastcall, "_runtime_caller", lambda c: wrong)
    assert not is_fast(flat_caller(concrete, probe_args=args))
    assert flat_caller(concrete, probe_args=args) is not wrong


def test_a_fast_path_that_drops_an_output_is_rejected(monkeypatch):
    concrete, args = _concrete()
    first_only = lambda *tensors: public_caller(concrete)(*tensors)[:1]  # noqa: E731
    monkeypatch.setattr(fastcall, "_runtime_caller", lambda c: first_only)
    caller = flat_caller(concrete, probe_args=args)
    assert len(caller(*args)) == 2


def test_a_fast_path_with_the_right_bytes_in_the_wrong_dtype_or_shape_is_rejected(monkeypatch):
    # float32 0.0 and int32 0 are the same four bytes, as are zeros of shape [2] and [1, 2].
    args = (tf.constant([1.0, 2.0]),)
    concrete = tf.function(lambda x: x * 0.0).get_concrete_function(*args)
    for wrong in (tf.zeros([2], tf.int32), tf.zeros([1, 2])):
        monkeypatch.setattr(fastcall, "_runtime_caller", lambda c, w=wrong: lambda *t: [w])
        [out] = flat_caller(concrete, probe_args=args)(*args)
        assert out.dtype == tf.float32 and out.shape == (2,)


def test_a_fast_path_that_raises_on_the_probe_falls_back_to_the_public_call(monkeypatch):
    def broken(*tensors):
        raise TypeError("not this TensorFlow's signature")

    concrete, args = _concrete()
    monkeypatch.setattr(fastcall, "_runtime_caller", lambda c: broken)
    np.testing.assert_array_equal(
        flat_caller(concrete, probe_args=args)(*args)[0].numpy(), [2.75, 4.75, 6.75]
    )


def test_outside_eager_mode_the_public_call_is_used():
    concrete, _ = _concrete()
    with tf.Graph().as_default():  # a graph being built takes symbolic tensors the fast call cannot
        assert not is_fast(flat_caller(concrete))


def test_a_rejected_fast_path_returns_the_public_calls_outputs_of_the_check(monkeypatch):
    executions = tf.Variable(0)

    @tf.function
    def f(x):
        executions.assign_add(1)
        return x * 3.0

    monkeypatch.setattr(fastcall, "_runtime_caller", lambda c: lambda *t: [tf.zeros([2])])
    out = fastcall.call_compiled({}, f, (tf.constant([1.0, 2.0]),), "k")
    np.testing.assert_array_equal(out[0].numpy(), [3.0, 6.0])
    assert int(executions.numpy()) == 1  # the check's public call only (the fake runs nothing)


def test_a_first_call_returns_the_checks_own_outputs_without_a_third_run():
    executions = tf.Variable(0)

    @tf.function
    def f(x):
        executions.assign_add(1)
        return x * 3.0

    cache, args = {}, (tf.constant([1.0, 2.0]),)
    out = fastcall.call_compiled(cache, f, args, "k")
    np.testing.assert_array_equal(out[0].numpy(), [3.0, 6.0])
    assert int(executions.numpy()) == 2  # the check's fast and public calls, and no third
    assert is_fast(cache["k"])
    np.testing.assert_array_equal(fastcall.call_compiled(cache, f, args, "k")[0].numpy(), [3, 6])
    assert int(executions.numpy()) == 3


def test_agent_updates_through_either_call_path_are_bit_identical(monkeypatch):
    config = SMALL.replace(jit_compile=True)
    replay = make_replay()
    batches = [replay.sample_rows(config.batch_size, 3) for _ in range(5)]
    fast_agent = DQNAgent(OBS, ACTIONS, config)
    fast_metrics = [fast_agent.update_rows(rows) for rows in batches]
    monkeypatch.setattr(
        "dqn.fastcall.flat_caller", lambda concrete, **probe: public_caller(concrete)
    )
    slow_agent = DQNAgent(OBS, ACTIONS, config)
    slow_metrics = [slow_agent.update_rows(rows) for rows in batches]
    assert all(is_fast(fn) for fn in fast_agent.learner._compiled.values())
    assert not any(is_fast(fn) for fn in slow_agent.learner._compiled.values())
    np.testing.assert_array_equal(fast_metrics, slow_metrics)
    for a, b in zip(fast_agent.state, slow_agent.state):
        np.testing.assert_array_equal(a, b)


def test_acting_on_one_observation_equals_a_batch_of_one_bit_for_bit():
    # gemv for one observation, gemm for a [1, obs_dim] batch: same float32 sums here, so the
    # faster path changes no action (a batch of many rows may round differently, as any gemm).
    for hidden in [(64, 64), (256, 256)]:
        agent = DQNAgent(OBS, ACTIONS, SMALL.replace(hidden_sizes=hidden))
        obs = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
        single = np.stack([agent.q_values(o) for o in obs])
        batch_of_one = np.stack([agent.q_values(o[None])[0] for o in obs])
        np.testing.assert_array_equal(single, batch_of_one)
