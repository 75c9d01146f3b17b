"""summary.md and the figures of a loss comparison, from its results and per-run metrics.csv."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dqn.agent_files import STUDY_RUN
from dqn.errors import CheckpointError
from dqn.io import atomic_write_bytes
from dqn.run_log import read_metrics
from dqn.stats import (
    iqm_ci,
    median_ci,
    missing_ranked_last,
    mwu_pvalue,
    probability_of_improvement_ci,
    proportion_ci,
)

CURVE_SERIES = {
    "zero_grad_fraction.png": (["zero_grad_fraction"], "zero-gradient fraction of batch"),
    "td_error_quantiles.png": (
        ["td_error_abs_p50", "td_error_abs_p90", "td_error_abs_p99"],
        "|TD error| quantile",
    ),
}
STUDY_FIGURES = ("learning_curves.png", *CURVE_SERIES, "dead_units.png")  # plot_all's files


def _fmt_ci(point: float, low: float, high: float, digits: int = 0) -> str:
    if math.isnan(low):  # too few runs for an interval
        return f"{point:.{digits}f} [n/a]"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def md(label: str) -> str:
    """A label as markdown shows it: an underscore at a word's edge escaped, where it would
    open or close emphasis (``_base_`` rendered as an emphasised "base"); one inside a word,
    as in clipped_delta, is left as it is, which markdown leaves alone."""
    return re.sub(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])", lambda m: "\\_" * len(m[0]), label)


def group(rows: Sequence[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["variant"], []).append(r)
    return out


def _rate(successes: int, runs: int) -> str:
    low, high = proportion_ci(successes, runs)
    return f"{successes}/{runs} [{low:.2f}, {high:.2f}]"


def _steps(value: float) -> str:
    if math.isnan(value):  # a bound of an interval too few runs have
        return "n/a"
    return "not reached" if not math.isfinite(value) else f"{value:,.0f}"


def _evaluated_iqm(values: list[float], seed: int) -> str:
    """The IQM cell of runs' final evaluations or AUCs: a run the divergence guard stopped
    before its first evaluation has none and is left out, the cell saying of how many runs."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "no evaluation"
    cell = _fmt_ci(*iqm_ci(finite, seed=seed), digits=_digits(finite))
    return cell if len(finite) == len(values) else f"{cell} (of {len(finite)} runs)"


def _digits(values: list[float]) -> int:
    """Decimals that show three significant figures of the largest |value| (none from 100 up):
    CartPole's returns print as 463, a FrozenLake run's 0.65 no longer as 1 (beside 0 of 4
    runs solved at 0.7), a short run's 9.35 no longer as 9 [9, 10] over runs of 9.2 to 9.5."""
    largest = max(abs(v) for v in values)
    return 0 if largest == 0 else int(min(4, max(0, 2 - math.floor(math.log10(largest)))))


def _bar(threshold: float) -> str:
    return f">= {threshold:g}" if math.isfinite(threshold) else "no threshold"


