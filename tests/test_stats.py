"""IQM, bootstrap intervals and probability of improvement on synthetic results."""

import warnings

import numpy as np
import pytest
from scipy import stats

from dqn.stats import iqm, iqm_ci, probability_of_improvement, probability_of_improvement_ci


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 values: drop the 2 smallest (-50, 1) and the 2 largest (6, 100), average 2, 3, 4, 5.
    assert iqm([100, 1, 2, 3, 4, 5, 6, -50]) == pytest.approx(3.5)
    # Robust to one wild run where the mean is not.
    x = [10, 11, 12, 13, 14, 15, 16, 17, 18, 1e6]
    assert iqm(x) == pytest.approx(np.mean([12, 13, 14, 15, 16, 17]))


def test_iqm_trims_a_quarter_from_each_end():
    # 4 runs: a quarter is one run each end, so the IQM is mean(1, 2); a 20% trim would keep
    # all four (mean 3.25).
    assert iqm([0.0, 1.0, 2.0, 10.0]) == 1.5


def test_bootstrap_interval_is_the_percentiles_of_the_resampled_iqms():
    # 3 runs (too few to trim: the IQM is the mean, 11/3). Of the 27 equally likely resamples
    # one is (0, 0, 0) and one (10, 10, 10), each 3.7% of them, more than the 2.5% in each
    # tail: the percentile interval is [0, 10]. The "basic" bootstrap would reflect it about
    # the point, [2 * 11/3 - 10, 2 * 11/3 - 0] = [-2.67, 7.33].
    point, low, high = iqm_ci([0.0, 1.0, 10.0])
    assert point == pytest.approx(11 / 3) and (low, high) == (0.0, 10.0)
    # 2 runs have an interval: 1/4 of resamples are (1, 1) and 1/4 (3, 3).
    assert iqm_ci([1.0, 3.0]) == (2.0, 1.0, 3.0)


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


def test_the_p_of_improvement_interval_is_the_percentiles_of_resampled_runs():
    # Overlapping groups (separated ones give [1, 1] whatever the method): the interval is
    # the 2.5th and 97.5th percentiles of P(X > Y) over the groups' runs resampled with
    # replacement, here redone by hand with another generator and twice the resamples.
    rng = np.random.default_rng(5)
    x, y = rng.normal(0.5, 1.0, 12), rng.normal(0.0, 1.0, 15)
    point, low, high = probability_of_improvement_ci(x, y)
    assert point == probability_of_improvement(x, y)
    again = np.random.default_rng(1)
    boots = [
        probability_of_improvement(again.choice(x, len(x)), again.choice(y, len(y)))
        for _ in range(4000)
    ]
    # Two bootstraps of 2,000 and 4,000 resamples: their percentiles differ by about 0.01.
    assert low == pytest.approx(np.percentile(boots, 2.5), abs=0.03)
    assert high == pytest.approx(np.percentile(boots, 97.5), abs=0.03)
    # A 50% interval lies inside the 95% one, both around the point.
    _, low_50, high_50 = probability_of_improvement_ci(x, y, confidence=0.5)
    assert low < low_50 < point < high_50 < high


def test_p_of_improvement_is_mann_whitneys_u_over_nm_for_each_row():
    # Ties (few distinct values), runs with no evaluation (-inf ties with -inf) and a NaN (which
    # scipy propagates): each row of a stack is the U / nm of scipy's mannwhitneyu, to the bit.
    from dqn.stats import pairwise_improvement

    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, (6, 9)).astype(float)
    y = rng.integers(0, 4, (6, 5)).astype(float)
    x[1, :3], y[1, :2], x[2, 0], y[3, 4] = -np.inf, -np.inf, np.nan, np.nan
    for row, p in zip(range(6), pairwise_improvement(x, y)):
        u = stats.mannwhitneyu(x[row], y[row], alternative="two-sided").statistic
        assert p == u / 45 or (np.isnan(p) and np.isnan(u)), row
    assert np.isnan(pairwise_improvement(x, y)[[2, 3]]).all()
    assert pairwise_improvement(x.T, y.T, axis=0).tolist() == pytest.approx(
        pairwise_improvement(x, y).tolist(), nan_ok=True
    )


@pytest.mark.parametrize("batched", [False, True])
def test_the_p_of_improvement_interval_is_scipys_bootstrap_of_mann_whitney(batched, monkeypatch):
    # The same resamples as scipy's bootstrap calling mannwhitneyu once per resample (same
    # seed), so the same interval to the bit; in batches of at most MAX_PAIRS pairs (set low
    # here) the draws come in another order, and the interval moves by about a resample's step.
    from dqn import stats as dqn_stats

    rng = np.random.default_rng(11)
    x, y = rng.integers(0, 6, 14).astype(float), rng.integers(1, 7, 10).astype(float)
    if batched:
        monkeypatch.setattr(dqn_stats, "MAX_PAIRS", 300 * 140)  # batches of 300 resamples
    batches = []
    counted = dqn_stats.pairwise_improvement

    def counting(a, b, axis=-1):
        if a.ndim == 2:  # a batch of resamples (the point estimate is the 1-D call)
            batches.append(a.shape[0])
        return counted(a, b, axis)

    monkeypatch.setattr(dqn_stats, "pairwise_improvement", counting)
    point, low, high = probability_of_improvement_ci(x, y, n_resamples=999, seed=3)
    assert batches == ([300, 300, 300, 99] if batched else [999])

    # scipy's bootstrap with U / nm from mannwhitneyu as its per-resample statistic.
    from benchmarks.report_stats import per_resample

    scipys_point, scipys_low, scipys_high = per_resample(x, y, 999, seed=3)
    assert point == scipys_point
    if batched:
        assert (low, high) == pytest.approx((scipys_low, scipys_high), abs=0.03)
    else:
        assert (low, high) == (scipys_low, scipys_high)


