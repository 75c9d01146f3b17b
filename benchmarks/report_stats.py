"""A study report's head-to-head interval, P(X > Y) with a percentile bootstrap, computed two
ways side by side: ``python -m benchmarks.report_stats [--runs 30] [--resamples 2000]``.

As scipy's ``bootstrap`` computes it with ``mannwhitneyu`` called once per resample (how
``dqn.stats.probability_of_improvement_ci`` did it), and as dqn now does, every resample's pairs
counted in one array operation (``dqn.stats.pairwise_improvement``). Both draw the same resamples
from the same seed; the script checks that the intervals are equal and prints the ratio. Runs
are final evaluations as CartPole studies give them: most at exactly 500 (ties), the rest spread
below.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats

from benchmarks.args import Parser, positive_int
from dqn.stats import probability_of_improvement_ci


def finals(runs: int, solved: float, rng: np.random.Generator) -> np.ndarray:
    """``runs`` final evaluations: a share ``solved`` at 500, the others spread over 150-500."""
    return np.where(rng.random(runs) < solved, 500.0, rng.uniform(150.0, 500.0, runs).round(1))


def per_resample(x: np.ndarray, y: np.ndarray, resamples: int, seed: int) -> tuple:
    def u_over_nm(a, b):
        return stats.mannwhitneyu(a, b, alternative="two-sided").statistic / (len(a) * len(b))

    res = stats.bootstrap(
        (x, y),
        u_over_nm,
        n_resamples=resamples,
        vectorized=False,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return u_over_nm(x, y), res.confidence_interval.low, res.confidence_interval.high


def main(argv: list[str] | None = None) -> int:
    p = Parser(__file__, __doc__)
    p.add_argument("--runs", type=positive_int, default=30, help="runs of each variant")
    p.add_argument("--resamples", type=positive_int, default=2000)
    args = p.parse_args(argv)
    if args.runs < 2:
        p.error(f"argument --runs: a bootstrap needs at least 2 runs, got {args.runs}")
    rng = np.random.default_rng(0)
    x, y = finals(args.runs, 0.8, rng), finals(args.runs, 0.5, rng)
    t0 = time.perf_counter()
    old = per_resample(x, y, args.resamples, seed=0)
    t1 = time.perf_counter()
    new = probability_of_improvement_ci(x, y, n_resamples=args.resamples, seed=0)
    t2 = time.perf_counter()
    assert tuple(map(float, old)) == new, (old, new)  # the same resamples, the same interval
    print(
        f"P(X > Y) = {new[0]:.3f} [{new[1]:.3f}, {new[2]:.3f}], {args.runs} runs each, "
        f"{args.resamples} resamples: mannwhitneyu per resample {t1 - t0:.3f} s, "
        f"pairs counted at once {t2 - t1:.4f} s, {(t1 - t0) / (t2 - t1):.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
