"""docs/metrics.md names every column and field a run and a study write."""

import csv
import json
import re
from pathlib import Path

from dqn.run_log import METRICS_COLUMNS
from dqn.study_runs import ROW_KEYS

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "metrics.md").read_text()
NAMED = set(re.findall(r"`([^`]+)`", PAGE))


def documented(column: str) -> bool:
    """Named as itself, or by its family: grad_norm/<layer>, dead_fraction/hidden_<i>."""
    if column.startswith("grad_norm/"):
        return "grad_norm/<layer>" in NAMED
    return column in NAMED or re.sub(r"/hidden_\d+$", "/hidden_<i>", column) in NAMED


def test_every_column_of_a_runs_metrics_csv_and_summary_is_on_the_page(tiny_run):
    with open(tiny_run / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[: len(METRICS_COLUMNS)] == list(METRICS_COLUMNS)
    assert [c for c in header if not documented(c)] == []
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert [k for k in summary if k not in NAMED] == []


def test_every_column_of_a_studys_results_is_on_the_page():
    assert [k for k in ROW_KEYS if k not in NAMED] == []
    assert "population_members" in NAMED  # a member's summary.json only


def test_a_column_the_page_does_not_name_is_found():
    assert not documented("td_error_abs_p95") and not documented("dead_fraction/layer_1")
    assert documented("grad_norm/hidden_3") and documented("saturated_fraction/hidden_2")