def test_proportion_interval_is_clopper_pearson():
    from dqn.stats import proportion_ci

    # 30 of 30: the lower bound solves p^30 = 0.025, p = 0.025 ** (1 / 30) = 0.8843.
    low, high = proportion_ci(30, 30)
    assert low == pytest.approx(0.025 ** (1 / 30)) and high == 1.0
    # 0 of 30 mirrors it.
    assert proportion_ci(0, 30) == pytest.approx((0.0, 1 - 0.025 ** (1 / 30)))


def test_median_interval_from_order_statistics():
    from scipy import stats

    from dqn.stats import median_ci

    # n = 30: P(B <= 9) = 0.0214 and P(B <= 10) = 0.0494 for B ~ Bin(30, 1/2), so the 95%
    # interval is [x_(10), x_(21)] (coverage 1 - 2 * 0.0214 = 0.957).
    assert stats.binom.cdf(9, 30, 0.5) < 0.025 < stats.binom.cdf(10, 30, 0.5)
    x = np.arange(1.0, 31.0)
    assert median_ci(x) == (15.5, 10.0, 21.0)
    # Runs that never got there count as inf: only their rank matters.
    y = np.concatenate([np.arange(1.0, 21.0), np.full(10, np.inf)])
    assert median_ci(y) == (15.5, 10.0, np.inf)
    z = np.concatenate([np.arange(1.0, 11.0), np.full(20, np.inf)])
    assert median_ci(z)[0] == np.inf


def test_ks_statistic_is_scipys_with_ties_and_infinities():
    from dqn.stats import ks_statistic

    rng = np.random.default_rng(0)
    for _ in range(50):
        x = np.round(rng.normal(size=rng.integers(1, 30)))
        y = np.round(rng.normal(0.5, size=rng.integers(1, 30)))
        x[0] = -np.inf  # a run with no evaluation ranks below every other
        assert ks_statistic(x, y) == pytest.approx(stats.ks_2samp(x, y).statistic)


def test_ks_pvalue_is_the_exact_permutation_p_value_where_values_tie():
    """With ties the p-value is the share of the C(n + m, n) relabellings whose KS statistic
    is at least the observed one (enumerated here by brute force; permutation_test enumerates
    them too when there are fewer than its resamples); without ties it is scipy's."""
    import itertools

    from dqn.stats import ks_pvalue, ks_statistic

    x, y = np.array([0.0, 0.0, 1.0, 3.0]), np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    pooled, observed = np.concatenate([x, y]), ks_statistic(x, y)
    splits = list(itertools.combinations(range(9), 4))
    hits = 0
    for idx in splits:
        rest = [i for i in range(9) if i not in idx]
        hits += ks_statistic(pooled[list(idx)], pooled[rest]) >= observed - 1e-12
    assert ks_pvalue(x, y) == pytest.approx(hits / len(splits))
    untied_x, untied_y = np.arange(10.0), np.arange(10.0) + 3.5
    assert ks_pvalue(untied_x, untied_y) == stats.ks_2samp(untied_x, untied_y).pvalue


def test_ks_pvalue_of_interleaved_samples_is_1_without_a_word_on_stderr(recwarn):
    # D = 1/5 is the least two untied samples of 5 can differ by: every split is as far apart,
    # p = 1. scipy's exact method says it failed there (a RuntimeWarning next to a report).
    from dqn.stats import ks_pvalue

    x = [500.0, 475.0, -np.inf, 120.25, 300.0]  # -inf: a run without an evaluation
    assert ks_pvalue(x, [480.0, 400.0, 130.0, 50.0, 310.0]) == pytest.approx(1.0)
    assert ks_pvalue(np.arange(5.0), np.arange(5.0) + 0.5) == pytest.approx(1.0)
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]


def test_ks_pvalue_does_not_inherit_scipys_bias_where_runs_end_at_500():
    """20 and 25 of 30 runs at exactly 500: scipy's continuous-data p-value is 0.39; the
    permutation p-value of the same statistic is less than half of it."""
    from dqn.stats import ks_pvalue

    rng = np.random.default_rng(1)
    a = np.r_[np.full(20, 500.0), rng.uniform(400, 500, 10)]
    b = np.r_[np.full(25, 500.0), rng.uniform(400, 500, 5)]
    assert stats.ks_2samp(a, b).pvalue > 0.3
    assert ks_pvalue(a, b) < 0.5 * stats.ks_2samp(a, b).pvalue


