"""docs/metrics.md names every column and field a run and a study write, each in its own
section, and nothing they do not write."""

import csv
import json
import re
from pathlib import Path

from dqn.run_log import METRICS_COLUMNS
from dqn.study_runs import ROW_KEYS

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()


def section(title: str) -> str:
    """The text of the page's section ``## title``, up to the next one."""
    return PAGE.split(f"\n## {title}\n")[1].split("\n## ")[0]


def named(text: str) -> set[str]:
    """The names in the first cell of each table row: ``| `a`, `b` | ...`` gives a and b."""
    cells = re.findall(r"^\| ([^|]+) \|", text, flags=re.MULTILINE)
    return {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}


def family(column: str) -> str:
    """grad_norm/q -> grad_norm/<layer>, dead_fraction/hidden_0 -> dead_fraction/hidden_<i>."""
    if column.startswith("grad_norm/"):
        return "grad_norm/<layer>"
    return re.sub(r"/hidden_\d+$", "/hidden_<i>", column)


def test_the_metrics_csv_section_names_exactly_the_columns_runs_write(tiny_run):
    with open(tiny_run / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[: len(METRICS_COLUMNS)] == list(METRICS_COLUMNS)
    # Each unit kind has its row, whichever activation the tiny run had.
    written = {family(c) for c in header} | {"saturated_fraction/hidden_<i>"}
    assert named(section("metrics.csv")) == written


def test_the_summary_section_names_exactly_the_fields_summaries_hold(tiny_run):
    summary = set(json.loads((tiny_run / "summary.json").read_text()))
    assert named(section("summary.json")) == summary | {"population_members"}


def test_the_results_section_names_exactly_a_studys_columns():
    assert named(section("results.csv and results.json (a study)")) == set(ROW_KEYS)


def test_a_name_in_another_section_does_not_count():
    # `loss` is a summary field and a results column too: the metrics.csv rows name it apart.
    assert "loss" in named(section("summary.json"))
    update_rows = section("metrics.csv").split("over one step's batch")[1]
    assert "loss" in named(update_rows) and "td_error_abs_p99" in named(update_rows)


def test_results_csv_keeps_the_column_order_of_the_studies_in_docs(tmp_path):
    # Positional readers (cut -f, usecols by index, spreadsheets) and the committed studies in
    # docs/ rely on it; the header alone, renamed in place, would not show a swap.
    from pathlib import Path

    from dqn.run_log import METRICS_COLUMNS
    from dqn.study_runs import RESULT_COLUMNS

    docs = Path(__file__).resolve().parents[1] / "docs"
    header = (docs / "compare-pop" / "results.csv").read_text().splitlines()[0]
    assert list(RESULT_COLUMNS) == header.split(",")
    assert METRICS_COLUMNS[:7] == (
        "env_step",
        "grad_steps",
        "episodes",
        "epsilon",
        "train_return_mean",
        "eval_return_mean",
        "eval_return_std",
    )
