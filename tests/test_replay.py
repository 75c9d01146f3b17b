import numpy as np
import pytest

from dqn.replay import Batch, ReplayBuffer


def filled(n, capacity=5, seed=0):
    buf = ReplayBuffer(capacity, obs_dim=2, rng=np.random.default_rng(seed))
    for i in range(n):
        buf.add([i, -i], i % 3, float(i), [i + 1, -i - 1], terminated=(i % 4 == 3))
    return buf


def test_ring_overwrites_the_oldest_and_keeps_its_position():
    buf = filled(7)  # capacity 5: transitions 0 and 1 overwritten by 5 and 6
    assert len(buf) == 5 and buf.position == 2
    assert sorted(buf.rewards.tolist()) == [2, 3, 4, 5, 6]
    assert buf.obs[0].tolist() == [5, -5] and buf.next_obs[1].tolist() == [7, -7]
    assert buf.terminated.tolist() == [0, 0, 0, 1, 0]  # only transition 3 was terminal


def test_sample_draws_only_filled_slots():
    buf = filled(3, capacity=100)
    batch = buf.sample(1000)
    assert isinstance(batch, Batch)
    assert set(batch.rewards.tolist()) == {0.0, 1.0, 2.0}
    # Each field comes from the same transition.
    np.testing.assert_array_equal(batch.obs[:, 0], batch.rewards)
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.rewards + 1)


def test_sample_many_batches_has_a_leading_k_axis():
    batch = filled(10, capacity=10).sample(8, num_batches=3)
    assert batch.obs.shape == (3, 8, 2) and batch.actions.shape == (3, 8)
    assert batch.obs.dtype == np.float32 and batch.actions.dtype == np.int32


def test_sampling_is_seeded_by_the_buffer_generator():
    a = filled(10, capacity=10, seed=1).sample(16)
    b = filled(10, capacity=10, seed=1).sample(16)
    c = filled(10, capacity=10, seed=2).sample(16)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.rewards, c.rewards)


def test_empty_buffer_refuses_to_sample():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 1, np.random.default_rng(0)).sample(2)


def test_a_buffer_of_no_slot_is_refused_when_made():
    # A ring of 0 slots would fail at its first add, dividing by its capacity.
    with pytest.raises(ValueError, match="capacity must be > 0, got 0"):
        ReplayBuffer(0, 1, np.random.default_rng(0))


def test_a_replay_that_cannot_fit_is_refused_with_the_bytes_needed_and_available():
    from dqn.errors import ConfigError
    from dqn.replay import check_replay_fits

    # 1000 transitions of 4-D observations: rows of 2 * 4 + 3 = 11 float32, 44,000 bytes.
    check_replay_fits(1000, 4, available=44_000)
    check_replay_fits(1000, 4, available=None)  # unknown: no check
    with pytest.raises(ConfigError, match="needs 44,000 bytes, but 43,999 bytes"):
        check_replay_fits(1000, 4, available=43_999)


def test_a_sample_from_another_generator_leaves_the_buffers_own_stream_alone():
    # A diagnostics probe samples with its own generator: the run's batches must not change.
    probed, plain = filled(10, capacity=10, seed=1), filled(10, capacity=10, seed=1)
    first = probed.sample(16, rng=np.random.default_rng(7))
    again = probed.sample(16, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first.rewards, again.rewards)  # drawn from the one given
    np.testing.assert_array_equal(probed.sample(16).rewards, plain.sample(16).rewards)


def test_a_hand_made_batch_with_a_negative_action_is_refused():
    # numpy would read action -1 as the last action: a silent update of the wrong Q-value.
    from dqn.errors import InputError
    from dqn.replay import check_batch

    batch = filled(5).sample(4)._replace(actions=np.array([0, 1, -1, 0]))
    with pytest.raises(InputError, match=r"integers in \[0, 3\), got values from -1 to 1"):
        check_batch(batch, obs_dim=2, n_actions=3)


