"""Aggregate statistics of many runs, after Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice"): interquartile mean (IQM), percentile bootstrap confidence intervals,
and the probability of improvement; plus exact intervals for a success rate (Clopper-Pearson)
and for a median (order statistics). scipy does the trimming, the bootstrap and the binomials.

With one task (one env), the stratified bootstrap of that paper is the ordinary bootstrap over
runs: strata are tasks, and there is one.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats


def iqm(x: Sequence[float], axis: int = -1) -> np.ndarray | float:
    """Mean of the middle 50% of the values (25% trimmed from each end)."""
    return stats.trim_mean(np.asarray(x, float), 0.25, axis=axis)


def iqm_ci(
    x: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(IQM, low, high): percentile-bootstrap interval of the IQM over runs, deterministic. One
    run has no interval: its bounds are NaN (a bootstrap of one value would claim certainty)."""
    x = np.asarray(x, float)
    point = float(iqm(x))
    if len(x) < 2:
        return point, float("nan"), float("nan")
    if np.all(x == x[0]):  # every resample is the same runs
        return point, point, point
    res = stats.bootstrap(
        (x,),
        iqm,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


# Pairs of runs one bootstrap batch compares at most: 64 MB for each of its boolean arrays.
MAX_PAIRS = 2**26


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + 0.5 P(X = Y) for a random run of X against one of Y (Mann-Whitney U / nm)."""
    return float(pairwise_improvement(np.asarray(x, float), np.asarray(y, float)))


def pairwise_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) counted over every pair of a run of ``x`` and one of ``y``, along
    ``axis`` (vectorized over the other axes, as ``stats.bootstrap`` calls it); NaN where a
    side holds a NaN, as ``stats.mannwhitneyu`` gives.

    The count is Mann-Whitney's U (ties half, as average ranks give them), an exact
    half-integer, so U / nm is the same float either way. Counted here, a bootstrap's resamples
    are one array operation; through ``mannwhitneyu`` they were a call each, about 2 s for
    2,000 resamples, most of a small study's report."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    above = (x[..., :, None] > y[..., None, :]).sum(axis=(-2, -1))
    tied = (x[..., :, None] == y[..., None, :]).sum(axis=(-2, -1))
    p = (above + 0.5 * tied) / (x.shape[-1] * y.shape[-1])
    return np.where(np.isnan(x).any(axis=-1) | np.isnan(y).any(axis=-1), np.nan, p)


def probability_of_improvement_ci(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(P(X > Y), low, high) with a percentile bootstrap over the runs of each; NaN bounds when
    either side has one run (no interval)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    point = probability_of_improvement(x, y)
    if len(x) < 2 or len(y) < 2:
        return point, float("nan"), float("nan")

    # All resamples in one batch (the draws, and so the interval, are those of one call per
    # resample), unless their pairs pass MAX_PAIRS: then batches of at most that many.
    pairs = len(x) * len(y)
    res = stats.bootstrap(
        (x, y),
        pairwise_improvement,
        n_resamples=n_resamples,
        batch=None if n_resamples * pairs <= MAX_PAIRS else max(1, MAX_PAIRS // pairs),
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    low, high = res.confidence_interval
    return point, float(np.nan_to_num(low, nan=point)), float(np.nan_to_num(high, nan=point))


def missing_ranked_last(values: Sequence[float | None]) -> np.ndarray:
    """Runs' values for a rank-based comparison (P(A > B), Mann-Whitney, KS): a run with none
    (None or NaN: stopped before its first evaluation) ranks below every run that has one."""
    x = np.array([np.nan if v is None else v for v in values], float)
    return np.where(np.isnan(x), -np.inf, x)


def ks_statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Two-sample Kolmogorov-Smirnov statistic, max_v |F_x(v) - F_y(v)| over the pooled
    values, along ``axis`` (vectorized over the other axes, as permutation_test calls it)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    pooled = np.concatenate([x, y], axis=-1)
    cdf_x = (x[..., None, :] <= pooled[..., :, None]).mean(axis=-1)
    cdf_y = (y[..., None, :] <= pooled[..., :, None]).mean(axis=-1)
    return np.abs(cdf_x - cdf_y).max(axis=-1)


def ks_pvalue(x: Sequence[float], y: Sequence[float], n_resamples: int = 9_999) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value that holds with ties.

    scipy's ``ks_2samp`` assumes continuous data; final evaluations pile up at exactly 500 on
    CartPole, and with such ties its p-value is too large (0.39 where a permutation test of the
    same statistic gives 0.10, for 20 and 25 of 30 runs at 500). Without ties this is scipy's
    p-value; with ties, a permutation test's (seeded, so deterministic; its floor is
    1 / (n_resamples + 1)). Values may be -inf (a run with no evaluation): only order matters.
    """
    return _tie_safe_pvalue(x, y, ks_statistic, stats.ks_2samp, n_resamples)


def u_distance(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """|U - n_x n_y / 2|: how far the Mann-Whitney U statistic of ``x`` (ties counted half,
    by average ranks) is from its mean when neither sample tends to be larger; along ``axis``,
    vectorized over the others, as permutation_test calls it."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    n_x, n_y = x.shape[-1], y.shape[-1]
    ranks = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
    u = ranks[..., :n_x].sum(axis=-1) - n_x * (n_x + 1) / 2
    return np.abs(u - n_x * n_y / 2)


def mwu_pvalue(x: Sequence[float], y: Sequence[float], n_resamples: int = 9_999) -> float:
    """Two-sided Mann-Whitney U p-value that holds with ties.

    With ties scipy's ``mannwhitneyu`` uses its normal approximation, which is far off where
    nearly every run ends at exactly 500: 0.16 where the exact p-value is 0.49 (30 runs at 500
    against 28 and two below), 0.042 where it is 0.11 (26 at 500 and four just below). Without
    ties this is scipy's p-value; with ties, a permutation test's of the same statistic, as
    ``ks_pvalue``.
    """

    def scipys(a, b):
        return stats.mannwhitneyu(a, b, alternative="two-sided")

    return _tie_safe_pvalue(x, y, u_distance, scipys, n_resamples)


def _tie_safe_pvalue(x, y, statistic, scipys, n_resamples: int) -> float:
    """``scipys(x, y).pvalue`` where no value ties; else the p-value of a permutation test of
    ``statistic`` (large where the samples differ; seeded, so deterministic)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    pooled = np.concatenate([x, y])
    if len(np.unique(pooled)) == len(pooled):
        with warnings.catch_warnings():
            # scipy's exact KS p-value "fails" where it is 1 (the smallest D two untied samples
            # can have) and it says so on stderr, then gives its asymptotic one: 1 as well.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
            return float(scipys(x, y).pvalue)
    if min(len(x), len(y)) < 2:  # which permutation_test refuses: every split, counted
        return _exact_pvalue(x, y, statistic)
    res = stats.permutation_test(
        (x, y),
        statistic,
        permutation_type="independent",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="greater",
        rng=np.random.default_rng(0),
    )
    return float(res.pvalue)


def _exact_pvalue(x: np.ndarray, y: np.ndarray, statistic) -> float:
    """The share of the splits of the pooled values into groups of len(x) and len(y) whose
    ``statistic`` is at least the observed one (up to rounding): the exact permutation
    p-value, for a group of a single run, which ``permutation_test`` refuses (a group of one
    among n runs in all has n splits)."""
    pooled = np.concatenate([x, y])
    splits = np.array(list(itertools.combinations(range(len(pooled)), len(x))), np.intp)
    mask = np.zeros((len(splits), len(pooled)), bool)
    mask[np.arange(len(splits))[:, None], splits] = True
    xs = pooled[np.nonzero(mask)[1].reshape(mask.shape[0], -1)]
    ys = pooled[np.nonzero(~mask)[1].reshape(mask.shape[0], -1)]
    observed = float(statistic(x, y))
    return float(np.mean(statistic(xs, ys) >= observed - 1e-12 * abs(observed)))


def proportion_ci(successes: int, runs: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson ("exact") interval of a success probability from ``successes``/``runs``."""
    ci = stats.binomtest(successes, runs).proportion_ci(confidence, method="exact")
    return float(ci.low), float(ci.high)


def median_ci(x: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): distribution-free interval from order statistics.

    The interval [x_(j), x_(k)] (sorted, 1-based) covers the true median with probability
    P(j <= B < k), B ~ Binomial(n, 1/2); j and k are the symmetric pair that reaches
    ``confidence``. Values may be inf (a run that never got there): only ranks matter. With too
    few runs for any pair (n <= 5 at 95%: even [x_(1), x_(n)] covers with 1 - 2 / 2^n) the
    bounds are NaN.
    """
    x = np.sort(np.asarray(x, float))
    n = len(x)
    point = float(np.median(x)) if np.isfinite(np.median(x)) else float("inf")
    # The smallest j with P(B <= j) >= alpha/2, so that P(B < j) < alpha/2 on each side.
    j = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    if j < 1:
        return point, float("nan"), float("nan")
    # k >= j: P(B <= (n - 1) / 2) >= 1/2 >= alpha/2 keeps j <= (n + 1) / 2 (equal only where
    # float rounding meets a confidence of 0, n odd: the interval is then the median itself).
    k = n - j + 1
    return point, float(x[j - 1]), float(x[k - 1])
