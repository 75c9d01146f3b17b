"""n-step transitions: returns, termination and time-limit cuts against closed forms."""

import numpy as np
import pytest

from dqn.nstep import NStepWindow


def steps(window, rewards, terminated_at=None, truncated_at=None):
    """Push one step per reward (observations are the step index); collect what comes out."""
    out = []
    for t, r in enumerate(rewards):
        out += window.push(
            np.array([t], np.float32),
            t % 2,
            r,
            np.array([t + 1], np.float32),
            terminated=t == terminated_at,
            truncated=t == truncated_at,
        )
    return [(int(o[0]), a, r, int(n[0]), term) for o, a, r, n, term in out]


def test_n_1_stores_every_step_as_it_comes():
    assert steps(NStepWindow(1, 0.9), [1.0, 2.0, 3.0]) == [
        (0, 0, 1.0, 1, False),
        (1, 1, 2.0, 2, False),
        (2, 0, 3.0, 3, False),
    ]


def test_a_full_window_gives_the_discounted_sum_and_the_state_n_steps_later():
    # n = 3, gamma = 0.5: R_0 = 1 + 0.5 * 2 + 0.25 * 4 = 3 and s_3;
    # R_1 = 2 + 0.5 * 4 + 0.25 * 8 = 6 and s_4.
    out = steps(NStepWindow(3, 0.5), [1.0, 2.0, 4.0, 8.0])
    assert out == [(0, 0, 3.0, 3, False), (1, 1, 6.0, 4, False)]


def test_termination_flushes_every_pending_step_with_its_truncated_sum():
    # Terminated at t = 2 with n = 3, gamma = 0.5: each pending step's return stops at the end,
    # and none bootstraps: R_0 = 1 + 1 + 1 = 2.75 (1 + .5 + .25), R_1 = 1.5, R_2 = 1.
    window = NStepWindow(3, 0.5)
    out = steps(window, [1.0, 1.0, 1.0], terminated_at=2)
    assert out == [(0, 0, 1.75, 3, True), (1, 1, 1.5, 3, True), (2, 0, 1.0, 3, True)]
    assert len(window) == 0


def test_a_time_limit_cut_drops_the_steps_without_an_nth_successor():
    # Truncated at t = 3 with n = 3: s_0 and s_1 have their s_3 and s_4 (stored, bootstrapping);
    # s_2 and s_3 would need s_5 and s_6, which the cut episode never reaches.
    window = NStepWindow(3, 1.0)
    out = steps(window, [1.0] * 4, truncated_at=3)
    assert out == [(0, 0, 3.0, 3, False), (1, 1, 3.0, 4, False)]
    assert len(window) == 0


def test_a_window_saved_and_loaded_continues_the_same():
    whole, first = NStepWindow(4, 0.9), NStepWindow(4, 0.9)
    # 0.1, -0.7 and 0.3 have no exact float32: a window saved in float32 would not continue alike.
    rewards = [0.1, -0.7, 0.3, 0.25, 3.0, 1.0]
    expected = steps(whole, rewards)
    got = steps(first, rewards[:3])
    second = NStepWindow(4, 0.9)
    second.load(**first.arrays(obs_dim=1))
    for t, r in enumerate(rewards[3:], start=3):
        got += [
            (int(o[0]), a, r_, int(n[0]), term)
            for o, a, r_, n, term in second.push(
                np.array([t], np.float32), t % 2, r, np.array([t + 1], np.float32), False, False
            )
        ]
    assert got == expected


def test_n_must_be_positive():
    with pytest.raises(ValueError):
        NStepWindow(0, 0.99)


def test_a_pending_observation_is_a_copy_of_the_callers_buffer():
    # Vector envs write each step's observation into the same array: the window must keep s_t
    # as it was when pushed, not the buffer's later contents.
    window, buffer = NStepWindow(2, 0.5), np.zeros(3, np.float32)
    buffer[:] = [1.0, 2.0, 3.0]
    window.push(buffer, 0, 1.0, np.array([4.0, 5.0, 6.0], np.float32), False, False)
    buffer[:] = [7.0, 8.0, 9.0]  # the env reuses its buffer for the next step
    [out] = window.push(buffer, 1, 2.0, np.array([0.0, 0.0, 0.0], np.float32), False, False)
    np.testing.assert_array_equal(out.obs, [1.0, 2.0, 3.0])
    assert out.reward == 1.0 + 0.5 * 2.0