def test_mwu_pvalue_is_the_exact_p_value_where_runs_tie_at_500():
    """30 runs at 500 against 28 and two below: whatever the two low values, U's distance from
    its mean is largest when both fall in one sample, so the exact p-value is the chance of
    that, 2 C(30, 2) / C(60, 2) = 0.4915 (scipy's normal approximation says 0.16). Without
    ties it is scipy's."""
    from math import comb

    from dqn.stats import mwu_pvalue

    a, b = np.r_[np.full(28, 500.0), 473.75, 490.0], np.full(30, 500.0)
    exact = 2 * comb(30, 2) / comb(60, 2)
    assert stats.mannwhitneyu(a, b).pvalue < 0.2
    # 9,999 seeded resamples: a standard error of 0.005 around the exact value.
    assert mwu_pvalue(a, b) == pytest.approx(exact, abs=0.02)
    untied_x, untied_y = np.arange(10.0), np.arange(10.0) + 3.5
    assert mwu_pvalue(untied_x, untied_y) == stats.mannwhitneyu(untied_x, untied_y).pvalue


def test_intervals_that_too_few_runs_cannot_give_are_nan():
    from dqn.stats import median_ci

    assert np.isnan(iqm_ci([5.0])[1:]).all() and iqm_ci([5.0])[0] == 5.0
    assert np.isnan(probability_of_improvement_ci([1.0], [0.0, 2.0])[1:]).all()
    # A run without a number on either side: no point, and no interval around it.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x, y in [([np.nan, 1.0, 2.0], [0.0, 1.0, 3.0]), ([0.0, 1.0, 3.0], [1.0, np.nan])]:
            assert np.isnan(probability_of_improvement_ci(x, y)).all()
    # n = 5: P(B = 0) = 1/32 > 0.025, so no pair of order statistics reaches 95%; n = 6:
    # [x_(1), x_(6)] covers the median with 1 - 2 / 64 = 0.969.
    assert np.isnan(median_ci(np.arange(5.0))[1:]).all()
    assert median_ci(np.arange(6.0)) == (2.5, 0.0, 5.0)
    # The narrowest: a confidence of 0 is the median itself, not the widest pair (n = 35 is
    # one where P(B <= 17) rounds below 1/2); 1% is the two order statistics beside it.
    assert median_ci(np.arange(35.0), confidence=0.0) == (17.0, 17.0, 17.0)
    assert median_ci(np.arange(35.0), confidence=0.01) == (17.0, 16.0, 18.0)


def test_ks_pvalue_counts_a_value_both_samples_hold_as_a_tie():
    """No run ties another of its own sample, only runs of the other: still ties, where
    scipy's continuous-data p-value does not hold."""
    from dqn.stats import ks_pvalue

    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # Of the 56 ways to split the 8 runs 3 / 5, 40 give a KS statistic >= the observed 0.4.
    assert ks_pvalue(x, y) == pytest.approx(40 / 56)


def test_mwu_pvalue_of_samples_with_a_single_tie_is_the_exact_p_value():
    # One value (3) in both samples is a tie too: scipy's normal approximation gives 0.12.
    from itertools import combinations

    from dqn.stats import mwu_pvalue

    pooled = np.array([1.0, 2.0, 3.0, 3.0, 4.0, 5.0])

    def u_distance(a, b):  # |U - n m / 2|, U counting a pair that ties one half
        u = sum((i > j) + 0.5 * (i == j) for i in a for j in b)
        return abs(u - len(a) * len(b) / 2)

    observed = u_distance(pooled[:3], pooled[3:])  # U = 0.5
    splits = [np.isin(np.arange(6), chosen) for chosen in combinations(range(6), 3)]
    at_least = sum(u_distance(pooled[s], pooled[~s]) >= observed for s in splits)
    assert at_least == 4  # the lowest three or the highest, with either 3: 4 splits of 20
    assert mwu_pvalue(pooled[:3], pooled[3:]) == pytest.approx(at_least / len(splits))


def test_a_group_of_one_run_has_the_exact_p_value_of_its_splits():
    # scipy's permutation_test refuses a group of one: the 4 ways to put the one run among
    # the 4, counted. The run at 500 ties the highest of 3: U distance 1 of at most 1.5.
    from dqn.stats import ks_pvalue, mwu_pvalue

    one, three = np.array([500.0]), np.array([9.0, 100.0, 500.0])
    # Splits: {9} U=0 -> 1.5; {100} U=1 -> 0.5; {500} U=2.5 -> 1; {500'} the same -> 1.
    assert mwu_pvalue(one, three) == pytest.approx(3 / 4)
    assert mwu_pvalue(three, one) == pytest.approx(3 / 4)
    # KS: one run at 500 against [9, 100, 500]: D = 2/3, and every split gives at least as
    # much ({9} alone: D = 1; {100} or a 500 alone: 2/3).
    assert ks_pvalue(one, three) == pytest.approx(1.0)
    assert mwu_pvalue([500.0], [500.0]) == 1.0
