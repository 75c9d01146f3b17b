"""Two studies of the same variants and seeds, run two ways: are their outcomes distinguishable?

    python scripts/compare_studies.py results/compare results/compare-pop [--out FILE.md]

Reads each study's results.json (``dqn-compare``), or its results.csv where only that was kept
(docs/compare holds the csv of a study whose run folders are gone), and prints, per variant,
the runs that ended solved (final evaluation >= 475) in each with Clopper-Pearson intervals,
the medians of the final evaluation and of the evaluation AUC, and two-sample tests of both:
Mann-Whitney U and Kolmogorov-Smirnov, with their p-values (scipy). The two ways are
typically the per-process runner and populations (``--runner process`` / ``population``),
whose runs of one seed agree to float32 rounding and so are not expected to be identical, or
one study on two machines.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from dqn.io import atomic_write_text
from dqn.stats import proportion_ci

THRESHOLD = 475.0


def load(folder: Path) -> dict[str, list[dict]]:
    if (folder / "results.json").is_file():
        rows = json.loads((folder / "results.json").read_text())
    else:  # the same rows as text: an empty cell (a run that never solved) is None
        with open(folder / "results.csv", newline="") as f:
            rows = [{k: _cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["variant"], []).append(row)
    return out


def _cell(key: str, text: str):
    if key in ("variant", "loss"):
        return text
    if text == "":
        return None
    return int(text) if key == "seed" else float(text)


def p_values(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Mann-Whitney U, Kolmogorov-Smirnov) two-sided p-values; 1.0 for identical samples."""
    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0, 1.0
    mw = stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    ks = stats.ks_2samp(a, b).pvalue
    return float(mw), float(ks)


def _column(rows: list[dict], seeds: list[int], key: str) -> np.ndarray:
    by_seed = {r["seed"]: r[key] for r in rows}
    return np.array([by_seed[s] for s in seeds], float)


def _shared_seeds(a: list[dict], b: list[dict]) -> list[int]:
    return sorted({r["seed"] for r in a} & {r["seed"] for r in b})


def _runs(study: dict[str, list[dict]]) -> str:
    """ "huber seeds 0-29, l2 seeds 0-9": what a study holds, for a message."""
    parts = []
    for variant, rows in study.items():
        seeds = sorted(r["seed"] for r in rows)
        span = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else ""
        parts.append(f"{variant} seeds {span or ', '.join(map(str, seeds))}")
    return "; ".join(parts) or "no runs"


def solved(x: np.ndarray) -> str:
    """Runs whose final evaluation reached the threshold, with their Clopper-Pearson interval."""
    k, n = int((x >= THRESHOLD).sum()), len(x)
    low, high = proportion_ci(k, n)
    return f"{k}/{n} [{low:.2f}, {high:.2f}]"


def table(first: Path, second: Path) -> str:
    a, b = load(first), load(second)
    lines = [
        f"A = {first}, B = {second}; per variant, the runs of the seeds both hold.",
        "",
        "| variant | runs | solved at end A | solved at end B | median final A / B "
        "| final eval: MWU p / KS p | median AUC A / B | AUC: MWU p / KS p |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    shared = {v: _shared_seeds(a[v], b[v]) for v in a if v in b}
    if not any(shared.values()):
        raise ValueError(
            f"{first} and {second} share no run (variant and seed): A holds {_runs(a)}, "
            f"B holds {_runs(b)}"
        )
    for variant, seeds in shared.items():
        if not seeds:
            continue
        fa, fb = (_column(x[variant], seeds, "final_eval_mean") for x in (a, b))
        ua, ub = (_column(x[variant], seeds, "eval_auc") for x in (a, b))
        fa, fb, ua, ub = (np.nan_to_num(x, nan=0.0) for x in (fa, fb, ua, ub))  # diverged: 0
        n = len(seeds)

        mf, kf = p_values(fa, fb)
        mu, ku = p_values(ua, ub)
        lines.append(
            f"| {variant} | {n} | {solved(fa)} | {solved(fb)} | "
            f"{np.median(fa):.1f} / {np.median(fb):.1f} | {mf:.2f} / {kf:.2f} | "
            f"{np.median(ua):.1f} / {np.median(ub):.1f} | {mu:.2f} / {ku:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path)
    p.add_argument("second", type=Path)
    p.add_argument("--out", type=Path, help="also write the table here")
    args = p.parse_args(argv)
    for folder in (args.first, args.second):
        if not any((folder / name).is_file() for name in ("results.json", "results.csv")):
            print(f"compare_studies: {folder} has no results.json or results.csv", file=sys.stderr)
            return 2
    try:
        text = table(args.first, args.second)
    except ValueError as exc:
        print(f"compare_studies: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
