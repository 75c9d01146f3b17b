"""IQM, bootstrap intervals and probability of improvement on synthetic results."""

import numpy as np
import pytest

from dqn.stats import iqm, iqm_ci, probability_of_improvement, probability_of_improvement_ci


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 values: drop the 2 smallest (-50, 1) and the 2 largest (6, 100), average 2, 3, 4, 5.
    assert iqm([100, 1, 2, 3, 4, 5, 6, -50]) == pytest.approx(3.5)
    # Robust to one wild run where the mean is not.
    x = [10, 11, 12, 13, 14, 15, 16, 17, 18, 1e6]
    assert iqm(x) == pytest.approx(np.mean([12, 13, 14, 15, 16, 17]))


def test_bootstrap_interval_is_deterministic_and_covers_the_truth():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=200.0, scale=10.0, size=50)
    a, b = iqm_ci(x, seed=1), iqm_ci(x, seed=1)
    assert a == b
    point, low, high = a
    assert low < point < high
    assert low < 200.0 < high  # the IQM of a symmetric distribution is its centre
    assert high - low < 10.0


def test_bootstrap_of_identical_runs_is_a_point():
    assert iqm_ci([500.0] * 10) == (500.0, 500.0, 500.0)


def test_probability_of_improvement():
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    # Ties count one half: x = [1, 2] vs y = [2, 2]: pairs (1,2) lose, (2,2) tie -> 2 * 0.5 / 4.
    assert probability_of_improvement([1, 2], [2, 2]) == 0.25
    p, low, high = probability_of_improvement_ci(np.arange(10.0) + 100, np.arange(10.0), seed=0)
    assert (p, low, high) == (1.0, 1.0, 1.0)