def summary_markdown(
    rows: Sequence[dict],
    threshold: float | Mapping[str, float],
    seed: int = 0,
    envs: Mapping[str, str] | None = None,
) -> str:
    """Per variant: solve rates, median steps to solve, IQM of final eval and AUC, each with a
    95% interval (Clopper-Pearson, order statistics, percentile bootstrap).

    ``threshold``: the final evaluation that counts as solved, for every variant or per variant
    label (variants on other envs, or with their own ``solve_return``, have their own).
    ``envs``: each variant's env id, where the study knows them: a variant's row names its env
    where they differ, and variants on two envs are not compared head to head."""
    groups = group(rows)
    bars = threshold if isinstance(threshold, Mapping) else dict.fromkeys(groups, threshold)
    envs = dict(envs or {})
    several_envs = len({envs.get(label) for label in groups}) > 1
    distinct = {bars[label] for label in groups}
    shared, only = len(distinct) <= 1, next(iter(distinct), math.inf)
    # An env without a reward threshold, and no solve_return, solves nothing: say why.
    if not shared:
        solved, final_solved = "solved (eval >= its threshold)", "final eval >= its threshold"
    elif math.isfinite(only):
        solved, final_solved = f"solved (eval >= {only:g})", f"final eval >= {only:g}"
    else:
        solved, final_solved = "solved (no threshold: set solve_return)", "final eval solved"
    lines = [
        f"| variant | runs | {solved} [95% CI] "
        f"| {final_solved} [95% CI] "
        "| median env steps to first solve [95% CI] "
        "| final eval, IQM [95% CI] | eval AUC, IQM [95% CI] | zero-grad fraction | max abs Q "
        "| diverged | train s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in groups.items():
        # A run that never solved counts as infinitely late: the median is over every run.
        first = [r["first_solve_env_step"] for r in runs]
        first = [math.inf if f is None else float(f) for f in first]
        solved = sum(math.isfinite(f) for f in first)
        final = [r["final_eval_mean"] for r in runs]
        auc = [r["eval_auc"] for r in runs]
        zero = [r["zero_grad_fraction_mean"] for r in runs]
        qmax = [r["q_abs_max"] for r in runs]
        median, low, high = median_ci(first)
        bar = bars[label]
        said = [envs[label]] if several_envs and label in envs else []
        said += [] if shared else [_bar(bar)]
        shown = f"{md(label)} ({', '.join(said)})" if said else md(label)
        if math.isfinite(bar):
            ended = sum(f is not None and f >= bar for f in final)  # (None: no evaluation)
            rates = f"{_rate(solved, len(runs))} | {_rate(ended, len(runs))}"
            steps = f"{_steps(median)} [{_steps(low)}, {_steps(high)}]"
        else:  # nothing to solve: not 0 of n, which reads as a result
            rates, steps = "n/a | n/a", "n/a"
        lines.append(
            f"| {shown} | {len(runs)} | {rates} "
            f"| {steps} "
            f"| {_evaluated_iqm(final, seed)} | {_evaluated_iqm(auc, seed)} "
            f"| {_nan_safe(np.nanmean, zero):.3f} | {_nan_safe(np.nanmax, qmax):.1f} "
            f"| {sum(diverged(r) for r in runs)} "
            f"| {np.median([r['train_seconds'] for r in runs]):.1f} |"
        )
    text = "\n".join(lines) + (
        "\n\nFinal eval: the greedy evaluation at the last step, over final_eval_episodes "
        "episodes (for a run the divergence guard stopped, its last evaluation before the "
        "stop; a run stopped before its first evaluation has none: it is left out of the IQMs, "
        "whose cell then says of how many runs, and ranks below every run in a head-to-head "
        "probability of improvement). Eval AUC: the mean of all evaluations. First solve: the "
        "env step of the first evaluation >= the threshold (a periodic one, or the final one); "
        "a run that never got there counts as infinitely late. "
        "Intervals: Clopper-Pearson for rates, order statistics for the median, percentile "
        "bootstrap over runs (scipy) for IQMs. Zero-grad fraction: share of sampled "
        "transitions whose loss gradient was exactly 0, the mean of the run's metrics.csv rows "
        "(each row counting once, whatever its gradient steps). Max abs Q: "
        "the largest |Q| of a batch over the rows metrics.csv logged; the burst that trips "
        "the divergence guard logs no row, so its |Q| is not in it (diverged counts those runs). "
        "Train s: a run's wall time less its evaluations; a run trained in a population has "
        "its share, the population's time divided by its members, so the column compares "
        "variants only when their runs trained the same way (the same population sizes, or a "
        "process each). Mann-Whitney p: scipy's where no two runs tie, else a "
        "permutation test's of the same U, as runs that end at the same return tie: exact, "
        "over every split of the runs, where there are at most 9,999 splits (up to 7 runs a "
        "variant), else 9,999 seeded resamples (its floor 1e-4)."
    )
    for a, b in _compared_pairs({label: bars[label] for label in groups}, envs):
        for metric, name in (("final_eval_mean", "final evaluation"), ("eval_auc", "eval AUC")):
            x = missing_ranked_last([r[metric] for r in groups[a]])
            y = missing_ranked_last([r[metric] for r in groups[b]])
            if np.isneginf(x).all() and np.isneginf(y).all():  # a tie of nothing, not 0.50
                text += f"\n\nP({md(a)} > {md(b)}) on {name}: no run of either has an evaluation"
                continue
            p, lo, hi = probability_of_improvement_ci(x, y, seed=seed)
            ci = "no 95% CI with one run" if math.isnan(lo) else f"95% CI {lo:.2f}, {hi:.2f}"
            if lo == hi and p in (0.0, 1.0):
                # Every resample of two groups that do not overlap gives the same P: the
                # percentile bootstrap's zero width is no certainty, above all with few runs.
                ci += f"; the runs do not overlap ({len(x)} and {len(y)} runs)"
            elif lo == hi and len(np.unique(np.concatenate([x, y]))) == 1:
                # So too where every run of both ends at one value (all at 500): P is 0.5
                # in every resample.
                ci += f"; every run of both ends at {x[0]:g} ({len(x)} and {len(y)} runs)"
            # With a p-value, a reader of a P near 0.5 sees whether the runs tell the two
            # apart at all (Mann-Whitney's U is P(A > B) times the pairs).
            test = f"Mann-Whitney p = {mwu_pvalue(x, y):.2g}, two-sided"
            text += f"\n\nP({md(a)} > {md(b)}) on {name}: {p:.2f} [{ci}]; {test}"
    return text + "\n"


def _compared_pairs(
    bars: Mapping[str, float], envs: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Which variants the summary compares head to head (``bars``: each variant's threshold, in
    the study's order; ``envs``: each one's env id, where known): the fix against the 2016 bug
    where a study has both, else the two variants of an A/B study (the first against the
    second); either pair only if the two are measured against one threshold on one env
    (returns on two envs do not compare: CartPole's against Acrobot's were, where both had
    the same solve_return)."""
    envs = envs or {}
    labels = list(bars)
    if "huber" in labels and "clipped_delta" in labels:
        pair = ("huber", "clipped_delta")
    elif len(labels) == 2:
        pair = (labels[0], labels[1])
    else:
        return []
    same_env = envs.get(pair[0]) == envs.get(pair[1])
    return [pair] if bars[pair[0]] == bars[pair[1]] and same_env else []


def _nan_safe(fn, values) -> float:
    """fn over the finite values; NaN (no warning) when there are none."""
    x = np.asarray(values, float)
    return float(fn(x)) if np.isfinite(x).any() else float("nan")


def run_name(label: str, seed: int) -> str:
    """The folder of one (variant, seed) run of a study: ``runs/<label>-seed<seed>``."""
    return f"{label}-seed{seed}"


def load_curves(out: Path, rows: Sequence[dict]) -> dict[str, list[dict[str, np.ndarray]]]:
    """Per variant, the metrics.csv columns of each of its runs."""
    curves: dict[str, list[dict[str, np.ndarray]]] = {}
    for r in rows:
        path = out / "runs" / run_name(r["variant"], r["seed"]) / STUDY_RUN / "metrics.csv"
        evaluated = r.get("final_eval_mean") is not None and math.isfinite(r["final_eval_mean"])
        if evaluated and not path.is_file():
            # An evaluated run's file is gone (deleted by hand): its curve is missing from the
            # figures, which would otherwise say nothing of it.
            import warnings

            warnings.warn(
                f"{path} is missing: the figures leave that run out (the summary, from its "
                "result.json, counts it)",
                UserWarning,
                stacklevel=3,
            )
        try:
            metrics = read_metrics(path) if path.is_file() else {}
        except CheckpointError as exc:  # damaged by hand since the run ended: said, left out
            import warnings

            warnings.warn(
                f"{exc}: the figures leave that run out (the summary, from its result.json, "
                "counts it)",
                UserWarning,
                stacklevel=3,
            )
            metrics = {}
        # A run the divergence guard stopped before its first evaluation has no curve to draw.
        if len(metrics.get("env_step", ())) > 0:
            curves.setdefault(r["variant"], []).append(metrics)
    return curves


def _stack(runs: list[dict[str, np.ndarray]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """[runs, evaluations] of one column; a run stopped early (diverged) is padded with NaN."""
    longest = max(runs, key=lambda r: len(r["env_step"]))
    n = len(longest["env_step"])
    values = np.full((len(runs), n), np.nan)
    for i, r in enumerate(runs):
        values[i, : len(r[key])] = r[key]
    return longest["env_step"], values


def _variant_line(i: int) -> dict:
    """The colour, dashes and width of the i-th variant's line: variants whose curves coincide
    (huber and clipped_grad, same gradients; 0 zero-gradient fraction for huber and l2) stay
    visible. Colours and dashes change together for ten variants, then the dashes take the
    next step, so that 40 variants get 40 lines (colour i % 10 and dashes i % 4 repeat at 20)."""
    dash = (i + i // 10) % 4
    return {"color": f"C{i % 10}", "ls": ("-", "--", "-.", ":")[dash], "lw": 2.2 - 0.3 * dash}


def diverged(row: Mapping) -> bool:
    """Whether the divergence guard stopped the run: a ``diverged_at_env_step`` (None where it
    did not; NaN too, as a CSV reads an empty cell back). The summary's count and the legend's
    use this one rule."""
    step = row.get("diverged_at_env_step")
    return step is not None and step == step


def runs_at_end(rows: Sequence[Mapping], label: str) -> tuple[int, int]:
    """(runs of variant ``label`` that trained to their end, its runs): the others the
    divergence guard stopped."""
    mine = [r for r in rows if r["variant"] == label]
    return sum(not diverged(r) for r in mine), len(mine)


def curve_label(label: str, ending: int, runs: int) -> str:
    """A variant's legend entry: with how many of its runs its curve ends, where fewer than
    all (the others were stopped by the divergence guard, or never evaluated)."""
    return label if ending == runs else f"{label} ({ending} of {runs} runs at the end)"


def plot_all(out: Path, rows: Sequence[dict], seed: int = 0) -> list[Path]:
    """Write learning_curves.png, zero_grad_fraction.png, td_error_quantiles.png, dead_units.png."""
    import warnings

    with warnings.catch_warnings():
        # Rows before learning starts hold NaN diagnostics: an all-NaN column is expected.
        warnings.simplefilter("ignore", RuntimeWarning)
        return _plot_all(out, rows, seed)


def _plot_all(out: Path, rows: Sequence[dict], seed: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = load_curves(out, rows)
    # Each variant's legend entry, in every figure: with how many of its runs reach their end.
    shown = {label: curve_label(label, *runs_at_end(rows, label)) for label in curves}
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, runs) in enumerate(curves.items()):
        steps, evals = _stack(runs, "eval_return_mean")
        cis = np.array([iqm_ci(col[np.isfinite(col)], seed=seed) for col in evals.T])
        # A run the divergence guard stopped drops out after its last evaluation, where the
        # table counts it at that evaluation: the legend says how many runs reach their end.
        # By the guard's record, not by the study's last step: a variant with a shorter
        # total_env_steps of its own was labelled "0 of 3 runs at the end".
        # (A marker: a curve of one evaluation is otherwise a line of no length.)
        (line,) = ax.plot(
            steps,
            cis[:, 0],
            **_variant_line(i),
            marker="o" if len(steps) == 1 else None,
            label=shown[label],
        )
        ax.fill_between(steps, cis[:, 1], cis[:, 2], color=line.get_color(), alpha=0.2)
    # A variant none of whose runs reached an evaluation (all stopped by the guard first) has
    # no curve: named in the legend, where it had vanished from every figure without a word.
    for label in dict.fromkeys(r["variant"] for r in rows):
        if label not in curves:
            finals = [r.get("final_eval_mean") for r in rows if r["variant"] == label]
            evaluated = any(v is not None and math.isfinite(v) for v in finals)
            # (Evaluated runs whose files are gone or damaged: load_curves warned of each.)
            said = (
                "its runs' metrics.csv missing or damaged"
                if evaluated
                else "no run reached an evaluation"
            )
            ax.plot([], [], ls="none", label=f"{label}: {said}")
    ax.set(xlabel="env steps", ylabel="greedy evaluation return (IQM, 95% CI)")
    ax.legend(fontsize=8)
    written.append(_save(fig, out / "learning_curves.png"))

    for filename, (keys, ylabel) in CURVE_SERIES.items():
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (label, runs) in enumerate(curves.items()):
            # Each variant in its colour of the learning curves. One series a variant: its own
            # line too; several: dashes tell them apart.
            own = _variant_line(i)
            color = own.pop("color")
            lines = [{"ls": ls} for ls in ("-", "--", ":")] if len(keys) > 1 else [own]
            for key, style in zip(keys, lines):
                steps, values = _stack(runs, key)
                color = _diagnostic_line(
                    ax,
                    steps,
                    np.nanmedian(values, axis=0),
                    f"{shown[label]} {key.rsplit('_', 1)[-1]}" if len(keys) > 1 else shown[label],
                    color=color,
                    **style,
                )
        # (What is aggregated goes in the title: a long y label was cut at the figure's edge.)
        ax.set(xlabel="env steps", ylabel=ylabel, title="median over seeds")
        if filename.startswith("td_error"):
            ax.set_yscale("log")
        else:  # a fraction: an axis of only zeros is not centred on 0
            ax.set_ylim(bottom=0)
        _legend(ax)
        written.append(_save(fig, out / filename))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, runs) in enumerate(curves.items()):
        color = _variant_line(i)["color"]
        unit_keys = [k for k in runs[0] if "_fraction/hidden_" in k]
        for key, style in zip(unit_keys, ("-", "--", ":", "-.")):
            steps, values = _stack(runs, key)
            color = _diagnostic_line(
                ax,
                steps,
                np.nanmean(values, axis=0),
                f"{shown[label]} {key}",
                color=color,
                ls=style,
            )
    ax.set(xlabel="env steps", ylabel="dead (ReLU) / saturated units", title="mean over seeds")
    ax.set_ylim(bottom=0)
    _legend(ax)
    written.append(_save(fig, out / "dead_units.png"))
    return written


def _diagnostic_line(ax, steps: np.ndarray, values: np.ndarray, label: str, color, **style):
    """One variant's series of a diagnostics figure; its colour (None: the next one). A series
    with no value (``diagnostics: false``, or stopped before its first update) is left out of
    the figure and its legend; one of a single value is a marker, not a line of no length."""
    if not np.isfinite(values).any():
        return color
    (line,) = ax.plot(
        steps,
        values,
        color=color,
        marker="o" if np.isfinite(values).sum() == 1 else None,
        label=label,
        **style,
    )
    return line.get_color()


def _legend(ax) -> None:
    """The legend of a diagnostics figure, or a line saying why the figure is empty."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncol=2)
    else:
        ax.text(
            0.5,
            0.5,
            "no run logged these diagnostics\n(diagnostics: false, or stopped before an update)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )


def _save(fig, path: Path) -> Path:
    """The figure as a PNG at ``path``, written whole or not at all (no temporary file left)."""
    import io

    import matplotlib.pyplot as plt

    png = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(png, format="png", dpi=110)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
    return path
