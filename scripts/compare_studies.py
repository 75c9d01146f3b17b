"""Two studies of the same variants and seeds, run two ways: are their outcomes distinguishable?

    python scripts/compare_studies.py results/compare results/compare-pop [--out FILE.md]
        [--threshold 475]

Reads each study's results.json (``dqn-compare``), or its results.csv where only that was kept
(docs/compare holds the csv of a study whose run folders are gone), and prints, per variant,
the runs that ended solved (final evaluation >= --threshold: 475, CartPole-v1's, unless given;
the table's header names it) in each with Clopper-Pearson intervals,
the medians of the final evaluation and of the evaluation AUC, and two-sample tests of both:
Mann-Whitney U and Kolmogorov-Smirnov, with their p-values (scipy; both by permutation where
runs tie, as many end at exactly 500: ``dqn.stats.mwu_pvalue``, ``dqn.stats.ks_pvalue``). The
two ways are typically the per-process runner and populations (``--runner process`` /
``population``), whose runs of one seed agree to float32 rounding and so are not expected to
be identical, or one study on two machines.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from dqn.command_line import Parser, fail, home_expanded
from dqn.io import atomic_write_text
from dqn.stats import ks_pvalue, missing_ranked_last, mwu_pvalue, proportion_ci
from dqn.study_runs import check_result_rows

PROG = Path(__file__).name
THRESHOLD = 475.0  # CartPole-v1's reward threshold; --threshold for another env's
# The table's first line ends so; --out replaces a file only if its first line does too.
TITLE_END = "; per variant, the runs of the seeds both hold."
# What the comparison reads of each run.
NEEDS = ("variant", "seed", "final_eval_mean", "eval_auc")


def load(folder: Path) -> dict[str, list[dict]]:
    """A study's runs by variant. ValueError naming the file if it cannot be read, or is not
    the runs of a dqn-compare study."""
    path = folder / "results.json"
    if not path.is_file():
        path = folder / "results.csv"
    try:
        rows = json.loads(path.read_text()) if path.suffix == ".json" else _csv_rows(path)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, csv.Error) as exc:  # not JSON, not UTF-8, or a cell that is no number
        raise ValueError(f"cannot read {path}: {exc}") from None
    check_result_rows(path, rows, NEEDS)
    out: dict[str, list[dict]] = {}
    seen: set[tuple[str, int]] = set()
    for row in rows:
        # Two rows of one run (two studies' files joined): the comparison kept the last alone.
        if (run := (row["variant"], row["seed"])) in seen:
            raise ValueError(f"{path} holds run {run[0]} seed {run[1]} twice")
        seen.add(run)
        out.setdefault(row["variant"], []).append(row)
    return out


def _csv_rows(path: Path) -> list[dict]:
    """The same rows as results.json: an empty cell (a run that never solved) is None."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = []
        for row in reader:
            if None in row or None in row.values():  # more cells, or fewer, than the header
                raise ValueError(f"line {reader.line_num} has not one cell per column")
            try:
                rows.append({k: _cell(k, v) for k, v in row.items()})
            except ValueError as exc:
                raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows


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
    return mwu_pvalue(a, b), ks_pvalue(a, b)


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


def solved(x: np.ndarray, threshold: float = THRESHOLD) -> str:
    """Runs whose final evaluation reached ``threshold``, with their Clopper-Pearson interval."""
    k, n = int((x >= threshold).sum()), len(x)
    low, high = proportion_ci(k, n)
    return f"{k}/{n} [{low:.2f}, {high:.2f}]"


def table(first: Path, second: Path, threshold: float = THRESHOLD) -> str:
    a, b = load(first), load(second)
    bar = f"final eval >= {threshold:g}"
    lines = [
        f"A = {first}, B = {second}{TITLE_END}",
        "",
        f"| variant | runs | solved at end A ({bar}) | solved at end B | median final A / B "
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
        # A run stopped before its first evaluation has none: it ranks below every run that has
        # one (0 would rank it above every run of an env with negative returns, as Acrobot's).
        fa, fb, ua, ub = (missing_ranked_last(x) for x in (fa, fb, ua, ub))
        n = len(seeds)

        mf, kf = p_values(fa, fb)
        mu, ku = p_values(ua, ub)
        lines.append(
            f"| {variant} | {n} | {solved(fa, threshold)} | {solved(fb, threshold)} | "
            f"{np.median(fa):.1f} / {np.median(fb):.1f} | {mf:.2f} / {kf:.2f} | "
            f"{np.median(ua):.1f} / {np.median(ub):.1f} | {mu:.2f} / {ku:.2f} |"
        )
    return "\n".join(lines) + "\n"


def out_problem(out: Path) -> str | None:
    """Why the table may not be written to ``out``, or None.

    A file there is replaced only if it is a table this script wrote (its first line is the
    table's title): rerunning a comparison refreshes its report, as a user expects, but a file
    of anything else (a study's summary.md, notes, a mistyped name) is not lost to it.
    """
    if out.is_dir():
        return f"--out {out} is a folder: give it a file name"
    folder = next(p for p in out.parents if p.exists() or p.is_symlink())
    if not folder.is_dir():  # the write would make folders under a file
        return f"cannot write to {out}: {folder} is not a folder"
    if (out.exists() or out.is_symlink()) and not (out.is_file() and _is_table(out)):
        return (
            f"{out} exists and is not a table of {PROG}: not replaced (remove it, or give "
            "another --out)"
        )
    return None


def _is_table(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(1000).rstrip("\n")
    except OSError:
        return False  # unreadable: nothing says it is ours
    return first.startswith("A = ") and first.endswith(TITLE_END)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=home_expanded)
    p.add_argument("second", type=home_expanded)
    p.add_argument("--out", type=home_expanded, help="also write the table here")
    p.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help="the final evaluation that counts as solved (default: %(default)g, CartPole-v1's; "
        "a study's summary.md names its own)",
    )
    args = p.parse_args(argv)
    if not np.isfinite(args.threshold):
        return fail(PROG, f"--threshold is a finite number, got {args.threshold}")
    for folder in (args.first, args.second):
        if not any((folder / name).is_file() for name in ("results.json", "results.csv")):
            return fail(PROG, f"{folder} has no results.json or results.csv")
    try:
        problem = args.out and out_problem(args.out)
    except OSError as exc:  # a folder on the way that this user may not look into
        problem = f"cannot write to {args.out}: {exc.strerror or exc}"
    if problem:
        return fail(PROG, problem)
    try:
        text = table(args.first, args.second, args.threshold)
    except ValueError as exc:
        return fail(PROG, exc)
    if args.out:  # before printing: a failed write is the one line, not a table and a line
        try:
            atomic_write_text(args.out, text)
        except OSError as exc:  # a read-only folder, a full disk
            # The reason alone: the file the error names is the temporary one beside --out.
            return fail(PROG, f"cannot write to {args.out}: {exc.strerror or exc}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