def test_a_hand_made_batch_of_no_rows_or_of_three_leading_axes_is_refused():
    # No rows would reach numpy's min() of an empty array; [j, k, batch] the network's shape
    # check: neither is an InputError naming the field.
    from dqn.errors import InputError
    from dqn.replay import check_batch

    good = filled(5).sample(4)
    empty = Batch(*(np.asarray(x)[:0] for x in good))
    stacked = Batch(*(np.stack([np.stack([np.asarray(x)] * 2)] * 2) for x in good))
    assert stacked.obs.shape == (2, 2, 4, 2)
    for batch, shape in ((empty, r"\[0, 2\]"), (stacked, r"\[2, 2, 4, 2\]")):
        with pytest.raises(InputError, match=r"batch.obs must have shape .* got " + shape):
            check_batch(batch, obs_dim=2, n_actions=3)


def test_a_hand_made_batch_takes_booleans_for_terminated_and_refuses_minus_one():
    from dqn.errors import InputError
    from dqn.replay import check_batch

    good = filled(5).sample(4)
    check_batch(good._replace(terminated=np.array([True, False, False, True])), 2, 3)
    with pytest.raises(InputError, match="0/1 or booleans, got -1"):
        check_batch(good._replace(terminated=np.array([0.0, -1.0, 0.0, 1.0])), 2, 3)


def test_a_population_that_cannot_fit_is_refused_with_its_rings_dims_and_runtimes():
    from dqn.errors import ConfigError
    from dqn.replay import check_population_fits

    # Rows of 2 * 8 + 3 = 19 and 2 * 4 + 3 = 11 float32: 2,000 * 76 + 1,000 * 44 = 196,000 bytes.
    rings = [(2_000, 8), (1_000, 4)]
    check_population_fits(rings, available=196_000, processes=2)
    with pytest.raises(ConfigError) as err:
        check_population_fits(rings, available=195_999, processes=2)
    assert str(err.value).startswith(
        "2 members (replay rings of 3,000 transitions of 4-D and 8-D observations, "
        "in 2 new processes) need 196,000 bytes, but 195,999 bytes of memory are available"
    )
    with pytest.raises(ConfigError, match=r"observations, with TensorFlow's runtime\) need"):
        check_population_fits(rings, available=195_999, processes=1)
    with pytest.raises(ConfigError, match=r"8-D observations\) need 196,000 bytes"):
        check_population_fits(rings, available=195_999)  # in this process: no runtime named


def test_a_ring_has_no_more_slots_than_its_run_can_store():
    # One transition per env step at most, and a vector env's last loop step may pass
    # total_env_steps by num_envs - 1: a buffer_size of 1,000,000 for 50,000 steps was
    # counted, and refused where memory was short, as twenty times what the run holds.
    from dqn.config import DQNConfig, replay_capacity

    assert replay_capacity(DQNConfig(buffer_size=10**6, total_env_steps=50_000)) == 50_000
    assert replay_capacity(DQNConfig(buffer_size=1_000, total_env_steps=50_000)) == 1_000
    vector = DQNConfig(
        buffer_size=10**6, total_env_steps=1_000, num_envs=4, learning_starts_env_steps=100
    )
    assert replay_capacity(vector) == 1_003


@pytest.mark.parametrize("num_envs, n_step", [(1, 1), (3, 3), (4, 1)])
def test_a_run_never_stores_more_transitions_than_its_ring_has_slots(num_envs, n_step, tmp_path):
    # Had the ring been too small for the run, it would wrap: its final replay would be full
    # with its next write elsewhere than slot 0. 601 steps: not a multiple of num_envs, so the
    # last loop step passes the total.
    from dqn import DQNConfig, train
    from dqn.config import replay_capacity
    from dqn.run_state import load_replay
    from tests.conftest import TINY_RUN

    config = DQNConfig(
        **{**TINY_RUN, "buffer_size": 10**6, "total_env_steps": 601, "learner": "numpy"},
        num_envs=num_envs,
        n_step=n_step,
    )
    run = tmp_path / "run"
    train(config, run_dir=run, progress=False, log_tensorboard=False)
    [final] = sorted((run / "checkpoints").glob("step-*"))[-1:]
    replay = load_replay(final / "replay.npz", replay_capacity(config), 4, 2)
    assert replay.capacity == 601 + num_envs - 1
    assert replay.position == replay.size % replay.capacity
    assert replay.size >= 601 - num_envs * n_step
